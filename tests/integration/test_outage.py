"""Broker outage: the flow rides through a broker restart and loses nothing.

Runs its own broker (``scripts/broker.sh`` on free ports in a temporary directory), so stopping
it does not disturb the shared one. Documented behaviour: the Kafka clients reconnect by
themselves; the flow keeps running and carries on from where it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from bench.workloads import interrupt
from tests.integration.conftest import ROOT, consume_all, free_port, python_env
from tests.tools import require_tool

BASE = 1_710_856_625_000_000_000
S = 1_000_000_000
TOPICS = {"AIR_QUALITY_TOPIC": "o-aq", "TEMPERATURE_TOPIC": "o-t", "ANOMALIES_TOPIC": "o-an",
          "DLQ_TOPIC": "o-dlq"}


@pytest.fixture
def own_broker(tmp_path: Path, admin) -> Iterator[tuple[str, dict[str, str]]]:
    """A private broker; ``admin`` makes the test skip (or fail) like the others without Kafka."""
    require_tool("java", "Java 17+, e.g. Debian package `openjdk-17-jre-headless`; "
                 "the test runs its own broker")
    port, controller = free_port(), free_port()
    env = {**os.environ, "BROKER_DIR": str(tmp_path / "broker"), "KAFKA_PORT": str(port),
           "KAFKA_CONTROLLER_PORT": str(controller)}
    subprocess.run([ROOT / "scripts/broker.sh", "start"], env=env, check=True,
                   capture_output=True)
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([ROOT / "scripts/broker.sh", "stop"], env=env, capture_output=True)


def produce(brokers: str, seconds: range) -> None:
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
    for sec in seconds:
        producer.produce(TOPICS["TEMPERATURE_TOPIC"], key=b"1", value=orjson.dumps(
            {"Temperature_C": 60.0 + sec % 4, "Timestamp": BASE + sec * S}))
    assert producer.flush(60) == 0


def windows(brokers: str) -> list[dict]:
    return [orjson.loads(m.value()) for m in consume_all(TOPICS["ANOMALIES_TOPIC"],
                                                         brokers=brokers)]


def wait_for(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.5)
    return False


def test_flow_rides_through_a_broker_restart(own_broker) -> None:
    brokers, broker_env = own_broker
    env = python_env(KAFKA_BROKERS=brokers, EMIT_ALL_WINDOWS="true", IDLE_TIMEOUT_SECONDS="3600",
                     STATUS_INTERVAL_SECONDS="0", LOG_LEVEL="WARNING", **TOPICS)
    flow = subprocess.Popen([sys.executable, "-m", "bytewax.run", "dataflow.main:flow"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        produce(brokers, range(0, 30))
        assert wait_for(lambda: len(windows(brokers)) == 5, 60)
        subprocess.run([ROOT / "scripts/broker.sh", "stop"], env=broker_env, check=True,
                       capture_output=True)
        time.sleep(10)
        assert flow.poll() is None, "the flow died while the broker was down"
        subprocess.run([ROOT / "scripts/broker.sh", "start"], env=broker_env, check=True,
                       capture_output=True)
        produce(brokers, range(30, 60))
        # 60 s of readings: 12 windows, the last still open (no later reading closes it).
        assert wait_for(lambda: len(windows(brokers)) == 11, 90)
        assert flow.poll() is None
    finally:
        interrupt(flow, 20)
    out = windows(brokers)
    assert len({w["window_start"] for w in out}) == 11  # each window once
    assert all(w["count"] == 5 for w in out)  # no reading lost across the outage
