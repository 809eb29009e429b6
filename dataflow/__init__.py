"""Streaming anomaly detection for sensor fleets: Kafka -> Bytewax -> River -> Kafka."""
