"""An alert that cannot reach Kafka fails the epoch, and the resume writes it: nothing lost.

librdkafka gives up on a message after ``message.timeout.ms`` (300 s by default; 3 s here, set
through ``KAFKA_PRODUCER_CONFIG``). A sink that only flushes drops it then, and the epoch
commits as if it had been written, so a resume from recovery never writes it again. Our sink
fails the epoch instead: the flow stops naming the topic and the error, and the restart, broker
back, replays the epoch from the last snapshot and writes the alert.

Runs its own broker (``test_outage.own_broker``: free ports, a temporary directory), which the
test stops while an alert is due.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from tests.factories import T0, S
from tests.integration.conftest import ROOT, python_env, run_module
from tests.integration.test_outage import (  # noqa: F401 (own_broker is a fixture)
    TOPICS,
    broker_sh,
    own_broker,
    wait_for_windows,
    windows,
)

IDLE_S = 15  # the hot window closes this long after its last reading: while the broker is down
MESSAGE_TIMEOUT_MS = 3000  # stands for librdkafka's 300 s default


def produce(brokers: str) -> None:
    """Sensor 1: 60 °C for 5 s (window 0-5 closes at event time 7 s), then 95 °C for 3 s
    (window 5-10 stays open until the idle timeout closes it, and opens an alert)."""
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
    for sec in range(8):
        temp = 60.0 if sec < 5 else 95.0
        producer.produce(
            TOPICS["TEMPERATURE_TOPIC"],
            key=b"1",
            value=orjson.dumps({"Temperature_C": temp, "Timestamp": T0 + sec * S}),
        )
    assert producer.flush(60) == 0


def test_undelivered_alert_fails_the_epoch_and_the_resume_writes_it(
    own_broker: tuple[str, dict[str, str]],  # noqa: F811
    tmp_path: Path,
) -> None:
    brokers, broker_env = own_broker
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init = run_module(["bytewax.recovery", str(recovery), "1"], python_env())
    assert init.returncode == 0, init.stderr
    args = [sys.executable, "-m", "bytewax.run", "dataflow.main:flow"]
    args += ["-r", str(recovery), "-s", "1", "-b", "0"]
    env = python_env(
        KAFKA_BROKERS=brokers,
        KAFKA_PRODUCER_CONFIG=f"message.timeout.ms={MESSAGE_TIMEOUT_MS}",
        EMIT_ALL_WINDOWS="true",
        IDLE_TIMEOUT_SECONDS=str(IDLE_S),
        STATUS_INTERVAL_SECONDS="0",
        **TOPICS,
    )
    log = tmp_path / "flow.log"
    with log.open("wb") as stderr:
        flow = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        produce(brokers)
        produced = time.monotonic()
        # Window 0-5 written: the flow has read every reading, window 5-10 is open.
        wait_for_windows(brokers, 1, flow, log)
        broker_sh("stop", broker_env)
        if time.monotonic() - produced > IDLE_S - 2:
            pytest.fail("the broker took too long to stop: window 5-10 may have been written")
        # Closed by the idle timeout with the broker down; its delivery times out.
        # Still running after this: the alert was dropped (checked below, after the resume).
        with contextlib.suppress(subprocess.TimeoutExpired):
            flow.wait(IDLE_S + MESSAGE_TIMEOUT_MS / 1000 + 30)
    finally:
        exited = flow.poll()  # None: still running, killed here
        if exited is None:
            flow.kill()
            flow.wait()
    text = log.read_text(errors="replace")

    broker_sh("start", broker_env)
    resumed = subprocess.run(
        args,
        cwd=ROOT,
        env={**env, "KAFKA_TAIL": "false"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    out = windows(brokers)
    starts = {w["window_start"][11:19]: w for w in out}
    assert set(starts) == {"13:57:05", "13:57:10"}, out  # windows 0-5 and 5-10
    assert starts["13:57:10"]["event"] == "open"  # the alert: written by the resume
    assert exited not in (None, 0), text[-3000:]  # it failed by itself
    assert f"Kafka topic {TOPICS['ANOMALIES_TOPIC']!r}" in text, text[-3000:]
    assert "Message timed out" in text, text[-3000:]
