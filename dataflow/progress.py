"""Input time: how far each input partition has moved on, so silence is judged by the input.

Pure: no Kafka, no Bytewax. A sensor is silent when the input it would have come with has moved
on without it, not merely when the wall clock has. The wall clock alone cannot tell a quiet
sensor from a flow that is behind: after a restart, a broker outage, a slow backlog or a long
pause, every sensor looks silent although its readings wait in the topic. So each shard keeps,
per input partition, an *input time* (``PartClock``) that only moves on

- with the event times of the readings read from that partition: never past the wall clock,
  and to the latest of every sensor but the one furthest ahead (``Lead``), so one sensor whose
  clock runs ahead cannot make the others look silent, even in a backlog, and
- with the wall clock, but only over the stretches in which the source says it was caught up
  with that partition (lag 0, and the broker answering): a ``Beat``. While the flow is behind,
  disconnected, or just restored, nothing but the readings moves it.

A sensor's silence is its partition's input time now less the input time at which it was last
heard. ``SilenceQueue`` keeps a partition's sensors in the order they were last heard, so the
rules that act on silence (close, stale, forget) never scan sensors that are not due.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

# How long a caught-up partition's input time runs on after the source's last word on it. The
# source speaks about every ``BEAT_SECONDS``; when it falls silent (stalled, blocked by an
# outage, the process paused) input time stops soon after instead of running on regardless.
# A shard gives the grace no longer than its lateness (``grace``): a beat vouches only for the
# readings made before it, and a grace longer than the lateness closed windows that readings
# made after it, unread while the word was missing, belonged to.
BEAT_SECONDS = 1.0
BEAT_GRACE_S = 3 * BEAT_SECONDS


def grace(lateness_s: float) -> float:
    """The grace past a partition's last beat, for windows closed ``lateness_s`` after their
    end: no window closes in it that a reading made after the beat belongs to."""
    return lateness_s if lateness_s < BEAT_GRACE_S else BEAT_GRACE_S


class Beat(NamedTuple):
    """A source's word on one partition, sent to every shard: at wall time ``wall`` it has been
    caught up since ``since`` (lag 0 and the broker answering), or it is not (``since`` None:
    behind, disconnected, or not known yet).

    Inside a shard's batch it also marks where one partition's readings start: the readings
    after it, up to the next ``Beat``, came from ``part``. A ``wall`` of ``MARK`` is only that
    mark, with no word on the partition (its poll came without one).
    """

    part: str
    wall: float
    since: float | None


MARK = -1.0


def part_name(topic: str | None, partition: int | None) -> str:
    """How a partition is named in beats and logs."""
    return f"{topic}/{partition}"


class Poll(list[Any]):
    """One poll of one partition (its messages), with the source's word on that partition as
    it stood right after the poll."""

    __slots__ = ("beat",)

    def __init__(self, messages: Iterable[Any], beat: Beat) -> None:
        super().__init__(messages)
        self.beat = beat


class PartClock:
    """One input partition's time, as one shard sees it, in seconds.

    ``input`` never goes back. ``counted`` is the wall time up to which caught-up wall time has
    been added (None: not caught up now); between two beats input time runs on with the wall
    clock for at most ``grace`` (``BEAT_GRACE_S``, or the shard's lateness if less), a grace
    that is counted only if the next beat says the stretch went on (``at`` may then give less
    than it gave during the grace: the shard takes a hearing before that as a gap of 0).
    """

    __slots__ = ("counted", "input", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.input = 0.0
        self.counted: float | None = None

    def at(self, now: float, grace: float) -> float:
        """Input time at wall time ``now``, running on at most ``grace`` past the last beat
        (the shard's: ``ShardConfig.grace_s``; required, so no caller runs on longer than its
        lateness by leaving it out)."""
        counted = self.counted
        if counted is None or now <= counted:
            return self.input
        return self.input + min(now - counted, grace)

    def _fold(self, now: float, grace: float) -> None:
        """Take what ran on since the last beat into ``input``: ``counted`` moves with it, so
        nothing is counted twice."""
        counted = self.counted
        if counted is not None and now > counted:
            ran = min(now - counted, grace)
            self.input += ran
            self.counted = counted + ran

    def beat(self, wall: float, since: float | None, now: float, grace: float) -> None:
        """Take the source's word: add the caught-up wall time it vouches for."""
        if wall == MARK:
            return
        counted = self.counted
        if since is None or (counted is not None and since > counted):
            # Behind, disconnected, or caught up anew (the source saw a stall or a wall-clock
            # step): the stretch the last beat vouched for ended at some unknown time after it,
            # so the grace is not counted. Counted, a process frozen for a minute woke with
            # BEAT_GRACE_S of input time nobody read, more than the lateness: windows closed
            # before the readings made meanwhile, which came in late. Nothing more is added
            # until the source is caught up again.
            self.counted = counted = None
            if since is None:
                return
        else:
            self._fold(now, grace)
            counted = self.counted
        start = since if counted is None else max(since, counted)
        if wall > start:
            self.input += wall - start
        self.counted = wall if counted is None else max(wall, counted)

    def event(self, seconds: float) -> None:
        """Readings up to this event time (already capped at the wall clock) were read."""
        if seconds > self.input:
            self.input = seconds

    def pause(self, now: float) -> None:
        """The flow was restored from a snapshot: not caught up until the source says so. The
        grace past the snapshot's last beat is not counted: folded at ``now``, the restore's
        wall time, it gave every restored partition BEAT_GRACE_S of input time that nobody read
        (the flow was down), so windows closed before their replayed readings, which were
        late."""
        del now  # kept for the callers: nothing that ran on after the last beat is vouched for
        self.counted = None

    def follow(self, now: float) -> None:
        """Run on with the wall clock up to ``now``, from the last call (or the first): for a
        partition the flow no longer reads (its family moved to another topic), while the ones
        it does read are caught up. Nothing can come from it, so its sensors are as silent as
        the wall clock says."""
        counted = self.counted
        if counted is None:
            self.counted = now
        elif now > counted:
            self.input += now - counted
            self.counted = now

    def wall_of(self, input_time: float, grace: float) -> float | None:
        """Wall time at which input time reaches ``input_time`` while the partition stays caught
        up; None when only the input can move it there (readings, or the next beat, will)."""
        counted = self.counted
        ahead = input_time - self.input
        if counted is None or ahead <= 0 or ahead > grace:
            return None
        return counted + ahead


Key = tuple[str, str]  # (family, sensor id)


def lead_time(first: int, second: int, mark: int, lateness: int) -> int:
    """A partition's input time from its readings, ns (``Lead``): the mates' time, the lead's
    own progress since a mate was heard and the lateness, never past the latest event time
    read; the latest event time read while no mate has been heard."""
    if second < 0:
        return first
    time = second + first - mark + lateness
    return time if time < first else first


class Lead:
    """How far one partition's readings have moved its input time, robust to one sensor whose
    clock runs ahead. In a backlog (where the wall clock caps nothing) input time was the latest
    event time read: one sensor a minute ahead, within ``MAX_FUTURE_SECONDS``, moved it a minute
    on at its first reading, and every sensor read with it looked a minute silent (its open
    windows cut, the rest of their readings late). A max-event-time watermark (Kafka Streams'
    stream time, Flink's bounded out-of-orderness) has that flaw.

    So the sensor read furthest ahead (the lead: ``key``, at ``first``, ns, capped at the wall
    clock) never moves input time by its own clock, only by how far it has gone on since a mate
    was last heard: input time is ``second`` (the latest of the others) plus ``first - mark``
    (``mark``: ``first`` at the end of the last poll a mate was heard in), plus the lateness, and
    never past ``first`` (so while sensors' clocks agree within the lateness, input time is the
    latest event time read, as before the lead: a mate's windows close where they did). While
    its mates are read, that is about their time; once they fall silent, input time goes on as
    the lead does, and they are silent by as much. A step of the lead's clock of more than
    ``span`` (the idle timeout), forward or back, is not taken as the input moving on (a clock
    set, not time passing), nor is a sensor's step past the lead when it takes the lead; the
    span of a run (a poll's readings of one sensor) past the lead is. A sensor read is heard at
    the latest reading of its poll so far, its own included, as before the lead: the lead's
    windows close by its own clock, never before it. A mate counts as heard only at or past
    ``second``: one far behind (a gateway backfilling old readings) tells nothing of how far the
    partition is. With no mate heard yet (one sensor alone), input time is ``first``.
    ``ShardState.ingest`` runs the update inline, once per reading. Two sensors ahead together
    still move it: told apart from the rest falling behind they are not."""

    __slots__ = ("first", "key", "mark", "second")

    def __init__(self) -> None:
        self.key: Key | None = None
        self.first = -1
        self.second = -1  # negative: no other sensor heard
        self.mark = -1

    @classmethod
    def of(cls, latest: Iterable[tuple[Key, int]]) -> Lead:
        """The lead of sensors last read at these event times (ns), each sensor once: a
        restored partition's, from the sensors the snapshot holds."""
        lead = cls()
        ranked = sorted(latest, key=lambda pair: pair[1], reverse=True)
        if ranked:
            lead.key, lead.first = ranked[0]
            lead.mark = lead.first
            if len(ranked) > 1:
                lead.second = ranked[1][1]
        return lead


class SilenceQueue:
    """One partition's sensors in the order they were last heard (input time only grows, so
    this is also the order of their silence).

    A sensor is due when silent for ``max(floor, its own limit)``: the floor is a configured
    duration, the limit comes from the sensor's own cadence. The front of the queue is checked
    against the floor; one whose own limit is longer waits in a small heap by its own due time.
    """

    __slots__ = ("order", "slow")

    def __init__(self) -> None:
        self.order: OrderedDict[Key, float] = OrderedDict()
        self.slow: list[tuple[float, Key, float]] = []  # (due, key, heard)

    def __len__(self) -> int:
        return len(self.order)

    def __contains__(self, key: Key) -> bool:
        return key in self.order

    def touch(self, key: Key, heard: float) -> None:
        order = self.order
        order[key] = heard
        order.move_to_end(key)

    def drop(self, key: Key) -> None:
        self.order.pop(key, None)

    def relimit(self, floor: float, limit_of: Callable[[Key], float]) -> None:
        """The floor changed (a restore under another stale time): the sensors waiting in the
        heap, whose due times were worked out under the old one, have them worked out anew."""
        self.slow = [(heard + max(floor, limit_of(key)), key, heard) for _, key, heard in self.slow]
        heapq.heapify(self.slow)

    def due(
        self,
        now: float,
        floor: float,
        limit_of: Callable[[Key], float],
        heard_of: Callable[[Key], float | None],
    ) -> list[Key]:
        """Take the sensors silent for at least ``max(floor, limit_of(key))`` at input time
        ``now``. ``heard_of`` is the sensor's latest last-heard time (None: gone): the queue
        keeps the order of hearings, a sensor heard again in the same batch is not moved again
        (so it may wait in the heap instead), and a heap entry of a sensor heard since is
        skipped."""
        out: list[Key] = []
        order, slow = self.order, self.slow
        cutoff = now - floor
        while order:
            key, queued = next(iter(order.items()))
            if queued > cutoff:
                break
            del order[key]
            heard = heard_of(key)
            if heard is None:
                continue
            due = heard + max(floor, limit_of(key))
            if due <= now:
                out.append(key)
            else:
                heapq.heappush(slow, (due, key, heard))
        while slow and slow[0][0] <= now:
            _, key, heard = heapq.heappop(slow)
            if key not in order and heard_of(key) == heard:
                # Its limit may have grown since it was queued (a window closed since set a
                # longer cadence): due by the limit it has now.
                due = heard + max(floor, limit_of(key))
                if due <= now:
                    out.append(key)
                else:
                    heapq.heappush(slow, (due, key, heard))
        return out

    def next_due(self, floor: float) -> float | None:
        """Input time at which ``due`` may next have work, or None."""
        times = []
        if self.order:
            times.append(next(iter(self.order.values())) + floor)
        if self.slow:
            times.append(self.slow[0][0])
        return min(times) if times else None

    def clear(self) -> None:
        self.order.clear()
        self.slow.clear()
