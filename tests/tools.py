"""Programs some tests run that are not Python packages (shellcheck, kcat, java, go, and what
Go builds: rpk, helm).

Without one, its checks cannot run. Under ``make test`` (``scripts/test.sh`` sets
``REQUIRE_TOOLS=1`` and installs what it can first) that is a failure, so a green run never
hides a check; otherwise (``pytest`` by hand, ``REQUIRE_TOOLS=0``) the test skips, and
pytest's ``-ra`` lists the reason in the summary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def tools_required() -> bool:
    return os.environ.get("REQUIRE_TOOLS") == "1"


def missing(what: str) -> None:
    """The test cannot check what it is for, because ``what`` is missing: fail or skip."""
    if tools_required():
        pytest.fail(
            f"{what} (REQUIRE_TOOLS=1: a missing tool fails; REQUIRE_TOOLS=0 skips its checks)",
            pytrace=False,
        )
    # Reported at the test's own line, as a skipif mark is, not at this helper's.
    raise pytest.skip.Exception(what, _use_item_location=True)


def require_tool(command: str, install: str) -> str:
    """The path of ``command``, else fail or skip saying how to install it."""
    path = shutil.which(command)
    if path is None:
        missing(f"{command} is not installed ({install}), so this check cannot run")
    return path


def go_built(script: Path, unchecked: str) -> str:
    """The binary a ``scripts/*.sh`` Go-tool script caches (rpk.sh, helm.sh), building it first
    if needed; else fail or skip, saying that ``unchecked`` is not checked and why."""
    cached = subprocess.run([str(script), "path"], capture_output=True, text=True, timeout=60)
    if cached.returncode == 0:
        return cached.stdout.strip()
    require_tool(
        os.environ.get("GO", "go"),
        f"Go 1.24 or newer, https://go.dev/dl/; `scripts/{script.name} build` needs it, and "
        "its program is not built yet",
    )
    built = subprocess.run([str(script), "build"], capture_output=True, text=True, timeout=1800)
    if built.returncode != 0:
        missing(
            f"`scripts/{script.name} build` failed, so {unchecked} is not checked: "
            + built.stderr.strip()[-1500:]
        )
    return built.stdout.strip().splitlines()[-1]
