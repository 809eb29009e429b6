"""A shard folds many sensors: own clocks, flush, snapshots, alerts going stale, forgetting.

Silence is input time (``dataflow.progress``): tests that want the wall clock to count say the
source is caught up with a ``Beat`` (``live``), as the source does every second.
"""

import pickle
import random

import pytest

from dataflow import shard
from dataflow.families import AIR_QUALITY, TEMPERATURE
from dataflow.progress import Beat
from dataflow.readings import Reading
from dataflow.shard import (
    LateReading,
    SensorEvent,
    ShardConfig,
    ShardState,
    WindowResult,
)
from tests.factories import T0, S, shard_config

WALL0 = T0 / S  # wall time equal to the event time of T0: a live sensor
PART = "temperature_readings/0"


def config(
    emit_all: bool = True,
    idle: float = 10.0,
    stale: float = 300.0,
    ttl: float = 7 * 86_400.0,
) -> ShardConfig:
    return shard_config(idle=idle, emit_all=emit_all, stale_s=stale, state_ttl_s=ttl)


def live(sec: float, since: float = 0.0) -> Beat:
    """The source's word at wall time ``WALL0 + sec``: caught up since ``WALL0 + since``."""
    return Beat(PART, WALL0 + sec, WALL0 + since)


def feed(state: ShardState, sec: float, readings: list, since: float = 0.0) -> list:
    """A batch at wall time ``WALL0 + sec`` from a caught-up partition, then the silence rules."""
    now = WALL0 + sec
    return state.ingest([live(sec, since), *readings], now) + state.expire(now)


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
    out = state.ingest([temp("fast", 100, 60.0), temp("slow", 1, 61.0)], now=WALL0 + 100)
    assert out == []
    out = state.ingest([temp("slow", 3, 63.0), temp("slow", 7, 70.0)], now=WALL0 + 101)
    assert windows(out) == [("slow", 0, 62.0)]


def test_late_reading_is_returned_not_dropped() -> None:
    state = ShardState(config())
    state.ingest([temp("a", 1, 60.0), temp("a", 8, 60.0)], now=WALL0 + 100)
    r = temp("a", 2, 99.0)
    assert state.ingest([r], now=WALL0 + 101) == [LateReading(r)]
    assert state.counts.late == 1


def test_threshold_alarm_and_only_anomalies_by_default() -> None:
    state = ShardState(config(emit_all=False))
    batch = [temp("1", s, 70.0) for s in range(5)] + [temp("2", s, 95.0) for s in range(5)]
    batch += [temp("1", 7, 70.0), temp("2", 7, 95.0)]
    [alarm] = state.ingest(batch, now=WALL0 + 100)
    assert alarm.sensor_id == "2" and alarm.threshold_alarm and alarm.anomaly
    assert alarm.reasons == ["threshold"] and alarm.stats.count == 5
    assert state.counts.windows == 2 and state.counts.anomalies == 1


def test_no_threshold_rule_for_air_quality_by_default() -> None:
    state = ShardState(config())
    batch = [Reading(AIR_QUALITY, "Sensor1", T0 + s * S, 500.0) for s in (0, 1, 8)]
    [res] = state.ingest(batch, now=WALL0 + 100)
    assert res.threshold is None and not res.threshold_alarm


def test_flush_closes_everything() -> None:
    state = ShardState(config())
    state.ingest([temp("a", 1, 60.0), temp("b", 6, 62.0)], now=WALL0 + 100)
    assert sorted(windows(state.flush())) == [("a", 0, 60.0), ("b", 5, 62.0)]
    assert state.next_deadline() is None


def test_snapshot_round_trip_continues_identically() -> None:
    first = [temp("a", s, 60.0 + s % 3) for s in range(600)]
    rest = [temp("a", s, 60.0 + s % 4) for s in range(600, 1200)]
    state = ShardState(config())
    state.ingest(first, now=WALL0 + 10_000)
    clone = pickle.loads(pickle.dumps(state))
    assert state.ingest(rest, now=WALL0 + 10_001) == clone.ingest(rest, now=WALL0 + 10_001)


def test_snapshots_carry_a_format_version() -> None:
    import pytest

    from dataflow.flow import ShardLogic, SnapshotVersionError, restore
    from dataflow.status import Status

    state = ShardState(config())
    state.ingest([temp("a", 1, 60.0)], now=WALL0 + 100)
    blob = ShardLogic(state, lambda: 0.0, Status(0)).snapshot()
    assert restore(blob).sensors.keys() == state.sensors.keys()
    with pytest.raises(SnapshotVersionError, match="reset the recovery directory"):
        restore(pickle.dumps(state))  # what the first version wrote: the bare state


def test_no_pickling_when_recovery_is_off() -> None:
    from dataflow.flow import ShardLogic
    from dataflow.status import Status

    state = ShardState(config())
    state.ingest([temp("a", 1, 60.0)], now=WALL0 + 100)
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


def overheat(state: ShardState, sensor: str, sec: float) -> None:
    """Open a threshold alert for ``sensor``: its readings 0..7 s after ``sec``, read live."""
    out = feed(state, sec + 7, [temp(sensor, sec + s, 95.0) for s in (0, 1, 2, 3, 4, 7)])
    assert [o.alert.event for o in out if isinstance(o, WindowResult) and o.alert] == ["open"]


def test_a_silent_sensor_s_open_alert_resolves_as_stale_after_the_stale_time() -> None:
    state = ShardState(config(emit_all=False, stale=300.0))
    overheat(state, "hot", 0)
    overheat(state, "other", 100)
    assert all(not isinstance(o, SensorEvent) for o in feed(state, 306.9, []))
    [event] = [o for o in feed(state, 307.0, []) if isinstance(o, SensorEvent)]
    assert event.sensor_id == "hot" and event.event == "resolved" and event.alert is not None
    assert event.alert.resolution == "stale" and event.silent_s == 300.0
    assert event.alert.alert_id == f"temperature/hot@{T0}" and state.counts.alerts_resolved == 1
    assert [o for o in feed(state, 350, []) if isinstance(o, SensorEvent)] == []  # once
    [other] = [o for o in feed(state, 407, []) if isinstance(o, SensorEvent)]
    assert other.sensor_id == "other"
    # Back, and still overheating: news at once, no cooldown after a stale resolution.
    out = feed(state, 1007, [temp("hot", 1000 + s, 95.0) for s in (0, 1, 2, 3, 4, 7)])
    assert [o.alert.event for o in out if isinstance(o, WindowResult) and o.alert] == ["open"]
    assert state.open_alerts == 1


def test_a_steady_overheat_sends_its_update_again_each_alert_refresh() -> None:
    """ShardConfig's ``refresh_s`` reaches each sensor's alert: a machine held at 95 says it is
    still open every refresh (60 s here), by its windows' time, and nothing else."""
    state = ShardState(shard_config(idle=10.0, emit_all=False, refresh_s=60.0))
    out = []
    for sec in range(200):
        out += feed(state, sec + 0.5, [temp("hot", sec, 95.0)])
    events = [
        ((o.stats.start - T0) // S, o.alert.event)
        for o in out
        if isinstance(o, WindowResult) and o.alert is not None
    ]
    assert events == [(0, "open"), (60, "update"), (120, "update"), (180, "update")]


def test_no_silence_while_the_source_is_not_caught_up() -> None:
    """A restart after a pause, an outage, a backlog: the wall clock runs, the input does not,
    and nothing goes stale, idle or forgotten until the source is caught up again."""
    state = ShardState(config(emit_all=False, ttl=3600.0))
    overheat(state, "hot", 0)
    behind = Beat(PART, WALL0 + 20, None)  # the source is behind (or the broker is away)
    for wall in (20, 400, 8 * 86_400):
        out = state.ingest([behind], WALL0 + wall) + state.expire(WALL0 + wall)
        assert out == [] and state.open_alerts == 1 and (TEMPERATURE, "hot") in state.sensors
        assert state.next_deadline() is None or state.next_deadline() > WALL0 + wall
    # Caught up again from wall time 8 days: silence counts from there.
    back = 8 * 86_400
    assert [o for o in feed(state, back + 290, [], since=back) if isinstance(o, SensorEvent)] == []
    [stale] = [o for o in feed(state, back + 300, [], since=back) if isinstance(o, SensorEvent)]
    assert stale.alert.resolution == "stale"


def test_the_clock_of_a_caught_up_partition_closes_a_window_at_end_plus_lateness() -> None:
    """2 Hz, caught up: window [0, 5), its first, closes once the input time passes 5 + 2 s of
    lateness, without waiting for its next reading (nor its usual gap, 0.5 s: nothing says yet
    that its readings come in bundles)."""
    state = ShardState(config())
    for k in range(14):  # readings at 0.0 .. 6.5 s, each processed when it was made
        assert windows(feed(state, k / 2, [temp("a", k / 2, 60.0)])) == []
    # A wake-up no later than that.
    assert WALL0 + 6.5 <= state.next_deadline() <= WALL0 + 7.0
    assert windows(state.expire(WALL0 + 6.99)) == []
    assert windows(state.expire(WALL0 + 7.0)) == [("a", 0, 60.0)]
    late = temp("a", 4.9, 61.0)  # a reading for the closed window is late now
    assert state.ingest([live(7.1), late], now=WALL0 + 7.1) == [LateReading(late)]


def test_a_sensor_that_sends_each_reading_when_made_closes_at_end_plus_lateness() -> None:
    """2 Hz, caught up, its cadence known from its first windows: window [20, 25) closes once the
    input time passes 25 + 2 s of lateness, not a reading interval later (its alert with it)."""
    state = ShardState(config())
    for k in range(54):  # readings at 0.0 .. 26.5 s, each processed when it was made
        t = k / 2
        feed(state, t, [temp("a", t, 60.0)])
    closed = windows(state.expire(WALL0 + 27.05))
    assert closed == [("a", 20, 60.0)]


def test_a_sensor_whose_readings_come_in_bundles_waits_for_the_next_bundle() -> None:
    """A gateway sends the last 8 s of 1 Hz readings every 8 s (under the 10 s idle timeout):
    once its gap is known (its second bundle), a window is not closed between two bundles, so
    none of the next bundle's readings is late (closing at end + lateness by its clock alone
    would make 24 and 25 s late for [20, 25))."""
    state = ShardState(config())
    out: list = []
    for b in range(1, 8):  # bundles at 8, 16, ..., 56 s, with readings at 8b-8 .. 8b-1 s
        sent = 8.0 * b
        readings = [temp("g", sent - 8 + i, 60.0 + i) for i in range(8)]
        out += state.ingest([live(sent), *readings], WALL0 + sent)
        for tick in range(1, 80):  # the source's word every second, the silence rules between
            t = sent + tick / 10
            beat = [live(t)] if tick % 10 == 0 else []
            out += state.ingest(beat, WALL0 + t) + state.expire(WALL0 + t)
    late = [(o.reading.ts - T0) // S for o in out if isinstance(o, LateReading)]
    assert all(ts < 16 for ts in late)  # the first bundles', while its gap was not known
    after = [o for o in out if isinstance(o, WindowResult) and o.stats.start >= T0 + 15 * S]
    assert [(o.stats.start - T0) // S for o in after] == [15, 20, 25, 30, 35, 40, 45]
    assert all(o.stats.count == 5 for o in after)


def test_a_partition_that_moves_on_closes_the_window_of_a_sensor_left_behind() -> None:
    """Not caught up (a backlog): other sensors' readings move the input time, so a sensor that
    stopped has its window closed, at the same place however fast the backlog is read."""
    for wall in (WALL0 + 3600, WALL0 + 86_400):
        state = ShardState(config())
        behind = Beat(PART, wall, None)
        first = [temp(s, 1, 60.0) for s in ("quiet", "busy", "also")]
        state.ingest([behind, *first], wall)
        assert windows(state.expire(wall)) == []
        batch = [behind, *(temp(b, s, 61.0) for s in range(2, 9) for b in ("busy", "also"))]
        out = state.ingest(batch, wall) + state.expire(wall)
        assert ("quiet", 0, 60.0) in windows(out)
        assert sorted(w[0] for w in windows(out)) == ["also", "busy", "quiet"]


def test_a_sensor_left_alone_on_its_partition_moves_its_input_time_by_its_own_progress() -> None:
    """Two sensors in a backlog, one stops. The one still read leads, and the lead moves input
    time only by how far it goes on (``progress.Lead``): from quiet's last hearing (1 s) by its
    steps after it took the lead (at 2 s), plus the lateness. So quiet's [0, 5), due at 7 s of
    its clock, closes at busy's reading of 7 s, as when input time was the latest event time
    (a lead that stalled input time here held a silent mate's windows open), and nothing is
    late."""
    for wall in (WALL0 + 3600, WALL0 + 86_400):
        state = ShardState(config())
        behind = Beat(PART, wall, None)
        state.ingest([behind, temp("quiet", 1, 60.0), temp("busy", 1, 61.0)], wall)
        out = []
        closed_at = None
        for sec in range(2, 20):
            out += state.ingest([behind, temp("busy", sec, 61.0)], wall) + state.expire(wall)
            if closed_at is None and ("quiet", 0, 60.0) in windows(out):
                closed_at = sec
        assert closed_at == 7
        assert not [o for o in out if isinstance(o, LateReading)]


def test_a_restored_shard_waits_for_its_source_and_takes_the_replayed_readings() -> None:
    """Snapshot with window [10, 15) open after 2 of its 5 readings; restored 15 s, 5 min or
    8 days later: the replayed readings complete the window, none is late."""
    from dataflow.flow import ShardLogic, restore
    from dataflow.status import Status

    cfg = config(emit_all=True)
    for pause in (15, 300, 8 * 86_400):
        state = ShardState(cfg)
        for k in range(12):  # 10 s .. 11 s at 10 Hz... two readings of [10, 15) at 10, 11 s
            feed(state, 5 + k, [temp("a", 5 + k, 60.0)] if k < 7 else [])
        blob = ShardLogic(state, lambda: 0.0, Status(0)).snapshot()
        assert blob is not None
        back = restore(blob, cfg)
        assert back.reconfigure(cfg) == []
        wall = 16 + pause
        assert back.expire(WALL0 + wall) == []  # nothing is silent: the source has not spoken
        replay = [Beat(PART, WALL0 + wall, None), *(temp("a", s, 60.0) for s in (12, 13, 14, 17))]
        out = back.ingest(replay, WALL0 + wall) + back.expire(WALL0 + wall)
        assert [(o.stats.start - T0) // S for o in out if isinstance(o, WindowResult)] == [10]
        assert [o.stats.count for o in out if isinstance(o, WindowResult)] == [5]
        assert back.counts.late == 0


def test_an_alert_is_not_stale_between_two_readings_of_a_slow_sensor() -> None:
    """A sensor that reports every 5 minutes: silence is measured in its own gaps (three of
    them), the stale time is only the floor."""
    state = ShardState(config(emit_all=False, stale=300.0))
    for k in range(6):  # heard every 300 s, each reading its own window
        feed(state, 300 * k, [temp("slow", 300 * k, 60.0)])
    out = feed(state, 1800, [temp("slow", 1800, 95.0)])
    out += feed(state, 2100, [temp("slow", 2100, 95.0)])
    assert [o.alert.event for o in out if isinstance(o, WindowResult) and o.alert] == ["open"]
    for k in range(8, 12):  # still overheating every 5 minutes: never stale
        out = feed(state, 300 * k, [temp("slow", 300 * k, 95.0)])
        assert not any(isinstance(o, SensorEvent) for o in out)
        assert not any(isinstance(o, SensorEvent) for o in feed(state, 300 * k + 299, []))
    # Silent for three of its gaps (900 s) after its last reading at 3300 s: stale.
    assert not any(isinstance(o, SensorEvent) for o in feed(state, 3300 + 899, []))
    [stale] = [o for o in feed(state, 3300 + 900.5, []) if isinstance(o, SensorEvent)]
    assert stale.alert.resolution == "stale"


def test_a_reading_from_the_future_is_refused_and_moves_no_clock() -> None:
    state = ShardState(config(emit_all=False))
    future = Reading(TEMPERATURE, "a", T0 + 75 * 365 * 86_400 * S, 60.0)  # dated about 2099
    out = feed(state, 0, [temp("a", 0, 60.0), future])
    assert out == [LateReading(future, "future")] and state.counts.future == 1
    # Every later genuine reading is taken, and an overheat opens an alert.
    out = []
    for sec in range(1, 30):
        out += feed(state, sec, [temp("a", sec, 95.0 if sec >= 10 else 60.0)])
    assert not any(isinstance(o, LateReading) for o in out)
    assert [o.alert.event for o in out if isinstance(o, WindowResult) and o.alert] == ["open"]


def test_a_clock_that_steps_forward_and_back_recovers_within_two_windows() -> None:
    """An NTP correction: one reading 100 s ahead (inside MAX_FUTURE_SECONDS), then the sensor's
    true time again. Its readings are late until a window that was never written (the step
    closed the one it was in; the next one's first reading, far behind the stepped clock,
    closed that one at once), then taken again; no window is written twice."""
    state = ShardState(config(emit_all=True))
    out = feed(state, 0, [temp("a", s / 2, 60.0) for s in range(4)])
    out += feed(state, 2, [temp("a", 102, 60.0)])  # the forward step
    for k in range(5, 40):  # 2.5 s .. 19.5 s, the sensor's true time
        out += feed(state, k / 2, [temp("a", k / 2, 61.0)])
    out += state.flush()
    late = [o for o in out if isinstance(o, LateReading)]
    assert 0 < len(late) <= 20  # at most two windows of 2 Hz readings
    assert all(o.reading.ts < T0 + 10 * S for o in late)
    written = [o.stats.start for o in out if isinstance(o, WindowResult)]
    assert len(written) == len(set(written))
    assert T0 + 10 * S in written and T0 + 15 * S in written


def test_a_clock_set_back_restarts_and_leaves_the_windows_of_its_step_written_once() -> None:
    """A clock three minutes ahead for ten seconds, then right again: the sensor starts again
    within two windows of coming back (not three minutes of refused readings), and when its
    clock reaches the windows written while it was ahead, those readings are late: no window
    twice. Past them, it reads as before."""
    state = ShardState(config())
    out = []
    for sec in range(1, 400):
        t = sec - 0.5 + (180 if 100 <= sec < 110 else 0)
        out += feed(state, sec, [temp("a", t, 50.0)])
    out += state.flush()
    written = [o.stats.start for o in out if isinstance(o, WindowResult)]
    assert len(written) == len(set(written))
    late = sorted((o.reading.ts - T0) / S for o in out if isinstance(o, LateReading))
    after = [t for t in late if t < 200]
    assert after and max(after) < 120  # back at 109.5: taken again from the next window on
    ahead = [t for t in late if t >= 200]
    assert ahead and min(ahead) >= 275 and max(ahead) < 290  # its step's windows, 275 to 290
    assert T0 + 295 * S in written


def test_a_sensor_that_reads_less_than_once_a_window_still_restarts() -> None:
    """Every window of a sensor read every 10 s leaves one unwritten: those are its spacing,
    not a jump. Its clock three minutes ahead for 40 s, then right: it restarts after two
    readings, into the stretch it jumped over, and the windows written ahead stay once."""
    state = ShardState(config())
    out = []
    for t in range(0, 400, 10):
        ts = t + 0.5 + (180 if 100 <= t < 140 else 0)
        out += feed(state, t + 1, [temp("a", ts, 50.0)])
    out += state.flush()
    late = [(o.reading.ts - T0) / S for o in out if isinstance(o, LateReading)]
    assert late == [140.5, 150.5, 280.5, 290.5, 300.5, 310.5]
    written = [o.stats.start for o in out if isinstance(o, WindowResult)]
    assert len(written) == len(set(written))


def test_a_window_closed_before_a_restart_and_scored_after_it_opens_no_stretch() -> None:
    """Steps forward and back three times, the second restart in the same batch that closed a
    window of the old clock (scored after the restart): that window must not record the old
    clock's written windows as a stretch a third restart could write again."""
    state = ShardState(config())
    out = []

    def at(sec: int, stamps: list[float]) -> None:
        nonlocal out
        out += feed(state, sec, [temp("a", t, 50.0) for t in stamps])

    for k in range(50):
        at(k + 1, [k + 0.5])
    for k in range(50, 60):
        at(k + 1, [k + 60.5])  # ahead a minute: [110, 120) written
    for k in range(60, 100):
        at(k + 1, [k + 0.5])  # back: a restart
    at(101, [180.5])  # ahead again
    at(102, [250.5, 185.5, 188.0, 190.5])  # [180, 185) closed, and a restart, in one batch
    for k in range(103, 110):
        at(k, [k + 88.5])
    at(110, [110.5, 113.0, 115.5])  # back into [110, 120)
    for k in range(111, 130):
        at(k, [k + 5.5])
    out += state.flush()
    written = [o.stats.start for o in out if isinstance(o, WindowResult)]
    assert len(written) == len(set(written))


def test_a_second_step_hours_after_a_first_restarts_as_the_first_did() -> None:
    """A sensor read every 10 s, its clock three minutes ahead for 40 s, twice, nine hours
    apart: both steps restart alike (a window behind the last scored once made its usual gap
    negative, then not a number, and the second step never restarted)."""
    state = ShardState(config())
    second = 300 + 9 * 3600
    late = []
    for t in range(0, second + 600, 10):
        ahead = 300 <= t < 340 or second <= t < second + 40
        out = feed(state, t + 1, [temp("a", t + 0.5 + (180 if ahead else 0), 50.0)])
        late += [(o.reading.ts - T0) / S for o in out if isinstance(o, LateReading)]
    assert [x - 300 for x in late if x < second] == [x - second for x in late if x >= second]
    assert len(late) == 12 and 9 < state.sensors[(TEMPERATURE, "a")].cadence < 11


@pytest.mark.parametrize("batch", [False, True])
def test_a_backlog_poll_restarts_as_the_same_readings_one_window_at_a_time(batch: bool) -> None:
    """A 1 Hz sensor a minute ahead for 10 s, read in one backlog poll: scored in a batch or
    window by window, it restarts at the same reading (a stretch recorded only when its
    window was scored came too late for a restart later in the same poll)."""
    was = shard.BATCH
    shard.BATCH = batch
    try:
        state = ShardState(config())
        now = WALL0 + 3600
        stamps = [t + 0.5 + (60 if 100 <= t < 110 else 0) for t in range(200)]
        batch_in = [Beat(PART, now, None), *(temp("a", t, 50.0) for t in stamps)]
        out = state.ingest(batch_in, now) + state.flush()
    finally:
        shard.BATCH = was
    late = [(o.reading.ts - T0) / S for o in out if isinstance(o, LateReading)]
    assert len(late) == 15 and late[0] == 110.5 and late[-1] == 169.5


def test_delayed_readings_of_written_windows_are_late_and_never_restart_the_clock() -> None:
    """A flaky link: three readings of a 1 Hz sensor, over a window of their own time, arrive
    about ten seconds late. Their windows were written: they are late (dead letters), not a
    clock set back, and no window is written a second time."""
    state = ShardState(config())
    held = {19.5: 31, 22.5: 31, 24.5: 31}  # reading -> the second it arrives
    out = []
    for sec in range(1, 70):
        due = [t + 0.5 for t in range(60) if held.get(t + 0.5, t + 1) == sec]
        out += feed(state, sec, [temp("a", t, 50.0) for t in due])
    out += state.flush()
    written = [o.stats.start for o in out if isinstance(o, WindowResult)]
    assert len(written) == len(set(written)) == 12
    assert sorted((o.reading.ts - T0) / S for o in out if isinstance(o, LateReading)) == [
        19.5,
        22.5,
        24.5,
    ]


def test_a_silent_sensor_s_delayed_readings_open_no_second_copy_of_its_window() -> None:
    """A sensor stops; three of its last readings, hot, arrive ten seconds after. Its windows
    were closed as it fell silent: the readings are late, and page nobody."""
    state = ShardState(config())
    held = {41: 55, 44: 56, 47: 57}
    out = []
    for sec in range(1, 70):
        due = [k for k in range(50) if held.get(k, k + 1) == sec]
        out += feed(state, sec, [temp("b", k + 0.5, 120.0 if k in held else k) for k in due])
    out += state.flush()
    written = [o.stats.start for o in out if isinstance(o, WindowResult)]
    assert len(written) == len(set(written))
    assert not [o for o in out if isinstance(o, WindowResult) and o.alert]
    assert len([o for o in out if isinstance(o, LateReading)]) == 3


@pytest.mark.parametrize("seed", range(6))
def test_no_window_is_written_twice_whatever_the_delays_and_clock_steps(seed: int) -> None:
    """A 1 Hz sensor at the default settings whose readings arrive up to 40 s late at random,
    and whose clock steps forward (8 s to 3 minutes) and back now and then, the steps
    overlapping: every window it writes, it writes once; every reading is taken or refused."""
    rng = random.Random(seed)
    arrivals: dict[int, list[float]] = {}
    offset = 0.0
    for k in range(600):
        if rng.random() < 0.01:
            offset = rng.choice([8.0, 30.0, 180.0])  # a step forward
        elif offset and rng.random() < 0.1:
            offset = 0.0  # and back
        delay = rng.choice([1, 1, 1, 1, 1, 1, 2, 5, 12, 40])
        arrivals.setdefault(k + delay, []).append(k + 0.5 + offset)
    state = ShardState(config())
    out = []
    for sec in range(1, 660):
        out += feed(state, sec, [temp("a", t, 50.0) for t in arrivals.get(sec, [])])
    out += state.flush()
    written = [o.stats.start for o in out if isinstance(o, WindowResult)]
    assert len(written) == len(set(written))
    taken = sum(o.stats.count for o in out if isinstance(o, WindowResult))
    late = sum(isinstance(o, LateReading) for o in out)
    assert taken + late == 600 and taken > 0


def test_a_shard_keeps_at_most_max_sensors() -> None:
    state = ShardState(shard_config(max_sensors=3))
    batch = [temp(f"s{i}", 0, 60.0) for i in range(5)]
    out = feed(state, 0, batch)
    assert [o.reason for o in out] == ["sensor_limit", "sensor_limit"]
    assert len(state.sensors) == 3 and state.counts.limited == 2
    assert feed(state, 1, [temp("s0", 1, 60.0)]) == []  # a known sensor is still read


def test_a_sensor_on_a_second_partition_is_counted_and_noted_once() -> None:
    state = ShardState(config())
    other = Beat("temperature_readings/1", WALL0, WALL0)
    state.ingest([live(0), temp("a", 0, 60.0), other, temp("a", 1, 60.0)], WALL0)
    state.ingest([live(1), temp("a", 2, 60.0), other, temp("a", 3, 60.0)], WALL0 + 1)
    assert state.counts.moved == 1 and len(state.notes) == 1
    assert "temperature_readings/0 to temperature_readings/1" in state.notes[0]


def test_one_shot_ids_are_forgotten_so_state_stays_bounded() -> None:
    """A churning fleet: 20,000 ids, each heard once, 10 new ones a second. With a 60 s TTL the
    shard keeps about a minute's worth, however long it runs."""
    state = ShardState(config(emit_all=False, ttl=60.0))
    sizes, forgotten = [], 0
    for sec in range(2000):
        batch = [temp(f"id-{sec}-{i}", sec, 60.0) for i in range(10)]
        out = feed(state, sec, batch)
        forgotten += sum(isinstance(o, SensorEvent) and o.event == "forgotten" for o in out)
        if sec % 500 == 499:
            sizes.append((len(state.sensors), len(pickle.dumps(state))))
    assert all(n <= 10 * (60 + 6 + 1) for n, _ in sizes), sizes  # TTL + one sweep + a second
    assert max(b for _, b in sizes) < 1.3 * min(b for _, b in sizes), sizes
    assert forgotten == 20_000 - len(state.sensors)
    part = state.parts[PART]
    assert not part.stale and state.open_alerts == 0 and len(part.closes) <= 10 * 11


def test_a_sensor_back_after_the_ttl_starts_a_fresh_model() -> None:
    state = ShardState(config(emit_all=True, ttl=3600.0))
    feed(state, 600, [temp("m", s, 60.0 + s % 3) for s in range(600)])
    assert state.sensors[(TEMPERATURE, "m")].scorer.seen == 119
    assert [o for o in feed(state, 3000, []) if isinstance(o, SensorEvent)] == []
    # Input time lags the wall clock by a second here: the last reading was at 599 s, read
    # at 600 s.
    [gone] = [o for o in feed(state, 600 + 3660, []) if isinstance(o, SensorEvent)]
    assert (gone.event, gone.sensor_id, gone.silent_s, gone.alert) == (
        "forgotten",
        "m",
        3660.0,
        None,
    )
    assert (TEMPERATURE, "m") not in state.sensors
    out = feed(state, 10_008, [temp("m", s, 60.0) for s in range(10_000, 10_008)])
    [first] = [o for o in out if isinstance(o, WindowResult)]
    assert not first.model_ready
    assert state.sensors[(TEMPERATURE, "m")].scorer.seen == 1
