"""The notifier's Prometheus metrics (prometheus_client), served on ``NOTIFIER_METRICS_PORT``.

Its own registry, not the process-wide default one: only these series are served, and every
``Notifier`` a test makes counts from zero. The rules in ``ops/prometheus/rules/notifier.yml``
alert on them (job ``sensor-notifier``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

#: ``Notifier.counts`` key -> (metric name, help); each is a counter, ``_total`` added.
COUNTERS = {
    "events": ("notifier_events", "Alert events read from the anomalies topic and applied."),
    "posted": ("notifier_alerts_posted", "Alerts Alertmanager accepted (events and re-sends)."),
    "retries": (
        "notifier_post_retries",
        "Posts to Alertmanager that failed and were tried again (or again in parts, after a 400).",
    ),
    "rejected": (
        "notifier_alerts_rejected",
        "Alerts Alertmanager refused on their own (400/422): not delivered.",
    ),
    "replayed": (
        "notifier_replayed_events",
        "open/update events of alerts already resolved, passed over (a replay).",
    ),
    "expired": (
        "notifier_alerts_expired",
        "Open alerts resolved by the notifier after NOTIFIER_EXPIRE_SECONDS without an event.",
    ),
    "bad": ("notifier_bad_records", "Anomalies-topic records that could not be read."),
}


class Metrics:
    """The notifier's counters and gauges, in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.counters = {
            key: Counter(name, help, registry=self.registry)
            for key, (name, help) in COUNTERS.items()
        }
        self.open = Gauge(
            "notifier_open_alerts",
            "Alerts open now in the notifier's open set (re-sent to Alertmanager).",
            registry=self.registry,
        )
        self.last_success = Gauge(
            "notifier_last_success_timestamp_seconds",
            "Unix time of the last post Alertmanager answered (0: none since the start).",
            registry=self.registry,
        )

    def serve(self, port: int) -> None:
        """``/metrics`` on every interface at ``port`` (Prometheus scrapes it from another
        container); OSError if the port is taken."""
        start_http_server(port, registry=self.registry)
