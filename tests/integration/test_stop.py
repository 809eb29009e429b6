"""Ctrl-C and SIGTERM stop the flow cleanly: one line, exit 0, everything it produced written.

The signal lands while the flow is draining a backlog (one message per poll keeps the drain to
several seconds), so batches are in flight when it arrives.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from tests.factories import T0, S
from tests.integration.conftest import BROKERS, ROOT, consume_all, python_env, run_module

SENSORS = 10
SECONDS = 600  # one reading per sensor per second: 120 windows of 5 readings per sensor
HOT = 3  # this machine runs hot from 100 s to 140 s: one alert
STOPPED = re.compile(r"stopped by (SIG[A-Z]+); status ((?:\w+=\d+ ?)+)$")
WAIT_S = 120  # generous, for a loaded machine; every wait ends as soon as its condition holds


@pytest.fixture
def topics(topic_factory) -> dict[str, str]:
    return {
        "AIR_QUALITY_TOPIC": topic_factory("aq"),
        "TEMPERATURE_TOPIC": topic_factory("t"),
        "ANOMALIES_TOPIC": topic_factory("anomalies"),
        "DLQ_TOPIC": topic_factory("dlq"),
    }


def produce(topic: str) -> None:
    producer = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True, "linger.ms": 10})
    for sec in range(SECONDS):
        for m in range(SENSORS):
            temp = 95.0 if m == HOT and 100 <= sec < 140 else 60.0 + (m + sec) % 5
            producer.produce(
                topic,
                key=str(m).encode(),
                value=orjson.dumps({"Temperature_C": temp, "Timestamp": T0 + sec * S}),
            )
    assert producer.flush(60) == 0


def events(topic: str) -> list[dict]:
    return [orjson.loads(m.value()) for m in consume_all(topic)]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "dataflow.main:flow", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def signal_once_it_alerted(flow: subprocess.Popen, signum: int, topic: str, log: Path) -> int:
    """Send ``signum`` once the alert is out (mid-drain), and wait for the flow to exit."""
    deadline = time.monotonic() + WAIT_S
    while not any(e["event"] == "open" for e in events(topic)):
        assert flow.poll() is None, log.read_text()
        if time.monotonic() > deadline:
            flow.kill()
            pytest.fail(f"no alert within {WAIT_S} s: {log.read_text()[-3000:]}")
        time.sleep(0.2)
    flow.send_signal(signum)
    try:
        return flow.wait(WAIT_S)
    except subprocess.TimeoutExpired:
        flow.kill()
        flow.wait()
        pytest.fail(f"still running {WAIT_S} s after {signal.Signals(signum).name}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_flow_with_one_line_and_writes_all_it_produced(
    topics: dict[str, str], tmp_path: Path, signum: int
) -> None:
    produce(topics["TEMPERATURE_TOPIC"])
    env = python_env(
        EMIT_ALL_WINDOWS="true",
        KAFKA_BATCH_SIZE="1",
        STATUS_INTERVAL_SECONDS="0",
        **topics,
    )
    log = tmp_path / "flow.log"
    flow = start([], env, log)
    code = signal_once_it_alerted(flow, signum, topics["ANOMALIES_TOPIC"], log)
    err = log.read_text()
    assert code == 0, err
    assert "Traceback" not in err and "panicked" not in err, err
    lines = err.strip().splitlines()
    assert "Kafka at" in lines[0] and len(lines) == 2, err  # the start-up line, then one line
    m = STOPPED.search(lines[1])
    assert m, lines[1]
    assert m.group(1) == signal.Signals(signum).name
    counts = {k: int(v) for k, v in (kv.split("=") for kv in m.group(2).split())}
    windows, opened = counts["windows"], counts["alerts_opened"]
    assert 0 < counts["readings"] < SENSORS * SECONDS, "the signal should land mid-drain"

    out = events(topics["ANOMALIES_TOPIC"])
    assert len(out) == windows  # every window the flow scored was written, and only once each
    assert len({(e["sensor_id"], e["window_start"]) for e in out}) == windows
    assert sum(e["event"] == "open" for e in out) == opened == 1
    assert all(e["count"] == 5 for e in out)  # no window closed early by the stop


def test_stop_then_resume_with_recovery_writes_every_window_exactly_once(
    topics: dict[str, str], tmp_path: Path
) -> None:
    """The stop leaves open windows open and snapshots where it stopped: the resumed run writes
    the rest, and nothing twice (a SIGKILL replays the last epoch instead)."""
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init = run_module(["bytewax.recovery", str(recovery), "1"], python_env())
    assert init.returncode == 0, init.stderr
    produce(topics["TEMPERATURE_TOPIC"])
    env = python_env(EMIT_ALL_WINDOWS="true", STATUS_INTERVAL_SECONDS="0", **topics)
    args = ["-r", str(recovery), "-s", "1", "-b", "0"]
    log = tmp_path / "first.log"
    first = start(args, {**env, "KAFKA_BATCH_SIZE": "1"}, log)
    assert signal_once_it_alerted(first, signal.SIGINT, topics["ANOMALIES_TOPIC"], log) == 0, (
        log.read_text()
    )
    written = len(events(topics["ANOMALIES_TOPIC"]))
    assert 0 < written < SENSORS * SECONDS // 5

    second = subprocess.run(
        [sys.executable, "-m", "bytewax.run", "dataflow.main:flow", *args],
        cwd=ROOT,
        env={**env, "KAFKA_TAIL": "false"},
        capture_output=True,
        text=True,
        timeout=WAIT_S * 2,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    out = events(topics["ANOMALIES_TOPIC"])
    per_window = Counter((e["sensor_id"], e["window_start"]) for e in out)
    assert len(per_window) == SENSORS * SECONDS // 5
    assert max(per_window.values()) == 1, [w for w, n in per_window.items() if n > 1][:5]
    assert all(e["count"] == 5 for e in out)
    assert sum(e["event"] == "open" for e in out) == 1
