"""Time units, the accepted event-time range and the tutorial's naive time format.

Pure (the standard library's ``datetime`` only). The producer writes timestamps with these
(``producer.shapes``), reads a history's with them (``producer.replay``), and the dataflow reads
every message's with them (``dataflow.readings``): one definition of each, so that what the
producer writes reads back as the time it meant, and both refuse the same times.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
#: A ``timestamp_format`` unit -> nanoseconds per count.
UNIT_NS = {"s": NS_PER_S, "ms": NS_PER_MS, "us": NS_PER_US, "ns": 1}
#: The air-quality tutorial's naive UTC timestamp, microseconds: ``2022-07-15 11:34:32.113400``.
NAIVE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Accepted event times are ``MIN_NS <= ns < MAX_NS``: anything else is a fault, not a guess.
RANGE_TEXT = "1970..2100"


def datetime_to_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch; a naive ``moment`` is UTC. Integer maths, so microseconds
    stay exact (float seconds would round them)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * NS_PER_US


def ns_to_datetime(ns: int) -> datetime:
    """The aware UTC time of ``ns``, floored to the microsecond ``datetime`` holds."""
    return EPOCH + timedelta(microseconds=ns // NS_PER_US)


MIN_NS = 0
MAX_NS = datetime_to_ns(datetime(2100, 1, 1, tzinfo=UTC))


def in_range(ns: int) -> bool:
    """Whether ``ns`` is an event time the dataflow accepts."""
    return MIN_NS <= ns < MAX_NS
