"""Regressions found by a hostile review of the close wait (``_close_wait``, 73aaa32) and of the
input time around it: restores, a frozen process, gateways whose bundles change (each failed
before its fix). The idle timeout is the default's, 10 s."""

from __future__ import annotations

import random

from dataflow.families import TEMPERATURE
from dataflow.flow import ShardLogic, restore
from dataflow.progress import Beat
from dataflow.readings import Run
from dataflow.shard import LateReading, ShardState, WindowResult
from dataflow.status import Status
from tests.factories import T0, S
from tests.unit.dataflow.test_shard import PART, WALL0, config, feed, live, temp


def late_at(out: list) -> list[float]:
    return sorted((o.reading.ts - T0) / S for o in out if isinstance(o, LateReading))


def live_until(state: ShardState, last: float, hz: int) -> None:
    """Sensors a and b at ``hz``, each reading processed when made, up to ``last`` s."""
    for k in range(round(last * hz) + 1):
        t = k / hz
        feed(state, t, [temp("a", t, 60.0), temp("b", t, 60.0)])


def read_backlog(state: ShardState, first: float, hz: int, wall: float, since: float | None):
    """The readings made from ``first`` s on, for 4 s, read as a backlog in the partition's
    order (b's, then a's, at each time), one poll each, at wall time ``WALL0 + wall``."""
    out: list = []
    for k in range(round(first * hz), round((first + 4) * hz)):
        t = k / hz
        for name in ("b", "a"):
            beat = Beat(PART, WALL0 + wall, None if since is None else WALL0 + since)
            out += state.ingest([beat, temp(name, t, 60.0)], WALL0 + wall)
            out += state.expire(WALL0 + wall)
    return out


def test_a_restore_does_not_close_windows_by_the_time_the_flow_was_down() -> None:
    """Snapshot of two 10 Hz sensors, caught up, at 24.0 s; restored a minute later (the flow
    passes its wall clock). The readings made meanwhile are replayed, b's before a's at each
    time, as the partition holds them: none is late, and [20, 25) is whole. Restoring counted
    3 s (BEAT_GRACE_S) of input time past the snapshot's last beat, more than the lateness: the
    first replayed reading of b closed a's [20, 25) before a's readings 24.1 .. 24.9 came."""
    cfg = config()
    for hz, last in ((10, 24.0), (10, 24.3), (2, 24.0)):
        state = ShardState(cfg)
        live_until(state, last, hz)
        blob = ShardLogic(state, lambda: 0.0, Status(0)).snapshot()
        assert blob is not None
        back = restore(blob, cfg)
        wall = last + 60
        assert back.reconfigure(cfg, WALL0 + wall) == []
        out = back.expire(WALL0 + wall) + read_backlog(back, last + 1 / hz, hz, wall, None)
        assert late_at(out) == [], (hz, last)
        whole = [
            o.stats.count
            for o in out
            if isinstance(o, WindowResult) and o.stats.start == T0 + 20 * S
        ]
        assert whole == [5 * hz, 5 * hz], (hz, last)


def test_a_frozen_process_is_given_no_input_time_for_its_freeze() -> None:
    """The same two sensors; the process is frozen for 20 s at 24.0 s (a pause, a VM stopped).
    Its source's first poll after says it is behind, or, having fetched everything, caught up
    since now; either way the readings made during the freeze are read and none is late. The
    shard counted the 3 s of grace after the last beat before the freeze, and closed a's
    [20, 25) as b's first reading came."""
    cfg = config()
    for hz, last in ((10, 24.0), (10, 24.3), (2, 24.0)):
        for caught_up in (False, True):
            state = ShardState(cfg)
            live_until(state, last, hz)
            wall = last + 20
            out = read_backlog(state, last + 1 / hz, hz, wall, wall if caught_up else None)
            assert late_at(out) == [], (hz, last, caught_up)


def gateway(sends: list[float], cadence: float = 1.0) -> list:
    """A gateway sending, at each time of ``sends`` (s), the readings its sensor made since its
    last send, one every ``cadence`` s; the source's word each second and with each poll, the
    silence rules every 0.1 s, the idle timeout at its default."""
    state = ShardState(config())
    out: list = []
    made, tick, due = 0.0, 0, list(sends)
    while due:
        t = tick / 10
        readings = []
        if abs(t - due[0]) < 1e-6:
            due.pop(0)
            while made < t - 1e-9:
                readings.append(temp("g", made, 60.0))
                made += cadence
        beat = [live(t)] if readings or tick % 10 == 0 else []
        out += state.ingest([*beat, *readings], WALL0 + t) + state.expire(WALL0 + t)
        tick += 1
    return out


def test_a_gateway_whose_bundles_grow_loses_no_reading_to_the_old_interval() -> None:
    """2 s bundles for a minute, then 8 s bundles (1 Hz readings, under the 10 s idle timeout).
    The first 8 s bundle says how long the next one may take: a window is not closed before it.
    The usual gap followed 8 s by a tenth of the difference a bundle (2.6, 3.1, ...), so the
    first long bundles' windows closed before the next bundle came."""
    out = gateway([2.0 * k for k in range(1, 31)] + [60.0 + 8 * k for k in range(1, 16)])
    assert late_at(out) == []


def test_a_sensor_that_starts_bundling_loses_readings_only_while_its_gap_is_learned() -> None:
    """A 2 Hz sensor that sent each reading as it was made, then through a gateway's 8 s
    bundles: readings are late only in the first two bundles (a gap is taken at most four usual
    gaps at a time: 0.5 s, then 2, then 8), not for a minute and more of bundles."""
    sends = [0.5 * k for k in range(1, 121)] + [60.0 + 8 * k for k in range(1, 16)]
    late = late_at(gateway(sends, cadence=0.5))
    assert all(ts < 76 for ts in late), late


def test_bundles_of_varying_length_wait_for_the_longest_recent_one() -> None:
    """A gateway that sends 3 s and 10 s bundles in turn (a buffer that fills, or a timer):
    once its gap is known, no reading is late. The usual gap is the mean (6.5 s), and a wait
    of the mean less the cadence closed windows before the 10 s bundles."""
    sends, t = [], 0.0
    for k in range(40):
        t += 3.0 if k % 2 else 10.0
        sends.append(t)
    late = late_at(gateway(sends))
    assert [ts for ts in late if ts >= 20] == []


def test_a_new_gateway_loses_nothing_to_its_first_bundles() -> None:
    """A gateway that sends its sensor's 1 Hz readings in bundles from the start, every 6 to
    9.5 s (under the 10 s idle timeout), at several phases: no reading is late and no window is
    cut. Until the sensor's cadence and gap were learned its close timer waited nothing, so the
    first bundle's last open window closed before the second bundle brought the rest of it (an
    8 s bundle from 0: [5, 10) written with 3 readings, 8 and 9 dead-lettered as late)."""
    for period in (6.0, 8.0, 9.5):
        for phase in (0.0, 0.3, 2.5, 4.1):
            out = gateway([round(phase + period * k, 1) for k in range(1, 8)])
            assert late_at(out) == [], (period, phase)
            cut = [o.stats for o in out if isinstance(o, WindowResult) and o.stats.count != 5]
            assert cut == [], (period, phase)


def test_a_partition_whose_word_stops_closes_no_window_its_unread_readings_belong_to() -> None:
    """Two 10 Hz sensors, caught up; the partition's word stops after its beat at ``last`` (its
    reader's worker is busy, or stalled) while the shard's expiry runs on, every 0.1 s, for 3 s;
    then the readings made meanwhile are read, the source saying it is behind or caught up
    anew. None is late and [20, 25) is whole. Input time ran on for 3 s (BEAT_GRACE_S) past the
    last beat, more than the 2 s lateness, so [20, 25) closed at 27 with the readings made after
    the last beat still unread: those were late."""
    cfg = config()
    for last in (24.0, 24.3, 24.5):
        for caught_up in (False, True):
            state = ShardState(cfg)
            live_until(state, last, 10)
            out: list = []
            for k in range(1, 31):
                out += state.expire(WALL0 + last + k / 10)
            wall = last + 3.5
            since = WALL0 + wall if caught_up else None
            for k in range(round(last * 10) + 1, round(wall * 10) + 1):
                beat = Beat(PART, WALL0 + wall, since)
                batch = [beat, temp("a", k / 10, 60.0), temp("b", k / 10, 60.0)]
                out += state.ingest(batch, WALL0 + wall) + state.expire(WALL0 + wall)
            assert late_at(out) == [], (last, caught_up)
            whole = [
                o.stats.count
                for o in out
                if isinstance(o, WindowResult) and o.stats.start == T0 + 20 * S
            ]
            assert whole == [50, 50], (last, caught_up)


def test_a_sensor_whose_clock_is_ahead_cuts_no_window_of_its_partition_mates_in_a_backlog() -> None:
    """A backlog read an hour late: sensors a and b at 2 Hz, then from 30 s on a sensor whose
    clock is a minute ahead (within MAX_FUTURE_SECONDS) among them, between a and b in the
    partition's order. Live, the wall clock caps input time; a backlog has no such cap, and when
    input time was the latest event time read, the first reading of the fast sensor moved it a
    minute on at once: a, heard just before, looked a minute silent and its [30, 35) was written
    with one reading, the other nine late. Input time is now the latest of the others
    (``progress.Lead``)."""
    state = ShardState(config())
    out: list = []
    wall = WALL0 + 3600
    for k in range(120):
        t = k / 2
        batch = [temp("a", t, 60.0), temp("b", t, 60.0)]
        if t >= 30:
            batch.insert(1, temp("fast", t + 60, 60.0))
        for reading in batch:
            out += state.ingest([Beat(PART, wall, None), reading], wall) + state.expire(wall)
    assert late_at(out) == []
    cut = [o for o in out if isinstance(o, WindowResult) and o.stats.count != 10]
    assert [o.sensor_id for o in cut if o.sensor_id != "fast"] == []


def test_a_backlog_read_in_runs_loses_nothing_to_the_sensor_that_leads_each_poll() -> None:
    """A backlog read an hour late in polls of 500 readings, each sensor's readings of a poll
    one ``Run`` (as the router makes them): 60 sensors, each every 1.5-3 s from its own start,
    and every 7th sends one reading 15 s behind its clock (late: its window closed). A run that
    goes past every reading before it leads, and input time stays behind the lead's clock
    (``progress.Lead``). Heard at that input time, its clock looked ahead of where it was, its
    windows closed early and readings of the next poll for them were late: 12 to 14 where 9
    were sent late (a real broker's workload found it, ``test_scaling``). It is heard at its
    own reading's time: only the 9 are late."""
    rng = random.Random(20240319)
    events: list[tuple[int, str]] = []
    sent_late = 0
    for i in range(60):
        t, n = rng.randrange(0, 2 * S), 0
        while t < 120 * S:
            events.append((t, str(i)))
            n += 1
            if i % 7 == 2 and n == 20:
                events.append((t - 15 * S, str(i)))
                sent_late += 1
            t += rng.randrange(3 * S // 2, 3 * S)
    # In the order sent (a late reading right after its sensor's 20th), as a topic keeps them.
    order = sorted(range(len(events)), key=lambda k: (events[k][0], k))
    for k in range(len(events)):
        if events[k][0] < events[k - 1][0] and events[k][1] == events[k - 1][1]:
            order.remove(k)
            order.insert(order.index(k - 1) + 1, k)
    state = ShardState(config())
    wall = WALL0 + 3600
    out: list = []
    for p in range(0, len(order), 500):
        runs: dict[str, list[int]] = {}
        for k in order[p : p + 500]:
            runs.setdefault(events[k][1], []).append(T0 + events[k][0])
        batch: list = [Beat(PART, wall, None)]
        for sid, stamps in runs.items():
            n = len(stamps)
            batch.append(Run(TEMPERATURE, sid, tuple(stamps), (60.0,) * n, (None,) * n))
        out += state.ingest(batch, wall) + state.expire(wall)
    assert sent_late == 9
    assert len([o for o in out if isinstance(o, LateReading)]) == sent_late


def test_a_lead_read_in_long_runs_moves_input_time_past_a_silent_mate() -> None:
    """A backlog in polls of 16 s, each one run per sensor; quiet stops after the first poll
    and busy goes on alone. A run spans more than the idle timeout: that is time passing, not
    a clock that jumped (``progress.Lead`` takes only a jump before a run as one), so input
    time moves on with busy: by the 16 s of busy's run that goes past quiet's (poll 1), then by
    its next runs. Quiet, heard once with a bundle, waits an idle timeout (``_close_wait``):
    [10, 15) closes in poll 1, [15, 20) in poll 2; not never."""
    state = ShardState(config())
    wall = WALL0 + 3600
    out: list = []
    for poll in range(6):
        start = T0 + poll * 16 * S
        stamps = tuple(start + k * S // 2 for k in range(32))
        batch: list = [Beat(PART, wall, None)]
        for sensor in ("quiet", "busy") if poll == 0 else ("busy",):
            batch.append(Run(TEMPERATURE, sensor, stamps, (60.0,) * 32, (None,) * 32))
        out += state.ingest(batch, wall) + state.expire(wall)
        quiet = [o for o in out if isinstance(o, WindowResult) and o.sensor_id == "quiet"]
        starts = [(o.stats.start - T0) // S for o in quiet]
        if poll in (1, 2):
            assert starts == [0, 5, 10, 15][: poll + 2], poll
    assert late_at(out) == []
