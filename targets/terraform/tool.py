"""Running the `terraform` CLI on emitted files, through python-terraform's generic `cmd()`.

python-terraform's `destroy()` passes `-force` and its `output()` raises on Terraform 1.x, so
every command goes through `Terraform.cmd`. The provider comes from a local filesystem mirror
(no registry access), written into a CLI config file that `TF_CLI_CONFIG_FILE` points at.
"""

from __future__ import annotations

import os
from pathlib import Path

MIRROR_CANDIDATES = (
    "/opt/tf-plugins",
    "/usr/share/terraform/plugins",
    "~/.terraform.d/plugins",
    "~/.local/share/terraform/plugins",
)
"""Folders searched for a provider mirror when `MLC_TF_PLUGIN_MIRROR` is unset."""


def find_mirror(provider: str = "hashicorp/aws") -> Path | None:
    """A filesystem mirror holding `registry.terraform.io/<provider>`, or None."""
    env = os.environ.get("MLC_TF_PLUGIN_MIRROR")
    for candidate in ([env] if env else []) + list(MIRROR_CANDIDATES):
        root = Path(candidate).expanduser()
        if (root / "registry.terraform.io" / provider).is_dir():
            return root
    return None


def write_cli_config(path: Path, mirror: Path, provider: str = "hashicorp/aws") -> Path:
    """A CLI config that installs `provider` from `mirror` only, never from a registry."""
    source = f"registry.terraform.io/{provider}"
    path.write_text(
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{mirror}"\n'
        f'    include = ["{source}"]\n'
        "  }\n"
        "  direct {\n"
        f'    exclude = ["{source}"]\n'
        "  }\n"
        "}\n"
    )
    return path


def run(
    workdir: Path, *args: str, cli_config: Path | None = None, **options: object
) -> tuple[int, str, str]:
    """Run `terraform <args>` in `workdir`; return (exit code, stdout, stderr).

    Keyword options become flags the python-terraform way (`no_color=IsFlagged`,
    `var={"k": "v"}`).
    """
    from python_terraform import Terraform

    env_before = os.environ.get("TF_CLI_CONFIG_FILE")
    if cli_config is not None:
        os.environ["TF_CLI_CONFIG_FILE"] = str(cli_config)
    try:
        tf = Terraform(working_dir=str(workdir))
        code, out, err = tf.cmd(*args, **options)
    finally:
        if cli_config is not None:
            if env_before is None:
                os.environ.pop("TF_CLI_CONFIG_FILE", None)
            else:
                os.environ["TF_CLI_CONFIG_FILE"] = env_before
    return int(code), out or "", err or ""
