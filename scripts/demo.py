"""``make demo``: producer (overheat scenario) -> dataflow -> anomalies, shown live.

Starts the dataflow and a real-time producer against the local broker, draws a status line
(readings in, windows scored, alerts) from the dataflow's status log, and prints each alert from
the anomalies topic as it arrives. Ctrl-C stops everything it started. The SASL/TLS variables of
``dataflow/security.py`` apply to its own clients and, inherited, to the producer and dataflow.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
from confluent_kafka import Consumer

from dataflow.admin import StartupError, connect, reset_topics
from dataflow.security import KafkaSecurity, SecurityConfigError

ROOT = Path(__file__).resolve().parents[1]
STATUS = re.compile(r"status (.*)$")


def describe(alert: dict) -> str:
    unit = " °C" if alert["family"] == "temperature" else ""
    start, end = alert["window_start"][11:19], alert["window_end"][11:19]
    why = []
    if alert["threshold_alarm"]:
        why.append(f"threshold: mean >= {alert['threshold']:g}{unit}")
    if alert["ml_anomaly"]:
        explain = alert.get("explain") or {}
        why.append(f"ml: {explain.get('text') or 'the model'}")
    head = f"{alert['event'].upper():<8} {alert['family']}/{alert['sensor_id']}"
    text = (
        f"{head} {start}-{end} UTC  mean {alert['mean']:.2f}{unit} (n={alert['count']}, "
        f"min {alert['min']:.2f}, max {alert['max']:.2f})"
    )
    if why:
        text += "  " + "; ".join(why)
    info = alert.get("alert")
    if info and alert["event"] != "open":
        text += (
            f"  [peak {info['peak_mean']:.2f}{unit} at {info['peak_at'][11:19]}, "
            f"{info['anomalous_windows']} anomalous window(s), id {alert['alert_id']}]"
        )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=float(os.environ.get("DEMO_SECONDS", 0)),
        help="stop after this many seconds (env DEMO_SECONDS; default 0: run until Ctrl-C)",
    )
    parser.add_argument("--sensors", type=int, default=5, help="sensors per family (default 5)")
    args = parser.parse_args(argv)

    brokers = os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092")
    try:
        security = KafkaSecurity.from_env(os.environ)
    except SecurityConfigError as exc:  # names the variable, never holds the password
        print(f"demo: configuration error: {exc}", file=sys.stderr)
        return 2
    topics = {
        "AIR_QUALITY_TOPIC": os.environ.get("AIR_QUALITY_TOPIC", "air-quality"),
        "TEMPERATURE_TOPIC": os.environ.get("TEMPERATURE_TOPIC", "temperature_readings"),
        "ANOMALIES_TOPIC": os.environ.get("ANOMALIES_TOPIC", "anomalies"),
        "DLQ_TOPIC": os.environ.get("DLQ_TOPIC", "dead-letters"),
    }
    print(
        f"demo: resetting topics {', '.join(topics.values())} on {brokers} ({security.redacted()})",
        flush=True,
    )
    try:  # start from empty topics, so old runs' data does not replay into this one
        admin, _ = connect(brokers, security, timeout_s=15)
        reset_topics(admin, list(topics.values()), 3)
    except StartupError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1

    env = {
        **os.environ,
        **topics,
        "KAFKA_BROKERS": brokers,
        "PYTHONPATH": str(ROOT),
        "STATUS_INTERVAL_SECONDS": "1",
    }
    logs = ROOT / ".broker"
    logs.mkdir(exist_ok=True)
    flow = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "dataflow.main:flow"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    producer_log = (logs / "demo-producer.log").open("w")
    producer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "producer",
            "--scenario",
            "overheat",
            "--realtime",
            "--sensors",
            str(args.sensors),
        ],
        cwd=ROOT,
        env=env,
        stderr=producer_log,
    )
    print(
        f"demo: dataflow pid {flow.pid}, producer pid {producer.pid} "
        f"(log {logs / 'demo-producer.log'}); machine 2 starts overheating after 10 s. "
        "Ctrl-C stops.",
        flush=True,
    )

    status: dict[str, str] = {}
    flow_log = (logs / "demo-dataflow.log").open("w")

    def read_status() -> None:
        assert flow.stderr is not None
        for line in flow.stderr:
            flow_log.write(line)
            flow_log.flush()
            m = STATUS.search(line)
            if m:
                status.update(kv.split("=", 1) for kv in m.group(1).split())

    threading.Thread(target=read_status, daemon=True).start()
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            **security.librdkafka(),
            "group.id": f"demo-{os.getpid()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topics["ANOMALIES_TOPIC"]])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    tty = sys.stdout.isatty()
    started = time.monotonic()
    alerts = 0
    last_line = 0.0
    try:
        while not stop.is_set():
            if args.seconds and time.monotonic() - started > args.seconds:
                break
            if flow.poll() is not None:
                print(
                    f"\ndemo: the dataflow exited with {flow.returncode}; see "
                    f"{logs / 'demo-dataflow.log'}",
                    flush=True,
                )
                return 1
            msg = consumer.poll(0.5)
            now = time.monotonic()
            if msg is not None and not msg.error():
                event = orjson.loads(msg.value())
                alerts += event["event"] == "open"
                text = describe(event)
                print(("\r\033[K" if tty else "") + text, flush=True)
            if now - last_line >= (1 if tty else 10):
                last_line = now
                line = (
                    f"[{now - started:5.0f} s] readings in {status.get('readings', 0)} | "
                    f"windows scored {status.get('windows', 0)} | alerts opened {alerts} | "
                    f"rejected {status.get('rejected', 0)} | late {status.get('late', 0)}"
                )
                print("\r\033[K" + line if tty else line, end="" if tty else "\n", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        print("\ndemo: stopping producer and dataflow", flush=True)
        consumer.close()
        for proc in (producer, flow):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in (producer, flow):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(f"demo: {alerts} alert(s) opened; final status: {status}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
