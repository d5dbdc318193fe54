"""The Open Inference Protocol's body types as MLServer ships them (generated from the
protocol's `dataplane.yaml`), to check `mlc serve`'s V2 bodies against the published schema.

MLServer is a peer, never one of mlc's dependencies: its wheel is downloaded (no dependencies,
~130 kB) into the test's own folder and only its pydantic `mlserver/types` modules are read,
under a package name of their own, with the pydantic mlc's environment already has.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

from support.tools import missing

MLSERVER = "mlserver==1.7.1"
PACKAGE = "oip_types"


def types(folder: Path) -> ModuleType:
    """`mlserver.types` of MLSERVER, imported as `oip_types` from `folder`."""
    wheels = folder / "wheels"
    got = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", MLSERVER, "-d", str(wheels)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    found = sorted(wheels.glob("mlserver-*.whl")) if got.returncode == 0 else []
    if not found:
        missing(f"the {MLSERVER} wheel from the package index ({got.stderr.strip()[-200:]})")
    target = folder / "lib" / PACKAGE
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(found[0]) as wheel:
        for name in wheel.namelist():
            if name.startswith("mlserver/types/") and name.endswith(".py"):
                (target / Path(name).name).write_bytes(wheel.read(name))
    sys.path.insert(0, str(target.parent))
    try:
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(target.parent))
