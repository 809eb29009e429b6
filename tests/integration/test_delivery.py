"""An alert that Kafka does not take fails the epoch, and the resume writes it: nothing lost.

Bytewax's own sink only flushes: a message librdkafka gives up on (after ``message.timeout.ms``,
300 s by default, in a long outage; or refused by the broker) is dropped, and the epoch commits
as if it had been written, so a resume from recovery never writes it again. Our sink fails the
epoch instead: the flow stops naming the topic and the error, and the restart replays the epoch
from the last snapshot and writes the alert.

With silence on input time, a flow writes nothing new while its broker is away, so an outage
cannot be timed to catch an alert in flight without racing the flow. The broker refuses the
alert instead, deterministically: the anomalies topic's ``max.message.bytes`` is lowered below
one record while the alert is due (the unit tests of ``dataflow.sink`` cover the timeout).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from tests.factories import T0, S
from tests.integration.conftest import BROKERS, ROOT, consume_all, python_env, run_module

WAIT_S = 120  # generous, for a loaded machine; each wait ends as soon as its condition holds


def produce(topic: str, seconds: range, hot_from: int) -> None:
    producer = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True})
    for sec in seconds:
        temp = 60.0 if sec < hot_from else 95.0
        producer.produce(
            topic, key=b"1", value=orjson.dumps({"Temperature_C": temp, "Timestamp": T0 + sec * S})
        )
    assert producer.flush(60) == 0


def set_max_bytes(admin: AdminClient, topic: str, value: str | None) -> None:
    """Set (or, with None, remove) the topic's ``max.message.bytes``."""
    op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
    entry = ConfigEntry("max.message.bytes", value or "", incremental_operation=op)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def windows(topic: str) -> dict[str, dict]:
    return {
        orjson.loads(m.value())["window_start"][11:19]: orjson.loads(m.value())
        for m in consume_all(topic)
    }


def test_undelivered_alert_fails_the_epoch_and_the_resume_writes_it(
    admin: AdminClient, topic_factory, tmp_path: Path
) -> None:
    topics = {
        "AIR_QUALITY_TOPIC": topic_factory("aq", 1),
        "TEMPERATURE_TOPIC": topic_factory("t", 1),
        "ANOMALIES_TOPIC": topic_factory("anomalies", 1),
        "DLQ_TOPIC": topic_factory("dlq", 1),
    }
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init = run_module(["bytewax.recovery", str(recovery), "1"], python_env())
    assert init.returncode == 0, init.stderr
    args = [sys.executable, "-m", "bytewax.run", "dataflow.main:flow"]
    args += ["-r", str(recovery), "-s", "1", "-b", "0"]
    env = python_env(EMIT_ALL_WINDOWS="true", STATUS_INTERVAL_SECONDS="0", **topics)
    log = tmp_path / "flow.log"
    with log.open("wb") as stderr:
        flow = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        produce(topics["TEMPERATURE_TOPIC"], range(0, 8), hot_from=5)  # window 0-5 closes
        deadline = time.monotonic() + WAIT_S
        while "13:57:05" not in windows(topics["ANOMALIES_TOPIC"]):
            assert flow.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        set_max_bytes(admin, topics["ANOMALIES_TOPIC"], "64")  # below one record
        time.sleep(2)  # the broker applies it
        produce(topics["TEMPERATURE_TOPIC"], range(8, 13), hot_from=5)  # 5-10 closes: alert
        exited = flow.wait(WAIT_S)
    finally:
        if flow.poll() is None:
            flow.kill()
            flow.wait()
    text = log.read_text(errors="replace")
    assert exited not in (None, 0), text[-3000:]  # it failed by itself
    assert f"Kafka topic {topics['ANOMALIES_TOPIC']!r}" in text, text[-3000:]
    assert "not delivered" in text, text[-3000:]

    set_max_bytes(admin, topics["ANOMALIES_TOPIC"], None)
    time.sleep(2)
    resumed = subprocess.run(
        args,
        cwd=ROOT,
        env={**env, "KAFKA_TAIL": "false"},
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    out = windows(topics["ANOMALIES_TOPIC"])
    assert {"13:57:05", "13:57:10"} <= set(out), out  # windows 0-5 and 5-10
    assert out["13:57:10"]["event"] == "open"  # the alert: written by the resume
