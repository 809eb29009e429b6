"""The flow's Kafka sink, on a fake producer: a message that is not delivered fails the batch,
and in a flow with recovery the epoch, which the resume then writes again."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
import pytest
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSource, run_main
from confluent_kafka import KafkaError

from dataflow.sink import DeliveringKafkaSink, DeliveringSinkPartition, DeliveryError
from tests.fakes import FakeProducer

TOPIC = "anomalies"
TIMED_OUT = KafkaError(KafkaError._MSG_TIMED_OUT)


def message(n: int, topic: str | None = None) -> KafkaSinkMessage[bytes | None, bytes | None]:
    return KafkaSinkMessage(str(n).encode(), b"{}", topic=topic, headers=[("h", b"v")])


def test_a_delivered_batch_is_produced_as_given_and_flushed_to_the_end() -> None:
    producer = FakeProducer()
    part = DeliveringSinkPartition(producer, TOPIC)
    part.write_batch([message(1), message(2, topic="other")])
    assert producer.produced == [
        {"topic": TOPIC, "key": b"1", "value": b"{}", "headers": [("h", b"v")], "timestamp": 0},
        {"topic": "other", "key": b"2", "value": b"{}", "headers": [("h", b"v")], "timestamp": 0},
    ]
    assert producer.flushes == [-1]  # no timeout: until librdkafka has settled every message


def test_a_failed_delivery_fails_the_batch_naming_topic_and_error() -> None:
    producer = FakeProducer(errors={1: TIMED_OUT, 2: TIMED_OUT})
    part = DeliveringSinkPartition(producer, TOPIC)
    with pytest.raises(DeliveryError) as info:
        part.write_batch([message(1), message(2), message(3), message(4)])
    text = str(info.value)
    assert f"2 message(s) to Kafka topic {TOPIC!r} not delivered" in text
    assert "Local: Message timed out (_MSG_TIMED_OUT)" in text
    assert "batch of 4" in text
    assert len(producer.produced) == 4  # the rest of the batch was still sent


def test_failures_are_reported_per_topic() -> None:
    denied = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    producer = FakeProducer(errors={0: TIMED_OUT, 1: denied})
    part = DeliveringSinkPartition(producer, TOPIC)
    with pytest.raises(DeliveryError) as info:
        part.write_batch([message(1), message(2, topic="other")])
    text = str(info.value)
    assert f"1 message(s) to Kafka topic {TOPIC!r} not delivered: Local: Message timed out" in text
    assert "1 message(s) to Kafka topic 'other' not delivered: Broker: Topic authorization" in text


def test_messages_left_undelivered_by_a_flush_fail_the_batch() -> None:
    producer = FakeProducer(undelivered=2)
    part = DeliveringSinkPartition(producer, TOPIC, flush_timeout_s=5.0)
    with pytest.raises(DeliveryError, match=f"2 message.s. to Kafka topic {TOPIC!r} still"):
        part.write_batch([message(1), message(2), message(3)])
    assert producer.flushes == [5.0]


def test_each_batch_is_judged_on_its_own_messages() -> None:
    producer = FakeProducer(errors={0: TIMED_OUT})
    part = DeliveringSinkPartition(producer, TOPIC)
    with pytest.raises(DeliveryError):
        part.write_batch([message(1)])
    part.write_batch([message(2)])  # delivered: an old failure does not fail it


def test_a_full_queue_waits_for_room_and_sends_every_message_once() -> None:
    producer = FakeProducer(capacity=2)
    part = DeliveringSinkPartition(producer, TOPIC)
    part.write_batch([message(n) for n in range(5)])
    assert [p["key"] for p in producer.produced] == [b"0", b"1", b"2", b"3", b"4"]


def test_a_message_without_a_topic_is_refused() -> None:
    part = DeliveringSinkPartition(FakeProducer(), None)
    with pytest.raises(RuntimeError, match="no topic"):
        part.write_batch([message(1)])


def test_close_fails_on_what_is_still_undelivered() -> None:
    part = DeliveringSinkPartition(FakeProducer(), TOPIC)
    part.close()  # nothing pending
    producer = FakeProducer(undelivered=1)
    part = DeliveringSinkPartition(producer, TOPIC, flush_timeout_s=1.0)
    producer.produce(TOPIC, value=b"x")  # as if a write had not been settled
    with pytest.raises(DeliveryError, match="still undelivered"):
        part.close()


def test_the_sink_builds_its_producer_from_brokers_and_config() -> None:
    producer = FakeProducer()
    sink = DeliveringKafkaSink(
        ["a:9092", "b:9092"], TOPIC, add_config={"linger.ms": "5"}, make_producer=producer.make
    )
    sink.build("out", 0, 1).write_batch([message(1)])
    assert producer.config == {"bootstrap.servers": "a:9092,b:9092", "linger.ms": "5"}
    assert producer.produced[0]["topic"] == TOPIC


def run(producer: FakeProducer, recovery: Path) -> None:
    """Items 1..3, one per epoch, through the sink, with recovery."""
    flow = Dataflow("sink_test")
    inp = op.input("inp", flow, TestingSource([1, 2, 3]))
    op.output(
        "out", op.map("msg", inp, message), DeliveringKafkaSink([], TOPIC, None, producer.make)
    )
    run_main(flow, epoch_interval=timedelta(0), recovery_config=RecoveryConfig(str(recovery)))


def test_an_undelivered_message_fails_the_epoch_and_the_resume_writes_it(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)
    failing = FakeProducer(errors={1: TIMED_OUT})  # item 2 times out
    with pytest.raises(Exception) as info:  # Bytewax wraps it
        run(failing, tmp_path)
    causes = []
    err: BaseException | None = info.value
    while err is not None:
        causes.append(err)
        err = err.__cause__
    assert any(isinstance(c, DeliveryError) for c in causes), causes
    delivered = [p["key"] for n, p in enumerate(failing.produced) if n not in failing.errors]
    assert delivered == [b"1"]

    resumed = FakeProducer()
    run(resumed, tmp_path)
    # Resumed from the last committed epoch (item 1's, or none yet: at least once): item 2 is
    # written now, nothing is lost.
    keys = [p["key"] for p in resumed.produced]
    assert keys in ([b"2", b"3"], [b"1", b"2", b"3"])
