"""``python -m notifier``: keep Alertmanager's alerts equal to the anomalies topic's alert
lifecycle. ``--help`` lists the settings; everything else is the environment, as for the
dataflow and the producer."""

from __future__ import annotations

import logging
import sys
import threading
from datetime import timedelta

from dataflow.config import ConfigError
from dataflow.kafkalog import client_logger
from dataflow.options import env_section
from dataflow.security import SECURITY_OPTIONS
from dataflow.stopping import GracefulStop
from notifier.alertmanager import Alertmanager
from notifier.alerts import OpenAlerts
from notifier.config import OPTIONS, Settings
from notifier.kafka import (
    StartupError,
    anomalies_consumer,
    connect,
    ensure_state_topic,
    load_state,
    state_producer,
)
from notifier.metrics import Metrics
from notifier.service import Notifier

log = logging.getLogger("notifier")


def usage() -> str:
    return (
        "usage: python -m notifier\n\n"
        "Reads the dataflow's alert events (open, update, resolved) from Kafka and keeps\n"
        "Prometheus Alertmanager's alerts equal to them (POST /api/v2/alerts): open alerts are\n"
        "re-sent so they never expire there, every delivery is retried until Alertmanager takes\n"
        "it, and the group's offsets move only past what it took. Open alerts (and the ids of\n"
        "resolved ones) are kept in a compacted state topic, so a restarted notifier re-sends\n"
        "them once it has read its backlog.\n\n"
        f"{env_section((*OPTIONS, *SECURITY_OPTIONS))}\n"
        "Ctrl-C (SIGINT) or SIGTERM: stops after the current step; events not yet taken by\n"
        "Alertmanager are read again by the next run. Exit status: 0 after a stop, 1 if Kafka\n"
        "cannot be reached at start-up, 2 for a bad setting, 3 after a fatal Kafka error (such\n"
        "as being fenced by a second notifier with the same group).\n"
    )


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(usage())
        return 0
    if argv:
        print(
            f"python -m notifier takes no arguments (settings are environment variables), "
            f"got {' '.join(argv)}; see --help",
            file=sys.stderr,
        )
        return 2
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    client_logger()
    # httpx logs every request at INFO: one line per re-send would drown the notifier's own.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    metrics = Metrics()
    if settings.metrics_port:
        try:
            metrics.serve(settings.metrics_port)
        except OSError as exc:
            log.error(
                "NOTIFIER_METRICS_PORT=%d: cannot serve /metrics (%s)", settings.metrics_port, exc
            )
            return 1
    stop = GracefulStop()
    stop.install()
    log.info(
        "Kafka at %s (%s); alerts to %s; metrics %s",
        ",".join(settings.brokers),
        settings.security.redacted(),
        settings.redacted_alertmanager(),
        f"on :{settings.metrics_port}/metrics" if settings.metrics_port else "off",
    )
    try:
        admin, topics = connect(settings)
        ensure_state_topic(admin, topics, settings.state_topic)
        open_alerts = OpenAlerts(
            resolved_memory=settings.resolved_memory,
            min_firing=timedelta(seconds=settings.min_firing_seconds),
        )
        records = load_state(settings)
        for alert_id, alert in records:
            open_alerts.load(alert_id, alert)
    except StartupError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.info("stopped by SIGINT before the notifier started")
        return 0
    log.info(
        "state topic %s: %d record(s), %d open alert(s) to keep in Alertmanager, "
        "%d resolved id(s) remembered",
        settings.state_topic,
        len(records),
        len(open_alerts),
        open_alerts.resolved,
    )
    am = Alertmanager(settings)
    actual = am.resolve_timeout()
    if actual is not None and settings.resend_seconds * 3 > actual:
        log.warning(
            "Alertmanager's resolve_timeout is %g s, but NOTIFIER_RESEND_SECONDS=%g: "
            "open alerts may expire there between two re-sends; set it to at most %g",
            actual,
            settings.resend_seconds,
            actual / 3,
        )
    fatal: list[Notifier] = []
    consumer = anomalies_consumer(settings, on_fatal=lambda err: fatal[0].fail(err))
    notifier = Notifier(
        settings,
        am,
        consumer,
        state_producer(settings),
        open_alerts,
        stop.event,
        metrics=metrics,
    )
    fatal.append(notifier)
    try:
        notifier.run()
    finally:
        consumer.close()
        am.close()
    counts = " ".join(f"{k}={v}" for k, v in notifier.counts.items())
    if notifier.fatal is not None:
        log.error(
            "stopped by a fatal Kafka error in group %s (%s); %s open=%d",
            settings.group,
            notifier.fatal.str(),
            counts,
            len(open_alerts),
        )
        return 3
    log.info("stopped by %s; %s open=%d", stop.name, counts, len(open_alerts))
    return 0


def cli() -> int:
    """``python -m notifier``, also the ``sensor-notifier`` console script."""
    threading.current_thread().name = "notifier"
    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(cli())
