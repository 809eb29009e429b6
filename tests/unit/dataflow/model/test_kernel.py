"""Where the compiled scoring loop keeps its machine code (its decisions: ``test_columns.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataflow.model import kernel

ROOT = Path(__file__).parents[4]


def test_compiled_code_is_kept_outside_the_checkout_per_version_of_its_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = Path(kernel._cache_dir())
    assert path.parent == tmp_path / "sensor-anomaly" / "numba"
    assert not path.is_relative_to(ROOT)
    assert path.is_dir() and len(path.name) == 16
    assert kernel._cache_dir() == str(path)  # the same sources, the same place


def test_other_versions_compiled_code_is_removed_once_unused_for_a_month(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each edit of the sources leaves a directory behind; one another checkout still starts
    from is touched at each start, so is kept."""
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    versions = tmp_path / "sensor-anomaly" / "numba"
    old, recent = versions / "0123456789abcdef", versions / "fedcba9876543210"
    for path in (old, recent):
        (path / "index").mkdir(parents=True)
    month = kernel.CACHE_UNUSED_S
    now = time.time()
    os.utime(old, (now - month - 60, now - month - 60))
    os.utime(recent, (now - month + 3600, now - month + 3600))
    own = Path(kernel._cache_dir())
    assert own.parent == versions and own.is_dir()
    assert not old.exists()
    assert (recent / "index").is_dir()
    # Its own directory is marked used, however long since it was made.
    os.utime(own, (now - 2 * month, now - 2 * month))
    assert kernel._cache_dir() == str(own)
    assert now - own.stat().st_mtime < 60


def test_a_given_cache_directory_is_used_and_an_unwritable_one_means_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "given"))
    assert kernel._cache_dir() == str(tmp_path / "given")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # Numba would fall back to __pycache__ beside the source, or fail on import: not cached.
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(blocker / "cache"))
    assert kernel._cache_dir() == ""


def test_the_cache_is_outside_the_checkout_even_when_numba_was_imported_first(
    tmp_path: Path,
) -> None:
    """Numba reads its environment once, on import: a process that imported it before the
    kernel (a library, a tool) must not fall back to ``__pycache__`` inside the checkout."""
    code = (
        "import numba\n"
        "from dataflow.model import kernel\n"
        "print(kernel.score_rows._cache._cache_path)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    path = Path(done.stdout.strip())
    assert path.is_relative_to(tmp_path / "sensor-anomaly" / "numba"), path


def test_the_cache_version_covers_every_module_the_compiled_code_takes_from() -> None:
    """A function or constant of a module missing from ``SOURCES`` would be compiled in, and an
    edit of it not seen: the next start would run the old machine code."""
    import ast

    tree = ast.parse((ROOT / "dataflow" / "model" / "kernel.py").read_text())
    taken = {
        node.module.rsplit(".", 1)[1] + ".py"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dataflow.model.")
    }
    assert "seasonality.py" in taken  # what the test reads: the imports, as written
    assert taken <= set(kernel.SOURCES)
