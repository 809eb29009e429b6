"""librdkafka's log lines, through Python logging, with repeats summarised.

While a broker is down every client (one consumer per input partition, one producer per sink)
retries its connections every few tens of milliseconds and librdkafka logs each refusal: on its
own, that is over a hundred stderr lines a second. Each client instead gets ``logger`` (the
``logger`` setting of confluent-kafka), whose ``RepeatFilter`` lets the first line of each kind
through and then, for that kind, one line per interval carrying how many were held back.

A kind is the facility plus the message's last part (after its last ``": "``) with numbers
blanked: "Connection refused (after #ms in state CONNECT)" is one kind whichever client, broker
or address it came from, while a different failure is a new kind and shows at once. DEBUG lines
(librdkafka's ``debug`` setting, asked for on purpose) are never held back.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

LOGGER_NAME = "librdkafka"
REPEAT_INTERVAL_S = 60.0
MAX_KINDS = 256  # kinds remembered; the oldest is forgotten (and may show again) beyond this

_NUMBERS = re.compile(r"\d+")


def kind_of(record: logging.LogRecord) -> str:
    """The kind a record is counted under (confluent-kafka logs ``"%s [%s] %s"``: facility,
    client name, message)."""
    args = record.args
    if isinstance(args, tuple) and len(args) == 3:
        fac, _client, text = args
        return f"{fac} {_NUMBERS.sub('#', str(text).rsplit(': ', 1)[-1])}"
    return _NUMBERS.sub("#", record.getMessage().rsplit(": ", 1)[-1])


class _Seen:
    __slots__ = ("held", "shown_at")

    def __init__(self, shown_at: float) -> None:
        self.shown_at = shown_at
        self.held = 0


class RepeatFilter(logging.Filter):
    """Passes the first record of a kind, then at most one per ``interval_s``, noting the rest.

    The line that ends a quiet interval says how many of its kind were held back since the last
    one shown. Thread-safe: librdkafka's lines are served on whichever thread polls the client.
    """

    def __init__(
        self,
        interval_s: float = REPEAT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        max_kinds: int = MAX_KINDS,
    ) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._max_kinds = max_kinds
        self._lock = threading.Lock()
        self._kinds: OrderedDict[str, _Seen] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG or self.interval_s <= 0:
            return True
        kind = kind_of(record)
        now = self._clock()
        with self._lock:
            seen = self._kinds.get(kind)
            if seen is not None and now - seen.shown_at < self.interval_s:
                seen.held += 1
                return False
            self._kinds[kind] = _Seen(now)
            self._kinds.move_to_end(kind)
            if len(self._kinds) > self._max_kinds:
                self._kinds.popitem(last=False)
        if seen is not None and seen.held:
            since = now - seen.shown_at
            record.msg = (
                f"{record.getMessage()} ({seen.held} more like it in the last {since:.0f} s)"
            )
            record.args = ()
        return True


def client_logger(debug: bool = False) -> logging.Logger:
    """The logger every Kafka client of the flow gets, with its ``RepeatFilter`` (added once).

    ``debug``: librdkafka's ``debug`` setting is on somewhere, so its DEBUG lines pass whatever
    ``LOG_LEVEL`` is, as they did when librdkafka wrote to stderr itself.
    """
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(f, RepeatFilter) for f in logger.filters):
        logger.addFilter(RepeatFilter())
    if debug:
        logger.setLevel(logging.DEBUG)
    return logger
