"""tests/checkout.py: the project's files, never what the broker or a venv put in the checkout."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.checkout import ROOT, project_files


def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("#!/usr/bin/env bash\n")


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout-like tree with local state where the broker and a venv keep theirs."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repository above
    touch(
        tmp_path,
        "entrypoint.sh",
        "scripts/broker.sh",
        "scripts/kafka/pom.xml",
        ".broker/data/topic-0/x.sh",
        ".venv/bin/activate.sh",
        "dataflow/__pycache__/y.sh",
    )
    (tmp_path / ".gitignore").write_text(".venv/\n.broker/\n__pycache__/\n")
    return tmp_path


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_in_a_git_checkout_tracked_and_new_files_but_nothing_ignored(tree: Path) -> None:
    git(tree, "init", "-q")
    git(tree, "add", "entrypoint.sh", "scripts/broker.sh", ".gitignore")
    touch(tree, "scripts/new.sh")  # not added yet: still the project's
    (tree / "entrypoint.sh").unlink()  # tracked, but deleted in the working tree
    assert project_files("*.sh", root=tree) == [tree / "scripts/broker.sh", tree / "scripts/new.sh"]
    assert project_files("*.xml", under="scripts/", root=tree) == [tree / "scripts/kafka/pom.xml"]
    assert project_files("*.sh", under="dataflow", root=tree) == []


def test_outside_a_git_checkout_the_walk_leaves_local_state_alone(tree: Path) -> None:
    assert project_files("*.sh", root=tree) == [tree / "entrypoint.sh", tree / "scripts/broker.sh"]


def test_this_checkout() -> None:
    scripts = project_files("*.sh")
    assert ROOT / "entrypoint.sh" in scripts
    assert ROOT / "scripts" / "broker.sh" in scripts
    assert not [p for p in scripts if {".broker", ".venv", ".git"} & set(p.relative_to(ROOT).parts)]
