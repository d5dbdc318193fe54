"""`--target github`: a GitHub Actions workflow that reviews and builds the spec on every PR.

The workflow installs mlc, validates the spec with `--format github` (annotations on the PR's
diff), runs `mlc diff` against the PR base and posts the Markdown as a PR comment (updating its
own earlier comment), compiles the configured targets and uploads them as an artifact. A
high-risk change or a policy violation fails the job after the comment is posted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import Field

from mlc.compiler.ir import IRGraph
from mlc.targets.base import EmitContext, Target, TargetOptions

WORKFLOW_PATH = ".github/workflows/mlc.yml"


class GithubOptions(TargetOptions):
    spec: str = "mlc.yaml"
    """Path of the spec file relative to the repository root."""
    targets: tuple[str, ...] | None = None
    """Targets to compile (default: every target configured in the spec but `github`)."""
    python: str = "3.11"
    install: str = "pip install ."
    """Command that installs mlc (and the extras the targets need)."""
    branches: tuple[str, ...] = ("main",)
    """Branches whose pushes and pull requests run the workflow."""
    fail_on_high_risk: bool = True
    """Fail the job when `mlc diff` reports a high-risk change or a policy violation."""
    artifact_name: str = Field("mlc-out", pattern=r"^[A-Za-z0-9._-]+$")


def _shell(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def build_workflow(ir: IRGraph, options: GithubOptions) -> dict[str, Any]:
    """The workflow as plain data (keys in the order GitHub documents them)."""
    spec = _shell(options.spec)
    configured = sorted(ir.settings.get("target_options") or {})
    targets = (
        list(options.targets)
        if options.targets is not None
        else [t for t in configured if t != "github"]
    )
    compile_args = " ".join(f"--target {_shell(t)}" for t in targets)
    diff_run = (
        "\n".join(
            [
                "set +e",
                f'mlc diff --base "origin/${{{{ github.base_ref }}}}" {spec} --format markdown '
                "--out mlc-diff.md",
                'echo "exit=$?" >> "$GITHUB_OUTPUT"',
                "test -s mlc-diff.md",
            ]
        )
        + "\n"
    )
    comment_run = (
        'gh pr comment "$PR" --body-file mlc-diff.md --edit-last '
        '|| gh pr comment "$PR" --body-file mlc-diff.md'
    )
    steps: list[dict[str, Any]] = [
        {
            "name": "Check out (full history for the diff base)",
            "uses": "actions/checkout@v4",
            "with": {"fetch-depth": 0},
        },
        {
            "name": "Set up Python",
            "uses": "actions/setup-python@v5",
            "with": {"python-version": options.python},
        },
        {"name": "Install mlc", "run": options.install},
        {"name": "Validate the spec", "run": f"mlc validate {spec} --format github"},
        {
            "name": "Review the change (mlc diff)",
            "id": "diff",
            "if": "github.event_name == 'pull_request'",
            "run": diff_run,
        },
        {
            "name": "Post the review as a PR comment",
            "if": "github.event_name == 'pull_request'",
            "env": {
                "GH_TOKEN": "${{ github.token }}",
                "PR": "${{ github.event.pull_request.number }}",
            },
            "run": comment_run,
        },
    ]
    if options.fail_on_high_risk:
        steps.append(
            {
                "name": "Fail on high-risk changes or policy violations",
                "if": "github.event_name == 'pull_request' && steps.diff.outputs.exit != '0'",
                "run": 'echo "mlc diff exited ${{ steps.diff.outputs.exit }}: see the PR '
                'comment"; exit 1',
            }
        )
    if targets:
        steps += [
            {"name": "Compile targets", "run": f"mlc compile {spec} {compile_args} --out out"},
            {
                "name": "Upload compiled outputs",
                "uses": "actions/upload-artifact@v4",
                "with": {
                    "name": options.artifact_name,
                    "path": "out/",
                    "if-no-files-found": "error",
                },
            },
        ]
    return {
        "name": f"mlc {ir.name}",
        "on": {
            "pull_request": {"branches": list(options.branches)},
            "push": {"branches": list(options.branches)},
        },
        "permissions": {"contents": "read", "pull-requests": "write"},
        "concurrency": {"group": "mlc-${{ github.ref }}", "cancel-in-progress": True},
        "jobs": {
            "mlc": {
                "name": "Review and build the ML system spec",
                "runs-on": "ubuntu-latest",
                "timeout-minutes": 30,
                "steps": steps,
            }
        },
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line scripts as literal blocks, so the workflow reads like a hand-written one."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


class GithubTarget(Target):
    name = "github"
    description = "GitHub Actions workflow: validate, diff as a PR comment, compile, upload."
    options_model = GithubOptions
    # The workflow builds the system; it realises none of its steps itself.
    inspection = True

    def emit(self, ir: IRGraph, ctx: EmitContext) -> Mapping[str, str | bytes]:
        options = ctx.options
        assert isinstance(options, GithubOptions)
        text = yaml.dump(
            build_workflow(ir, options),
            Dumper=_Dumper,
            sort_keys=False,
            width=4096,
            allow_unicode=True,
            default_flow_style=False,
        )
        header = "# Generated by mlc (--target github). Edit the spec, not this file.\n"
        return {WORKFLOW_PATH: header + text}
