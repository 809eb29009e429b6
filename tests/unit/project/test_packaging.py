"""The project installs as declared: pyproject.toml agrees with requirements.txt, every console
script's target imports, and nothing reaches the code through ``sys.path`` edits.

A real ``pip install .`` needs the network and a minute, so it is not run here (README:
"Install"); these checks catch what would make it, or the installed scripts, go wrong.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[3]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PACKAGES = ["dataflow", "producer", "eval", "notifier"]


def pins() -> dict[str, str]:
    """requirements.txt as {normalised name: exact version}; every line must be a ``==`` pin."""
    out = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"requirements.txt must pin exactly: {line}"
            out[canonicalize_name(req.name)] = spec.version
    return out


def declared(requirements: list[str]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, requirements)}


def test_dependencies_are_ranges_and_requirements_txt_pins_exactly_them() -> None:
    runtime = declared(PROJECT["dependencies"])
    dev = declared(PROJECT["optional-dependencies"]["dev"])
    pinned = pins()
    assert not runtime.keys() & dev.keys()
    assert runtime.keys() | dev.keys() == pinned.keys(), (
        "pyproject.toml (dependencies + the dev extra) and requirements.txt name different packages"
    )
    for name, req in {**runtime, **dev}.items():
        assert not any(s.operator in ("==", "===") for s in req.specifier), (
            f"{req}: pyproject.toml declares ranges; the exact pin is requirements.txt's"
        )
        assert req.specifier.contains(pinned[name]), (
            f"requirements.txt pins {name}=={pinned[name]}, outside pyproject's {req}"
        )


def test_python_version_and_packages() -> None:
    assert PROJECT["requires-python"] == ">=3.11"
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]
    assert sorted({name.split(".")[0] for name in packages}) == sorted(PACKAGES)
    for name in packages:
        assert (ROOT / name.replace(".", "/") / "__init__.py").is_file()
    # An explicit list installs only what it names: every subpackage must be in it.
    found = {
        init.parent.relative_to(ROOT).as_posix().replace("/", ".")
        for package in PACKAGES
        for init in (ROOT / package).rglob("__init__.py")
    }
    assert found == set(packages)
    # The program folders that are not installed are not packages either.
    for folder in ("bench", "scripts"):
        assert not (ROOT / folder / "__init__.py").exists()


@pytest.mark.parametrize("script", sorted(PROJECT["scripts"]))
def test_console_script_targets_import(script: str) -> None:
    module, _, attr = PROJECT["scripts"][script].partition(":")
    assert module.split(".")[0] in PACKAGES
    assert callable(getattr(importlib.import_module(module), attr))


def test_the_console_scripts_that_the_readme_promises() -> None:
    assert {
        "sensor-producer",
        "sensor-dataflow",
        "sensor-eval",
        "sensor-notifier",
        "sensor-wait-for-broker",
        "sensor-init-topics",
    } <= PROJECT["scripts"].keys()


SYS_PATH_EDIT = re.compile(r"sys\.path\.(insert|append|extend)|sys\.path\s*[+]?=")


def test_no_program_edits_sys_path() -> None:
    """With the project installed (``make venv``: ``pip install -e .``) none is needed."""
    offenders = [
        str(path.relative_to(ROOT))
        for folder in (*PACKAGES, "scripts", "bench")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if SYS_PATH_EDIT.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_importing_the_flow_module_builds_nothing_and_admin_needs_no_bytewax() -> None:
    """``dataflow.main`` builds ``flow`` only when asked (bytewax.run's getattr), so importing
    it reads no settings and creates no topics; ``dataflow.admin`` is free of Bytewax."""
    code = (
        "import sys\n"
        "import dataflow.admin\n"
        "assert not any(m.split('.')[0] == 'bytewax' for m in sys.modules), 'admin: bytewax'\n"
        "import dataflow.main as m\n"
        "assert 'flow' not in vars(m)\n"
        "print('ok')\n"
    )
    # An unreachable broker and a bad setting: building the flow would fail at once.
    env = {"KAFKA_BROKERS": "127.0.0.1:1", "TOPIC_PARTITIONS": "0", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_asking_for_another_attribute_of_the_flow_module_is_an_attribute_error() -> None:
    import dataflow.main

    with pytest.raises(AttributeError, match="no attribute 'flw'"):
        _ = dataflow.main.flw  # type: ignore[attr-defined]
