"""Kafka admin work, in one place for every program, script, benchmark and test.

- ``client_config``: what every confluent-kafka client gets (bootstrap, SASL/TLS, log limiter);
- ``connect``: an admin client that has had a metadata answer, failing fast with the broker's
  reason when it refuses the login or TLS refuses a certificate;
- ``ensure_topics``, ``delete_topics``, ``reset_topics`` and ``ensure_flow_topics``;
- ``wait_for_broker``, and the command around it (``sensor-wait-for-broker``, or
  ``python -m dataflow.admin wait``): block until a broker answers a real metadata request.

It imports no Bytewax (only confluent-kafka and the pure ``security`` and ``kafkalog``), so the
producer, the notifier, the scripts and the tests use it without building a flow.

``python -m dataflow.admin init-topics`` (``sensor-init-topics``) creates the dataflow's topics
from its settings, as the flow does when it starts.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from dataflow.kafkalog import client_logger
from dataflow.options import Option, OptionError, Reader, add_options, number, or_default
from dataflow.security import KafkaSecurity, SecurityConfigError, TlsWatch

# librdkafka's settings: strings and numbers, and also callbacks and a logger (error_cb, logger),
# which confluent-kafka's stubs do not allow for; held as Any so they pass to its clients.
ClientConfig = dict[str, Any]

if TYPE_CHECKING:
    from dataflow.config import Settings

log = logging.getLogger("dataflow")

DEFAULT_BROKERS = "127.0.0.1:9092"
DEFAULT_WAIT_SECONDS = 60.0
# Per-attempt metadata timeout of the wait. Short, so a broker that comes up mid-wait is
# noticed quickly and the overall deadline is respected closely.
ATTEMPT_TIMEOUT_SECONDS = 2.0
# Pause between attempts, so a refused connection does not become a busy loop.
RETRY_PAUSE_SECONDS = 0.5


class StartupError(RuntimeError):
    """A program cannot start; the message says why, without a traceback or a password."""


def _bootstrap(brokers: Sequence[str] | str) -> str:
    return brokers if isinstance(brokers, str) else ",".join(brokers)


def client_config(
    brokers: Sequence[str] | str, security: KafkaSecurity | None = None
) -> dict[str, Any]:
    """Bootstrap and security settings, which every client gets, and the shared log limiter."""
    return {
        "bootstrap.servers": _bootstrap(brokers),
        **(security or KafkaSecurity()).librdkafka(),
        "logger": client_logger(),
    }


def connect(
    brokers: Sequence[str] | str,
    security: KafkaSecurity | None = None,
    timeout_s: float = 30.0,
    stopped: Callable[[], bool] = lambda: False,
) -> tuple[AdminClient, set[str]]:
    """An admin client that has had a metadata answer, and the topics the cluster has.

    ``stopped``: asked between attempts; True raises ``KeyboardInterrupt``, as Ctrl-C does (a
    SIGTERM while the broker is awaited stops at once, not after the timeout).

    librdkafka reports a refused login only to an error callback and then just times out, so
    the callback is watched: a bad password fails in seconds with the broker's reason, and so
    does a certificate TLS refuses, or a broker that does not speak TLS (``TlsWatch``). Raises
    ``StartupError``.
    Keep the client while its futures are pending: they die with its handle.
    """
    security = security or KafkaSecurity()
    errors: list[KafkaError] = []
    tls = TlsWatch(security)

    def on_error(error: KafkaError) -> None:
        errors.append(error)
        tls(error.str())

    conf: ClientConfig = {**client_config(brokers, security), "error_cb": on_error}
    admin = AdminClient(conf)
    where = _bootstrap(brokers)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return admin, set(admin.list_topics(timeout=2).topics)
        except KafkaException as exc:
            admin.poll(0)  # serves the error callback
            last = errors[-1].str() if errors else str(exc.args[0].str())
        refused = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
        if refused:
            raise StartupError(
                f"Kafka at {where} refused the login ({security.redacted()}): {refused[-1].str()}"
            )
        if tls.refused:
            raise StartupError(
                f"TLS with Kafka at {where} failed ({security.redacted()}): {tls.refused}"
            )
        if stopped():
            raise KeyboardInterrupt
        if time.monotonic() > deadline:
            raise StartupError(
                f"no Kafka broker answered at {where} (KAFKA_BROKERS) within "
                f"{timeout_s:g} s: {last}"
            )


def ensure_topics(
    admin: AdminClient,
    topics: Iterable[str],
    partitions: int,
    *,
    existing: Collection[str] | None = None,
    replication_factor: int = 1,
    config: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create those of ``topics`` that do not exist yet; return the ones this call created.

    An existing topic is left as it is (partitions, settings), and one that another client
    creates meanwhile counts as existing, so concurrent starts and re-runs succeed.
    ``existing``: the cluster's topics, when the caller has just listed them (``connect``).
    ``replication_factor=-1`` takes the cluster's default.
    """
    if existing is None:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    new = [
        NewTopic(t, partitions, replication_factor, config=dict(config or {}))
        for t in dict.fromkeys(topics)
        if t not in existing
    ]
    created: list[str] = []
    for topic, fut in admin.create_topics(new).items() if new else ():
        try:
            fut.result(timeout=timeout_s)
            created.append(topic)
        except KafkaException as exc:  # another creator won the race: fine
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


def delete_topics(admin: AdminClient, topics: Iterable[str], timeout_s: float = 30.0) -> None:
    """Delete those of ``topics`` that exist, and wait until the broker has accepted it."""
    names = list(dict.fromkeys(topics))
    if not names:
        return
    present = admin.list_topics(timeout=timeout_s).topics
    gone = [t for t in names if t in present]
    for fut in admin.delete_topics(gone, operation_timeout=timeout_s).values() if gone else ():
        try:
            fut.result(timeout=timeout_s)
        except KafkaException as exc:  # deleted meanwhile by someone else: fine
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise


def reset_topics(
    admin: AdminClient, topics: Sequence[str], partitions: int, timeout_s: float = 30.0
) -> None:
    """Empty ``topics``: delete those that exist, then create them all anew.

    A deletion completes in the background, so creating the same name can fail for a moment
    ("marked for deletion"); that is retried until ``timeout_s``.
    """
    delete_topics(admin, topics, timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            for fut in admin.create_topics([NewTopic(t, partitions, 1) for t in topics]).values():
                fut.result(timeout=timeout_s)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # deletion still in progress


def flow_topics(settings: Settings) -> list[str]:
    """The dataflow's topics: its inputs, anomalies and dead letters."""
    return [*settings.topics, settings.anomalies_topic, settings.dlq_topic]


def ensure_flow_topics(settings: Settings, timeout_s: float = 30.0) -> dict[str, int]:
    """Create the dataflow's missing topics (``TOPIC_PARTITIONS`` partitions), so a fresh broker
    works out of the box; return all of them with their partition counts (what the cluster's
    workers share, ``dataflow.cluster``). Raises ``StartupError`` as ``connect`` does."""
    admin, existing = connect(settings.brokers, settings.security, timeout_s)
    wanted = flow_topics(settings)
    for topic in ensure_topics(admin, wanted, settings.topic_partitions, existing=existing):
        log.info("created topic %s", topic)
    meta = admin.list_topics(timeout=timeout_s).topics
    return {t: len(meta[t].partitions) if t in meta else settings.topic_partitions for t in wanted}


# --- Waiting for a broker ----------------------------------------------------------------------


def _quiet_logger() -> logging.Logger:
    """A logger that swallows librdkafka's logs.

    While the broker is still down librdkafka logs every refused connection
    ("Connect to ipv4#... failed: Connection refused"); that noise would bury the one line that
    matters, so it is dropped here.
    """
    logger = logging.getLogger("wait_for_broker.librdkafka")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    logger.setLevel(logging.CRITICAL + 1)
    return logger


class LastError:
    """Remembers the most recent client error, so a timeout can say why (e.g. a bad login).

    librdkafka's own report (``error_cb``) is preferred to the metadata request's generic
    failure, and a refused login or certificate to everything: librdkafka follows it with
    "1/1 brokers are down", which would hide the cause.
    """

    def __init__(self, security: KafkaSecurity | None = None) -> None:
        self.security = security or KafkaSecurity()
        self._tls = TlsWatch(self.security)
        self.tls_refused: str | None = None
        self.refused: str | None = None
        self.reported: str | None = None
        self.raised: str | None = None

    def __call__(self, error: KafkaError) -> None:
        if self._tls(error.str()):
            self.tls_refused = self._tls.refused
        elif error.code() == KafkaError._AUTHENTICATION:
            self.refused = error.str()
        elif error.code() != KafkaError._ALL_BROKERS_DOWN or self.reported is None:
            self.reported = error.str()

    def record(self, exc: Exception) -> None:
        """Remember the exception a metadata request raised."""
        error = exc.args[0] if exc.args else None
        self.raised = error.str() if isinstance(error, KafkaError) else str(exc)

    @property
    def text(self) -> str | None:
        return self.tls_refused or self.refused or self.reported or self.raised


def scrub(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` masked: belt and braces, librdkafka does not quote passwords."""
    return text.replace(secret, "***") if secret else text


def _waiting_admin(
    brokers: str, security: KafkaSecurity | None = None, on_error: LastError | None = None
) -> AdminClient:
    """An AdminClient configured for polling a broker that may not be up yet."""
    extra: ClientConfig = {} if on_error is None else {"error_cb": on_error}
    conf: ClientConfig = {
        "bootstrap.servers": brokers,
        **(security or KafkaSecurity()).librdkafka(),
        **extra,
        # Keep librdkafka quiet while the broker is still down.
        "log_level": 0,
        "log.connection.close": False,
        "logger": _quiet_logger(),
        # Retry connecting quickly rather than backing off for seconds.
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 500,
        "socket.connection.setup.timeout.ms": int(ATTEMPT_TIMEOUT_SECONDS * 1000),
    }
    return AdminClient(conf)


def wait_for_broker(
    brokers: str,
    timeout: float,
    security: KafkaSecurity | None = None,
    last_error: LastError | None = None,
) -> bool:
    """Return True as soon as a broker in ``brokers`` answers a metadata request.

    An open TCP port is not enough: a KRaft broker accepts connections well before it can
    serve metadata, and clients started too early fail in confusing ways; so this asks for
    cluster metadata, as every producer and consumer does first.

    Returns False once ``timeout`` seconds have passed without an answer; ``last_error``, if
    given, then holds the last client error. A failed login is retried too: a broker may
    learn its SCRAM users only after it starts answering. A certificate TLS refuses is not
    (the broker's and ours stay what they are), nor a broker that does not speak TLS: False at
    once, with ``last_error.tls_refused``.
    """
    deadline = time.monotonic() + timeout
    admin = _waiting_admin(brokers, security, last_error)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            metadata = admin.list_topics(timeout=min(ATTEMPT_TIMEOUT_SECONDS, remaining))
        except Exception as exc:  # KafkaException on timeout / transport errors: keep trying.
            metadata = None
            if last_error is not None:
                last_error.record(exc)
                admin.poll(0)  # serve error_cb
        if metadata is not None and metadata.brokers:
            return True
        if last_error is not None and last_error.tls_refused:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(RETRY_PAUSE_SECONDS, remaining))


WAIT_OPTIONS: tuple[Option[Any], ...] = (
    Option(
        "KAFKA_BROKERS",
        DEFAULT_BROKERS,
        or_default(str, DEFAULT_BROKERS),
        "comma-separated host:port bootstrap list",
        flag="--brokers",
    ),
    Option(
        "BROKER_WAIT_TIMEOUT_SECONDS",
        f"{DEFAULT_WAIT_SECONDS:g}",
        or_default(number(0, what="a number of seconds"), DEFAULT_WAIT_SECONDS),
        "seconds to wait before giving up",
        flag="--timeout",
    ),
)


def _wait(brokers: str, timeout: float, environ: Mapping[str, str]) -> int:
    """Wait, then report the outcome as an exit status (0 answered, 1 not, 2 bad settings)."""
    try:
        security = KafkaSecurity.from_env(environ)
    except SecurityConfigError as exc:  # names the variable, never holds the password
        print(f"error: {exc}", file=sys.stderr)
        return 2
    last_error = LastError(security)
    if wait_for_broker(brokers, timeout, security, last_error):
        return 0
    if last_error.tls_refused:
        print(
            scrub(
                f"error: TLS with Kafka at {brokers} failed ({security.redacted()}): "
                f"{last_error.tls_refused}",
                security.password,
            ),
            file=sys.stderr,
        )
        return 1
    reason = f" (last error: {last_error.text})" if last_error.text else ""
    print(
        scrub(
            f"error: no Kafka broker answered at {brokers} ({security.redacted()}) "
            f"within {timeout:g} s{reason}",
            security.password,
        ),
        file=sys.stderr,
    )
    return 1


WAIT_DESCRIPTION = (
    "Wait until a Kafka broker answers a metadata request. Exit 0 when it does, 1 if none "
    "answers within the timeout or TLS cannot work (a refused certificate, a broker without "
    "TLS: waiting cannot mend those), 2 on bad arguments or security settings "
    "(KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_*)."
)


def wait_main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """``sensor-wait-for-broker [--brokers B] [--timeout S]``."""
    parser = argparse.ArgumentParser(prog="sensor-wait-for-broker", description=WAIT_DESCRIPTION)
    add_options(parser, WAIT_OPTIONS)
    env = os.environ if environ is None else environ
    read = Reader(env, parser.parse_args(argv))
    try:
        brokers, timeout = (read(option) for option in WAIT_OPTIONS)
    except OptionError as exc:
        parser.error(str(exc))
    return _wait(brokers, timeout, env)


def init_topics_main(argv: Sequence[str] | None = None) -> int:
    """``sensor-init-topics``: create the dataflow's topics from its settings (the ``*_TOPIC``
    variables, ``TOPIC_PARTITIONS``, ``KAFKA_BROKERS`` and security), then exit."""
    argparse.ArgumentParser(
        prog="sensor-init-topics",
        description="Create the dataflow's input, anomalies and dead-letter topics where "
        "missing (TOPIC_PARTITIONS partitions; an existing topic is left as it is), then exit. "
        "Reads the same environment as the dataflow (python -m dataflow --help).",
    ).parse_args(argv)
    from dataflow.config import ConfigError, Settings  # the settings' parsers, only when run

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 1
    try:
        names = ensure_flow_topics(settings)
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"topics ready: {' '.join(names)} ({settings.topic_partitions} partitions when created)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dataflow.admin wait [...]`` or ``python -m dataflow.admin init-topics``."""
    args = list(sys.argv[1:] if argv is None else argv)
    commands: dict[str, Callable[[Sequence[str] | None], int]] = {
        "wait": wait_main,
        "init-topics": init_topics_main,
    }
    if not args or args[0] not in commands:
        print(
            "usage: python -m dataflow.admin {wait [--brokers B] [--timeout S] | init-topics}",
            file=sys.stderr,
        )
        return 0 if args and args[0] in ("-h", "--help") else 2
    return commands[args[0]](args[1:])


if __name__ == "__main__":
    sys.exit(main())
