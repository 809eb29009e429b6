"""``python -m producer`` (``sensor-producer``): send simulated (or replayed) sensor readings to
Kafka.

The data path, one module each: :mod:`producer.settings` reads the options (flag > environment
> default); :mod:`producer.simulate` makes readings, :mod:`producer.replay` reads a CSV history;
:mod:`producer.shapes` makes them messages, in the order :mod:`producer.outgoing` yields them;
:mod:`producer.pacing` times them; :mod:`producer.sending` creates topics and sends with
kafka-python. This module is only the entry: logging, the password's redaction, SIGTERM, and
the exit status ``sending.run`` returns (0 all delivered, 1 a failure, 2 bad settings).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

from dataflow.admin import scrub
from producer import sending
from producer.settings import parse_settings


class RedactFilter(logging.Filter):
    """Masks one secret in every record a handler emits: a backstop should a library log it."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._secret in message:
            record.msg, record.args = scrub(message, self._secret), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, self._secret)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info, self._secret)
        return True


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (bad settings raise SystemExit(2))."""
    settings = parse_settings(argv)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # kafka-python logs every refused connection at ERROR while it retries; our own messages
    # report what matters (unreachable cluster, failed deliveries), so keep it quiet unless
    # debugging. Never below WARNING: at DEBUG kafka-python logs its whole configuration,
    # sasl_plain_password included, and PLAIN's authentication bytes.
    kafka_level = logging.WARNING if settings.log_level <= logging.DEBUG else logging.CRITICAL
    logging.getLogger("kafka").setLevel(kafka_level)
    # Likewise librdkafka's, from the admin client that creates the topics (dataflow.admin).
    logging.getLogger("librdkafka").setLevel(kafka_level)
    redact: RedactFilter | None = None
    if settings.security.password:
        redact = RedactFilter(settings.security.password)
        for handler in logging.getLogger().handlers:
            handler.addFilter(redact)
    stop = threading.Event()
    previous: Any = None
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return sending.run(settings, stop)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        if redact is not None:
            for handler in logging.getLogger().handlers:
                handler.removeFilter(redact)


if __name__ == "__main__":
    sys.exit(main())
