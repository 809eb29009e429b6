"""The project's own files, for tests that look at every file of a kind (e.g. shell scripts).

Never a walk of the whole checkout: it also holds state that other programs change while the
tests run (the local broker deletes topic directories under ``.broker/data``; ``.venv``,
caches), and a walk that meets a directory as it is removed fails with FileNotFoundError.
So the files are the ones git knows: tracked, plus new ones not ignored by ``.gitignore`` (a
script not yet added is still checked). Outside a git checkout (an exported tree, no git),
the tree is walked without entering the ignored directories below, and anything that vanishes
during the walk is passed over.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Data sets kept beside the checkout, not in it (NAB, the UCI air-quality file); tests that need
# them skip without.
SHARED_DATA = ROOT.parent / "shared" / "data"

# Not the project's files: local state, environments and caches (see .gitignore).
NOT_OURS = frozenset(
    {
        ".git",
        ".venv",
        ".venv-bench",
        ".broker",
        ".prometheus",
        "__pycache__",
        ".pytest_cache",
        ".ruff_cache",
        ".cache",
        "out",
        "node_modules",
    }
)


def _git_files(root: Path) -> list[str] | None:
    try:
        proc = subprocess.run(
            [
                "git",
                "-C",
                str(root),
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None  # no git
    if proc.returncode != 0:
        return None  # not a git checkout (or one git refuses to read)
    return [name for name in proc.stdout.decode().split("\0") if name]


def _walked_files(root: Path) -> list[str]:
    names = []
    # os.walk passes over directories that vanish or cannot be read (onerror=None).
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in NOT_OURS]
        rel = Path(dirpath).relative_to(root)
        names.extend((rel / name).as_posix() for name in filenames)
    return names


def project_files(pattern: str = "*", under: str = "", root: Path = ROOT) -> list[Path]:
    """The project's files whose name matches ``pattern`` (fnmatch, e.g. ``*.sh``), below the
    directory ``under`` (relative to the checkout, "" for all), sorted. Files listed by git but
    deleted from the working tree are left out."""
    names = _git_files(root)
    if names is None:
        names = _walked_files(root)
    prefix = under.strip("/") + "/" if under.strip("/") else ""
    found = []
    for name in names:
        if not name.startswith(prefix) or not fnmatch.fnmatchcase(name.rsplit("/", 1)[-1], pattern):
            continue
        path = root / name
        if path.is_file():
            found.append(path)
    return sorted(found)
