"""Hostile review (h-rev10) of the partition lead (``progress.Lead``, 51b7255..cf81e10), found by
a differential run against 438ecd2 on seeded backlog and live workloads. Each test here fails
on cf81e10; the first passes on 438ecd2 (a regression), the second fails there too (what the
lead was meant to fix, not fixed). Default settings (lateness 2 s, idle timeout 10 s)."""

from __future__ import annotations

from dataflow.families import TEMPERATURE
from dataflow.progress import Beat
from dataflow.readings import Reading, Run
from dataflow.shard import LateReading, ShardState
from tests.factories import T0, S
from tests.unit.dataflow.test_shard import PART, WALL0, config


def poll(state: ShardState, wall: float, sensors: dict[str, list[float]]) -> list:
    """One poll of a flow that is behind (``since`` None) at wall time ``WALL0 + wall``, each
    sensor's readings (s after T0) one ``Run`` as the router makes them, then the silence rules."""
    batch: list = [Beat(PART, WALL0 + wall, None)]
    for sid, secs in sensors.items():
        stamps = tuple(T0 + round(t * S) for t in secs)
        if len(stamps) == 1:
            batch.append(Reading(TEMPERATURE, sid, stamps[0], 60.0))
        else:
            n = len(stamps)
            batch.append(Run(TEMPERATURE, sid, stamps, (60.0,) * n, (None,) * n))
    return state.ingest(batch, WALL0 + wall) + state.expire(WALL0 + wall)


def late_of(out: list) -> list[tuple[str, float]]:
    return sorted(
        (o.reading.sensor_id, (o.reading.ts - T0) / S) for o in out if isinstance(o, LateReading)
    )


def test_a_gateway_bundle_split_by_a_poll_of_a_lagging_flow_keeps_its_bundle_wait() -> None:
    """A flow behind (the wall clock moves on, each poll says not caught up) reads a partition
    of two sensors: "a", its readings sent when made, every 0.3 s, and a gateway "g" that sends
    a reading every 0.33 s in bundles of 6.6 s. The first bundle is split by a poll: the first
    part read with a's reading 6.6, the rest in the next poll. On 438ecd2 both hearings are at
    input time 6.6 (gap 0: g's gap is taken from its next bundle, 6.6 s, and it waits for its
    bundles). With the lead, the second hearing is at g's own last reading (heard no earlier
    than its reading), 0.03 past the first: a first gap of 0.3 s, under g's cadence, which the
    gap clip (GAP_CLIP) lets grow only slowly; g waits about nothing for its next bundle, its
    windows close before it and the bundle's readings for them are late."""
    state = ShardState(config())
    out: list = []
    wall = 0.0
    a = [round(k * 0.3, 2) for k in range(1, 400)]
    g = [round(k * 0.33, 2) for k in range(1, 360)]
    bundle = 6.6
    sent = 0.0  # g's readings up to here are sent
    for t in a:
        wall += 1.0
        if t >= sent + bundle:  # g's next bundle, after a's reading at its end
            part = [x for x in g if sent < x <= sent + bundle]
            sent += bundle
            if sent == bundle:  # the first bundle: split by a poll
                out += poll(state, wall, {"a": [t], "g": part[:8]})
                wall += 1.0
                out += poll(state, wall, {"g": part[8:]})
            else:
                out += poll(state, wall, {"a": [t], "g": part})
        else:
            out += poll(state, wall, {"a": [t]})
    late = late_of(out)
    assert late == [], len(late)  # cf81e10: 5 of g's (13.53 .. 14.85); 438ecd2: none


def backlog_of_two(ahead_s: float, per_poll: int) -> list:
    """A backlog read an hour late: "mate" and "ahead" each read every second for 300 s, sent
    when made (mate's just before ahead's each second); ahead's clock runs ``ahead_s`` ahead.
    Read in polls of ``per_poll`` messages, each sensor's readings of a poll one ``Run`` (mate's
    first: it comes first in the poll, as the router orders them)."""
    msgs = [(sid, t) for t in range(300) for sid in ("mate", "ahead")]
    state = ShardState(config())
    out: list = []
    for p in range(0, len(msgs), per_poll):
        runs: dict[str, list[float]] = {}
        for sid, t in msgs[p : p + per_poll]:
            runs.setdefault(sid, []).append(t + (ahead_s if sid == "ahead" else 0.0))
        out += poll(state, 3600.0, runs)
    return out


def test_a_lead_ahead_read_after_its_mate_in_each_poll_does_not_count_the_poll_twice() -> None:
    """One sensor a minute ahead, the other sent with it every second, in a backlog read in
    polls of 28 s (56 messages). In each poll the mate's run comes first: it is heard at the
    poll's end T (``Lead.second`` = T, ``mark`` = the lead's clock at the previous poll's end);
    then the lead's run moves input time on by its own progress since ``mark``, the poll's 28 s,
    which the mate's run already covered: input time T + 28 s (T = 27: 55), so the mate's
    [25, 30), holding 25 .. 27, closes (27 + its wait, the idle timeout, + 5 <= 55) before the
    next poll brings 28 and 29, which are late: 20 of the mate's readings on cf81e10 (and on
    438ecd2, which the lead was meant to fix). With the clocks together none is late."""
    assert late_of(backlog_of_two(0.0, 56)) == []
    assert late_of(backlog_of_two(60.0, 56)) == []
