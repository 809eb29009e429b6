"""The flow's Kafka partition reader, on a fake consumer: polls, offsets, EOF, errors, lag, stop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import SimpleNamespace

import orjson
import pytest
from bytewax.connectors.kafka import BYTEWAX_CONSUMER_LAG_GAUGE
from bytewax.inputs import FixedPartitionedSource
from bytewax.testing import TestingSink, run_main
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from dataflow import source as source_mod
from dataflow.flow import build_flow
from dataflow.progress import Beat
from dataflow.source import KafkaPollSource, PollPartition, consumer_lag
from dataflow.status import Status
from tests.factories import T0, S, flow_settings

INVALID = -1001  # librdkafka's OFFSET_INVALID: no watermark known yet
TOPIC = "temperature_readings"


def msg(offset: int, value: bytes = b"{}", key: bytes = b"1") -> Message:
    return Message(topic=TOPIC, partition=0, offset=offset, key=key, value=value)


def eof(offset: int) -> Message:
    return Message(
        topic=TOPIC, partition=0, offset=offset, error=KafkaError(KafkaError._PARTITION_EOF)
    )


class FakeConsumer:
    """Serves the given polls in order (then empty ones), with the watermarks set per poll."""

    def __init__(
        self,
        polls: list[list[Message]],
        marks: list[tuple[int, int]] | None = None,
        after: dict[int, threading.Event] | None = None,
    ) -> None:
        self.polls = list(polls)
        self.marks = list(marks or [])
        self.mark: tuple[int, int] = (INVALID, INVALID)
        self.after = after or {}  # poll number -> event to set once it has been served
        self.consumed = 0
        self.assigned: list[TopicPartition] = []
        self.closed = False
        self.asked = 0  # uncached watermark questions
        self.down = False  # the broker does not answer them
        self.broker_mark: tuple[int, int] | None = None  # what it answers (else ``mark``)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = partitions

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        self.consumed += 1
        if self.marks:
            self.mark = self.marks.pop(0)
        if self.consumed in self.after:
            self.after[self.consumed].set()
        return self.polls.pop(0) if self.polls else []

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        if not cached:  # a broker round trip: only for a beat after an empty poll
            self.asked += 1
            if self.down:
                raise KafkaException(KafkaError(KafkaError._TRANSPORT))
            return self.broker_mark or self.mark
        return self.mark

    partitions = 1  # what list_topics says the topic has

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> SimpleNamespace:
        parts = dict.fromkeys(range(self.partitions))
        return SimpleNamespace(topics={TOPIC: SimpleNamespace(partitions=parts)})

    def close(self) -> None:
        self.closed = True


class FakeGauge:
    def __init__(self) -> None:
        self.values: list[float] = []

    def set(self, value: float) -> None:
        self.values.append(value)


class Gauges:
    """A ``Gauge`` stand-in: records the labels each child was made with."""

    def __init__(self) -> None:
        self.children: dict[tuple[str, str, str], FakeGauge] = {}

    def labels(self, **labels: str) -> FakeGauge:
        key = (labels["step_id"], labels["topic"], labels["partition"])
        return self.children.setdefault(key, FakeGauge())


def part(
    consumer: FakeConsumer,
    offset: int = OFFSET_BEGINNING,
    gauge: FakeGauge | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = lambda: 0.5,  # never a second beat
    monotonic: Callable[[], float] | None = None,  # by default, the same as ``clock``
) -> tuple[PollPartition, FakeGauge, list[int]]:
    gauge = gauge or FakeGauge()
    made: list[int] = []

    def make() -> FakeGauge:
        made.append(1)
        return gauge

    return (
        PollPartition(
            consumer,
            TOPIC,
            0,
            offset,
            100,
            make,
            stop or threading.Event(),
            clock,
            monotonic or Ticks.last_of(clock),
        ),
        gauge,
        made,
    )


@pytest.mark.parametrize(
    ("position", "low", "high", "lag"),
    [
        (10, 0, 25, 15),  # next to read 10, end 25
        (25, 0, 25, 0),  # caught up
        (30, 0, 25, 0),  # past a stale high watermark: nothing to read, not -5
        (OFFSET_BEGINNING, 0, 25, 25),  # nothing read yet: all of it
        (OFFSET_BEGINNING, 7, 25, 18),  # ... from the first offset retention kept
        (OFFSET_BEGINNING, INVALID, INVALID, None),  # no fetch answered yet
        (10, INVALID, INVALID, None),
        (OFFSET_BEGINNING, INVALID, 25, None),
        (OFFSET_END, 0, 25, None),  # a logical offset the reader never uses: unknown
    ],
)
def test_consumer_lag(position: int, low: int, high: int, lag: int | None) -> None:
    assert consumer_lag(position, low, high) == lag


def test_a_poll_is_one_item_and_the_snapshot_is_the_next_offset() -> None:
    first, second = [msg(0), msg(1), msg(2)], [msg(3)]
    consumer = FakeConsumer([first, second])
    reader, _gauge, _made = part(consumer)
    assert consumer.assigned[0].offset == OFFSET_BEGINNING
    assert reader.snapshot() == OFFSET_BEGINNING
    assert polls(reader.next_batch()) == [first]  # and the first beat
    assert reader.snapshot() == 3
    assert reader.next_batch() == [second]
    assert reader.next_batch() == []  # an empty poll is no item (no beat due)
    assert reader.snapshot() == 4
    reader.close()
    assert consumer.closed


class Ticks:
    """A fake wall clock serving the given times in turn; ``last_of`` reads the one it served
    last, as a monotonic clock that agrees with it."""

    def __init__(self, times: list[float]) -> None:
        self.times = iter(times)
        self.now = 0.0

    def __call__(self) -> float:
        self.now = next(self.times)
        return self.now

    @staticmethod
    def last_of(clock: Callable[[], float]) -> Callable[[], float]:
        if isinstance(clock, Ticks):
            return lambda: clock.now
        return clock


def polls(items: list) -> list:
    """The polls among a reader's items, without its beats."""
    return [item for item in items if not isinstance(item, Beat)]


def test_a_beat_says_since_when_the_partition_is_caught_up() -> None:
    """Each poll carries the word as it stands; a beat comes every BEAT_SECONDS. After an empty
    poll, the beat asks the broker (the cache would not notice an outage)."""
    consumer = FakeConsumer([[msg(0), msg(1)], [msg(2)]], marks=[(0, 5), (0, 3)])
    reader, _gauge, _made = part(consumer, clock=Ticks([100.0, 100.2, 101.0, 101.5, 102.0, 103.0]))
    poll, beat = reader.next_batch()  # 100.0: behind (read 2 of 5), a beat is due
    assert poll.beat == beat == Beat(f"{TOPIC}/0", 100.0, None)
    [poll] = reader.next_batch()  # 100.2: read to the end
    assert poll.beat == Beat(f"{TOPIC}/0", 100.2, 100.2)
    consumer.broker_mark = (0, 3)
    [beat] = reader.next_batch()  # 101.0: nothing new, and the broker says so
    assert beat == Beat(f"{TOPIC}/0", 101.0, 100.2) and consumer.asked == 1
    assert reader.next_batch() == []  # 101.5: no beat due yet
    consumer.down = True
    [beat] = reader.next_batch()  # 102.0: the broker does not answer: not caught up
    assert beat.since is None
    consumer.down = False
    [beat] = reader.next_batch()  # 103.0: it answers again: caught up from now on
    assert beat.since == 103.0


def test_resume_state_is_the_offset_assigned() -> None:
    consumer = FakeConsumer([[msg(42)]])
    reader, _gauge, _made = part(consumer, offset=42)
    assert consumer.assigned[0].offset == 42
    reader.next_batch()
    assert reader.snapshot() == 43


def test_eof_emits_the_poll_first_then_ends_the_partition() -> None:
    consumer = FakeConsumer([[msg(0), msg(1), eof(2)]], marks=[(0, 2)])
    reader, gauge, _made = part(consumer)
    [batch] = polls(reader.next_batch())
    assert [m.offset() for m in batch] == [0, 1]  # the EOF marker is not an item
    assert reader.snapshot() == 2
    assert gauge.values == [0]  # read to the end
    with pytest.raises(StopIteration):
        reader.next_batch()
    assert consumer.consumed == 1  # nothing read after EOF


def test_any_other_consumer_error_stops_the_flow_naming_the_topic() -> None:
    bad = Message(
        topic=TOPIC, partition=0, offset=5, error=KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    )
    reader, _gauge, _made = part(FakeConsumer([[msg(4), bad]]))
    with pytest.raises(RuntimeError, match=f"'{TOPIC}'"):
        reader.next_batch()


def test_lag_follows_the_cached_high_watermark_after_each_poll() -> None:
    polls = [[msg(i) for i in range(0, 10)], [], [msg(i) for i in range(10, 25)], []]
    marks = [(0, 25), (0, 25), (0, 25), (0, 30)]  # five more arrive at the broker at the end
    reader, gauge, _made = part(FakeConsumer(polls, marks))
    for _ in polls:
        reader.next_batch()
    assert gauge.values == [15, 0, 5]  # set only when it changed: not again for the empty poll


def test_no_gauge_before_the_first_fetch_answers() -> None:
    """A labelled gauge reads 0 from the moment it exists: 0 would say "caught up"."""
    marks = [(INVALID, INVALID), (INVALID, INVALID), (0, 40)]
    reader, gauge, made = part(FakeConsumer([[], [], []], marks))
    reader.next_batch()
    reader.next_batch()
    assert made == [] and gauge.values == []
    reader.next_batch()
    assert made == [1] and gauge.values == [40]


def test_a_stop_ends_the_partition_before_reading_more() -> None:
    stop = threading.Event()
    consumer = FakeConsumer([[msg(0)], [msg(1)]])
    reader, _gauge, _made = part(consumer, stop=stop)
    reader.next_batch()
    stop.set()
    with pytest.raises(StopIteration):
        reader.next_batch()
    assert consumer.consumed == 1
    assert reader.snapshot() == 1  # a resume reads offset 1 next: nothing skipped


def test_the_lag_metric_is_bytewaxs_own_gauge() -> None:
    """Same name, help and labels as Bytewax's reader, and the very object its module registered
    (a second registration under that name would raise)."""
    src = KafkaPollSource(["t"], {}, {}, tail=True, batch_size=10)
    assert src._lag_metric is BYTEWAX_CONSUMER_LAG_GAUGE
    assert BYTEWAX_CONSUMER_LAG_GAUGE._name == "bytewax_kafka_consumer_lag"
    assert BYTEWAX_CONSUMER_LAG_GAUGE._labelnames == ("step_id", "topic", "partition")


def test_build_part_labels_the_gauge_with_step_topic_and_partition(monkeypatch) -> None:
    made: list[dict] = []

    def fake_consumer(config: dict) -> FakeConsumer:
        made.append(config)
        return FakeConsumer([[msg(0), msg(1)]], marks=[(0, 9)])

    monkeypatch.setattr(source_mod, "Consumer", fake_consumer)
    gauges = Gauges()
    src = KafkaPollSource(
        [TOPIC],
        {},
        {"bootstrap.servers": "b:9092", "fetch.wait.max.ms": "5"},
        tail=False,
        batch_size=10,
        lag_metric=gauges,
    )
    reader = src.build_part("flow.inp", f"2-{TOPIC}", resume_state=None)
    reader.next_batch()
    assert list(gauges.children) == [("flow.inp", TOPIC, "2")]
    assert gauges.children["flow.inp", TOPIC, "2"].values == [7]
    assert made == [
        {
            "group.id": "BYTEWAX_IGNORED",
            "enable.auto.commit": "false",
            "enable.partition.eof": "true",
            "auto.offset.reset": "earliest",
            "bootstrap.servers": "b:9092",
            "fetch.wait.max.ms": "5",
        }
    ]


class OnePartition(FixedPartitionedSource):
    """A source of one fake partition, for a whole flow in process."""

    def __init__(self, consumer: FakeConsumer, stop: threading.Event) -> None:
        self.consumer, self.stop = consumer, stop
        self.reader: PollPartition | None = None

    def list_parts(self) -> list[str]:
        return [f"0-{TOPIC}"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> PollPartition:
        self.reader = PollPartition(
            self.consumer, TOPIC, 0, OFFSET_BEGINNING, 100, FakeGauge, self.stop
        )
        return self.reader


def readings(first: int, last: int) -> list[Message]:
    return [
        msg(s, orjson.dumps({"Temperature_C": 60.0, "Timestamp": T0 + s * S}))
        for s in range(first, last)
    ]


def run_flow(stopped: bool) -> tuple[list, OnePartition]:
    """12 s of one sensor in two polls; ``stopped``: a signal arrives after the second poll."""
    stop = threading.Event()
    polls = [readings(0, 6), readings(6, 12), [eof(12)]]
    consumer = FakeConsumer(polls, after={2: stop} if stopped else {})
    src = OnePartition(consumer, stop)
    settings = flow_settings(EMIT_ALL_WINDOWS="true", KAFKA_TAIL="false")
    out: list = []
    flow = build_flow(
        settings, src, TestingSink(out), TestingSink([]), status=Status(0), stopping=stop.is_set
    )
    run_main(flow)
    return [orjson.loads(v)["window_start"][11:19] for _k, v, _h in out], src


def test_a_stopped_flow_writes_what_it_read_and_leaves_open_windows_open() -> None:
    """At the end of the topic every window closes; stopped, only those that had closed by
    event time are written (no partial window), and the snapshot is where reading stopped."""
    ended, _src = run_flow(stopped=False)
    assert ended == ["13:57:05", "13:57:10", "13:57:15"]  # the last two flushed at EOF
    stopped, src = run_flow(stopped=True)
    assert stopped == ["13:57:05"]  # 5-10 s needs event time 12 s (lateness 2 s): still open
    assert src.reader is not None and src.reader.snapshot() == 12
    assert src.consumer.consumed == 2  # the EOF poll was never read


@pytest.mark.parametrize(
    ("wall", "mono", "what"),
    [
        ([100.0, 101.0, 3700.0], [0.0, 1.0, 2.0], "the wall clock stepped an hour forward"),
        ([100.0, 101.0, 3700.0], [0.0, 1.0, 3600.0], "not polled for an hour (frozen)"),
    ],
)
def test_caught_up_time_starts_again_after_a_clock_step_or_a_freeze(
    wall: list[float], mono: list[float], what: str
) -> None:
    """What the reader cannot vouch for is not caught-up time: the shard would count the hour
    as silence of every sensor."""
    consumer = FakeConsumer([[msg(0)], [msg(1)], [msg(2)]], marks=[(0, 1), (0, 2), (0, 3)])
    monotonic = iter(mono)
    reader, _gauge, _made = part(consumer, clock=Ticks(wall), monotonic=lambda: next(monotonic))
    reader.next_batch()
    [poll] = polls(reader.next_batch())
    assert poll.beat.since == 100.0
    [poll] = polls(reader.next_batch())
    assert poll.beat.since == 3700.0, what


def test_partitions_added_to_the_input_topic_stop_the_flow_saying_how_to_read_them() -> None:
    """The source lists the partitions once, at start: one added later went unread, and the
    sensors whose keys moved to it fell silent with no lag or dead letter to show it."""
    from dataflow.source import PARTITIONS_CHECK_S, PartitionsAdded

    consumer = FakeConsumer([])
    consumer.partitions = 3
    t = [0.0]
    p, _, _ = part(consumer, clock=lambda: t[0])
    for step in (1.5, 30.0, PARTITIONS_CHECK_S):  # the first beat takes the count, then quiet
        t[0] += step
        p.next_batch()
    consumer.partitions = 4
    t[0] += 1.5  # a beat, but within a minute of the last look: not asked yet
    p.next_batch()
    t[0] += PARTITIONS_CHECK_S
    with pytest.raises(PartitionsAdded, match=r"has 4 partitions now, 3 when the flow started"):
        p.next_batch()
