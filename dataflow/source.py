"""The flow's Kafka source: each partition poll is ONE dataflow item, and it reports consumer lag.

Bytewax's own partition reader wraps every message in a frozen ``KafkaSourceMessage`` and hands the
dataflow one item per message: an object made and Bytewax's per-item overhead paid for every
message, where the flow decodes a poll at a time anyway. So this reader keeps librdkafka's
``Message`` objects and the poll as one item (``bench/drain.py`` measures the difference). Offsets,
end-of-partition and errors behave as in Bytewax's reader: the snapshot is the next offset to read,
EOF ends the partition when not tailing, and any other consumer error stops the flow.

Consumer lag goes to Bytewax's own gauge, ``bytewax_kafka_consumer_lag{step_id, topic,
partition}``, which ``bytewax.connectors.kafka`` registers in prometheus_client's default
registry when it is imported (registering it again would raise). Bytewax's reader fills it from
librdkafka's statistics callback, once a second and only once a message was read; this one reads
librdkafka's cached high watermark after every poll: a field read under a lock, no broker round
trip, and the fetch responses that bring the messages keep it current.

A resumed offset that retention has deleted (the flow was stopped longer than the topic keeps
messages) would make librdkafka apply ``auto.offset.reset``, whose default jumps to the END of
the partition and skips everything still kept, silently. ``resume_offset`` starts such a
partition at the earliest offset left instead, logs one warning and counts the messages lost in
``sensor_input_skipped_messages_total``; ``auto.offset.reset`` is ``earliest`` for the rarer
resets it does not see (retention racing the first fetch).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from bytewax.connectors.kafka import BYTEWAX_CONSUMER_LAG_GAUGE
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from dataflow.progress import BEAT_SECONDS, Beat, Poll, part_name
from dataflow.status import INPUT_SKIPPED

log = logging.getLogger("dataflow.source")

# How long a beat waits for the broker's high watermark when a poll brought nothing; during an
# outage it does not answer, and the reader then says it is not caught up.
WATERMARK_TIMEOUT_S = 0.5
# A reader not polled for this long, or whose wall clock moved this much more or less than its
# monotonic clock between two polls, starts its caught-up time again.
STALL_S = 2 * BEAT_SECONDS
WATERMARKS_TIMEOUT_S = 30.0  # a resumed partition's first broker round trip, as list_parts'
# How often each topic's reader of partition 0 asks how many partitions the topic has. The
# source lists them once, at start (Bytewax's fixed partitions): a partition added later would
# go unread, its sensors silent with no lag to show it.
PARTITIONS_CHECK_S = 60.0
# Consumer settings the source sets itself, as its reading depends on them (offsets in Bytewax's
# recovery, the end of a replay, the reset after a gap): KAFKA_CONSUMER_CONFIG may not set them.
SOURCE_SETTINGS = ("group.id", "enable.auto.commit", "enable.partition.eof", "auto.offset.reset")


class LagGauge(Protocol):
    """What the reader needs of a labelled prometheus_client ``Gauge`` child."""

    def set(self, value: float) -> None: ...


class LagMetric(Protocol):
    """A prometheus_client ``Gauge`` with the labels ``step_id``, ``topic``, ``partition``."""

    def labels(self, **labels: Any) -> LagGauge: ...


class SkipCounter(Protocol):
    """What the reader needs of a labelled prometheus_client ``Counter`` child."""

    def inc(self, amount: float = 1) -> None: ...


class SkipMetric(Protocol):
    """A prometheus_client ``Counter`` with the labels ``topic``, ``partition``."""

    def labels(self, **labels: Any) -> SkipCounter: ...


class PartitionConsumer(Protocol):
    """The calls the reader makes on a ``confluent_kafka.Consumer`` (tests pass a fake)."""

    def assign(self, partitions: list[TopicPartition]) -> None: ...

    def consume(self, num_messages: int, timeout: float) -> list[Message]: ...

    # None: "on timeout", in librdkafka's documentation, though its stubs say otherwise.
    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = ..., cached: bool = ...
    ) -> tuple[int, int] | None: ...

    def list_topics(self, topic: str | None = ..., timeout: float = ...) -> Any: ...

    def close(self) -> None: ...


class PartitionsAdded(RuntimeError):
    """An input topic has more partitions than the flow reads: it must start again to read
    them (with recovery, from where it was)."""


def consumer_lag(position: int, low: int, high: int) -> int | None:
    """Messages from ``position`` (the next offset to read) to the partition's end.

    ``OFFSET_BEGINNING`` counts from the low watermark; ``None`` while the watermarks are not
    known yet (no fetch answered: librdkafka gives ``OFFSET_INVALID``) or for another logical
    offset. Never negative: a position past a stale high watermark has nothing left to read.
    """
    if high < 0:
        return None
    if position < 0:
        if position != OFFSET_BEGINNING or low < 0:
            return None
        position = low
    return max(high - position, 0)


def deleted_before_read(offset: int, low: int) -> int:
    """Messages from ``offset`` (the next to read) up to the low watermark ``low``: deleted
    before they were read. 0 for a logical offset or an unknown watermark."""
    if offset < 0 or low < 0:
        return 0
    return max(low - offset, 0)


def resume_offset(
    consumer: PartitionConsumer, topic: str, part: int, offset: int, skipped: SkipCounter
) -> int:
    """Where a resumed partition starts: ``offset``, or the earliest offset still there when
    retention deleted it (one warning, and the lost messages counted), never the end."""
    if offset < 0:  # nothing read before: librdkafka resolves the logical offset
        return offset
    marks = consumer.get_watermark_offsets(
        TopicPartition(topic, part), timeout=WATERMARKS_TIMEOUT_S, cached=False
    )
    if marks is None:
        raise RuntimeError(
            f"no offsets of Kafka topic {topic!r} partition {part} within "
            f"{WATERMARKS_TIMEOUT_S:g} s: cannot tell whether offset {offset} still exists"
        )
    low = marks[0]
    lost = deleted_before_read(offset, low)
    if lost:
        log.warning(
            "%s/%d: resumed at offset %d, but offsets %d..%d were deleted (retention) before "
            "the flow read them; skipping %d messages, reading from offset %d, the earliest left",
            topic,
            part,
            offset,
            offset,
            low - 1,
            lost,
            low,
        )
        skipped.inc(lost)
        return low
    return offset


class PollPartition(StatefulSourcePartition[Poll | Beat, int]):
    """One Kafka partition's reader: each poll becomes one dataflow item, a list of messages.

    ``stop`` set: the partition ends at its next poll, as at the end of the topic, without
    reading more; the dataflow then drains what is in flight and flushes its sinks (see
    ``dataflow.stopping``). Per poll, beside the consume call: one flag test, one cached
    watermark read, and a gauge update only when the lag changed. Nothing per message.
    """

    def __init__(
        self,
        consumer: PartitionConsumer,
        topic: str,
        part: int,
        offset: int,
        batch_size: int,
        lag_gauge: Callable[[], LagGauge],
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        consumer.assign([TopicPartition(topic, part, offset)])
        self._consumer = consumer
        self._tp = TopicPartition(topic, part)
        self._offset = offset
        self._batch_size = batch_size
        self._eof = False
        self._stop = stop
        # Made at the first known lag: a labelled gauge exists, at 0, from the moment it is made,
        # and 0 would read as "caught up" before anything was fetched.
        self._make_gauge = lag_gauge
        self._gauge: LagGauge | None = None
        self._lag: int | None = None
        # The word on this partition that each poll carries, and a beat every BEAT_SECONDS
        # (dataflow.progress): since when it has been caught up; None while behind, when the
        # broker does not answer, and at start until it is known.
        self._name = part_name(topic, part)
        self._clock = clock
        self._monotonic = monotonic
        self._since: float | None = None
        self._next_beat = 0.0
        self._wall, self._mono = 0.0, 0.0  # of the last poll (checked once caught up)
        # The topic's partition count, as partition 0's reader first saw it (PARTITIONS_CHECK_S).
        self._parts: int | None = None
        self._next_parts = 0.0

    def next_batch(self) -> list[Poll | Beat]:
        if self._eof or self._stop.is_set():
            raise StopIteration
        msgs = self._consumer.consume(self._batch_size, 0.001)
        polled = msgs
        if any(map(Message.error, msgs)):  # only EOF or errors, at most a few per poll
            polled = []
            for msg in msgs:
                err = msg.error()
                if err is None:
                    polled.append(msg)
                elif err.code() == KafkaError._PARTITION_EOF:
                    self._eof = True  # after this poll's messages are out
                else:
                    raise RuntimeError(f"error consuming from Kafka topic {msg.topic()!r}: {err}")
        if polled:
            last = polled[-1].offset()
            assert last is not None  # a consumed message's; only a produced one has none yet
            self._offset = last + 1
        lag = self._report_lag()
        now, mono = self._clock(), self._monotonic()
        if self._since is not None and (
            mono - self._mono > STALL_S or abs((now - self._wall) - (mono - self._mono)) > STALL_S
        ):
            # Not polled for a while (a frozen process), or the wall clock stepped: what came
            # before cannot be vouched for as caught-up time.
            self._since = None
        self._wall, self._mono = now, mono
        items: list[Poll | Beat] = []
        if polled:
            # Messages just came, so the cached high watermark is fresh: lag 0 is caught up.
            self._caught_up(lag == 0, now)
            items.append(Poll(polled, Beat(self._name, now, self._since)))
        if now >= self._next_beat:
            if self._tp.partition == 0 and mono >= self._next_parts:
                self._next_parts = mono + PARTITIONS_CHECK_S
                self._check_partitions()
            if not polled:
                self._caught_up(self._at_end(), now)
            self._next_beat = now + BEAT_SECONDS
            items.append(Beat(self._name, now, self._since))
        return items

    def _caught_up(self, yes: bool, now: float) -> None:
        if not yes:
            self._since = None
        elif self._since is None:
            self._since = now

    def _check_partitions(self) -> None:
        """Stop the flow, saying why, once the topic has more partitions than it had when this
        reader started: they are not read until it starts again (an unanswered question is
        asked again later)."""
        topic = self._tp.topic
        try:
            meta = self._consumer.list_topics(topic, timeout=WATERMARK_TIMEOUT_S)
            n = len(meta.topics[topic].partitions)
        except (KafkaException, KeyError):
            return
        if self._parts is None or n <= self._parts:
            self._parts = n if self._parts is None else self._parts
            return
        raise PartitionsAdded(
            f"input topic {topic!r} has {n} partitions now, {self._parts} when the flow "
            "started: the new ones are not read (sensors whose keys moved to them would be "
            "silent). Start the flow again to read them; with recovery (-r) it resumes where "
            "it was"
        )

    def _at_end(self) -> bool:
        """Whether this reader has read all the broker has, asking the broker (not the cache,
        which an outage leaves as it was): an unanswered question is not caught up."""
        try:
            marks = self._consumer.get_watermark_offsets(
                self._tp, timeout=WATERMARK_TIMEOUT_S, cached=False
            )
        except KafkaException:
            return False
        if marks is None:
            return False
        return consumer_lag(self._offset, *marks) == 0

    def _report_lag(self) -> int | None:
        marks = self._consumer.get_watermark_offsets(self._tp, cached=True)
        if marks is None:
            return None
        lag = consumer_lag(self._offset, *marks)
        if lag is not None and lag != self._lag:
            if self._gauge is None:
                self._gauge = self._make_gauge()
            self._lag = lag
            self._gauge.set(lag)
        return lag

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._consumer.close()


class KafkaPollSource(FixedPartitionedSource[Poll | Beat, int]):
    """Every partition of the input topics, read from the beginning or from the recovery state.

    Partitions are listed with a plain admin client: Bytewax's ``list_parts`` passes the
    consumer settings to an admin client, which warns about every consumer-only property.
    """

    def __init__(
        self,
        topics: list[str],
        admin_config: dict[str, Any],
        consumer_config: dict[str, Any],
        tail: bool,
        batch_size: int,
        stop: threading.Event | None = None,
        lag_metric: LagMetric = BYTEWAX_CONSUMER_LAG_GAUGE,
        skipped_metric: SkipMetric = INPUT_SKIPPED,
    ) -> None:
        self._topics = list(topics)
        self._admin_config = admin_config
        self._batch_size = batch_size
        self._stop = stop or threading.Event()
        self._lag_metric = lag_metric
        self._skipped_metric = skipped_metric
        self._consumer_config = {
            **consumer_config,
            # Offsets live in Bytewax's recovery, not in a consumer group.
            "group.id": "BYTEWAX_IGNORED",
            "enable.auto.commit": "false",
            "enable.partition.eof": str(not tail).lower(),
            # Not the default "latest": a reset jumps over what is still there. Resumes below
            # the low watermark are handled (and counted) by resume_offset before this.
            "auto.offset.reset": "earliest",
        }

    def list_parts(self) -> list[str]:
        meta = AdminClient(self._admin_config).list_topics(timeout=30).topics
        missing = [t for t in self._topics if t not in meta]
        if missing:
            raise RuntimeError(f"input topics do not exist: {missing}")
        return [f"{p}-{t}" for t in self._topics for p in sorted(meta[t].partitions)]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> PollPartition:
        idx, topic = for_part.split("-", 1)
        gauge = partial(self._lag_metric.labels, step_id=step_id, topic=topic, partition=idx)
        # Every partition's series exists, at 0: a skip after a restart is then an increase
        # over the run before (ops/prometheus/rules).
        skipped = self._skipped_metric.labels(topic=topic, partition=idx)
        consumer = Consumer(dict(self._consumer_config))
        offset = OFFSET_BEGINNING
        if resume_state is not None:
            offset = resume_offset(consumer, topic, int(idx), resume_state, skipped)
        return PollPartition(
            consumer,
            topic,
            int(idx),
            offset,
            self._batch_size,
            gauge,
            self._stop,
        )
