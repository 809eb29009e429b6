"""A sensor (or machine) back after a silence past its stale time gives the same alerts however
its readings were read: live with the timers, from a backlog one reading or a poll at a time,
or replayed after a restart (``ShardState._back``). Each test failed before ``_back`` closed the
windows due first, closed the rest as a stale resolution does, split runs at a silence and
resolved machines."""

from __future__ import annotations

import orjson

from dataflow.families import TEMPERATURE
from dataflow.flow import ShardLogic, restore
from dataflow.progress import Beat
from dataflow.readings import Reading, Run
from dataflow.routing import route
from dataflow.shard import SensorEvent, ShardState, WindowResult
from dataflow.status import Status
from tests.factories import T0, S, families, shard_config, topics
from tests.fakes import FakeMessage
from tests.unit.dataflow import fuzz_back
from tests.unit.dataflow.test_machines import pump_readings, shard

W0 = T0 / S
P = "temperature_readings/0"


def temp(sensor: str, sec: float, value: float = 60.0) -> Reading:
    return Reading(TEMPERATURE, sensor, T0 + round(sec * S), value)


def alert_events(out: list, sensor: str | None = None) -> list[tuple[str, str, str | None]]:
    return [
        (o.alert.event, o.alert.alert_id, o.alert.resolution)
        for o in out
        if isinstance(o, WindowResult | SensorEvent)
        and o.alert is not None
        and (sensor is None or o.sensor_id == sensor)
    ]


def live(state: ShardState, times: list[float], readings: list[Reading], until: float) -> list:
    """Each reading read 0.3 s after it was made, the partition caught up, a batch a second."""
    out: list = []
    for sec in range(int(until)):
        batch = [r for r, t in zip(readings, times, strict=True) if sec - 1 < t + 0.3 <= sec]
        wall = W0 + sec + 0.5
        out += state.ingest([Beat(P, wall, W0), *batch], wall) + state.expire(wall)
    return out + state.flush()


def backlog(state: ShardState, readings: list[Reading], per: int = 10) -> list:
    """The same readings read long after, ``per`` a batch, the partition not caught up (the wall
    clock moving 1 ms a poll, as ``fuzz_back``'s: ``ingest`` tells batches apart by it)."""
    return fuzz_back.backlog(state, readings, per, W0 + 100_000) + state.flush()


def message(offset: int, sec: float, value: float) -> FakeMessage:
    body = orjson.dumps({"Temperature_C": value, "Timestamp": T0 + round(sec * S)})
    return FakeMessage(b"g", body, "temperature_readings", 0, offset)


# -- 1. A silence inside a Run (a backlog poll's readings of one sensor) ----------------------


def test_a_routed_backlog_poll_across_a_silence_gives_the_alerts_of_one_by_one() -> None:
    """A sensor at 95 °C, silent 400 s, back at 95 °C. One backlog poll holding both sides of
    the silence is routed as one ``Run`` (``_route_runs``): folded whole, only its first reading
    was compared with the sensor's last and the silence inside it was never seen (no stale
    resolution). Polled one message at a time, ``_back`` resolves it stale; one poll must too."""
    secs = [*range(0, 20), *range(420, 450)]
    msgs = [message(i, s, 95.0) for i, s in enumerate(secs)]
    wall = W0 + 10_000

    def read(polls: list) -> list:
        state = ShardState(shard_config())
        out: list = []
        for poll in polls:
            (batch,) = route([Beat(P, wall, None), poll], topics(), 1)[0].values()
            out += state.ingest(batch, wall)
        return out + state.flush()

    one_by_one = read([[m] for m in msgs])
    one_poll = read([msgs])
    assert [e[0] for e in alert_events(one_by_one)] == ["open", "resolved", "open"]
    assert alert_events(one_poll) == alert_events(one_by_one)


def test_a_restart_replayed_in_runs_gives_the_live_run_s_alerts() -> None:
    """test_shard_review's restart test, with the replay's polls grouped as routing groups
    them (a Run per sensor per poll): the replay must resolve the first alert stale and open
    the second as the live run did (without it, the second, written before the crash, was left
    open for good downstream, and the first updated after its resolution)."""
    times = [k + 0.1 for k in range(101)] + [404.9 + k for k in range(60)]
    readings = [temp("2", t, 95.0) for t in times]
    whole = live(ShardState(shard_config()), times, readings, 470)
    state = ShardState(shard_config())
    before: list = []
    for sec in range(51):
        batch = [r for r, t in zip(readings, times, strict=True) if sec - 1 < t + 0.3 <= sec]
        wall = W0 + sec + 0.5
        before += state.ingest([Beat(P, wall, W0), *batch], wall) + state.expire(wall)
    blob = ShardLogic(state, lambda: 0.0, Status(0), snapshots=True).snapshot()
    assert blob is not None
    again = restore(blob, shard_config())
    again.reconfigure(shard_config(), W0 + 1_000)
    rest = [r for r, t in zip(readings, times, strict=True) if t + 0.3 > 50.5]
    after: list = []
    wall = W0 + 1_000
    for i in range(0, len(rest), 80):  # polls of 80 messages, one sensor: a Run each
        chunk = rest[i : i + 80]
        run = Run(
            TEMPERATURE,
            "2",
            tuple(r.ts for r in chunk),
            tuple(r.value for r in chunk),
            (None,) * len(chunk),
        )
        after += again.ingest([Beat(P, wall, None), run], wall) + again.expire(wall)
    after += again.flush()
    assert [e[0] for e in alert_events(whole)][:3] == ["open", "resolved", "open"]
    assert alert_events(before + after) == alert_events(whole)


# -- 2. _back's limit is read before the windows it closes have set the cadence ---------------


def test_a_sensor_reading_every_ten_minutes_pages_once_live_and_from_a_backlog() -> None:
    """One reading every 600 s (longer than ALERT_STALE_SECONDS=300) at 95 °C, one-minute
    windows. Live, the timer closes each window long before the next reading, so the cadence
    (600 s, limit 1800 s) is known when the stale check runs. From a backlog the previous
    window must close before the limit is read: read with the cadence of one window earlier
    (0: limit 300 s), the alert its close opened was resolved stale at once (an extra stale
    resolution and an extra page)."""
    cfg = shard_config(fams=families(60.0), window_ns=60 * S)
    times = [600.0 * k + 1 for k in range(8)]
    readings = [temp("s", t, 95.0) for t in times]
    a = live(ShardState(cfg), times, readings, times[-1] + 200)
    b = backlog(ShardState(cfg), readings, per=1)
    assert [e[0] for e in alert_events(a)] == ["open", "resolved", "open", "update"]
    assert alert_events(b) == alert_events(a)


def test_a_silence_between_the_limit_before_and_after_the_last_window_closes() -> None:
    """Every 110 s (cadence ~100 s: limit ~300 s), the last window before a 320 s silence
    holding two readings (its close lowers the cadence). Live: stale, then a new alert. From
    a backlog too: judged by the cadence before that close (limit > 320 s), the first alert
    went on, never resolved stale, and the second never opened."""
    cfg = shard_config(fams=families(60.0), window_ns=60 * S)
    times = [110.0 * k for k in range(40)]
    times.append(times[-1] + 20)
    back = times[-1] + 320
    times += [back + 110.0 * k for k in range(10)]
    readings = [temp("s", t, 95.0) for t in times]
    a = live(ShardState(cfg), times, readings, times[-1] + 200)
    b = backlog(ShardState(cfg), readings)
    assert [e[2] for e in alert_events(a)].count("stale") == 1
    assert alert_events(b) == alert_events(a)


# -- 3. A window longer than the stale time: _back leaves it open, its close pages again -------


def test_a_window_longer_than_the_stale_time_pages_from_a_backlog_and_not_live() -> None:
    """Ten-minute windows; "hot" at 100 °C every 10 s (an alert opens), offline from 100 s to
    560 s into a window (460 s > 300 s), back at 85 °C (below the 90 °C rule); "other" at 60 °C
    throughout. Live, the stale resolution closes that window (its 100 °C part) and the return
    writes it again with 85 °C only: no new alert. From a backlog the same: closing only the
    windows due at the returning reading (none) before the stale resolution, the window closed
    later with 100 °C and 85 °C readings (mean 95.7) and paged a sensor that came back
    healthy."""
    cfg = shard_config(fams=families(600.0), window_ns=600 * S)
    size = 600
    w = size - (T0 // S) % size + size  # the second window's start, s after T0
    times: list[float] = []
    readings: list[Reading] = []
    for sec in range(0, w + 3 * size, 10):
        if sec < w + 100 or sec >= w + 560:
            readings.append(temp("hot", sec, 100.0 if sec < w + 100 else 85.0))
            times.append(sec)
        readings.append(temp("other", sec, 60.0))
        times.append(sec)
    a = live(ShardState(cfg), times, readings, times[-1] + 2)
    b = backlog(ShardState(cfg), readings)
    assert [e[0] for e in alert_events(a, "hot")] == ["open", "resolved"]
    assert alert_events(b, "hot") == alert_events(a, "hot")


# -- 4. Machines: _back resolves channels' alerts, never the machine's -------------------------


def test_a_silent_machine_s_alert_goes_stale_from_a_backlog_as_live() -> None:
    """A pump whose current/flow relation breaks (a machine alert opens), silent 100 s (stale
    60 s), back still broken. Live, ``_stale_machines`` resolves the machine's alert stale
    and a new one opens. From a backlog (its partition's input time moved only by its own
    readings) the same: with channel alerts alone resolved, the machine's first alert went
    on."""

    def state() -> ShardState:
        return shard(stale_s=60.0)

    batches = pump_readings("p6", 400, seed=6, break_at=300)
    flat = [r for i, b in enumerate(batches) if not 320 <= i < 340 for r in b]
    a: list = []
    s = state()
    for sec in range(0, 400 * 5 + 20):
        wall = W0 + sec + 0.5
        batch = [r for r in flat if sec - 1 < (r.ts - T0) / S + 0.3 <= sec]
        a += s.ingest([Beat("pumps/0", wall, W0), *batch], wall) + s.expire(wall)
    a += s.flush()
    b: list = []
    s = state()
    wall = W0 + 100_000
    for i in range(0, len(flat), 10):
        b += s.ingest([Beat("pumps/0", wall, None), *flat[i : i + 10]], wall) + s.expire(wall)
    b += s.flush()
    assert ("resolved", "stale") in [(e[0], e[2]) for e in alert_events(a, "p6")]
    assert alert_events(b, "p6") == alert_events(a, "p6")
