"""The Helm chart (``charts/sensor-anomaly``) as the tests see it: Helm itself, built from the
Go module proxy by ``scripts/helm.sh`` (cached; about 2.5 minutes the first time), and the
chart rendered into Kubernetes objects.

Without Go, or when Helm cannot be built, a test that needs it fails under ``make test``
(``REQUIRE_TOOLS=1``, ``tests/tools.py``) and otherwise skips with the reason.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.checkout import ROOT
from tests.tools import go_built

HELM_SH = ROOT / "scripts" / "helm.sh"
CHART = ROOT / "charts" / "sensor-anomaly"
#: The value sets every check renders: one replica, three, recovery off, SASL/TLS.
VALUE_SETS = sorted((CHART / "ci").glob("*.yaml"))
#: The Kubernetes release the objects are rendered for and validated against.
KUBE_VERSION = "1.33.0"
RELEASE = "demo"
NAMESPACE = "sensors"

Obj = dict[str, Any]


def helm_binary() -> str:
    """The cached Helm, else built with scripts/helm.sh, else fail or skip with the reason."""
    return go_built(HELM_SH, "the Helm chart")


def helm(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)


def template_args(values: Path | None = None, sets: tuple[str, ...] = ()) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    args += ["--kube-version", KUBE_VERSION]
    if values is not None:
        args += ["-f", str(values)]
    for s in sets:
        args += ["--set", s]
    return args


def render(binary: str, values: Path | None = None, *sets: str) -> list[Obj]:
    """The chart's objects with these values (``helm template``), hooks included."""
    proc = helm(binary, *template_args(values, sets))
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def one(objs: list[Obj], kind: str, name: str | None = None) -> Obj:
    """The only object of ``kind`` (and ``name``) among ``objs``."""
    found = [
        o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in {[o['kind'] for o in objs]}"
    return found[0]
