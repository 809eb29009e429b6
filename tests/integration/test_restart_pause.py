"""A restart after a pause, at the default settings, gives exactly an uninterrupted run's output.

Machines send live readings (stamped with the wall clock, 2 Hz) all along; one overheats, so an
alert is open. The flow (with recovery) is stopped by SIGTERM in the middle of a window, stays
down for ``RESTART_PAUSE_SECONDS`` (default 15: longer than ``IDLE_TIMEOUT_SECONDS``, 10) while
the readings keep coming, and is started again. Before input time, its restored idle and close
deadlines fired on the wall clock before the waiting readings were read: partial windows, the
rest dead-lettered as ``late``; after more than ``ALERT_STALE_SECONDS`` (300) the open alert
resolved as ``stale`` and opened again under a new id.

The reference is a fresh flow reading the same input topic from the beginning. Every window the
restarted flow wrote must equal the reference's, none may be late, and the alert must open once
and never go stale. ``RESTART_PAUSE_SECONDS=330`` runs the 5-minute case by hand.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
from confluent_kafka import Producer

from tests.integration.conftest import BROKERS, ROOT, consume_all, python_env, run_module

PAUSE_S = float(os.environ.get("RESTART_PAUSE_SECONDS", "15"))
MACHINES = 5
HOT = "4"


class LiveMachines(threading.Thread):
    """Every machine sends a reading stamped with the wall clock twice a second, until
    stopped; machine ``HOT`` overheats throughout."""

    def __init__(self, topic: str) -> None:
        super().__init__(daemon=True)
        self.topic = topic
        self.halt = threading.Event()
        self.sent = 0

    def run(self) -> None:
        producer = Producer({"bootstrap.servers": BROKERS, "linger.ms": 5})
        tick = 0
        while not self.halt.is_set():
            now = time.time_ns()
            for m in range(MACHINES):
                temp = 95.0 if str(m) == HOT else 60.0 + (m * 7 + tick * 13) % 10
                producer.produce(
                    self.topic,
                    key=str(m).encode(),
                    value=orjson.dumps({"Temperature_C": temp, "Timestamp": now}),
                )
            self.sent += MACHINES
            producer.poll(0)
            tick += 1
            self.halt.wait(0.5)
        assert producer.flush(30) == 0


def flow_args(recovery: Path | None) -> list[str]:
    args = [sys.executable, "-m", "bytewax.run", "dataflow.main:flow"]
    return args if recovery is None else [*args, "-r", str(recovery), "-s", "1", "-b", "0"]


def records(topic: str) -> dict[tuple[bytes, str], dict]:
    """Every window record by (key, window start); a window written twice (an epoch replayed
    after the restart) must be the same record both times."""
    out: dict[tuple[bytes, str], dict] = {}
    for msg in consume_all(topic):
        rec = orjson.loads(msg.value())
        key = (msg.key(), rec["window_start"] or f"{rec['event']}-{rec['silent_seconds']}")
        assert out.get(key, rec) == rec, f"written twice, differently: {key}"
        out[key] = rec
    return out


def test_a_restart_after_a_pause_writes_what_an_uninterrupted_run_writes(
    topic_factory, tmp_path: Path
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
    env = python_env(EMIT_ALL_WINDOWS="true", STATUS_INTERVAL_SECONDS="0", **topics)
    machines = LiveMachines(topics["TEMPERATURE_TOPIC"])
    machines.start()
    flows: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        flow = subprocess.Popen(
            flow_args(recovery),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"flow{len(flows)}.log").open("wb"),
        )
        flows.append(flow)
        return flow

    def stop(flow: subprocess.Popen[bytes]) -> None:
        flow.send_signal(signal.SIGTERM)
        assert flow.wait(60) == 0, (tmp_path / f"flow{len(flows) - 1}.log").read_text()[-3000:]

    try:
        first = start()
        # Run until windows are out, then stop in the middle of a window (2.5 s into one).
        deadline = time.monotonic() + 90
        while not consume_all(topics["ANOMALIES_TOPIC"]) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert consume_all(topics["ANOMALIES_TOPIC"]), "no window within 90 s"
        time.sleep(5 - time.time() % 5 + 2.5)
        stop(first)
        time.sleep(PAUSE_S)  # down; the machines go on sending
        second = start()
        time.sleep(12)
        machines.halt.set()
        machines.join(60)
        # Caught up and the machines quiet: every window closes by input time, none waits
        # for an end of input.
        last_end = time.time() + 2 + 3  # the last reading's window end, lateness, a beat
        time.sleep(max(0.0, last_end - time.time()) + 10)
        stop(second)
    finally:
        machines.halt.set()
        for flow in flows:
            if flow.poll() is None:
                flow.kill()
    live = records(topics["ANOMALIES_TOPIC"])
    assert consume_all(topics["DLQ_TOPIC"]) == [], "readings were dead-lettered (late)"

    ref_topics = {
        **topics,
        "ANOMALIES_TOPIC": topic_factory("ref-anomalies", 1),
        "DLQ_TOPIC": topic_factory("ref-dlq", 1),
    }
    reference = subprocess.run(
        flow_args(None),
        cwd=ROOT,
        env=python_env(
            EMIT_ALL_WINDOWS="true", STATUS_INTERVAL_SECONDS="0", KAFKA_TAIL="false", **ref_topics
        ),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    ref = records(ref_topics["ANOMALIES_TOPIC"])
    assert consume_all(ref_topics["DLQ_TOPIC"]) == []

    assert sum(r["count"] for r in ref.values() if r["count"]) == machines.sent
    assert live == ref
    events = [(k, r["event"], r["resolution"]) for (k, _), r in sorted(live.items())]
    assert [e for e in events if e[1] not in ("window",)] == [(HOT.encode(), "open", None)]
