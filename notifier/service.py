"""The notifier's loop: anomalies topic -> Alertmanager, then state topic, then commit.

For each batch of alert events, in this order, each step retried until it succeeds:

1. post what the events ask for to Alertmanager (``OpenAlerts.apply``);
2. write the open alerts' new state to the compacted state topic and flush it;
3. commit the batch's offsets.

A crash anywhere re-reads the uncommitted batch on restart and repeats steps that may already
have happened; each is idempotent (the same labels are the same alert in Alertmanager, the same
key overwrites the state record), so nothing is lost and nothing is opened twice. The open set
is re-sent every ``NOTIFIER_RESEND_SECONDS``, at start-up once the backlog is read, and after
every outage (Alertmanager
keeps alerts in memory only, so a restarted one has forgotten them).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from notifier.alertmanager import DeliveryError
from notifier.alerts import (
    AmAlert,
    BadRecord,
    Change,
    OpenAlerts,
    ResendClock,
    StateValue,
    collapse,
)
from notifier.backoff import Backoff
from notifier.config import Settings
from notifier.kafka import is_fatal
from notifier.metrics import COUNTERS, Metrics

log = logging.getLogger("notifier")


class Poster(Protocol):
    url: str

    def post(self, alerts: Sequence[AmAlert]) -> None: ...


class Notifier:
    """One notifier: its open set, and the clients it was given."""

    def __init__(
        self,
        settings: Settings,
        alertmanager: Poster,
        consumer: Any,
        producer: Any,
        open_alerts: OpenAlerts,
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        """``clock`` schedules (re-sends): monotonic, so a step of the wall clock (NTP, a
        suspended VM) neither delays a re-send past Alertmanager's resolve_timeout nor fires a
        burst of them; ``wall`` dates what Alertmanager and the state topic get."""
        self.settings = settings
        self.am = alertmanager
        self.consumer = consumer
        self.producer = producer
        self.open = open_alerts
        self.stop = stop
        self.clock = clock
        self.wall = wall
        self.resend = ResendClock(settings.resend_seconds)
        self.metrics = metrics if metrics is not None else Metrics()
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.metrics.open.set_function(lambda: len(self.open))
        self._resend_backoff = self._backoff()
        self._down = False  # the last post failed: Alertmanager may come back empty
        #: A fatal Kafka error (e.g. fenced by a second notifier): the loop stops, main exits 3.
        self.fatal: KafkaError | None = None
        self._at_end: set[tuple[str, int]] = set()  # partitions read to their end at least once
        self._resending = False  # the backlog is behind it: re-sends are due on their clock
        self._started = clock()  # of ``run``: the backlog's wait counts from it

    def count(self, key: str, n: int = 1) -> None:
        """Add to one of ``counts`` (the stop line) and its Prometheus counter."""
        self.counts[key] += n
        if n:
            self.metrics.counters[key].inc(n)

    def _backoff(self) -> Backoff:
        return Backoff(self.settings.backoff_initial_seconds, self.settings.backoff_max_seconds)

    # --- Alertmanager ----------------------------------------------------------------------

    def deliver(self, alerts: list[AmAlert], what: str) -> bool:
        """Post until Alertmanager answers (True); False only when asked to stop meanwhile.
        Alerts it refuses on their own (``post_each``) are logged and counted, not retried."""
        alerts = collapse(alerts)
        backoff = self._backoff()
        while True:
            at = datetime.fromtimestamp(self.wall(), UTC)
            try:
                rejected = self.post_each([a.shown_from(at) for a in alerts], what)
            except DeliveryError as exc:
                delay = backoff.next_delay()
                self._failed()
                log.warning(
                    "Alertmanager at %s did not take %s (attempt %d: %s); retrying in %.1f s",
                    self.am.url,
                    what,
                    backoff.attempts,
                    exc,
                    delay,
                )
                if self.stop.wait(delay):
                    return False
                continue
            self.count("posted", len(alerts) - rejected)
            self._took(what)
            return True

    def post_each(self, alerts: Sequence[AmAlert], what: str) -> int:
        """POST ``alerts``; how many Alertmanager refused as invalid (400/422), each logged as an
        error. A refused request is posted again in halves, down to single alerts: Alertmanager
        kept the valid alerts of it, but its answer does not say which it refused, and a refusal
        of one alert must not cost the others theirs. Raises ``DeliveryError`` for a failure a
        retry may cure (the caller retries the whole, which is idempotent)."""
        try:
            self.am.post(alerts)
            return 0
        except DeliveryError as exc:
            if not exc.permanent:
                raise
            if len(alerts) > 1:
                self.count("retries", 1)
                half = len(alerts) // 2
                return self.post_each(alerts[:half], what) + self.post_each(alerts[half:], what)
            [alert] = alerts
            self.count("rejected", 1)
            log.error(
                "Alertmanager at %s refused alert %s of %s (%s); not retried: %s",
                self.am.url,
                alert.alert_id or dict(alert.labels),
                what,
                exc,
                orjson.dumps(alert.payload()).decode()[:1000],
            )
            return 1

    def _failed(self) -> None:
        self.count("retries", 1)
        self._down = True

    def _took(self, what: str) -> None:
        """A post succeeded: after an outage, re-send the open set at once, since Alertmanager
        may have restarted meanwhile and forgotten it (it keeps alerts in memory only)."""
        self.metrics.last_success.set(self.wall())
        if self._down:
            log.info(
                "Alertmanager at %s is back (took %s); re-sending the open alerts",
                self.am.url,
                what,
            )
            self._down = False
            self.resend.force()

    def resend_open(self) -> None:
        """Re-send every open alert, so none expires in Alertmanager while it is open.

        One attempt: a failed re-send is tried again after a backoff, but does not hold up
        the events behind it (a ``resolved`` among them would otherwise wait for an open alert
        that no longer needs re-sending). Alerts refused as invalid are counted as in
        ``deliver``; Alertmanager answered, so they are no outage."""
        now = self.clock()
        alerts = self.open.firing(datetime.fromtimestamp(self.wall(), UTC))
        if alerts:
            what = f"the re-send of {len(alerts)} open alert(s)"
            try:
                rejected = self.post_each(alerts, what)
            except DeliveryError as exc:
                delay = self._resend_backoff.next_delay()
                self._failed()
                log.warning(
                    "Alertmanager at %s did not take %s (attempt %d: %s); next try in %.1f s",
                    self.am.url,
                    what,
                    self._resend_backoff.attempts,
                    exc,
                    delay,
                )
                self.resend.sent(now, min(delay, self.resend.interval))
                return
            self.count("posted", len(alerts) - rejected)
            self._resend_backoff.reset()
            self._took(what)
            log.debug("re-sent %d open alert(s)", len(alerts))
        self.resend.sent(now)  # every open alert was just sent: a forced re-send is done too

    def expire(self) -> bool:
        """Resolve the open alerts without an event for ``NOTIFIER_EXPIRE_SECONDS``
        (``OpenAlerts.expire``), each logged and counted; False if stopped half-way."""
        if self.settings.expire_seconds <= 0:
            return True
        now = datetime.fromtimestamp(self.wall(), UTC)
        change = self.open.expire(now, timedelta(seconds=self.settings.expire_seconds))
        if not change.posts:
            return True
        for alert in change.posts:
            log.warning(
                "alert %s expired: no event of it for over %g s (NOTIFIER_EXPIRE_SECONDS), "
                "so its resolved was lost; resolving it in Alertmanager",
                alert.alert_id,
                self.settings.expire_seconds,
            )
        self.count("expired", len(change.posts))
        return self.deliver(change.posts, f"{len(change.posts)} expired alert(s)") and (
            self.write_state(change.state)
        )

    # --- Kafka -----------------------------------------------------------------------------

    def fail(self, err: KafkaError) -> None:
        """A fatal Kafka error: this consumer is done (a fenced member stays fenced), so stop,
        rather than keep re-sending an open set that another notifier now owns."""
        if self.fatal is None:
            self.fatal = err
        self.stop.set()

    def _backlog_over(self, now: float) -> bool:
        """Are re-sends on their clock yet (``run``): once every assigned partition is read to
        its end, or one re-send interval after the start at the latest; the first one at once."""
        if not self._resending and (
            self.backlog_read() or now >= self._started + self.resend.interval
        ):
            self._resending = True
            log.info(
                "%s; re-sending the %d open alert(s)",
                "backlog read" if self.backlog_read() else "backlog not read yet",
                len(self.open),
            )
            self.resend.force()
        return self._resending

    def _keep_open(self) -> None:
        """While a state write or a commit waits for Kafka: re-send the open set when due. A
        stall longer than Alertmanager's resolve timeout let every open alert expire there (a
        false resolved, then a second page at the next re-send), and no metric moved."""
        now = self.clock()
        if self._backlog_over(now) and self.resend.due(now):
            self.resend_open()

    def _wait(self, delay: float) -> bool:
        """``stop.wait(delay)`` in steps of at most a second, keeping the open set re-sent;
        True if stopped."""
        steps = max(1, math.ceil(delay))
        for _ in range(steps):
            if self.stop.wait(delay / steps):
                return True
            self._keep_open()
        return False

    def write_state(self, state: dict[str, StateValue | None]) -> bool:
        """Write and flush the state records; True once the broker has every one."""
        pending = dict(state)
        backoff = self._backoff()
        while pending:
            failed: list[str] = []

            def delivered(err: KafkaError | None, msg: Message, failed: list[str] = failed) -> None:
                if err is not None:
                    key = msg.key()
                    assert key is not None  # each state record is keyed by its alert id
                    failed.append(key.decode())
                    log.warning("state topic %s: %s", self.settings.state_topic, err.str())

            for alert_id, alert in pending.items():
                value = None if alert is None else orjson.dumps(_state_payload(alert))
                self.producer.produce(
                    self.settings.state_topic,
                    key=alert_id.encode(),
                    value=value,
                    on_delivery=delivered,
                )
            while self.producer.flush(1.0) > 0:
                if self.stop.is_set():
                    return False
                self._keep_open()
            pending = {key: pending[key] for key in failed}
            if pending and self._wait(backoff.next_delay()):
                return False
        return True

    def commit(self, offsets: dict[tuple[str, int], int]) -> bool:
        """Commit the next offset of each partition read; True when committed or moot."""
        parts = [TopicPartition(t, p, off + 1) for (t, p), off in offsets.items()]
        backoff = self._backoff()
        while True:
            try:
                self.consumer.commit(offsets=parts, asynchronous=False)
                return True
            except KafkaException as exc:
                err = exc.args[0]
                if is_fatal(err):
                    self.fail(err)
                    return False
                if not err.retriable():
                    # E.g. the partitions moved to another member: it re-reads these events and
                    # repeats idempotent steps. Nothing is lost.
                    log.warning("commit of %s not made: %s", parts, err.str())
                    return True
                log.warning("commit failed (%s); retrying", err.str())
                if self._wait(backoff.next_delay()):
                    return False

    # --- the loop --------------------------------------------------------------------------

    def handle(self, messages: list[Any]) -> bool:
        """One batch: Alertmanager, then state, then commit. False if stopped half-way (the
        batch is then read again by the next run)."""
        change = Change()
        offsets: dict[tuple[str, int], int] = {}
        now = datetime.fromtimestamp(self.wall(), UTC)
        for msg in messages:
            err = msg.error()
            if err:
                if is_fatal(err):
                    self.fail(err)
                    return False  # nothing of this batch posted or committed: the next run reads it
                if err.code() == KafkaError._PARTITION_EOF:
                    self._at_end.add((msg.topic(), msg.partition()))
                else:
                    log.warning("Kafka: %s", err.str())
                continue
            offsets[(msg.topic(), msg.partition())] = msg.offset()
            try:
                record = orjson.loads(msg.value() or b"null")
                change += self.open.apply(record, now)
            except (BadRecord, orjson.JSONDecodeError) as exc:
                self.count("bad", 1)
                log.warning(
                    "%s partition %s offset %s: passed over (%s)",
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    exc,
                )
                continue
            self.count("events", 1)
        if change.replayed:
            self.count("replayed", len(change.replayed))
            log.info(
                "passed over %d open/update event(s) of alert(s) already resolved (a replay): %s",
                len(change.replayed),
                ", ".join(change.replayed[:10]),
            )
        if change.posts:
            fired = sum(a.ends_at is None for a in change.posts)
            what = f"{fired} firing and {len(change.posts) - fired} resolved alert(s)"
            if not self.deliver(change.posts, what):
                return False
            at = datetime.fromtimestamp(self.wall(), UTC)
            self.open.posted(change.posts, now, at, change.state)
            log.info("Alertmanager took %s; %d open", what, len(self.open))
        if change.state and not self.write_state(change.state):
            return False
        return not offsets or self.commit(offsets)

    def backlog_read(self) -> bool:
        """Every partition assigned to this notifier has been read to its end at least once."""
        assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        return bool(assigned) and assigned <= self._at_end

    def run(self) -> None:
        """Until ``stop`` is set: re-send when due, else read and handle a batch.

        The first re-send waits for the backlog: the stored open set may hold alerts whose
        ``resolved`` is among the events not yet read, and re-sending those first would page
        them again. So it comes once every assigned partition is read to its end, or one
        re-send interval after the start at the latest (a long backlog, or Alertmanager down
        meanwhile), before a restarted Alertmanager could let the open alerts expire. Expiry
        (``NOTIFIER_EXPIRE_SECONDS``) waits until the backlog is read."""
        self._started = self.clock()
        self.resend.sent(self._started)
        self._resending = False
        while not self.stop.is_set():
            now = self.clock()
            if self._backlog_over(now) and self.resend.due(now):
                # Expiry waits for the backlog: its events are what it is waiting for (an
                # alert expired before them was resolved, then fired again by its update).
                if self.backlog_read() and not self.expire():
                    break
                self.resend_open()
                continue
            wait = (
                self.resend.wait(now)
                if self._resending
                else self._started + self.resend.interval - now
            )
            messages = self.consumer.consume(self.settings.batch_size, min(1.0, max(0.05, wait)))
            if messages and not self.handle(messages):
                break


def _state_payload(value: StateValue) -> dict[str, Any]:
    """What the state topic keeps of an open alert (with when it was first posted) or a
    marker."""
    return value.state_payload() if isinstance(value, AmAlert) else value.payload()
