"""Simulated sensor-fleet producer: seeded readings (``producer.simulate``) sent to Kafka.

Run it with ``python -m producer --help``. The simulation is importable without Kafka so
tests can regenerate exactly what the producer sends.
"""
