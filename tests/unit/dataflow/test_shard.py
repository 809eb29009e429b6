"""A shard folds many sensors: own clocks, idle timeout, flush, snapshots."""

import pickle

from dataflow.families import AIR_QUALITY, TEMPERATURE
from dataflow.readings import Reading
from dataflow.shard import (
    LateReading,
    SensorEvent,
    ShardConfig,
    ShardState,
    WindowResult,
)
from tests.factories import T0, S, shard_config


def config(
    emit_all: bool = True,
    idle: float = 10.0,
    live_skew: float = 0.0,
    stale: float = 300.0,
    ttl: float = 7 * 86_400.0,
) -> ShardConfig:
    return shard_config(
        idle=idle, emit_all=emit_all, live_skew_s=live_skew, stale_s=stale, state_ttl_s=ttl
    )


def temp(sensor: str, sec: float, value: float) -> Reading:
    return Reading(TEMPERATURE, sensor, T0 + int(sec * S), value)


def windows(out: list) -> list[tuple[str, int, float]]:
    return [
        (o.sensor_id, (o.stats.start - T0) // S, o.stats.mean)
        for o in out
        if isinstance(o, WindowResult)
    ]


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


def overheat(state: ShardState, sensor: str, now: float) -> None:
    """Open a threshold alert for ``sensor`` at wall time ``now``."""
    out = state.ingest([temp(sensor, s, 95.0) for s in range(5)] + [temp(sensor, 7, 95.0)], now)
    assert [o.alert.event for o in out if isinstance(o, WindowResult) and o.alert] == ["open"]


def test_a_silent_sensor_s_open_alert_resolves_as_stale_after_the_stale_time() -> None:
    state = ShardState(config(emit_all=False, stale=300.0))
    overheat(state, "hot", now=1000.0)
    overheat(state, "other", now=1100.0)
    assert state.next_deadline() == 1010.0  # the idle timeout comes first
    assert all(not isinstance(o, SensorEvent) for o in state.expire(1299.0))
    assert state.next_deadline() == 1300.0
    [event] = state.expire(1300.0)
    assert isinstance(event, SensorEvent) and event.sensor_id == "hot"
    assert event.event == "resolved" and event.alert is not None
    assert event.alert.resolution == "stale" and event.silent_s == 300.0
    assert event.alert.alert_id == f"temperature/hot@{T0}" and state.counts.alerts_resolved == 1
    assert state.expire(1350.0) == []  # once
    [other] = state.expire(1400.0)
    assert other.sensor_id == "other"
    # Back, and still overheating: news at once, no cooldown after a stale resolution.
    out = state.ingest(
        [temp("hot", s, 95.0) for s in range(100, 105)] + [temp("hot", 107, 95.0)], now=2000.0
    )
    assert [o.alert.event for o in out if o.alert] == ["open"]


def test_readings_keep_an_alert_from_going_stale_and_a_clean_end_is_not_stale() -> None:
    state = ShardState(config(emit_all=False, stale=300.0))
    overheat(state, "hot", now=1000.0)
    for i in range(1, 5):  # still overheating, heard every 200 s: never stale
        state.ingest([temp("hot", 100 * i + s, 95.0) for s in range(5)], now=1000.0 + 200 * i)
        assert not any(isinstance(o, SensorEvent) for o in state.expire(1000.0 + 200 * i + 150))
    cooled = [temp("hot", 1000 + s, 60.0) for s in range(0, 30)]
    out = state.ingest(cooled, now=2000.0)
    [resolved] = [o for o in out if o.alert]
    assert resolved.alert.event == "resolved" and resolved.alert.resolution == "clean"
    assert not state.stale
    assert not any(isinstance(o, SensorEvent) for o in state.expire(5000.0))


def test_stale_closes_the_open_windows_first_and_zero_means_never() -> None:
    """A stale time shorter than the idle timeout: the windows still open are scored first,
    and a clean one among them may resolve the alert the usual way."""
    state = ShardState(config(emit_all=True, idle=600.0, stale=30.0))
    overheat(state, "hot", now=0.0)
    out = state.expire(30.0)
    assert [type(o).__name__ for o in out] == ["WindowResult", "SensorEvent"]
    assert out[0].stats.start == T0 + 5 * S and out[1].alert.resolution == "stale"
    never = ShardState(config(emit_all=False, idle=10.0, stale=0.0))
    overheat(never, "hot", now=0.0)
    assert not any(isinstance(o, SensorEvent) for o in never.expire(86_400.0))
    assert never.stale  # still open: only forgetting the sensor (the TTL) would end it


def test_one_shot_ids_are_forgotten_so_state_stays_bounded() -> None:
    """A churning fleet: 20,000 ids, each heard once, 10 new ones a second. With a 60 s TTL the
    shard keeps about a minute's worth, however long it runs."""
    state = ShardState(config(emit_all=False, ttl=60.0))
    sizes, forgotten = [], 0
    for sec in range(2000):
        now = 1000.0 + sec
        batch = [temp(f"id-{sec}-{i}", sec, 60.0) for i in range(10)]
        out = state.ingest(batch, now) + state.expire(now)
        forgotten += sum(isinstance(o, SensorEvent) and o.event == "forgotten" for o in out)
        if sec % 500 == 499:
            sizes.append((len(state.sensors), len(pickle.dumps(state))))
    assert all(n <= 10 * (60 + 6 + 1) for n, _ in sizes), sizes  # TTL + one sweep + a second
    assert max(b for _, b in sizes) < 1.3 * min(b for _, b in sizes), sizes
    assert forgotten == 20_000 - len(state.sensors)
    assert len(state.idle) <= 10 * 11 and not state.stale


def test_a_sensor_back_after_the_ttl_starts_a_fresh_model() -> None:
    state = ShardState(config(emit_all=True, ttl=3600.0))
    state.ingest([temp("m", s, 60.0 + s % 3) for s in range(600)], now=0.0)
    assert state.sensors[(TEMPERATURE, "m")].scorer.seen == 119
    assert [o for o in state.expire(3000.0) if isinstance(o, SensorEvent)] == []
    [gone] = [o for o in state.expire(3600.0 + 60) if isinstance(o, SensorEvent)]
    assert (gone.event, gone.sensor_id, gone.silent_s, gone.alert) == (
        "forgotten",
        "m",
        3660.0,
        None,
    )
    assert (TEMPERATURE, "m") not in state.sensors
    out = state.ingest([temp("m", s, 60.0) for s in range(10_000, 10_008)], now=4000.0)
    [first] = [o for o in out if isinstance(o, WindowResult)]
    assert not first.model_ready
    assert state.sensors[(TEMPERATURE, "m")].scorer.seen == 1


def test_a_ttl_shorter_than_the_idle_timeout_forgets_cleanly() -> None:
    """A live sensor whose windows the wall clock closed, forgotten before its idle entry is
    due: the idle timeout must not look for it later."""
    now0 = T0 / S + 11  # wall time = the event time of its last reading: live
    state = ShardState(config(emit_all=True, idle=600.0, live_skew=60.0, ttl=12.0))
    state.ingest([temp("m", s, 60.0) for s in range(12)], now=now0)
    closed = state.expire(now0 + 5.5) + state.expire(now0 + 10.5)  # by the wall clock
    assert [(o.stats.start - T0) // S for o in closed] == [5, 10]
    assert state.sensors[(TEMPERATURE, "m")].windows.open == {}
    [gone] = state.expire(now0 + 12.5)
    assert isinstance(gone, SensorEvent) and gone.event == "forgotten"
    assert not state.sensors and not state.idle
    assert state.expire(now0 + 700.0) == [] and state.next_deadline() is None
