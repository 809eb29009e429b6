"""Retention deleted input the flow had not read yet: the resume says so and counts it.

A flow stopped (with recovery) for longer than the input topic's retention resumes at an offset
the broker no longer holds. librdkafka's default then jumps to the END of the partition, so
everything kept after the gap was skipped too, without a word. The flow must read from the
earliest offset still there, log one line naming the partition and how many messages were
lost, and count them in ``sensor_input_skipped_messages_total``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.workloads import interrupt
from tests.factories import T0, S
from tests.integration.conftest import (
    BROKERS,
    ROOT,
    consume_all,
    free_port,
    python_env,
    run_module,
    scrape,
    wait_for,
)

READ_FIRST = 50  # offsets 0..49 are read by the first run
DELETED_BELOW = 80  # retention then deletes 50..79 before the second run reads them
PRODUCED = 100


def produce(topic: str, seconds: range) -> None:
    """One reading a second of sensor 1; the reading of second ``s`` lands at offset ``s``."""
    producer = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True})
    for sec in seconds:
        producer.produce(
            topic,
            key=b"1",
            value=orjson.dumps({"Temperature_C": 60.0, "Timestamp": T0 + sec * S}),
        )
    assert producer.flush(30) == 0


def window_seconds(topic: str) -> list[int]:
    """The output windows' starts, in seconds after ``T0``."""
    t0 = datetime.fromtimestamp(T0 // S, UTC)
    return sorted(
        round(
            (datetime.fromisoformat(orjson.loads(m.value())["window_start"]) - t0).total_seconds()
        )
        for m in consume_all(topic)
    )


def test_resume_below_the_low_watermark_reads_from_the_earliest_and_counts_the_gap(
    admin: AdminClient, topic_factory, tmp_path: Path
) -> None:
    topics = {
        "AIR_QUALITY_TOPIC": topic_factory("aq", partitions=1),
        "TEMPERATURE_TOPIC": topic_factory("t", partitions=1),
        "ANOMALIES_TOPIC": topic_factory("anomalies", partitions=1),
        "DLQ_TOPIC": topic_factory("dlq", partitions=1),
    }
    temperature = topics["TEMPERATURE_TOPIC"]
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init = run_module(["bytewax.recovery", str(recovery), "1"], python_env())
    assert init.returncode == 0, init.stderr
    args = [sys.executable, "-m", "bytewax.run", "dataflow.main:flow"]
    args += ["-r", str(recovery), "-s", "1", "-b", "0"]
    env = python_env(EMIT_ALL_WINDOWS="true", STATUS_INTERVAL_SECONDS="0", **topics)

    produce(temperature, range(0, READ_FIRST))
    first = subprocess.run(
        args,
        cwd=ROOT,
        env={**env, "KAFKA_TAIL": "false"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    written_first = window_seconds(topics["ANOMALIES_TOPIC"])
    assert written_first and max(written_first) < READ_FIRST

    produce(temperature, range(READ_FIRST, PRODUCED))
    futures = admin.delete_records([TopicPartition(temperature, 0, DELETED_BELOW)])
    for future in futures.values():
        future.result(timeout=30)

    port = free_port()
    second = subprocess.Popen(
        args,
        cwd=ROOT,
        env={
            **env,
            "BYTEWAX_DATAFLOW_API_ENABLED": "true",
            "BYTEWAX_DATAFLOW_API_PORT": str(port),
            "BYTEWAX_DATAFLOW_API_CACHE_PATH": str(tmp_path),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    series = f'sensor_input_skipped_messages_total{{partition="0",topic="{temperature}"}}'
    try:
        # Offsets 80..99 are read: windows 80-85, 85-90, 90-95 close by event time.
        wait_for(
            "the windows after the gap",
            lambda: len(window_seconds(topics["ANOMALIES_TOPIC"])) >= len(written_first) + 3,
            second,
            timeout=60,
        )
        skipped = wait_for(
            "the skipped-messages counter",
            lambda: scrape(port).get(series),
            second,
            timeout=30,
        )
    finally:
        time.sleep(0.5)  # any window still being written
        interrupt(second, 20)
    err = second.stderr.read() if second.stderr else ""

    assert skipped == DELETED_BELOW - READ_FIRST
    after = [s for s in window_seconds(topics["ANOMALIES_TOPIC"]) if s >= READ_FIRST]
    assert after[:3] == [80, 85, 90], after  # from the earliest kept offset, not from the end
    lines = [line for line in err.splitlines() if "skipping" in line]
    assert len(lines) == 1, err[-3000:]
    assert f"{temperature}/0" in lines[0]
    assert f"skipping {DELETED_BELOW - READ_FIRST} messages" in lines[0]
