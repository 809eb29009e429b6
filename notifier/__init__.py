"""Alert events from the anomalies topic to Prometheus Alertmanager (``python -m notifier``)."""
