"""Crash recovery: SIGKILL the dataflow mid-stream, restart it from Bytewax recovery, lose nothing.

Every window of the produced data must be in the output, and any window written twice (the
epoch replayed after the crash) must be byte-identical, with the same key, so consumers can
de-duplicate.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import closing
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from tests.factories import T0, S
from tests.integration.conftest import BROKERS, ROOT, consume_all, python_env, run_module

SENSORS = 20


def produce(topic: str, seconds: range) -> None:
    producer = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True, "linger.ms": 10})
    for sec in seconds:
        for m in range(SENSORS):
            temp = 95.0 if m == 4 and 100 <= sec < 140 else 60.0 + (m * 7 + sec * 13) % 10
            producer.produce(
                topic,
                key=str(m).encode(),
                value=orjson.dumps({"Temperature_C": temp, "Timestamp": T0 + sec * S}),
            )
    assert producer.flush(60) == 0


@pytest.fixture
def topics(topic_factory) -> dict[str, str]:
    return {
        "AIR_QUALITY_TOPIC": topic_factory("aq"),
        "TEMPERATURE_TOPIC": topic_factory("t"),
        "ANOMALIES_TOPIC": topic_factory("anomalies"),
        "DLQ_TOPIC": topic_factory("dlq"),
    }


def committed_epoch(recovery: Path, part: int = 0) -> int:
    """The epoch Bytewax's recovery partition ``part`` in ``recovery`` has committed snapshots up
    to (0: none yet)."""
    try:
        with closing(
            sqlite3.connect(
                f"file:{recovery / f'part-{part}.sqlite3'}?mode=ro", uri=True, timeout=5
            )
        ) as db:
            row = db.execute("SELECT MAX(commit_epoch) FROM commits").fetchone()
    except sqlite3.OperationalError:  # busy while the flow writes: ask again
        return -1
    return row[0] or 0


def test_sigkill_then_resume_loses_no_window(topics: dict[str, str], tmp_path: Path) -> None:
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init = run_module(["bytewax.recovery", str(recovery), "1"], python_env())
    assert init.returncode == 0, init.stderr
    env = python_env(EMIT_ALL_WINDOWS="true", STATUS_INTERVAL_SECONDS="0", **topics)
    args = [
        sys.executable,
        "-m",
        "bytewax.run",
        "dataflow.main:flow",
        "-r",
        str(recovery),
        "-s",
        "1",
        "-b",
        "0",
    ]

    produce(topics["TEMPERATURE_TOPIC"], range(0, 150))
    first = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        # Wait until it has written output and has had time to snapshot past it.
        while time.monotonic() < deadline and not consume_all(topics["ANOMALIES_TOPIC"]):
            time.sleep(0.5)
        # Then until two more epochs are committed to the recovery store, so that a snapshot
        # holds state from after that output (a loaded machine may take longer than usual).
        seen = committed_epoch(recovery)
        while seen < 0 and time.monotonic() < deadline:
            seen = committed_epoch(recovery)
        while time.monotonic() < deadline and committed_epoch(recovery) < seen + 2:
            time.sleep(0.2)
        assert committed_epoch(recovery) >= seen + 2, "no snapshot was committed within 60 s"
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    written_before = len(consume_all(topics["ANOMALIES_TOPIC"]))
    assert written_before > 0

    produce(topics["TEMPERATURE_TOPIC"], range(150, 300))
    second = subprocess.run(
        args,
        cwd=ROOT,
        env={**env, "KAFKA_TAIL": "false"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert second.returncode == 0, second.stderr[-3000:]

    by_window: dict[tuple[bytes, str], set[bytes]] = defaultdict(set)
    everything = consume_all(topics["ANOMALIES_TOPIC"])
    for msg in everything:
        rec = orjson.loads(msg.value())
        assert msg.key() == rec["sensor_id"].encode()
        assert rec["count"] == 5  # no reading lost: open windows came back from the snapshot
        by_window[(msg.key(), rec["window_start"])].add(msg.value())
    # 300 s of 1 Hz data = 60 windows per sensor, none lost.
    assert len(by_window) == SENSORS * 60
    # Written twice at most as the same bytes: a consumer can de-duplicate on key + window.
    assert all(len(values) == 1 for values in by_window.values())
    # It resumed from the snapshot, not from the start of the topic: only the last epoch's
    # output is written again, not everything the first run wrote.
    duplicates = len(everything) - len(by_window)
    assert duplicates < written_before, (duplicates, written_before)
    opens = {
        orjson.loads(v)["alert_id"]
        for vs in by_window.values()
        for v in vs
        if orjson.loads(v)["event"] == "open"
    }
    assert len(opens) == 1
