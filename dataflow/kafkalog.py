"""librdkafka's log lines, through Python logging, with repeats summarised.

While a broker is down every client (one consumer per input partition, one producer per sink)
retries its connections every few tens of milliseconds and librdkafka logs each refusal: on its
own, that is over a hundred stderr lines a second. Each client instead gets ``logger`` (the
``logger`` setting of confluent-kafka), whose ``RepeatFilter`` lets the first line of each kind
through and then, for that kind, one line per interval carrying how many were held back. That
line comes from a timer when no later line of the kind arrives to carry it, so an outage shorter
than the interval still shows how many lines it held back, an interval after its first.

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
    __slots__ = ("held", "last", "shown_at")

    def __init__(self, shown_at: float) -> None:
        self.shown_at = shown_at
        self.held = 0
        self.last: logging.LogRecord | None = None  # the latest record held back


def _to_handlers(record: logging.LogRecord) -> None:
    """Hand ``record`` to the handlers of its logger (and its parents'), past the logger's own
    filters: it is the filter's summary, already limited."""
    logging.getLogger(record.name).callHandlers(record)


def _tick_forever(period_s: float, tick: Callable[[], object]) -> None:
    """Call ``tick`` every ``period_s`` seconds on a daemon thread, for the life of the
    process."""

    def run() -> None:
        while True:
            time.sleep(period_s)
            try:
                tick()
            except Exception:  # a log line that fails must not end the summaries
                logging.getLogger(__name__).exception("librdkafka log summary failed")

    threading.Thread(target=run, name="librdkafka-log-summary", daemon=True).start()


class RepeatFilter(logging.Filter):
    """Passes the first record of a kind, then at most one per ``interval_s``, noting the rest.

    The line that ends a quiet interval says how many of its kind were held back since the last
    one shown. If none comes, ``flush`` (which a timer calls, started when a first record is held
    back) sends the latest held record on with that count once its interval is over, through
    ``emit`` (by default its logger's handlers). Thread-safe: librdkafka's lines are served on
    whichever thread polls the client.

    ``clock`` and ``start_timer`` (given the period and the function to call) are for tests.
    """

    def __init__(
        self,
        interval_s: float = REPEAT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        max_kinds: int = MAX_KINDS,
        emit: Callable[[logging.LogRecord], None] = _to_handlers,
        start_timer: Callable[[float, Callable[[], object]], None] = _tick_forever,
    ) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._max_kinds = max_kinds
        self._emit = emit
        self._start_timer = start_timer
        self._timer_started = False
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
                seen.last = record
                if not self._timer_started:
                    self._timer_started = True
                    # A tenth of the interval: a summary is at most that late.
                    self._start_timer(self.interval_s / 10, self.flush)
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

    def flush(self) -> list[logging.LogRecord]:
        """Send on, for each kind whose interval is over with records held back, the latest of
        them carrying their count; forget the kinds quiet for a whole interval (their next line
        shows at once, as it would have). Returns what was sent."""
        now = self._clock()
        due: list[logging.LogRecord] = []
        with self._lock:
            for kind, seen in list(self._kinds.items()):
                if now - seen.shown_at < self.interval_s:
                    continue
                if seen.last is None:
                    del self._kinds[kind]
                    continue
                last = seen.last
                text = (
                    f"{last.getMessage()} ({seen.held} more like it in the last "
                    f"{now - seen.shown_at:.0f} s)"
                )
                # A new record, so its time is the summary's, which "in the last" counts back from.
                due.append(
                    logging.LogRecord(
                        last.name, last.levelno, last.pathname, last.lineno, text, (), None
                    )
                )
                seen.shown_at, seen.held, seen.last = now, 0, None
        for summary in due:
            self._emit(summary)
        return due


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
