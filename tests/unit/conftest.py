"""Unit-test settings shared by every module.

Hypothesis fails an example that runs over 200 ms by default. These tests check results, never
speed (speed is claimed in ``bench/``), and on a loaded 2-core machine an example can take longer,
so a slow example must not fail a run: no deadline.

The test directories mirror the packages (``tests/unit/dataflow/`` tests ``dataflow``). That is
safe only because ``tests/`` and ``tests/unit/`` are packages: pytest then puts the repository
root on ``sys.path`` and imports a test as ``tests.unit.dataflow.test_x``, so ``import dataflow``
finds the real package. Without ``tests/unit/__init__.py`` pytest would put ``tests/unit`` first
on ``sys.path`` and every ``import dataflow`` would silently get the test directory; the check
below stops the run instead.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from hypothesis import settings

from tests.certs import TlsFiles, make_tls_files

settings.register_profile("unit", deadline=None)
settings.load_profile("unit")

_TESTS = Path(__file__).resolve().parent.parent
for _name in ("dataflow", "producer", "eval", "notifier"):
    _file = importlib.import_module(_name).__file__
    if _file is None or _TESTS in Path(_file).resolve().parents:
        raise ImportError(
            f"`import {_name}` found {_file}, a test directory, not the package: "
            "tests/__init__.py and tests/unit/__init__.py must exist"
        )


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA, a client certificate it signed, one of another CA, an encrypted key: made once with
    openssl for every test that points TLS settings at real files."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))
