#!/usr/bin/env python3
"""Block until a Kafka broker answers a real metadata request, or give up.

An open TCP port is not enough: a KRaft broker accepts connections well before it
can serve metadata, and clients started too early fail in confusing ways. So this
asks for cluster metadata (what every producer/consumer does first) and only
succeeds when a broker actually answers.

Used by scripts/broker.sh after starting the broker, and meant to be reused as a
container entrypoint step, so it depends on nothing but confluent_kafka, the
standard library and ``dataflow/security.py`` (pure), which gives it the same
SASL/TLS settings (``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_*``, ``KAFKA_SSL_*``)
as every other client: a secured cluster only answers a client that logs in.

Exit status: 0 when a broker answered, 1 on timeout (one error line on stderr,
with the last client error, never the password) or as soon as TLS refuses a
certificate (a wrong CA, a rejected client certificate: waiting cannot mend
those; the line says what to check), 2 on bad arguments or bad security
settings (the message names the variable).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient

# `python scripts/wait_for_broker.py` puts scripts/ on sys.path, not the repository root that
# holds the dataflow package; add the root (in the image: /app) so the import works from anywhere.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from dataflow.security import KafkaSecurity, SecurityConfigError  # noqa: E402

DEFAULT_BROKERS = "127.0.0.1:9092"
DEFAULT_TIMEOUT_SECONDS = 60.0
# Per-attempt metadata timeout. Short, so a broker that comes up mid-wait is
# noticed quickly and the overall deadline is respected closely.
ATTEMPT_TIMEOUT_SECONDS = 2.0
# Pause between attempts, so a refused connection does not become a busy loop.
RETRY_PAUSE_SECONDS = 0.5


def _quiet_logger() -> logging.Logger:
    """Return a logger that swallows librdkafka's logs.

    While the broker is still down librdkafka logs every refused connection
    ("Connect to ipv4#... failed: Connection refused"); that noise would bury
    the one line that matters, so it is dropped here.
    """
    logger = logging.getLogger("wait_for_broker.librdkafka")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    logger.setLevel(logging.CRITICAL + 1)
    return logger


class _LastError:
    """Remembers the most recent client error, so a timeout can say why (e.g. a bad login).

    librdkafka's own report (``error_cb``) is preferred to the metadata request's generic
    failure, and a refused login or certificate to everything: librdkafka follows it with
    "1/1 brokers are down", which would hide the cause.
    """

    def __init__(self, security: KafkaSecurity | None = None) -> None:
        self.security = security or KafkaSecurity()
        self.tls_refused: str | None = None
        self.refused: str | None = None
        self.reported: str | None = None
        self.raised: str | None = None

    def __call__(self, error: KafkaError) -> None:
        hint = self.security.tls_refusal(error.str())
        if hint:
            self.tls_refused = f"{error.str()}; {hint}"
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


def _scrub(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` masked: belt and braces, librdkafka does not quote passwords."""
    return text.replace(secret, "***") if secret else text


def _make_admin(
    brokers: str, security: KafkaSecurity | None = None, on_error: _LastError | None = None
) -> AdminClient:
    """Build an AdminClient configured for polling a broker that may not be up yet."""
    extra: dict[str, object] = {} if on_error is None else {"error_cb": on_error}
    return AdminClient(
        {
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
    )


def wait_for_broker(
    brokers: str,
    timeout: float,
    security: KafkaSecurity | None = None,
    last_error: _LastError | None = None,
) -> bool:
    """Return True as soon as a broker in `brokers` answers a metadata request.

    Returns False once `timeout` seconds have passed without an answer; `last_error`, if
    given, then holds the last client error. A failed login is retried too: a broker may
    learn its SCRAM users only after it starts answering. A certificate TLS refuses is not
    (the broker's and ours stay what they are): False at once, with ``last_error.tls_refused``.
    """
    deadline = time.monotonic() + timeout
    admin = _make_admin(brokers, security, last_error)
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; defaults come from the environment so containers can set them."""
    parser = argparse.ArgumentParser(
        description=(
            "Wait until a Kafka broker answers a metadata request. "
            "Exit 0 when it does, 1 if none answers within the timeout."
        )
    )
    parser.add_argument(
        "--brokers",
        default=os.environ.get("KAFKA_BROKERS") or DEFAULT_BROKERS,
        help="comma-separated host:port bootstrap list (default: $KAFKA_BROKERS or %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait before giving up "
        f"(default: $BROKER_WAIT_TIMEOUT_SECONDS or {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    args = parser.parse_args(argv)
    if args.timeout is None:
        raw = os.environ.get("BROKER_WAIT_TIMEOUT_SECONDS", "").strip()
        try:
            args.timeout = float(raw) if raw else DEFAULT_TIMEOUT_SECONDS
        except ValueError:
            parser.error(f"BROKER_WAIT_TIMEOUT_SECONDS must be a number of seconds, got {raw!r}")
    if args.timeout < 0:
        parser.error("--timeout must be >= 0")
    return args


def _format_seconds(seconds: float) -> str:
    """Print 60.0 as 60 and 2.5 as 2.5 in the error message."""
    return f"{seconds:g}"


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point: wait, then report the outcome as an exit status."""
    args = parse_args(argv)
    try:
        security = KafkaSecurity.from_env(os.environ if environ is None else environ)
    except SecurityConfigError as exc:  # names the variable, never holds the password
        print(f"error: {exc}", file=sys.stderr)
        return 2
    last_error = _LastError(security)
    if wait_for_broker(args.brokers, args.timeout, security, last_error):
        return 0
    if last_error.tls_refused:
        print(_scrub(f"error: TLS with Kafka at {args.brokers} failed ({security.redacted()}): "
                     f"{last_error.tls_refused}", security.password), file=sys.stderr)
        return 1
    reason = f" (last error: {last_error.text})" if last_error.text else ""
    print(
        _scrub(
            f"error: no Kafka broker answered at {args.brokers} ({security.redacted()}) "
            f"within {_format_seconds(args.timeout)} s{reason}",
            security.password,
        ),
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
