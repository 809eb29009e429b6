"""Programs some tests run that are not Python packages (shellcheck, kcat, java, go).

Without one, its checks cannot run. Under ``make test`` (``scripts/test.sh`` sets
``REQUIRE_TOOLS=1`` and installs what it can first) that is a failure, so a green run never
hides a check; otherwise (``pytest`` by hand, ``REQUIRE_TOOLS=0``) the test skips, and
pytest's ``-ra`` lists the reason in the summary.
"""

from __future__ import annotations

import os
import shutil

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
