"""Sending to Kafka (kafka-python): the login probe, topic creation, the send loop, and the
accounting of deliveries.

``run`` is the producer's work once its settings are read: check a replay file, probe the
SASL/TLS login, create missing topics (with :mod:`dataflow.admin`), then send what
:mod:`producer.outgoing` yields, paced by :mod:`producer.pacing`, until a limit or a stop; it
returns the process's exit status. The SASL/TLS settings (:mod:`dataflow.security`) go to every
Kafka client made here, and the password is never logged.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

from dataflow.admin import ClientConfig, scrub
from dataflow.security import KafkaSecurity, TlsWatch
from producer.outgoing import check_replay, outgoing
from producer.pacing import Pacer
from producer.replay import ReplayError, Summary
from producer.settings import Settings

log = logging.getLogger("producer")
# librdkafka's own lines from the login probe (refused connections while a broker starts): the
# probe reports what matters itself.
_probe_log = logging.getLogger("producer.login-probe")
_probe_log.propagate = False
_probe_log.addHandler(logging.NullHandler())

#: Exit statuses ``run`` returns, which ``python -m producer`` exits with (bad settings exit 2
#: earlier, from ``producer.settings.parse_settings``).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

#: How long to wait for buffered messages on shutdown before counting them as failed.
FLUSH_TIMEOUT_S = 30.0
#: How long to wait for the first broker connection at start-up.
BOOTSTRAP_TIMEOUT_MS = 30_000
#: Progress is logged at INFO at most this often.
PROGRESS_EVERY_S = 10.0
#: Individual delivery failures logged before going quiet (the total is always reported).
MAX_LOGGED_FAILURES = 10
#: How long the SASL/TLS login probe (see ``check_login``) may take before it lets kafka-python
#: try.
LOGIN_PROBE_TIMEOUT_S = 10.0


class DeliveryTracker:
    """Counts sends/deliveries/failures from kafka-python future callbacks (sender thread)."""

    def __init__(self, log_sent: IO[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._log_sent = log_sent
        self.sent = 0
        self.delivered = 0
        self.failed = 0

    def on_delivered(self, topic: str, key: bytes, value: bytes, metadata: Any) -> None:
        with self._lock:
            self.delivered += 1
            if self._log_sent is not None:
                record = {
                    "topic": topic,
                    "key": key.decode("utf-8"),
                    "value": json.loads(value),
                    "partition": metadata.partition,
                    "offset": metadata.offset,
                }
                self._log_sent.write(json.dumps(record) + "\n")

    def on_failed(self, topic: str, key: bytes, exc: BaseException) -> None:
        with self._lock:
            self.failed += 1
            failed = self.failed
        if failed <= MAX_LOGGED_FAILURES:
            log.error("delivery failed for %s key=%s: %r", topic, key.decode("utf-8"), exc)
        if failed == MAX_LOGGED_FAILURES:
            log.error("further delivery failures are only counted")

    def unconfirmed(self) -> int:
        """Messages handed to the producer but not confirmed delivered (after flush)."""
        with self._lock:
            return self.sent - self.delivered


class LoginRefused(Exception):
    """The brokers refused the SASL login; the message is librdkafka's, without the password."""


class TlsRefused(Exception):
    """TLS refused a certificate (the broker's or ours); librdkafka's words, then what to check."""


def check_login(brokers: Sequence[str], security: KafkaSecurity) -> None:
    """Raise ``LoginRefused`` if the brokers refuse the SASL login, ``TlsRefused`` if TLS refuses
    a certificate or the broker does not speak TLS; otherwise return quickly.

    Why a librdkafka probe in a kafka-python producer: after a refused login the broker just
    closes the connection, and kafka-python 3.0.12 sees only that, retrying until its
    bootstrap timeout and then reporting "Unable to bootstrap". It does the same with a broker
    certificate it cannot verify, or a broker that rejects its client certificate. librdkafka
    reads the broker's answer (or OpenSSL's verdict) and names the cause within a second.
    Anything else (no broker yet, slow start) is left to kafka-python's own bootstrap and its
    error.
    """
    if not (security.uses_sasl or security.uses_tls):
        return
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    refused: list[str] = []
    tls = TlsWatch(security)
    unreachable = False

    def on_error(error: KafkaError) -> None:
        nonlocal unreachable
        # Before the transport check: a rejected client certificate, a handshake closed by a
        # listener without TLS, are _TRANSPORT errors too.
        if tls(error.str()) or security.not_tls(error.str()):
            return
        if error.code() == KafkaError._AUTHENTICATION:
            refused.append(error.str())
        elif error.code() in (
            KafkaError._TRANSPORT,
            KafkaError._ALL_BROKERS_DOWN,
            KafkaError._RESOLVE,
        ):
            unreachable = True

    conf: ClientConfig = {
        "bootstrap.servers": ",".join(brokers),
        **security.librdkafka(),
        "error_cb": on_error,
        "logger": _probe_log,
        "log_level": 0,
    }
    admin = AdminClient(conf)
    deadline = time.monotonic() + LOGIN_PROBE_TIMEOUT_S
    while time.monotonic() < deadline and not unreachable:
        try:
            admin.list_topics(timeout=1.0)
            return
        except KafkaException:
            admin.poll(0)  # serves error_cb
        if tls.refused:
            raise TlsRefused(scrub(tls.refused, security.password))
        if refused:
            raise LoginRefused(scrub(refused[-1], security.password))


def ensure_topics(
    brokers: Sequence[str],
    topics: Sequence[str],
    partitions: int,
    security: KafkaSecurity | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Create missing topics (replication factor 1); an existing topic is left untouched.

    With the project's one admin module (``dataflow.admin``, confluent-kafka): kafka-python
    stays the client that produces, but a second admin implementation would be a second set of
    rules for waiting, refusals and races. It waits up to the producer's bootstrap timeout for
    a broker, and raises ``StartupError`` naming the address and the last client error.
    """
    from dataflow.admin import connect
    from dataflow.admin import ensure_topics as create_missing

    stopped = stop.is_set if stop is not None else (lambda: False)
    admin, existing = connect(brokers, security, BOOTSTRAP_TIMEOUT_MS / 1000, stopped)
    for topic in topics:
        if topic in existing:
            log.debug("topic %s exists", topic)
    for topic in create_missing(admin, topics, partitions, existing=existing):
        log.info("created topic %s (%d partitions)", topic, partitions)


def print_summary(sent: int, failed: int) -> None:
    """The last line on stderr whatever happened, as ``--help`` promises (tests read it)."""
    print(f"sent {sent} messages ({failed} failed)", file=sys.stderr)


def run(settings: Settings, stop: threading.Event) -> int:
    """Create topics, then generate, pace and send until a limit or ``stop``."""
    from confluent_kafka import KafkaException as ConfluentKafkaException
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from dataflow.admin import StartupError

    topics = settings.topics()
    security = settings.security.kafka_python()
    for note in settings.notes:
        log.warning("%s", note)
    summary: Summary | None = None
    if settings.replay is not None:
        try:
            summary = check_replay(settings.replay)
        except ReplayError as exc:
            log.error("%s", exc)
            print_summary(0, 0)
            return EXIT_USAGE

    def cannot_start(message: str, detail: object) -> int:
        """Log why Kafka cannot be used (``message`` takes the brokers, the security settings
        and ``detail``), then give up having sent nothing."""
        log.error(message, ",".join(settings.brokers), settings.security.redacted(), detail)
        print_summary(0, 0)
        return EXIT_FAILED

    log.info(
        "connecting to Kafka at %s (%s; waiting up to %d s)",
        ",".join(settings.brokers),
        settings.security.redacted(),
        BOOTSTRAP_TIMEOUT_MS // 1000,
    )
    try:
        check_login(settings.brokers, settings.security)
        ensure_topics(settings.brokers, topics, settings.partitions, settings.security, stop)
        producer = KafkaProducer(
            bootstrap_servers=list(settings.brokers),
            client_id="sensor-producer",
            acks="all",
            linger_ms=10,
            batch_size=64 * 1024,
            bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
            **security,
        )
    except LoginRefused as exc:
        return cannot_start(
            "authentication failed at %s (%s): %s; check KAFKA_SASL_USERNAME, "
            "KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM",
            exc,
        )
    except TlsRefused as exc:
        return cannot_start("TLS with Kafka at %s failed (%s): %s", exc)
    except (KafkaError, StartupError, ConfluentKafkaException) as exc:
        return cannot_start(
            "cannot use Kafka at %s (%s): %s", scrub(repr(exc), settings.security.password)
        )
    except KeyboardInterrupt:
        print_summary(0, 0)
        return EXIT_OK

    log_file: IO[str] | None = None
    if settings.log_sent:
        # Line-buffered so a reader sees complete lines while we run; closed in finally.
        log_file = open(settings.log_sent, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
    tracker = DeliveryTracker(log_file)
    start_ns = settings.start_ns if settings.start_ns is not None else time.time_ns()
    if settings.replay is not None and summary is not None:
        replay = settings.replay
        pacer = Pacer(
            settings.rate, replay.speed > 0, summary.start_ns or 0, stop, speed=replay.speed or 1.0
        )
        log.info(
            "replaying %s as %s to %s (%s)",
            replay.path,
            replay.family.name,
            topics[0],
            f"{replay.speed:g}x real time" if replay.speed > 0 else "unpaced",
        )
    elif settings.groups:
        pacer = Pacer(settings.rate, settings.realtime, start_ns, stop)
        log.info(
            "producing %s to %s (sensors=%d, interval=%gs, seed=%d)",
            ",".join(group.names for group in settings.groups),
            ",".join(topics),
            settings.sensors,
            settings.interval_s,
            settings.seed,
        )
    else:
        pacer = Pacer(settings.rate, settings.realtime, start_ns, stop)
        log.info(
            "producing %s to %s (sensors=%d, interval=%gs, scenario=%s, seed=%d)",
            "+".join(settings.families),
            ",".join(topics),
            settings.sensors,
            settings.interval_s,
            settings.scenario,
            settings.seed,
        )
    fatal = False
    next_progress = time.monotonic() + PROGRESS_EVERY_S
    sending_history = settings.replay is None and settings.history_s > 0
    if sending_history:
        log.info(
            "history first: the %g s before the start, at full speed",
            settings.history_s,
        )
    began = time.monotonic()
    paced_from = 0  # index of the first message the pacer counts
    try:
        for index, item in enumerate(outgoing(settings, start_ns)):
            if sending_history and item.event_time_ns >= start_ns:
                # The start is where the history ends: paced from now on, so the scenario's
                # events come when they are due after the switch, however long the history
                # took (event time then runs that much behind the wall clock).
                sending_history = False
                log.info(
                    "history sent: %d messages in %.1f s; now %s",
                    tracker.sent,
                    time.monotonic() - began,
                    "live, in real time" if settings.realtime else "from the start",
                )
                pacer = Pacer(settings.rate, settings.realtime, start_ns, stop)
                paced_from = index
            if not pacer.wait(index - paced_from, item.event_time_ns):
                log.info("stop requested")
                break
            topic, key, value = item.topic, item.key, item.value
            # Only when set: the client stamps the others, as it always has.
            stamp = {} if item.timestamp_ms is None else {"timestamp_ms": item.timestamp_ms}
            try:
                future = producer.send(topic, key=key, value=value, **stamp)
            except KafkaError as exc:
                log.error("send to %s failed, stopping: %r", topic, exc)
                fatal = True
                break
            tracker.sent += 1
            future.add_callback(tracker.on_delivered, topic, key, value)
            future.add_errback(tracker.on_failed, topic, key)
            if time.monotonic() >= next_progress:
                next_progress += PROGRESS_EVERY_S
                log.info(
                    "progress: sent %d, delivered %d, failed %d",
                    tracker.sent,
                    tracker.delivered,
                    tracker.failed,
                )
    except KeyboardInterrupt:
        log.info("interrupted, flushing")
    except ReplayError as exc:  # the file changed after it was checked
        log.error("%s; stopping", exc)
        fatal = True
    finally:
        try:
            producer.flush(timeout=FLUSH_TIMEOUT_S)
        except KafkaError as exc:
            log.error("flush did not complete within %g s: %r", FLUSH_TIMEOUT_S, exc)
            # kafka-python's close() flushes again and raises while records are pending;
            # abort them first (their errbacks fire, so they are counted as failed).
            sender = getattr(producer, "_sender", None)
            if sender is not None:
                sender.force_close()
        try:
            producer.close(timeout=5)
        except KafkaError as exc:
            log.warning("producer did not close cleanly: %r", exc)
        if log_file is not None:
            log_file.close()
        failed = tracker.unconfirmed()
        print_summary(tracker.sent, failed)
    if failed:
        log.error("%d of %d messages were not delivered", failed, tracker.sent)
    return EXIT_FAILED if failed or fatal else EXIT_OK
