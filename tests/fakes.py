"""Stand-ins for confluent-kafka's ``Message`` and ``Producer``, for tests that need no broker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message


@dataclass(frozen=True)
class FakeMessage:
    """The ``Message`` methods the flow calls (``dataflow.routing.SourceMessage``)."""

    _key: bytes | None
    _value: bytes | None
    _topic: str = "temperature_readings"
    _partition: int = 0
    _offset: int = 0
    _timestamp_ms: int | None = None

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        # (TIMESTAMP_CREATE_TIME, ms) or (TIMESTAMP_NOT_AVAILABLE, -1), as librdkafka gives
        return (1, self._timestamp_ms) if self._timestamp_ms is not None else (0, -1)


@dataclass
class FakeProducer:
    """The ``Producer`` calls a sink makes (``dataflow.sink.DeliveryProducer``).

    As in librdkafka, delivery reports come back only inside ``poll`` and ``flush``: ``poll(0)``
    serves none (a broker has not answered yet), a longer poll serves every pending one, and a
    flush all but the last ``undelivered`` (its timeout ran out), returning how many are left.
    """

    errors: dict[int, KafkaError] = field(default_factory=dict)  # n-th produced (from 0) -> error
    undelivered: int = 0
    capacity: int | None = None  # pending messages before produce raises BufferError
    produced: list[dict[str, Any]] = field(default_factory=list)  # each produce's arguments
    flushes: list[float] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)  # what ``make`` was given
    _pending: list[tuple[int, Message, Callable[..., None] | None]] = field(default_factory=list)

    def make(self, config: dict[str, Any]) -> FakeProducer:
        """A ``make_producer`` for the sink: this producer, and the config kept."""
        self.config = config
        return self

    def produce(
        self,
        topic: str,
        *,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Any = None,
        timestamp: int = 0,
        on_delivery: Callable[..., None] | None = None,
    ) -> None:
        if self.capacity is not None and len(self._pending) >= self.capacity:
            raise BufferError("Local: Queue full")
        msg = Message(topic=topic, key=key, value=value, headers=headers)
        self._pending.append((len(self.produced), msg, on_delivery))
        self.produced.append(
            {"topic": topic, "key": key, "value": value, "headers": headers, "timestamp": timestamp}
        )

    def poll(self, timeout: float) -> int:
        return self._serve(len(self._pending) if timeout > 0 else 0)

    def flush(self, timeout: float) -> int:
        self.flushes.append(timeout)
        self._serve(max(len(self._pending) - self.undelivered, 0))
        return len(self._pending)

    def _serve(self, count: int) -> int:
        served, self._pending = self._pending[:count], self._pending[count:]
        for n, msg, callback in served:
            if callback is not None:
                callback(self.errors.get(n), msg)
        return len(served)
