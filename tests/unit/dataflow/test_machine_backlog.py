"""A machine's channels that lag, stop or run ahead give the same machine alerts live and from a
backlog, and never stall it. A hostile review's cases against a change that held a machine
window for a missing channel's timer by the partition's input time (reverted: in a backlog
that input time follows the lagging channel itself: the first two failed on it); any later fix
of the dead-channel limit (``test_fuzz_back``'s strict xfail) must keep them."""

from __future__ import annotations

import math

from dataflow.machines import MAX_BEHIND
from dataflow.progress import Beat
from dataflow.readings import Reading
from tests.factories import T0, S
from tests.unit.dataflow.fuzz_back import alert_events
from tests.unit.dataflow.test_machines import machine_results, pump_readings, shard

PART = "pumps/0"


def run(arrivals: dict[int, list[Reading]], live: bool) -> dict:
    """The readings arriving at their second (live: a batch a second, caught up), or read long
    after one a poll (a backlog, not caught up), then the flow caught up for 400 s."""
    state = shard()
    out: list = []
    last = max(arrivals)
    if live:
        for sec in range(last + 400):
            wall = T0 / S + sec + 0.5
            out += state.ingest([Beat(PART, wall, T0 / S), *arrivals.get(sec, [])], wall)
            out += state.expire(wall)
    else:
        wall = T0 / S + last + 1000
        polls = [r for sec in sorted(arrivals) for r in arrivals[sec]]
        for i, r in enumerate(polls):
            now = wall + i / 1000
            out += state.ingest([Beat(PART, now, None), r], now)
            out += state.expire(now)
        tail = wall + len(polls) / 1000 + 1
        for sec in range(400):
            w = tail + sec + 0.5
            out += state.ingest([Beat(PART, w, tail)], w)
            out += state.expire(w)
    return alert_events(out + state.flush())


def test_a_channel_whose_clock_stopped_does_not_stall_its_machine_in_a_backlog() -> None:
    """``test_machines``' stopped clock, read from a backlog: the stopped channel is heard every
    poll, so the partition's input time stays at its stopped clock; a wait for its window's
    timer by that input time held every machine window behind it for the whole backlog."""
    state = shard(emit_all=True)
    batches = pump_readings("p1", 400, seed=1, break_at=None)
    frozen = batches[100][1].ts
    wall = (T0 + 400 * 5 * S) / S + 5000
    out: list = []
    for i, (cur, flow) in enumerate(batches):
        now = wall + i / 1000
        if i >= 100:
            flow = flow._replace(ts=frozen)
        out += state.ingest([Beat(PART, now, None), cur, flow], now)
        out += state.expire(now)
    assert len(state.machines[("pump", "p1")].pending) <= MAX_BEHIND + 1
    assert len(machine_results(out)) >= 390


def test_a_channel_read_more_than_max_behind_windows_late_alerts_alike_live_and_backlog() -> None:
    """Flow read 18.14 s after it is made (more than ``MAX_BEHIND`` windows), current at once:
    live flow is left out of its machine's windows (docs/machines.md), and so it must be from a
    backlog (the held change took it in there, and paged where live did not)."""
    arrivals: dict[int, list[Reading]] = {}
    for cur, flow in pump_readings("p1", 400, seed=1, break_at=300):
        t = (cur.ts - T0) / S
        arrivals.setdefault(math.ceil(t + 0.3), []).append(cur)
        arrivals.setdefault(math.ceil(t + 18.14), []).append(flow)
    assert run(arrivals, live=False) == run(arrivals, live=True)


def test_a_channel_ahead_with_a_bundled_sibling_alerts_alike_live_and_backlog() -> None:
    """Current's clock 21 s (four windows) ahead, flow sent in bundles every 15 s."""
    arrivals: dict[int, list[Reading]] = {}
    for cur, flow in pump_readings("p1", 400, seed=1, break_at=300):
        t = (cur.ts - T0) / S
        arrivals.setdefault(math.ceil(t + 0.3), []).append(cur._replace(ts=cur.ts + 21 * S))
        arrivals.setdefault(math.ceil((math.floor(t / 15) + 1) * 15 + 0.3), []).append(flow)
    assert run(arrivals, live=False) == run(arrivals, live=True)
