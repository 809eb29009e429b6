"""The flow's Kafka sinks: a batch that does not reach Kafka fails the epoch, never vanishes.

Bytewax's ``KafkaSink`` produces a batch and flushes it with no delivery callback. librdkafka
gives up on a message after ``message.timeout.ms`` (300 s by default: a broker outage longer
than that, or a topic it cannot write to) and reports that only to a callback, so the message
is dropped without a word and Bytewax commits the epoch as if it had been written: a resume from
recovery never writes it again.

This sink takes the same ``KafkaSinkMessage`` items and arguments. Every message gets a delivery
callback that records failures; ``write_batch`` flushes and raises, naming the topic and the
error, when any message of the batch failed or is still undelivered. An exception in a sink
stops the flow before the epoch commits, so with recovery (``-r``) the restart resumes from the
last committed snapshot and writes that output again (at least once; consumers drop repeats by
key and ``alert_id``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, Message, Producer

SinkMessage = KafkaSinkMessage[bytes | None, bytes | None]
DeliveryCallback = Callable[[KafkaError | None, Message], None]

# How long a full producer queue is served before the produce is tried again.
QUEUE_FULL_POLL_S = 0.1


class DeliveryProducer(Protocol):
    """The calls the sink makes on a ``confluent_kafka.Producer`` (tests pass a fake)."""

    def produce(
        self,
        topic: str,
        *,
        value: bytes | None = ...,
        key: bytes | None = ...,
        headers: Any = ...,
        timestamp: int = ...,
        on_delivery: DeliveryCallback | None = ...,
    ) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...


class DeliveryError(RuntimeError):
    """Messages of a batch that librdkafka could not deliver: the epoch must not commit."""


class DeliveringSinkPartition(StatelessSinkPartition[SinkMessage]):
    """One worker's producer: writes a batch, waits until each message is delivered or failed.

    ``flush_timeout_s`` is how long a batch's flush waits; ``None`` waits until librdkafka has
    settled every message, which ``message.timeout.ms`` bounds.
    """

    def __init__(
        self,
        producer: DeliveryProducer,
        topic: str | None,
        flush_timeout_s: float | None = None,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._flush_timeout_s = -1.0 if flush_timeout_s is None else flush_timeout_s
        self._failed: Counter[tuple[str, str]] = Counter()  # (topic, error) -> messages

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        # Runs inside poll() and flush(), on this worker's thread.
        if err is not None:
            self._failed[(str(msg.topic()), f"{err.str()} ({err.name()})")] += 1

    def write_batch(self, items: list[SinkMessage]) -> None:
        self._failed.clear()
        for item in items:
            topic = self._topic if item.topic is None else item.topic
            if topic is None:
                raise RuntimeError(f"no topic to produce to for {item}")
            while True:
                try:
                    self._producer.produce(
                        topic,
                        value=item.value,
                        key=item.key,
                        headers=item.headers,
                        timestamp=item.timestamp,
                        on_delivery=self._on_delivery,
                    )
                    break
                except BufferError:
                    # librdkafka's queue is full (a large batch, or a broker that is down):
                    # serve delivery reports until there is room, as its docs advise.
                    self._producer.poll(QUEUE_FULL_POLL_S)
            self._producer.poll(0)
        self._settle(len(items))

    def _settle(self, sent: int) -> None:
        """Flush; raise if any message failed or is still waiting for its delivery report."""
        left = self._producer.flush(self._flush_timeout_s)
        if self._failed or left:
            raise DeliveryError(undelivered(self._failed, left, sent, self._topic))

    def close(self) -> None:
        self._failed.clear()
        self._settle(0)


def undelivered(
    failed: Mapping[tuple[str, str], int], left: int, sent: int, topic: str | None
) -> str:
    """The error of a batch that did not reach Kafka: per topic, how many and why."""
    parts = [
        f"{n} message(s) to Kafka topic {t!r} not delivered: {err}"
        for (t, err), n in sorted(failed.items())
    ]
    if left:
        parts.append(f"{left} message(s) to Kafka topic {topic!r} still undelivered after flush")
    batch = f" (batch of {sent})" if sent else ""
    return (
        "; ".join(parts)
        + batch
        + ". The epoch is not committed: with recovery (-r) a restart writes it again"
    )


class DeliveringKafkaSink(DynamicSink[SinkMessage]):
    """A Kafka topic as the flow's output, failing the epoch on any undelivered message.

    Same arguments as Bytewax's ``KafkaSink``: ``topic`` ``None`` reads each message's own.
    """

    def __init__(
        self,
        brokers: Iterable[str],
        topic: str | None,
        add_config: Mapping[str, Any] | None = None,
        make_producer: Callable[[dict[str, Any]], DeliveryProducer] = Producer,
        flush_timeout_s: float | None = None,
    ) -> None:
        self._brokers = list(brokers)
        self._topic = topic
        self._add_config = dict(add_config or {})
        self._make_producer = make_producer
        self._flush_timeout_s = flush_timeout_s

    def build(self, step_id: str, worker_index: int, worker_count: int) -> DeliveringSinkPartition:
        config = {"bootstrap.servers": ",".join(self._brokers), **self._add_config}
        return DeliveringSinkPartition(
            self._make_producer(config), self._topic, self._flush_timeout_s
        )
