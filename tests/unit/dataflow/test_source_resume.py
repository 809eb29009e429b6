"""A resumed partition whose offset retention deleted: it reads from the earliest offset left
(not the end), logs one line and counts the messages lost. On a fake consumer."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import REGISTRY

from dataflow import source as source_mod
from dataflow.progress import Beat
from dataflow.source import KafkaPollSource, deleted_before_read, resume_offset

TOPIC = "temperature_readings"
INVALID = -1001  # librdkafka's OFFSET_INVALID


class WatermarkConsumer:
    """Answers a watermark query with ``marks`` and serves the message at the assigned offset."""

    def __init__(self, marks: tuple[int, int] | None) -> None:
        self.marks = marks
        self.queries: list[tuple[TopicPartition, bool]] = []
        self.assigned: list[TopicPartition] = []

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = partitions

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        offset = self.assigned[0].offset
        return [Message(topic=TOPIC, partition=0, offset=offset, key=b"1", value=b"{}")]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int] | None:
        self.queries.append((partition, cached))
        return self.marks

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        raise KafkaException(KafkaError(KafkaError._TRANSPORT))  # not asked here

    def close(self) -> None:
        pass


class Counts:
    """A ``Counter`` stand-in: each child's increments, by (topic, partition)."""

    def __init__(self) -> None:
        self.children: dict[tuple[str, str], Count] = {}

    def labels(self, **labels: str) -> Count:
        return self.children.setdefault((labels["topic"], labels["partition"]), Count())


class Count:
    def __init__(self) -> None:
        self.incs: list[float] = []

    def inc(self, amount: float = 1) -> None:
        self.incs.append(amount)


@pytest.mark.parametrize(
    ("offset", "low", "lost"),
    [
        (50, 80, 30),  # 50..79 deleted before they were read
        (80, 80, 0),  # the next to read is the earliest kept
        (90, 80, 0),
        (OFFSET_BEGINNING, 80, 0),  # logical: nothing to compare
        (50, INVALID, 0),  # unknown watermark
    ],
)
def test_deleted_before_read(offset: int, low: int, lost: int) -> None:
    assert deleted_before_read(offset, low) == lost


def build(
    monkeypatch: pytest.MonkeyPatch, consumer: WatermarkConsumer, resume: int | None
) -> tuple[source_mod.PollPartition, Counts]:
    monkeypatch.setattr(source_mod, "Consumer", lambda config: consumer)
    counts = Counts()
    src = KafkaPollSource([TOPIC], {}, {}, tail=True, batch_size=10, skipped_metric=counts)
    return src.build_part("flow.inp", f"3-{TOPIC}", resume), counts


def test_a_resume_below_the_low_watermark_reads_from_it_logs_once_and_counts(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    consumer = WatermarkConsumer((80, 100))
    with caplog.at_level(logging.INFO, logger="dataflow"):
        reader, counts = build(monkeypatch, consumer, resume=50)
    assert consumer.assigned[0].offset == 80  # the earliest kept, not 50 (gone), not the end
    assert reader.snapshot() == 80
    [(tp, cached)] = consumer.queries
    assert (tp.topic, tp.partition, cached) == (TOPIC, 3, False)  # asked the broker
    [batch] = [item for item in reader.next_batch() if not isinstance(item, Beat)]
    assert [m.offset() for m in batch] == [80]
    assert counts.children[(TOPIC, "3")].incs == [30]
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        f"{TOPIC}/3: resumed at offset 50, but offsets 50..79 were deleted (retention) before "
        "the flow read them; skipping 30 messages, reading from offset 80, the earliest left"
    )


@pytest.mark.parametrize("resume", [80, 95, 100])
def test_a_resume_still_in_the_partition_reads_from_there_silently(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, resume: int
) -> None:
    consumer = WatermarkConsumer((80, 100))
    with caplog.at_level(logging.INFO, logger="dataflow"):
        _reader, counts = build(monkeypatch, consumer, resume=resume)
    assert consumer.assigned[0].offset == resume
    assert counts.children[(TOPIC, "3")].incs == []  # made (at 0), not increased
    assert caplog.records == []


def test_a_first_start_asks_the_broker_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = WatermarkConsumer((80, 100))
    _reader, counts = build(monkeypatch, consumer, resume=None)
    assert consumer.assigned[0].offset == OFFSET_BEGINNING
    assert consumer.queries == []
    assert counts.children[(TOPIC, "3")].incs == []  # every partition's series exists


def test_no_watermarks_in_time_stops_the_flow_naming_the_partition() -> None:
    with pytest.raises(RuntimeError, match=f"Kafka topic '{TOPIC}' partition 3 within 30 s"):
        resume_offset(WatermarkConsumer(None), TOPIC, 3, 50, Count())


def test_the_consumer_resets_to_the_earliest_offset_whatever_is_configured() -> None:
    """The source's own settings win over KAFKA_CONSUMER_CONFIG's (7be280c; ``main`` refuses
    them at start): a reset to "latest" would jump over what is still in the topic."""
    src = KafkaPollSource([TOPIC], {}, {}, tail=True, batch_size=10)
    assert src._consumer_config["auto.offset.reset"] == "earliest"
    src = KafkaPollSource([TOPIC], {}, {"auto.offset.reset": "latest"}, tail=True, batch_size=10)
    assert src._consumer_config["auto.offset.reset"] == "earliest"


def test_the_skip_is_counted_in_the_default_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The series ``sensor_input_skipped_messages_total{topic, partition}`` that /metrics serves
    and ops/prometheus/rules reads."""
    name, labels = "sensor_input_skipped_messages_total", {"topic": "t-default", "partition": "3"}
    monkeypatch.setattr(source_mod, "Consumer", lambda config: WatermarkConsumer((80, 100)))
    src = KafkaPollSource(["t-default"], {}, {}, tail=True, batch_size=10)
    before = REGISTRY.get_sample_value(name, labels) or 0.0
    src.build_part("flow.inp", "3-t-default", 70)
    assert REGISTRY.get_sample_value(name, labels) == before + 10
