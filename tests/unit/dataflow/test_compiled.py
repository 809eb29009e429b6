"""The compiled shard (``dataflow.COMPILED``, built by mypyc: ``make compiled``) writes what its
source writes, and their snapshots are one format.

Each workload of ``test_shard_handoff`` (mixed families, a large fleet's shape, machines; live
and as a backlog; at the tests' short settings and at the defaults) runs through three shards in
this process, which imports the build, and in a child process with ``DATAFLOW_COMPILED=off``,
which runs the source: every result and each sensor's state at the end must be the same. Then
each side's snapshot, taken half way, is restored by the other, which reads the rest: a flow
upgraded to the build, or moved back to the source, goes on as it would have.

Run without a build (a plain ``pytest`` before ``make compiled``) these skip, saying so;
``make test`` builds it first and requires it (``DATAFLOW_COMPILED=require``).
"""

from __future__ import annotations

import importlib.machinery
import os
import pickle
import random
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import dataflow
from dataflow import closes, shard, windows
from dataflow.config import ConfigError, Settings
from dataflow.routing import KeyCache, route
from dataflow.shard import ShardState
from tests.checkout import ROOT
from tests.factories import shard_config
from tests.unit.dataflow.test_shard_batch import config
from tests.unit.dataflow.test_shard_handoff import (
    SHAPES,
    SHARDS,
    formats,
    polls,
    sensors,
    typed,
    with_pumps,
)

# (shape, seed, the default settings?, read this many seconds late)
CASES = [
    ("mixed", 5, False, 0.0),
    ("fleet", 5, False, 0.0),
    ("machines", 5, False, 0.0),
    ("mixed", 6, True, 0.0),
    ("fleet", 6, False, 3600.0),
    ("machines", 6, True, 3600.0),
]

built = pytest.mark.skipif(
    dataflow.COMPILED_FROM is None,
    reason="no compiled shard here (make compiled; make test builds and requires it)",
)


def run(case: tuple[str, int, bool, float], start: bytes | None = None) -> tuple[list[str], bytes]:
    """The case's results after its middle batch and its sensors at the end, as reprs; and the
    shards' snapshot after that batch. ``start``: begin from that snapshot instead."""
    shape, seed, defaults, backlog = case
    rng = random.Random(seed)
    cfg = with_pumps(shard_config(emit_all=True) if defaults else config())
    states = [ShardState(cfg) for _ in range(SHARDS)]
    cache: dict[str, KeyCache] = {}
    batches = SHAPES[shape](seed)
    middle = len(batches) // 2
    out: list[str] = []
    snapshot = b""
    for i, (written, batch) in enumerate(batches):
        wall = written + backlog
        by_shard, _, _ = route(polls(batch, wall, rng, backlog > 0), formats(), SHARDS, cache)
        if start is not None and i <= middle:
            if i == middle:
                states = pickle.loads(start)
            continue
        for index, items in by_shard.items():
            got = states[index].ingest(items, wall)
            if i > middle:
                out.append(repr(typed(got)))
        for state in states:
            expired = state.expire(wall + 0.5)
            if i > middle:
                out += [repr(typed(expired)), repr(state.counts.take())]
            else:
                state.counts.take()
        if i == middle:
            snapshot = pickle.dumps(states, protocol=pickle.HIGHEST_PROTOCOL)
    for state in states:
        out += [repr(typed(state.flush())), repr(sensors(state))]
    return out, snapshot


def from_source(
    case: tuple[str, int, bool, float], start: bytes | None, tmp: Path
) -> tuple[list[str], bytes]:
    """``run`` in a child process on the source (``DATAFLOW_COMPILED=off``)."""
    given, taken = tmp / "start.pickle", tmp / "out.pickle"
    given.write_bytes(pickle.dumps(start))
    code = (
        "import pickle, sys, dataflow\n"
        "from dataflow import shard\n"
        "assert dataflow.COMPILED_FROM is None and shard.__file__.endswith('.py')\n"
        "from tests.unit.dataflow.test_compiled import run\n"
        "case, given, taken = eval(sys.argv[1]), sys.argv[2], sys.argv[3]\n"
        "start = pickle.loads(open(given, 'rb').read())\n"
        "open(taken, 'wb').write(pickle.dumps(run(case, start)))\n"
    )
    env = {**os.environ, "DATAFLOW_COMPILED": "off", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, repr(case), str(given), str(taken)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: tuple[list[str], bytes] = pickle.loads(taken.read_bytes())
    return result


@built
def test_the_shard_s_modules_are_the_build_s() -> None:
    assert dataflow.COMPILED_FROM is not None
    for module in (shard, windows, closes):
        assert module.__file__ is not None and not module.__file__.endswith(".py")
        assert Path(module.__file__).is_relative_to(dataflow.COMPILED_FROM)


@built
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}-{c[3]:g}" for c in CASES])
def test_the_build_writes_what_the_source_writes_and_reads_its_snapshots(
    case: tuple[str, int, bool, float], tmp_path: Path
) -> None:
    compiled, compiled_snapshot = run(case)
    source, source_snapshot = from_source(case, None, tmp_path)
    assert len(compiled) > 3 * SHARDS and any("WindowResult" in line for line in compiled)
    assert compiled == source
    assert run(case, source_snapshot)[0] == source  # the source's snapshot, read by the build
    assert from_source(case, compiled_snapshot, tmp_path)[0] == compiled  # and the other way


def fake_build(where: Path, stamp: str | None, modules: tuple[str, ...]) -> Path:
    """A build directory as compile.sh lays it out, its extensions empty files."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    (where / "dataflow").mkdir(parents=True)
    (where / f"dataflow__mypyc{suffix}").touch()
    for name in modules:
        (where / "dataflow" / f"{name}{suffix}").touch()
    if stamp is not None:
        (where / "STAMP").write_text(stamp + "\n")
    return where


def test_a_build_is_taken_only_whole_for_these_sources_and_this_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which build ``dataflow`` would load (``_use_compiled``, asked again here, loading
    nothing): one without a stamp, stamped for other sources or another interpreter's suffix,
    or missing a module is never taken; ``require`` names why, ``auto`` runs the source."""
    right = dataflow.build_stamp()
    digest, suffix = right.split()
    cases = {
        "no stamp": (None, dataflow.COMPILED, "no build"),
        "other sources": (f"{'0' * 64} {suffix}", dataflow.COMPILED, "other sources"),
        "another python": (
            f"{digest} .cpython-312-x86_64-linux-gnu.so",
            dataflow.COMPILED,
            "another Python",
        ),
        "a module short": (right, ("windows", "shard"), "lacks dataflow/closes"),
    }
    for case, (stamp, modules, why) in cases.items():
        where = fake_build(tmp_path / case.replace(" ", "-"), stamp, modules)
        monkeypatch.setenv("DATAFLOW_COMPILED_DIR", str(where))
        monkeypatch.setenv("DATAFLOW_COMPILED", "require")
        with pytest.raises(ImportError, match=why):
            dataflow._use_compiled()
        monkeypatch.setenv("DATAFLOW_COMPILED", "auto")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert dataflow._use_compiled() is None, case
    whole = fake_build(tmp_path / "whole", right, dataflow.COMPILED)
    monkeypatch.setenv("DATAFLOW_COMPILED_DIR", str(whole))
    for mode in ("auto", "require"):
        monkeypatch.setenv("DATAFLOW_COMPILED", mode)
        assert dataflow._use_compiled() == whole
    monkeypatch.setenv("DATAFLOW_COMPILED", "off")
    assert dataflow._use_compiled() is None
    # A bad value: the source, and the settings refuse it naming the variable (exit 2), so that
    # the import does not fail every program (``--help`` too) with a traceback.
    monkeypatch.setenv("DATAFLOW_COMPILED", "sometimes")
    assert dataflow._use_compiled() is None
    with pytest.raises(ConfigError, match="DATAFLOW_COMPILED='sometimes': must be auto, off or"):
        Settings.from_env({"DATAFLOW_COMPILED": "sometimes"})
    assert Settings.from_env({"DATAFLOW_COMPILED": ""}) is not None  # unset, as the import reads
