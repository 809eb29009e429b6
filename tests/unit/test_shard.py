"""A shard folds many sensors: own clocks, idle timeout, flush, snapshots."""

import os
import pickle
import subprocess
import sys

from dataflow.readings import AIR_QUALITY, TEMPERATURE, Reading
from dataflow.scoring import ModelParams
from dataflow.shard import LateReading, ShardConfig, ShardState, WindowResult, shard_of

S = 1_000_000_000
T0 = 1_700_000_000 * S


def config(emit_all: bool = True, idle: float = 10.0, live_skew: float = 0.0) -> ShardConfig:
    models = {f: ModelParams(limits=(0.0, 150.0)) for f in (TEMPERATURE, AIR_QUALITY)}
    return ShardConfig(window_ns=5 * S, lateness_ns=2 * S, idle_timeout_s=idle, models=models,
                       thresholds={TEMPERATURE: 90.0}, emit_all=emit_all, live_skew_s=live_skew)


def temp(sensor: str, sec: float, value: float) -> Reading:
    return Reading(TEMPERATURE, sensor, T0 + int(sec * S), value)


def windows(out: list) -> list[tuple[str, int, float]]:
    return [(o.sensor_id, (o.stats.start - T0) // S, o.stats.mean) for o in out
            if isinstance(o, WindowResult)]


def test_each_sensor_advances_its_own_clock() -> None:
    """A sensor far ahead must not make a lagging sensor's readings late."""
    state = ShardState(config())
    out = state.ingest([temp("fast", 100, 60.0), temp("slow", 1, 61.0)], now=0.0)
    assert out == []
    out = state.ingest([temp("slow", 3, 63.0), temp("slow", 7, 70.0)], now=1.0)
    assert windows(out) == [("slow", 0, 62.0)]


def test_late_reading_is_returned_not_dropped() -> None:
    state = ShardState(config())
    state.ingest([temp("a", 1, 60.0), temp("a", 8, 60.0)], now=0.0)
    r = temp("a", 2, 99.0)
    assert state.ingest([r], now=1.0) == [LateReading(r)]
    assert state.counts.late == 1


def test_threshold_alarm_and_only_anomalies_by_default() -> None:
    state = ShardState(config(emit_all=False))
    batch = [temp("1", s, 70.0) for s in range(5)] + [temp("2", s, 95.0) for s in range(5)]
    batch += [temp("1", 7, 70.0), temp("2", 7, 95.0)]
    [alarm] = state.ingest(batch, now=0.0)
    assert alarm.sensor_id == "2" and alarm.threshold_alarm and alarm.anomaly
    assert alarm.reasons == ["threshold"] and alarm.stats.count == 5
    assert state.counts.windows == 2 and state.counts.anomalies == 1


def test_no_threshold_rule_for_air_quality_by_default() -> None:
    state = ShardState(config())
    batch = [Reading(AIR_QUALITY, "Sensor1", T0 + s * S, 500.0) for s in (0, 1, 8)]
    [res] = state.ingest(batch, now=0.0)
    assert res.threshold is None and not res.threshold_alarm


def test_idle_sensor_is_closed_by_wall_clock_only_when_due() -> None:
    state = ShardState(config(idle=10.0))
    state.ingest([temp("quiet", 1, 60.0)], now=100.0)
    state.ingest([temp("busy", 1, 60.0)], now=105.0)
    assert state.next_deadline() == 110.0
    assert state.expire(109.9) == []
    assert windows(state.expire(110.0)) == [("quiet", 0, 60.0)]
    assert state.next_deadline() == 115.0
    assert list(state.idle) == [(TEMPERATURE, "busy")]


WALL0 = T0 / S  # wall time equal to event time: a live sensor


def test_live_sensor_window_closes_by_the_wall_clock_at_end_plus_lateness() -> None:
    """2 Hz: the reading at 6.5 s leaves window [0, 5) open until the clock reaches 7 s; by the
    wall clock that is 0.5 s later, not at the next reading (7.0 s, or later if it is slow)."""
    state = ShardState(config(live_skew=60.0))
    for k in range(14):  # readings at 0.0 .. 6.5 s, each processed when it was made
        assert windows(state.ingest([temp("a", k / 2, 60.0)], now=WALL0 + k / 2)) == []
    assert state.next_deadline() == WALL0 + 7.0
    assert windows(state.expire(WALL0 + 6.99)) == []
    assert windows(state.expire(WALL0 + 7.0)) == [("a", 0, 60.0)]
    # A reading for the closed window is late now, as it would be after the sensor's own 7 s.
    late = temp("a", 4.9, 61.0)
    assert state.ingest([late], now=WALL0 + 7.1) == [LateReading(late)]
    # The clock runs on: window [5, 10) closes at 12 s although nothing more was heard.
    assert state.next_deadline() == WALL0 + 12.0
    assert windows(state.expire(WALL0 + 12.0)) == [("a", 5, 60.0)]
    assert state.next_deadline() is None or state.next_deadline() > WALL0 + 12.0


def test_own_readings_close_first_and_stale_deadlines_are_skipped() -> None:
    state = ShardState(config(live_skew=60.0))
    state.ingest([temp("a", 0, 60.0)], now=WALL0)  # [0, 5) due by the wall clock at 7.0
    # Its own reading at 7 s arrives at 6.9 s of wall time and closes [0, 5) first.
    assert windows(state.ingest([temp("a", 7, 61.0)], now=WALL0 + 6.9)) == [("a", 0, 60.0)]
    assert windows(state.expire(WALL0 + 7.0)) == []  # the stale deadline: no second close
    assert [d[0] for d in state.deadlines] == [WALL0 + 11.9]  # and it is gone, not re-armed
    assert windows(state.expire(WALL0 + 11.8)) == []
    assert windows(state.expire(WALL0 + 11.9)) == [("a", 5, 61.0)]  # 6.9 + (12 - 7)


def test_a_burst_faster_than_real_time_runs_the_clock_from_its_newest_reading() -> None:
    state = ShardState(config(live_skew=60.0))
    state.ingest([temp("a", 0, 60.0), temp("a", 7.5, 61.0)], now=WALL0 + 0.1)
    assert windows(state.expire(WALL0 + 4.59)) == []
    assert windows(state.expire(WALL0 + 4.6)) == [("a", 5, 61.0)]  # 0.1 + (12 - 7.5)


def test_replayed_sensor_is_not_run_on_by_the_wall_clock() -> None:
    """Old event times (a replay, a backlog): windows close by event time only, however slowly
    the readings come, so a replay gives the same windows at any speed."""
    state = ShardState(config(idle=3600.0, live_skew=60.0))
    state.ingest([temp("a", 0, 60.0), temp("a", 6.5, 60.0)], now=WALL0 + 3600)
    assert state.deadlines == []
    assert windows(state.expire(WALL0 + 3600 + 600)) == []
    assert windows(state.ingest([temp("a", 7, 60.0)], now=WALL0 + 4300)) == [("a", 0, 60.0)]


def test_flush_closes_everything() -> None:
    state = ShardState(config())
    state.ingest([temp("a", 1, 60.0), temp("b", 6, 62.0)], now=0.0)
    assert sorted(windows(state.flush())) == [("a", 0, 60.0), ("b", 5, 62.0)]
    assert state.next_deadline() is None


def test_snapshot_round_trip_continues_identically() -> None:
    first = [temp("a", s, 60.0 + s % 3) for s in range(600)]
    rest = [temp("a", s, 60.0 + s % 4) for s in range(600, 1200)]
    state = ShardState(config())
    state.ingest(first, now=0.0)
    clone = pickle.loads(pickle.dumps(state))
    assert state.ingest(rest, now=1.0) == clone.ingest(rest, now=1.0)


def test_shard_of_is_stable_across_processes() -> None:
    code = "from dataflow.shard import shard_of; print(shard_of('temperature', '2', 32))"
    seen = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": "."}
        seen.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                text=True, check=True).stdout)
    assert seen == {f"{shard_of('temperature', '2', 32)}\n"}


def test_shards_spread_a_fleet_evenly() -> None:
    counts = [0] * 32
    for i in range(32_000):
        counts[shard_of(TEMPERATURE, str(i), 32)] += 1
    assert min(counts) > 800 and max(counts) < 1200


def test_snapshots_carry_a_format_version() -> None:
    import pytest

    from dataflow.flow import ShardLogic, SnapshotVersionError, restore
    from dataflow.status import Status

    state = ShardState(config())
    state.ingest([temp("a", 1, 60.0)], now=0.0)
    blob = ShardLogic(state, lambda: 0.0, Status(0)).snapshot()
    assert restore(blob).sensors.keys() == state.sensors.keys()
    with pytest.raises(SnapshotVersionError, match="reset the recovery directory"):
        restore(pickle.dumps(state))  # what the first version wrote: the bare state


def test_no_pickling_when_recovery_is_off() -> None:
    from dataflow.flow import ShardLogic
    from dataflow.status import Status

    state = ShardState(config())
    state.ingest([temp("a", 1, 60.0)], now=0.0)
    assert ShardLogic(state, lambda: 0.0, Status(0), snapshots=False).snapshot() is None
    assert ShardLogic(state, lambda: 0.0, Status(0), snapshots=True).snapshot()


def test_recovery_is_detected_from_bytewax_run_arguments() -> None:
    from dataflow.config import recovery_requested

    run = ["bytewax.run", "dataflow.main:flow"]
    assert not recovery_requested(run, {})
    assert not recovery_requested([*run, "-w", "2"], {})
    assert recovery_requested([*run, "-r", "state/", "-s", "1", "-b", "0"], {})
    assert recovery_requested([*run, "--recovery-directory=state/"], {})
    assert recovery_requested(run, {"BYTEWAX_RECOVERY_DIRECTORY": "/r"})
