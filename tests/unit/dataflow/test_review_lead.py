"""Hostile review of the partition lead (``progress.Lead``, 51b7255 / 19e119d): input time in a
backlog follows the latest sensor but the one furthest ahead. Each test here failed on the
commit under review; default settings (lateness 2 s, idle timeout 10 s, stale 300 s, TTL 7 d).
A backlog is read an hour or two late: every beat says not caught up (``since`` None)."""

from __future__ import annotations

from dataflow.progress import Beat
from dataflow.shard import LateReading, SensorEvent, ShardState, WindowResult
from tests.factories import T0, S
from tests.unit.dataflow.test_shard import PART, WALL0, config, temp, windows


def late_of(out: list) -> list[tuple[str, float]]:
    return sorted(
        (o.reading.sensor_id, (o.reading.ts - T0) / S) for o in out if isinstance(o, LateReading)
    )


def one_by_one(state: ShardState, readings: list, wall: float, live_since: float | None) -> list:
    """Each reading polled on its own at wall time ``wall`` (caught up since ``live_since``, or
    behind), then the silence rules."""
    out: list = []
    for reading in readings:
        beat = Beat(PART, wall, live_since)
        out += state.ingest([beat, reading], wall) + state.expire(wall)
    return out


def test_a_leading_sensor_whose_clock_steps_ahead_cuts_its_partition_mate_in_a_backlog() -> None:
    """a and b at 2 Hz, a read first at each time (so a is the lead, ``Lead.key``); from 31 s
    a's clock runs a minute ahead. The lead's own jump counts as a moving on alone past ``mark``
    (first - mark = 60.5 s > the idle timeout), so input time goes a minute on at a's first
    fast reading, as before the change: b's [30, 35) is written with 2 readings and its other 8
    are late. Read b first at each time (b the lead), or live, nothing is cut."""
    state = ShardState(config())
    out: list = []
    for k in range(120):
        t = k / 2
        ahead = 60.0 if t >= 31 else 0.0
        out += one_by_one(
            state, [temp("a", t + ahead, 60.0), temp("b", t, 61.0)], WALL0 + 3600, None
        )
    assert late_of(out) == []
    cut = [
        (o.sensor_id, (o.stats.start - T0) // S, o.stats.count)
        for o in out
        if isinstance(o, WindowResult) and o.sensor_id == "b" and o.stats.count != 10
    ]
    assert cut == []


def test_a_mate_quiet_past_the_idle_timeout_is_made_stale_by_the_lead_and_re_fires() -> None:
    """hot (overheating, 1 Hz, alert open) and fast (clock 290 s ahead, within
    MAX_FUTURE_SECONDS) in a backlog; hot is quiet from 30 s to 50 s (20 s). Once fast has gone
    on 10 s alone, input time becomes fast's own clock (``first``), not hot's last hearing plus
    the 10 s: hot's silence reads 300 s, its alert is resolved as stale, and it opens again at
    50 s, a second page for one episode. Live (and before the change) hot is 20 s silent:
    nothing stale, one alert."""
    state = ShardState(config(emit_all=False))
    out: list = []
    for k in range(100):
        t = float(k)
        batch = [] if 30 <= t < 50 else [temp("hot", t, 95.0)]
        batch.append(temp("fast", t + 290, 60.0))
        out += one_by_one(state, batch, WALL0 + 3600, None)
    stale = [(o.sensor_id, o.silent_s) for o in out if isinstance(o, SensorEvent)]
    opened = [
        (o.sensor_id, (o.stats.start - T0) // S)
        for o in out
        if isinstance(o, WindowResult) and o.alert and o.alert.event == "open"
    ]
    assert stale == []
    assert opened == [("hot", 0)]


def test_a_sensor_whose_readings_are_behind_freezes_its_partition_in_a_backlog() -> None:
    """x and y at 1 Hz, and z, a gateway backfilling readings an hour old, in a backlog; y
    stops after 30 s. Every z reading counts as "another sensor heard" (``mark = first``) although
    it is behind everything, so x never moves input time alone, and ``second`` (y's last, 30 s)
    holds it: for the next 170 s of x's readings input time stays at 30 s and y's last window
    [30, 35) is never closed (its alert would never go stale). Before the change it closed at
    47 s (x moved input time); without z it closes at 48 s."""
    state = ShardState(config())
    out: list = []
    closed_at = None
    for k in range(200):
        t = float(k)
        batch = [temp("x", t, 60.0)]
        if t <= 30:
            batch.append(temp("y", t, 61.0))
        batch.append(temp("z", t - 3600, 62.0))
        out += one_by_one(state, batch, WALL0 + 7200, None)
        if closed_at is None and ("y", 30, 61.0) in windows(out):
            closed_at = t
    assert closed_at is not None and closed_at <= 50, state.parts[PART].clock.input - WALL0


def test_a_lead_whose_clock_steps_back_holds_its_partition_in_a_backlog() -> None:
    """b and x at 1 Hz in a backlog two hours late (b read first, so x is not the lead when it
    steps); x's clock steps an hour ahead from 20 s to 30 s, then back (it restarts after a
    window of late readings, ``_one``). ``first`` stays at x's 3629 s: its own later readings
    are behind it and never lower it. b stops after 60 s: with only the lead left, input
    time is ``second`` (b's 60 s) until x's clock passes 3639 s, an hour of its readings, so
    b's last window [60, 65) is still open 140 s later. Live it closes at 67 s."""
    state = ShardState(config())
    out: list = []
    closed_at = None
    for k in range(200):
        t = float(k)
        batch = [temp("b", t, 61.0)] if t <= 60 else []
        batch.append(temp("x", t + (3600 if 20 <= t < 30 else 0), 60.0))
        out += one_by_one(state, batch, WALL0 + 7200, None)
        if closed_at is None and ("b", 60, 61.0) in windows(out):
            closed_at = t
    assert [r for r in late_of(out) if r[0] == "b"] == []
    assert closed_at is not None and closed_at <= 80, state.parts[PART].clock.input - WALL0
