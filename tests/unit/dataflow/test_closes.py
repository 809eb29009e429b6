"""A partition's closes by input time: taken earliest due first, in the order they were queued;
a snapshot keeps them in the shape snapshots of format v14 had (a heap list)."""

import heapq
import pickle
import random

from dataflow.closes import CloseQueue
from dataflow.progress import Beat
from dataflow.readings import Reading
from dataflow.shard import ShardState, WindowResult
from tests.factories import T0, S, shard_config

PART = "temperature_readings/0"


def drain(queue: CloseQueue, at: float) -> list[tuple[tuple[str, str], int]]:
    taken = []
    while (group := queue.take(at)) is not None:
        taken.extend(group)
    return taken


def test_the_earliest_due_is_taken_first_and_ties_in_the_order_queued() -> None:
    queue = CloseQueue()
    queue.push(7.0, ("t", "b"), 1)
    queue.push(5.0, ("t", "z"), 2)
    queue.push(7.0, ("t", "a"), 3)
    queue.push(5.0, ("t", "y"), 4)
    assert queue.first() == 5.0 and len(queue) == 4
    assert queue.take(4.9) is None and len(queue) == 4  # nothing due yet
    assert queue.take(6.0) == [(("t", "z"), 2), (("t", "y"), 4)]
    assert queue.take(6.0) is None  # 7.0 is not due at 6.0
    assert drain(queue, 7.0) == [(("t", "b"), 1), (("t", "a"), 3)]
    assert queue.first() is None and len(queue) == 0


def test_a_close_queued_while_a_due_is_handled_is_taken_after_it() -> None:
    queue = CloseQueue()
    queue.push(5.0, ("t", "a"), 1)
    group = queue.take(5.0)
    queue.push(5.0, ("t", "b"), 2)  # the same due, while its group is handled
    queue.push(4.0, ("t", "c"), 3)  # an earlier one
    assert group == [(("t", "a"), 1)]
    assert queue.take(5.0) == [(("t", "c"), 3)]
    assert queue.take(5.0) == [(("t", "b"), 2)]


def test_it_takes_every_close_a_heap_would_take_with_the_same_dues() -> None:
    rng = random.Random(7)
    queue, heap = CloseQueue(), []
    for n in range(2_000):
        due = float(rng.randrange(40))  # many ties, as a fleet reading on the same ticks
        key = ("t", str(rng.randrange(300)))
        queue.push(due, key, n)
        heapq.heappush(heap, (due, key, n))
    for at in (3.0, 3.5, 17.0, 39.0):
        # What a snapshot keeps: by due (a heap the code before read), each due's as queued.
        kept = queue.entries()  # n: the order queued
        assert kept == sorted(heap, key=lambda close: (close[0], close[2]))
        expected = []
        while heap and heap[0][0] <= at:
            expected.append(heapq.heappop(heap))
        taken = drain(queue, at)
        assert sorted(taken) == sorted((key, n) for _, key, n in expected)
        assert len(queue) == len(heap)
    assert queue.entries() == heap == []


def test_a_snapshot_keeps_the_closes_as_a_list_and_reads_an_older_heap_back() -> None:
    """The pickled shape of format v14: a restore of an older snapshot (a heap of the same
    tuples), or of one this code wrote, queues the same closes."""
    state = ShardState(shard_config(idle=10.0, emit_all=True))
    wall = T0 / S + 20
    readings = [Reading("temperature", str(n), T0 + s * S, 60.0) for s in (1, 6) for n in range(5)]
    state.ingest([Beat(PART, wall, 0.0), *readings], wall)
    part = state.parts[PART]
    _, slots = part.__getstate__()
    kept = slots["closes"]
    assert isinstance(kept, list) and kept == sorted(kept) and len(kept) == 5  # queued by id
    assert kept == part.closes.entries()
    clone = pickle.loads(pickle.dumps(state))
    assert clone.parts[PART].closes.entries() == kept
    # An older snapshot's heap list (any valid heap order): the same closes, by due (ties in
    # the heap's order, where the code that wrote it took them by sensor id).
    heap = list(reversed(kept))
    heapq.heapify(heap)
    slots["closes"] = heap
    part.__setstate__((None, slots))
    assert sorted(part.closes.entries()) == kept
    later = wall + 30
    a = state.ingest([Beat(PART, later, 0.0)], later) + state.expire(later)
    b = clone.ingest([Beat(PART, later, 0.0)], later) + clone.expire(later)
    closed = [r.sensor_id for r in b if isinstance(r, WindowResult)]
    assert closed == [str(n) for n in range(5) for _ in range(2)]  # both windows, as queued
    assert sorted(a, key=lambda r: r.sensor_id) == b


def test_a_restored_shard_closes_in_the_same_order_as_one_never_stopped() -> None:
    """Closes due together keep the order they were queued in through a snapshot, so the
    output of a restored flow is the one it would have written (not re-sorted by sensor)."""
    state = ShardState(shard_config(idle=10.0, emit_all=True))
    wall = T0 / S + 20
    ids = [str(n) for n in (7, 3, 9, 1, 5)]  # heard in this order, not in the ids' order
    readings = [Reading("temperature", i, T0 + s * S, 60.0) for s in (1, 6) for i in ids]
    state.ingest([Beat(PART, wall, 0.0), *readings], wall)
    clone = pickle.loads(pickle.dumps(state))
    later = wall + 30
    a = state.ingest([Beat(PART, later, 0.0)], later) + state.expire(later)
    b = clone.ingest([Beat(PART, later, 0.0)], later) + clone.expire(later)
    closed = [r.sensor_id for r in a if isinstance(r, WindowResult)]
    assert closed == [i for i in ids for _ in range(2)]
    assert a == b
