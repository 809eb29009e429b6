"""The in-process benchmarks run end to end on a tiny load: what nothing runs, rots.

Each is a script a person runs by hand (``bench/``); here each runs once, small, and its report
is checked for its structure, never for its speed. The harness, which needs a broker, has its
own smoke test (``tests/integration/test_bench_harness.py``).
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[3] / "bench"

RUNS = {
    "scoring": (
        ["--windows", "400", "--rounds", "1", "--age-windows", "300", "--sensors", "3"],
        [
            r"per window median [\d.]+ us",
            r"state per sensor: pickled alone after the run \d+ B",
            r"\d+ B each after 300 windows 50 s apart",
        ],
    ),
    "columns": (
        ["--sensors", "2000", "--batches", "100", "--rounds", "2", "--templates", "20"],
        [r"CPU per window reference [\d.]+ us, columns [\d.]+ us", r"decisions compared: 0 differ"],
    ),
    "machine": (
        ["--windows", "300", "--rounds", "1", "--route-machines", "50", "--route-polls", "2"],
        [
            r"\(sensors \+ machine\) / sensors median [\d.]+",
            r"machine state pickled: after",
            r"CPU per message: route median [\d.]+ us, route \+ shard median [\d.]+ us",
        ],
    ),
    "ingest": (
        ["--workload", "W1", "--messages", "3000", "--runs", "1"],
        [r"W1: ingest [\d.]+ µs/msg CPU \(median of 1; 3,000 messages, 3600 s windows\)"],
    ),
    "proto_columnar": (
        ["--workload", "W1", "--messages", "100000", "--runs", "1"],
        [
            r"round 0 proto: shards CPU [\d.]+ us/msg, 1,000 windows closed",
            r"round 0 columns: shards CPU [\d.]+ us/msg, 1,000 windows closed",
            r"round 0 ShardState: shards CPU [\d.]+ us/msg, 1,000 windows closed",
            r"to-arrays [\d.]+ fold [\d.]+ score\+clean [\d.]+",
        ],
    ),
    "inproc": (
        ["--workload", "W2", "--messages", "20000", "--runs", "1"],
        [r"W2: 20,000 messages, \d+ windows emitted \| route [\d.]+ µs/msg, shards [\d.]+"],
    ),
}


def run_bench(name: str, args: list[str], code: int = 0) -> subprocess.CompletedProcess[str]:
    """``bench/<name>.py`` with ``args``, which must exit with ``code``."""
    done = subprocess.run(
        [sys.executable, f"{name}.py", *args],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == code, done.stderr[-2000:]
    return done


@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_bench_script_runs_and_reports(name: str) -> None:
    args, patterns = RUNS[name]
    done = run_bench(name, args)
    for pattern in patterns:
        assert re.search(pattern, done.stdout), (pattern, done.stdout[-2000:])


def test_the_column_wise_prototype_closes_the_windows_the_shard_closes() -> None:
    """``proto_columnar.py --check``: its timings compare like with like only while both of its
    hand-offs close exactly ``ShardState``'s windows (start, count, mean, min, max)."""
    done = run_bench("proto_columnar", ["--workload", "W1", "--messages", "100000", "--check"])
    for way in ("proto", "columns"):
        assert f"{way}: 1,000 windows, ShardState 1,000: the same" in done.stdout, done.stdout


def test_the_prototype_hands_python_a_reading_behind_its_sensors_clock() -> None:
    """Out of order (a review's case; the workloads are in order): readings at 1, 20, 14.5 and
    14.8 s of one sensor. ``ShardState`` adds 14.5 and closes its window at once (the sensor's
    clock is at 20), so 14.8 is late. The prototype must not close that window and open it
    again: it counts 14.5 as a row for Python, and 14.8 too, and closes only what the shard's
    own clock closes (the window of 1 s)."""
    sys.path.insert(0, str(BENCH))
    try:
        import proto_columnar
    finally:
        sys.path.remove(str(BENCH))
    from dataflow.config import Settings
    from dataflow.flow import shard_config
    from dataflow.progress import MARK, Beat
    from dataflow.readings import Reading
    from dataflow.shard import ShardState

    config = shard_config(Settings.from_env({"EMIT_ALL_WINDOWS": "true"}))
    base = 1_710_856_625 * 10**9  # on a window boundary
    seconds = (1.0, 20.0, 14.5, 14.8)
    batch = [Beat("temp/0", MARK, None)] + [
        Reading("temperature", "7", base + int(x * 1e9), 60.0, None) for x in seconds
    ]
    proto = proto_columnar.ProtoShard(config, 16, 2)
    proto_columnar.KEEP = []
    try:
        proto.ingest(batch, 4e9)
        kept = list(proto_columnar.KEEP)
    finally:
        proto_columnar.KEEP = None
    assert [w[2] - base for w in kept] == [0]  # the window of 1 s only, once
    assert int(proto.counts[0]) == 2  # 14.5 and 14.8: Python's
    shard = ShardState(config)
    results = shard.ingest(batch, 4e9)
    starts = sorted(r.stats.start - base for r in results if hasattr(r, "stats"))
    assert starts == [0, 10 * 10**9]  # the shard: 1 s's, and 14.5's at once
    assert shard.counts.late == 1  # 14.8


def test_the_in_process_bench_routes_polls_together_without_losing_any() -> None:
    """``inproc.py --per-route``: polls routed together (as the flow's route step gets them)
    fold the same readings into the same windows as polls routed one at a time; 0 is refused."""
    emitted = []
    for per_route in ("1", "4"):
        args = ["--workload", "W2", "--messages", "20000", "--runs", "1", "--sensors", "2000"]
        done = run_bench("inproc", [*args, "--per-route", per_route])
        found = re.search(r"W2: 20,000 messages, ([\d,]+) windows emitted", done.stdout)
        assert found, done.stdout
        emitted.append(int(found.group(1).replace(",", "")))
    assert emitted[0] == emitted[1] > 0
    refused = run_bench("inproc", ["--per-route", "0"], code=2)
    assert "--per-route must be at least 1" in refused.stderr


def test_the_in_process_bench_warms_a_fleet_and_reads_it_back(tmp_path: Path) -> None:
    """``inproc.py --warm``: the warmed shards are made, kept in ``--warm-cache``, and a second
    run reads them from it; both report the timed part."""
    cache = tmp_path / "warm.pkl"
    args = ["--workload", "W2", "--messages", "4000", "--runs", "1", "--sensors", "400"]
    args += ["--warm", "5", "--warm-cache", str(cache)]
    for made in ("made", "read from"):
        done = run_bench("inproc", args)
        assert re.search(rf"W2 warm-up: 400 sensors x 5 windows .*untimed: {made}", done.stdout)
        assert re.search(r"W2: 4,000 messages, \d+ windows emitted \| route [\d.]+", done.stdout)
        assert re.search(r"CPU time: route [\d.]+, shards [\d.]+", done.stdout)
        assert cache.exists()


def test_the_in_process_bench_closes_windows_by_input_time_as_the_flow_does() -> None:
    """``inproc.py`` folds each shard's batch as ``ShardLogic.on_batch`` does: ``expire`` after
    ``ingest``, at a wall time that moves between batches. W2 (one reading per sensor per 5 s
    window, at the window's start; lateness 2 s), stopped halfway through a tick: of the sensors
    not yet read in that tick, many have had their window before last closed by their
    partition's input time (two seconds past it), as in the flow, before their own next reading
    could (the others' usual gaps, as the polls' boundaries fell, are long enough to wait).
    Without ``expire``, or at one wall time for every batch (no usual gap between hearings is
    learned, so a window waits the idle timeout), every one of them still has it open."""
    sys.path.insert(0, str(BENCH))
    try:
        import inproc
        import workloads
    finally:
        sys.path.remove(str(BENCH))
    from dataflow.config import Settings

    settings = Settings.from_env({"EMIT_ALL_WINDOWS": "false"})
    sensors = 3_000
    work = dataclasses.replace(workloads.WORKLOADS["W2"], sensors=sensors)
    batches = inproc.polls(settings, work, sensors * 5 + sensors // 2, batch=500)
    fleet = inproc.fresh_fleet(settings)
    inproc.run(batches, settings, fleet=fleet, flush=False)
    tick4 = workloads.T0_NS + 4 * 5 * 10**9
    behind = [
        len(sensor.windows.open)
        for state in fleet[0].values()
        for sensor in state.sensors.values()
        if sensor.windows.max_ts == tick4
    ]
    assert len(behind) > sensors // 4  # about half the fleet is not read in tick 5 yet
    assert set(behind) <= {1, 2}
    assert behind.count(1) > len(behind) // 3
