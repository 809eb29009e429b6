"""The benchmarks' loaders write what the dataflow reads, and mean what the producer means; the
Quix Streams peer imports only what its own venv has.

``bench/workloads.py`` formats the tutorials' messages by hand for speed; these checks read
them back with the dataflow's own decoders and compare with the producer's encoder.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench import workloads as wl
from dataflow.families import AIR_QUALITY, TEMPERATURE
from dataflow.readings import Reading, parse, parse_poll
from producer.shapes import encode
from tests.factories import fmt

# Event times that stress the formatting: an epoch second, a 7-digit fraction, a far year.
TIMES = [wl.T0_NS, wl.T0_NS + 123_456_789, 4_102_444_799_999_999_000]


@pytest.mark.parametrize("ts", TIMES)
@pytest.mark.parametrize("value", [0.0, 23.4, 105.25])
def test_the_loader_messages_read_as_the_producer_s(ts: int, value: float) -> None:
    for family, message in (
        (AIR_QUALITY, wl.air_quality_value(wl.naive_stamp(ts), value)),
        (TEMPERATURE, wl.temperature_value(value, ts)),
    ):
        key, ours = encode(Reading(family, "s1", ts, value))
        got = parse(fmt(family), key, message)
        assert got == parse(fmt(family), key, ours)
        assert got.value == value
        # The air-quality format holds microseconds; the temperature one nanoseconds.
        assert got.ts == (ts - ts % 1_000 if family == AIR_QUALITY else ts)


def test_a_workload_s_polls_decode_whole_with_every_value_and_time() -> None:
    work = wl.WORKLOADS["W1"]
    rows = list(wl.readings(work, 4 * work.sensors))
    for is_aq, family in ((True, AIR_QUALITY), (False, TEMPERATURE)):
        values = [value for aq, _, value, _, _ in rows if aq is is_aq]
        cols = parse_poll(fmt(family), values)
        assert cols is not None, f"{family}: a loader message left the fast path"
        assert len(cols.values) == len(values) == 2 * work.sensors
        assert set(cols.ts) == {wl.T0_NS + tick * work.step_ns for tick in range(4)}


BENCH = Path(__file__).resolve().parents[3] / "bench"


def bench_venv_packages() -> set[str]:
    """The import names of ``bench/requirements-bench.txt``'s pins (each must be ``==``)."""
    names = set()
    for line in (BENCH / "requirements-bench.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"requirements-bench.txt must pin exactly: {line}"
            names.add(canonicalize_name(req.name).replace("-", "_"))
    return names


def absolute_imports(path: Path) -> set[str]:
    """The top-level names of every absolute import in ``path``, wherever it stands."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_the_quix_peer_imports_only_what_its_venv_has() -> None:
    """``bench/quix_peer.py`` runs as a script in ``.venv-bench``, where the project is not
    installed: it and the sibling modules it imports may use the standard library and the bench
    pins, nothing else (a ``dataflow`` import there once broke ``make bench``). The harness
    smoke test runs the peer for real; this says which file strayed, without a broker."""
    allowed = bench_venv_packages() | set(sys.stdlib_module_names)
    strays: dict[str, set[str]] = {}
    seen: set[str] = set()
    todo = ["quix_peer"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for module in absolute_imports(BENCH / f"{name}.py"):
            if (BENCH / f"{module}.py").is_file():
                todo.append(module)
            elif module not in allowed:
                strays.setdefault(f"bench/{name}.py", set()).add(module)
    assert strays == {}
    assert seen > {"quix_peer"}  # the walk did follow the peer's sibling modules
