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
from confluent_kafka import KafkaException, Producer

from bench.workloads import interrupt
from tests.factories import T0, S
from tests.integration.conftest import ROOT, consume_all, free_port, python_env
from tests.tools import require_tool

TOPICS = {
    "AIR_QUALITY_TOPIC": "o-aq",
    "TEMPERATURE_TOPIC": "o-t",
    "ANOMALIES_TOPIC": "o-an",
    "DLQ_TOPIC": "o-dlq",
}


# Generous, for a loaded machine (CI, or other work on 2 cores): each wait ends as soon as its
# condition holds, so a quiet machine never waits this long.
BROKER_TIMEOUT_S = 300  # broker.sh start, stop
WINDOWS_TIMEOUT_S = 240  # the windows a flow should write
FLUSH_TIMEOUT_S = 120
# How long the broker stays down: the outage the flow must ride through (not a wait).
OUTAGE_S = float(os.environ.get("OUTAGE_SECONDS", "10"))  # 360 by hand: past ALERT_STALE_SECONDS


def broker_sh(command: str, env: dict[str, str]) -> None:
    proc = subprocess.run(
        [ROOT / "scripts/broker.sh", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=BROKER_TIMEOUT_S + 60,
    )
    assert proc.returncode == 0, f"broker.sh {command}: {proc.stdout}{proc.stderr}"


@pytest.fixture
def own_broker(tmp_path: Path, admin) -> Iterator[tuple[str, dict[str, str]]]:
    """A private broker; ``admin`` makes the test skip (or fail) like the others without Kafka."""
    require_tool(
        "java",
        "Java 17+, e.g. Debian package `openjdk-17-jre-headless`; the test runs its own broker",
    )
    port, controller = free_port(), free_port()
    env = {
        **os.environ,
        "BROKER_DIR": str(tmp_path / "broker"),
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller),
        "BROKER_START_TIMEOUT_SECONDS": str(BROKER_TIMEOUT_S),
    }
    broker_sh("start", env)
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run(
            [ROOT / "scripts/broker.sh", "stop"],
            env=env,
            capture_output=True,
            timeout=BROKER_TIMEOUT_S,
        )


def produce(brokers: str, seconds: range) -> None:
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
    for sec in seconds:
        producer.produce(
            TOPICS["TEMPERATURE_TOPIC"],
            key=b"1",
            value=orjson.dumps({"Temperature_C": 60.0 + sec % 4, "Timestamp": T0 + sec * S}),
        )
    assert producer.flush(FLUSH_TIMEOUT_S) == 0


def windows(brokers: str) -> list[dict]:
    return [
        orjson.loads(m.value()) for m in consume_all(TOPICS["ANOMALIES_TOPIC"], brokers=brokers)
    ]


def flow_log(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def broker_warnings(broker_env: dict[str, str]) -> str:
    """The broker's last WARN and ERROR lines: pytest removes the temporary directory (and the
    broker's log in it) after a few runs, before anyone looks."""
    path = Path(broker_env["BROKER_DIR"]) / "kafka.log"
    if not path.exists():
        return "(no broker log)"
    lines = [
        line
        for line in path.read_text(errors="replace").splitlines()
        if " WARN " in line or " ERROR " in line
    ]
    return "\n".join(lines[-15:]) or "(no WARN or ERROR lines)"


def wait_for_windows(
    brokers: str, count: int, flow: subprocess.Popen, log: Path, broker_env: dict[str, str]
) -> list[dict]:
    """The output once it holds ``count`` windows, read again every half second while the flow
    runs. A broker that has just created the topic or come back may not answer a read yet
    (e.g. "not leader for partition" while it elects one): that is a retry, not a failure.

    On a miss the flow is stopped first, so its log ends with its status line (readings read,
    late, windows scored; at the defaults, one every few seconds before it too): that tells an
    input that never resumed from output never written."""
    deadline = time.monotonic() + WINDOWS_TIMEOUT_S
    seen = "nothing read yet"
    while True:
        try:
            out = windows(brokers)
        except (KafkaException, RuntimeError, TimeoutError) as exc:
            seen = f"the last read failed: {exc}"
        else:
            if len(out) >= count:
                return out
            seen = f"{len(out)} windows"
        assert flow.poll() is None, f"the flow exited ({flow.returncode}): {flow_log(log)}"
        if time.monotonic() > deadline:
            interrupt(flow, 20)
            pytest.fail(
                f"not {count} windows within {WINDOWS_TIMEOUT_S} s ({seen}); "
                f"flow log: {flow_log(log)}\nbroker warnings: {broker_warnings(broker_env)}"
            )
        time.sleep(0.5)


def test_flow_rides_through_a_broker_restart(own_broker, tmp_path: Path) -> None:
    brokers, broker_env = own_broker
    env = python_env(
        KAFKA_BROKERS=brokers,
        EMIT_ALL_WINDOWS="true",
        **TOPICS,
    )
    log = tmp_path / "flow.log"
    with log.open("wb") as stderr:
        flow = subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "dataflow.main:flow"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        produce(brokers, range(0, 30))
        # 30 s of readings: 5 closed windows, the 6th still open.
        assert len(wait_for_windows(brokers, 5, flow, log, broker_env)) == 5
        broker_sh("stop", broker_env)  # returns once the broker's process has exited
        outage_ends = time.monotonic() + OUTAGE_S
        while time.monotonic() < outage_ends:
            assert flow.poll() is None, f"the flow died while the broker was down: {flow_log(log)}"
            time.sleep(0.5)
        broker_sh("start", broker_env)  # returns once the broker answers metadata again
        assert flow.poll() is None, f"the flow died while the broker was down: {flow_log(log)}"
        produce(brokers, range(30, 60))
        # 60 s of readings: 12 windows, the last still open (no later reading closes it).
        assert len(wait_for_windows(brokers, 11, flow, log, broker_env)) == 11
        assert flow.poll() is None, flow_log(log)
    finally:
        interrupt(flow, 20)
    out = windows(brokers)
    assert len({w["window_start"] for w in out}) == 11  # each window once
    assert all(w["count"] == 5 for w in out)  # no reading lost across the outage
    # librdkafka logs every refused connection of every client (hundreds a second while the
    # broker is down); dataflow.kafkalog shows the first of a kind, then one line a minute.
    refused = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if "Connection refused" in line
    ]
    assert 0 < len(refused) <= 10, "\n".join(refused[:20])
