"""librdkafka's repeated log lines, summarised: the limiter on a fake clock."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from dataflow.kafkalog import LOGGER_NAME, RepeatFilter, client_logger, kind_of

REFUSED = (
    "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused "
    "(after {}ms in state CONNECT)"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(
    text: str, client: str = "rdkafka#consumer-1", fac: str = "FAIL", level: int = logging.ERROR
) -> logging.LogRecord:
    """A record as confluent-kafka's ``logger`` setting makes it."""
    return logging.LogRecord(
        LOGGER_NAME, level, __file__, 0, "%s [%s] %s", (fac, client, text), None
    )


@pytest.fixture
def limited() -> tuple[RepeatFilter, Clock]:
    clock = Clock()
    return RepeatFilter(interval_s=60, clock=clock), clock


def test_the_first_refusal_shows_then_repeats_are_held_back(limited) -> None:
    limiter, clock = limited
    assert limiter.filter(record(REFUSED.format(0)))
    start, shown = clock.now, []
    for i in range(1, 1201):  # 20 a second for a minute, from eight clients
        clock.now = start + i / 20
        rec = record(REFUSED.format(i % 3), client=f"rdkafka#consumer-{i % 8}")
        if limiter.filter(rec):
            shown.append(rec.getMessage())
    assert len(shown) == 1  # one summary line a minute
    assert "Connection refused" in shown[0]
    assert shown[0].endswith("(1199 more like it in the last 60 s)")


def test_a_summary_counts_what_was_held_back_since_the_last_line(limited) -> None:
    limiter, clock = limited
    assert limiter.filter(record(REFUSED.format(0)))
    for _ in range(5):
        clock.now += 1
        assert not limiter.filter(record(REFUSED.format(0)))
    clock.now += 60
    rec = record(REFUSED.format(0))
    assert limiter.filter(rec)
    assert rec.getMessage() == (
        f"FAIL [rdkafka#consumer-1] {REFUSED.format(0)} (5 more like it in the last 65 s)"
    )
    clock.now += 60
    rec = record(REFUSED.format(0))
    assert limiter.filter(rec)
    assert "more like it" not in rec.getMessage()  # nothing was held back this time


class Timer:
    """Stands for the summary thread: remembers what it was asked to call, calls it on demand."""

    def __init__(self) -> None:
        self.started: list[tuple[float, Callable[[], object]]] = []

    def __call__(self, period_s: float, tick: Callable[[], object]) -> None:
        self.started.append((period_s, tick))

    def tick(self) -> None:
        ((_period, tick),) = self.started
        tick()


def test_a_short_outage_still_gets_its_count_from_the_timer() -> None:
    """The refusals stop before the interval is over and nothing of their kind comes again:
    the count is sent on when the interval ends, not when a later line would carry it."""
    clock, timer, sent = Clock(), Timer(), []
    limiter = RepeatFilter(interval_s=60, clock=clock, emit=sent.append, start_timer=timer)
    assert limiter.filter(record(REFUSED.format(0)))
    assert timer.started == []  # no thread for a process that never holds anything back
    for i in range(1, 6):  # a five-second outage
        clock.now += 1
        assert not limiter.filter(record(REFUSED.format(i), client=f"rdkafka#consumer-{i}"))
    assert len(timer.started) == 1 and 0 < timer.started[0][0] <= 60
    clock.now += 30
    timer.tick()
    assert sent == []  # its interval is not over yet
    clock.now += 25
    timer.tick()
    assert [(r.levelno, r.name, r.getMessage()) for r in sent] == [
        (
            logging.ERROR,
            LOGGER_NAME,
            f"FAIL [rdkafka#consumer-5] {REFUSED.format(5)} (5 more like it in the last 60 s)",
        )
    ]
    clock.now += 30
    timer.tick()
    assert len(sent) == 1  # said once
    clock.now += 60
    timer.tick()
    assert len(sent) == 1
    assert limiter.filter(record(REFUSED.format(0)))  # quiet for an interval: shows at once
    assert len(timer.started) == 1  # one timer for the filter's life


def test_a_long_outage_gets_one_line_an_interval_from_the_timer_or_a_line() -> None:
    clock, timer, sent = Clock(), Timer(), []
    limiter = RepeatFilter(interval_s=60, clock=clock, emit=sent.append, start_timer=timer)
    shown = [limiter.filter(record(REFUSED.format(0)))]
    start = clock.now
    for i in range(1, 3001):  # twenty a second for two and a half minutes
        clock.now = start + i / 20
        shown.append(limiter.filter(record(REFUSED.format(0))))
        if i % 20 == 0:  # the timer, every second
            timer.tick()
    assert sum(shown) + len(sent) == 3  # at the start, after one interval, after two


def test_the_timers_summary_reaches_the_loggers_handlers(caplog) -> None:
    clock, timer = Clock(), Timer()
    logger = logging.getLogger("test_kafkalog.flushed")
    logger.addFilter(RepeatFilter(interval_s=60, clock=clock, start_timer=timer))
    with caplog.at_level(logging.INFO, logger="test_kafkalog.flushed"):
        for i in range(3):
            logger.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", REFUSED.format(i))
        clock.now += 60
        timer.tick()
    assert [r.getMessage() for r in caplog.records] == [
        f"FAIL [rdkafka#producer-1] {REFUSED.format(0)}",
        f"FAIL [rdkafka#producer-1] {REFUSED.format(2)} (2 more like it in the last 60 s)",
    ]


def test_another_kind_of_failure_shows_at_once(limited) -> None:
    limiter, _clock = limited
    assert limiter.filter(record(REFUSED.format(0)))
    assert not limiter.filter(record(REFUSED.format(3)))
    assert limiter.filter(
        record("127.0.0.1:9092/1: SSL handshake failed: certificate verify failed")
    )
    assert limiter.filter(record("1/1 brokers are down", fac="ERROR"))


def test_debug_lines_asked_for_are_never_held_back(limited) -> None:
    limiter, _clock = limited
    assert all(
        limiter.filter(record("Sent FetchRequest", fac="SEND", level=logging.DEBUG))
        for _ in range(10)
    )


def test_interval_zero_shows_every_line() -> None:
    limiter = RepeatFilter(interval_s=0, clock=Clock())
    assert all(limiter.filter(record(REFUSED.format(0))) for _ in range(10))


def test_kinds_ignore_client_broker_and_numbers() -> None:
    a = record(REFUSED.format(0), client="rdkafka#consumer-5")
    b = record(
        REFUSED.format(12).replace("bootstrap", "1").replace("9092", "9093"),
        client="rdkafka#producer-2",
    )
    assert kind_of(a) == kind_of(b) == "FAIL Connection refused (after #ms in state CONNECT)"
    assert kind_of(a) != kind_of(record(REFUSED.format(0), fac="ERROR"))


def test_the_oldest_kind_is_forgotten_beyond_the_cap() -> None:
    clock = Clock()
    limiter = RepeatFilter(interval_s=60, clock=clock, max_kinds=2)
    for text in ("a: one", "b: two", "c: three"):
        assert limiter.filter(record(text))
    assert not limiter.filter(record("c: three"))
    assert limiter.filter(record("a: one"))  # forgotten, so shown again


def test_through_a_logger_only_the_first_line_reaches_the_handlers(caplog) -> None:
    logger = logging.getLogger("test_kafkalog.limited")
    # No summary thread: a minute on, it would log into whichever test then runs.
    logger.addFilter(RepeatFilter(interval_s=60, start_timer=lambda _period, _tick: None))
    with caplog.at_level(logging.INFO, logger="test_kafkalog.limited"):
        for i in range(50):
            logger.log(
                logging.ERROR, "%s [%s] %s", "FAIL", f"rdkafka#consumer-{i % 6}", REFUSED.format(i)
            )
    assert len(caplog.records) == 1


def test_client_logger_has_one_filter_however_often_it_is_asked_for() -> None:
    assert client_logger() is client_logger()
    assert sum(isinstance(f, RepeatFilter) for f in client_logger().filters) == 1


def test_librdkafka_debug_lines_pass_whatever_the_log_level(caplog) -> None:
    """With librdkafka's ``debug`` on, its lines show at LOG_LEVEL=WARNING too (the root logger's
    level; basicConfig's handler has none)."""
    logger, root = logging.getLogger(LOGGER_NAME), logging.getLogger()
    before = logger.level, root.level
    try:
        root.setLevel(logging.WARNING)
        caplog.handler.setLevel(logging.NOTSET)
        client_logger(debug=True).log(
            logging.DEBUG,
            "%s [%s] %s",
            "FETCH",
            "rdkafka#consumer-1",
            "Fetch topic t [0] at offset 5",
        )
        assert [r.getMessage() for r in caplog.records] == [
            "FETCH [rdkafka#consumer-1] Fetch topic t [0] at offset 5"
        ]
    finally:
        logger.setLevel(before[0])
        root.setLevel(before[1])
