"""A stand-in for confluent-kafka's ``Message``, for tests that need no broker."""

from __future__ import annotations

from dataclasses import dataclass


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
