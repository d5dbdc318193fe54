"""Shell entry for one step, used by containers and KFP components.

    python -m mlc.runtime step KIND --params JSON|@file --inputs name=LOC ... \
        --outputs name=LOC ... [--project-dir DIR] [--tracking-uri URI] [--run-id ID]

Exit codes: 0 done (the step's JSON summary on stdout), 1 the step failed (its message on
stderr), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mlc.runtime.context import StepContext, StepError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    result = {}
    for item in values:
        name, sep, loc = item.partition("=")
        if not sep or not name or not loc:
            raise ValueError(f"{flag} expects name=LOCATION, got '{item}'")
        result[name] = loc
    return result


def _params(text: str) -> dict[str, Any]:
    source = "--params"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text()
        except OSError as exc:
            raise ValueError(f"cannot read params file {source}: {exc.strerror}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{source} must be a JSON object")
    return value


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run one step, print its summary; return the exit code."""
    parser = _Parser(prog="python -m mlc.runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    step = sub.add_parser("step", help="run one step")
    step.add_argument("kind")
    step.add_argument("--params", default="{}")
    step.add_argument("--inputs", nargs="*", default=[])
    step.add_argument("--outputs", nargs="*", default=[])
    step.add_argument("--project-dir", default=".")
    step.add_argument("--state-dir", default=None)
    step.add_argument("--tracking-uri", default=None, help="a URL, or env:NAME")
    step.add_argument("--artifact-location", default=None, help="a URL, or env:NAME")
    step.add_argument("--run-id", default="adhoc")
    args = parser.parse_args(argv)

    from mlc.runtime.steps import get

    try:
        params = _params(args.params)
        inputs = _pairs(args.inputs, "--inputs")
        outputs = _pairs(args.outputs, "--outputs")
        fn = get(args.kind)
    except (ValueError, StepError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from mlc.runtime import store

    try:
        tracking_uri = store.configured_uri(args.tracking_uri, "--tracking-uri")
        artifact_location = store.configured_uri(args.artifact_location, "--artifact-location")
    except store.StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ctx = StepContext(
        project_dir=Path(args.project_dir),
        state_dir=args.state_dir,
        tracking_uri=tracking_uri,
        run_id=args.run_id,
        step_id=args.kind,
        extra={"artifact_location": artifact_location} if artifact_location else {},
    )
    try:
        summary = fn(params, inputs, outputs, ctx)
    except StepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyError as exc:
        print(f"error: step '{args.kind}': params lack the key {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
