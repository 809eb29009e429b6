"""A caught-up sensor's window closes by the wall clock, through the real flow, its source's
beats and Bytewax's timers.

The unit tests check ``ShardState``'s input time; this checks the wiring: the source must say
the partition is caught up, and the shard's ``notify_at`` must wake the flow at the deadline when
no reading comes. One machine sends readings stamped with the wall clock for a few seconds and
then goes quiet. The idle timeout is set far away (``IDLE_TIMEOUT_SECONDS=600``), so without the
caught-up close its windows would only close ten minutes later. With it, each window must reach
the anomalies topic soon after its end plus the lateness.

The bounds are generous (seconds, not the benchmark's milliseconds): this is a test of behaviour,
not of speed.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Producer

from bench.workloads import interrupt
from tests.integration.conftest import BROKERS, ROOT, free_port, python_env, scrape, wait_for

LATENESS_S = 1.0


@pytest.fixture
def topics(topic_factory) -> dict[str, str]:
    return {
        "AIR_QUALITY_TOPIC": topic_factory("aq", 1),
        "TEMPERATURE_TOPIC": topic_factory("t", 1),
        "ANOMALIES_TOPIC": topic_factory("anomalies", 1),
        "DLQ_TOPIC": topic_factory("dlq", 1),
    }


def start_flow(topics: dict[str, str], cache: Path) -> subprocess.Popen[bytes]:
    """Start the flow and return once it has read a probe message: a loaded machine may take
    longer than usual to start, and the test measures when windows close after that."""
    port = free_port()
    env = python_env(
        IDLE_TIMEOUT_SECONDS="600",
        ALLOWED_LATENESS_SECONDS=str(LATENESS_S),
        EMIT_ALL_WINDOWS="true",
        STATUS_INTERVAL_SECONDS="0",
        BYTEWAX_DATAFLOW_API_ENABLED="true",
        BYTEWAX_DATAFLOW_API_PORT=str(port),
        BYTEWAX_DATAFLOW_API_CACHE_PATH=str(cache),
        **topics,
    )
    flow = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "dataflow.main:flow"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    probe = Producer({"bootstrap.servers": BROKERS})  # another family: no effect on machine 7
    probe.produce(
        topics["AIR_QUALITY_TOPIC"],
        key=b"probe",
        value=orjson.dumps({"timestamp": "2024-03-19 13:57:05.000000", "value": 1.0}),
    )
    assert probe.flush(30) == 0

    def probe_read() -> bool:
        try:
            return scrape(port).get('sensor_readings_total{family="air_quality"}', 0) >= 1
        except OSError:
            return False  # its API is not up yet

    try:
        wait_for("the dataflow to read a probe", probe_read, flow, timeout=90)
    except AssertionError:
        interrupt(flow, 30)
        raise
    return flow


def send_live(topic: str, seconds: float) -> float:
    """Machine 7 at 2 Hz, event time = now, for ``seconds``; returns its last event time (s)."""
    producer = Producer({"bootstrap.servers": BROKERS, "linger.ms": 0})
    last = 0.0
    stop = time.time() + seconds
    while time.time() < stop:
        last = time.time()
        producer.produce(
            topic,
            key=b"7",
            value=orjson.dumps({"Temperature_C": 60.0, "Timestamp": int(last * 1e9)}),
        )
        producer.poll(0)
        time.sleep(0.5)
    assert producer.flush(30) == 0
    return last


def windows(topic: str, until: float) -> Iterator[dict]:
    """Window records from ``topic`` as they arrive, until wall time ``until``."""
    consumer = Consumer(
        {
            "bootstrap.servers": BROKERS,
            "group.id": f"t-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    try:
        while time.time() < until:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                yield orjson.loads(msg.value())
    finally:
        consumer.close()


def window_end(record: dict) -> float:
    return datetime.fromisoformat(record["window_end"].replace("Z", "+00:00")).timestamp()


def test_last_window_closes_by_the_wall_clock_once_caught_up(
    topics: dict[str, str], tmp_path: Path
) -> None:
    flow = start_flow(topics, tmp_path)
    try:
        last = send_live(topics["TEMPERATURE_TOPIC"], 7.0)
        last_end = (int(last) // 5 + 1) * 5  # end of the window holding the last reading
        due = last_end + LATENESS_S
        seen = {}
        for rec in windows(topics["ANOMALIES_TOPIC"], due + 15):
            seen[window_end(rec)] = (time.time(), rec["count"])
            if last_end in seen:
                break
    finally:
        interrupt(flow, 30)
    assert seen, "no window closed at all"
    assert last_end in seen, f"the last window (end {last_end}) did not close by {due + 15}"
    arrived, count = seen[last_end]
    assert count >= 1
    assert due <= arrived + 0.5  # not before its time (clock granularity aside)
    assert arrived - due < 10, f"closed {arrived - due:.1f} s after end + lateness"
