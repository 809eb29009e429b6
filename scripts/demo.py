"""``make demo``: producer (history, then live: an overheat and a level shift) -> dataflow ->
anomalies, shown live.

Starts the dataflow and the producer against the local broker. The producer first writes
``HISTORY_SECONDS`` of its sensors' past at full speed (event times in the past, so windows
close by event time and every model learns until it is ready), then goes live: machine 2, new
to the fleet (no history, so only its threshold rule guards it), overheats; air-quality
``SHIFT_SENSOR``'s level shifts well below any rule, which only its model can catch. The demo
draws a status line (readings in, windows scored, alerts) from the dataflow's status log, and
prints each alert from the anomalies topic as it arrives. Ctrl-C stops everything it started.
The SASL/TLS variables of ``dataflow/security.py`` apply to its own clients and, inherited, to
the producer and dataflow.
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
from dataflow.config import ConfigError, Settings
from dataflow.security import KafkaSecurity, SecurityConfigError

ROOT = Path(__file__).resolve().parents[1]
STATUS = re.compile(r"status (.*)$")
HISTORY_SENT = re.compile(r"history sent: (\d+) messages in ([\d.]+) s")
#: The past the producer writes before going live: long enough for every model with history to
#: become ready (``HST_WINDOW_SIZE + WARMUP_WINDOWS`` windows) and to learn what is usual.
HISTORY_SECONDS = 2 * 3600
#: Machine 2 overheats (its threshold rule fires; it has no history, so no model yet) ...
OVERHEAT_SENSOR, OVERHEAT_AFTER_SECONDS = "2", 10
#: ... and, later, this sensor's level shifts, inside every rule's limits: only its model sees it.
SHIFT_SENSOR, SHIFT_AFTER_SECONDS = "Sensor1", 30


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


def producer_args(sensors: int) -> list[str]:
    """The producer's arguments: history, then live with both scenarios (a unit test runs the
    same simulation through the detector)."""
    return [
        "--scenario", "overheat,shift",
        "--overheat-sensor", OVERHEAT_SENSOR,
        "--overheat-after", str(OVERHEAT_AFTER_SECONDS),
        "--shift-sensor", SHIFT_SENSOR,
        "--shift-after", str(SHIFT_AFTER_SECONDS),
        "--history", str(HISTORY_SECONDS),
        "--history-skip", OVERHEAT_SENSOR,
        "--realtime",
        "--sensors", str(sensors),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument(
        "--seconds",
        type=float,
        default=float(os.environ.get("DEMO_SECONDS", 0)),
        help="stop after this many seconds (env DEMO_SECONDS; default 0: run until Ctrl-C)",
    )
    parser.add_argument("--sensors", type=int, default=5, help="sensors per family (default 5)")
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=ROOT / ".broker",
        help="where the producer's and the dataflow's logs go (default .broker/)",
    )
    args = parser.parse_args(argv)
    if args.sensors <= int(OVERHEAT_SENSOR):
        parser.error(
            f"--sensors must be above {OVERHEAT_SENSOR}: machine {OVERHEAT_SENSOR} overheats"
        )

    brokers = os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092")
    try:
        security = KafkaSecurity.from_env(os.environ)
    except SecurityConfigError as exc:  # names the variable, never holds the password
        print(f"demo: configuration error: {exc}", file=sys.stderr)
        return 2
    try:  # the dataflow's own reading of the environment, before anything starts
        settings = Settings.from_env(os.environ)
    except (ConfigError, SecurityConfigError) as exc:
        print(f"demo: configuration error: {exc}", file=sys.stderr)
        return 2
    learn_s = max(
        (settings.hst_window_size + settings.warmup_windows) * family.window_seconds
        for family in settings.families
    )
    if learn_s > HISTORY_SECONDS:
        print(
            f"demo: warning: a model needs {learn_s / 3600:.1f} h of readings to become ready "
            "(HST_WINDOW_SIZE + WARMUP_WINDOWS windows of WINDOW_SECONDS) and the history is "
            f"{HISTORY_SECONDS / 3600:g} h: no ML alert will show",
            file=sys.stderr,
            flush=True,
        )
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
    logs = args.log_dir
    logs.mkdir(parents=True, exist_ok=True)
    flow = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "dataflow.main:flow"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    producer = subprocess.Popen(
        [sys.executable, "-m", "producer", *producer_args(args.sensors)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    print(
        f"demo: dataflow pid {flow.pid}, producer pid {producer.pid} (logs in {logs}); "
        f"the producer first writes the past {HISTORY_SECONDS / 3600:g} h of its sensors, "
        "then goes live. Ctrl-C stops.",
        flush=True,
    )

    status: dict[str, str] = {}
    flow_log = (logs / "demo-dataflow.log").open("w")
    producer_log = (logs / "demo-producer.log").open("w")

    live_at: list[float] = []  # when the producer went live

    def read_producer() -> None:
        assert producer.stderr is not None
        for line in producer.stderr:
            producer_log.write(line)
            producer_log.flush()
            m = HISTORY_SENT.search(line)
            if m:
                live_at.append(time.monotonic())
                print(
                    ("\r\033[K" if sys.stdout.isatty() else "")
                    + f"demo: {HISTORY_SECONDS / 3600:g} h of history sent ({m.group(1)} readings"
                    f" in {float(m.group(2)):.0f} s); live now: machine {OVERHEAT_SENSOR} starts "
                    f"overheating in {OVERHEAT_AFTER_SECONDS} s, air quality {SHIFT_SENSOR}'s "
                    f"level shifts in {SHIFT_AFTER_SECONDS} s",
                    flush=True,
                )

    def read_status() -> None:
        assert flow.stderr is not None
        for line in flow.stderr:
            flow_log.write(line)
            flow_log.flush()
            m = STATUS.search(line)
            if m:
                status.update(kv.split("=", 1) for kv in m.group(1).split())

    threading.Thread(target=read_status, daemon=True).start()
    threading.Thread(target=read_producer, daemon=True).start()
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

    def live_for(now: float) -> str:
        return f", live {now - live_at[0]:3.0f} s" if live_at else ""

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
            if producer.poll() is not None:
                print(
                    f"\ndemo: the producer exited with {producer.returncode}; see "
                    f"{logs / 'demo-producer.log'}",
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
                    f"[{now - started:5.0f} s{live_for(now)}] readings in "
                    f"{status.get('readings', 0)} | "
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
