"""Alert latency under live production: from window close to the record on the anomalies topic.

Run by hand against the local broker:

    .venv/bin/python bench/latency.py                      # 1k sensors, 2,000 msg/s, 60 s
    .venv/bin/python bench/latency.py --rate 10000 --seconds 60

The dataflow runs tailing (``KAFKA_TAIL=true``, one worker) with ``EMIT_ALL_WINDOWS=true``, so
every closed window is a sample, not only alert events. A paced producer sends ``--rate``
readings per second across ``--sensors`` sensors (half air quality, half temperature), each
sensor on its own phase, **event time = wall time at send**. A few temperature sensors overheat
for 20 s of every minute, so alerts open and resolve too.

A consumer on the anomalies topic timestamps every record on arrival. For a window
``[start, end)`` the latency is ``arrival - (end + ALLOWED_LATENESS_SECONDS)``: the time past the
earliest moment the window may close. A window closes when its sensor's next reading passes
``end + lateness``, or when its partition's input time (caught up: the wall clock) does, less
the sensor's usual gap between readings; the latency is that wait and the pipeline (Kafka in,
the flow, Kafka out, the consumer) together. ``close_wait`` and ``pipeline`` are still computed
from the closing reading's send time, for the JSON.

The Kafka timestamp of the output record (set when the flow produced it) is reported beside the
consumer's arrival time. Windows closed by the idle timeout (the last ones, after production
stops) are excluded.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import workloads as wl
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from workloads import ROOT


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))]


def summary(xs: list[float]) -> dict[str, float]:
    return {
        "n": len(xs),
        "p50_ms": percentile(xs, 50),
        "p90_ms": percentile(xs, 90),
        "p99_ms": percentile(xs, 99),
        "max_ms": max(xs) if xs else float("nan"),
        "mean_ms": statistics.fmean(xs) if xs else float("nan"),
    }


class OutputReader(threading.Thread):
    """Reads the anomalies topic from the beginning; arrival wall time per record."""

    def __init__(self, brokers: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(
            {
                "bootstrap.servers": brokers,
                "group.id": f"lat-{os.getpid()}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        meta = self.consumer.list_topics(topic, timeout=30).topics[topic]
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        self.records: list[tuple[float, float, dict[str, Any], str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for msg in self.consumer.consume(1000, 0.05):
                arrived = time.time()
                if msg.error():
                    continue
                self.records.append(
                    (
                        arrived,
                        msg.timestamp()[1] / 1000,
                        orjson.loads(msg.value()),
                        msg.key().decode(),
                    )
                )
        self.consumer.close()


def iso_s(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", default=os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092"))
    parser.add_argument("--sensors", type=int, default=1_000, help="both families together")
    parser.add_argument("--rate", type=float, default=2_000, help="readings per second, total")
    parser.add_argument("--seconds", type=float, default=60, help="production time")
    parser.add_argument("--lateness", type=float, default=2.0, help="ALLOWED_LATENESS_SECONDS")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument(
        "--alerts-only",
        action="store_true",
        help="EMIT_ALL_WINDOWS=false: alert events are the only samples",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "out" / "latency.json")
    args = parser.parse_args(argv)

    period = args.sensors / args.rate  # seconds between two readings of one sensor
    half = args.sensors // 2
    topics = wl.create_topics(args.brokers, args.partitions, "bench-lat")
    env = wl.bytewax_env(
        args.brokers,
        topics,
        KAFKA_TAIL="true",
        EMIT_ALL_WINDOWS="false" if args.alerts_only else "true",
        ALLOWED_LATENESS_SECONDS=str(args.lateness),
    )
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the flow
    flow = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "dataflow.main:flow", "-w", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    reader = OutputReader(args.brokers, topics.anomalies)
    reader.start()
    sends: dict[str, list[float]] = {}  # "family/sensor" -> send (= event) times
    try:
        time.sleep(5)  # past the flow's start-up, with room (the harness measures start-up)
        if flow.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"dataflow exited: {log.read().decode()[-2000:]}")
        producer = wl.make_producer(args.brokers, **{"linger.ms": 5})
        sensors = []
        for i in range(args.sensors):
            if i % 2 == 0 and i // 2 < half:
                sensors.append((True, i // 2, f"Sensor{i // 2 + 1}".encode()))
            else:
                sensors.append((False, i // 2, str(i // 2).encode()))
        for is_aq, _n, key in sensors:
            sends[("air_quality/" if is_aq else "temperature/") + key.decode()] = []
        names = list(sends)
        t0 = time.time()
        stop_at = t0 + args.seconds
        k = 0  # next due reading: sensor k % S at t0 + (k // S) * period + phase
        n_sent = 0
        while True:
            now = time.time()
            if now >= stop_at:
                break
            while True:
                s = k % args.sensors
                due = t0 + (k // args.sensors) * period + s * period / args.sensors
                if due > now:
                    break
                is_aq, i, key = sensors[s]
                ts_ns = time.time_ns()
                if is_aq:
                    value = wl.air_quality_value(wl.naive_stamp(ts_ns), 20.0 + (i * 13 + k) % 40)
                    producer.produce(topics.aq, value, key)
                else:
                    hot = i % 100 == 3 and 20 <= (now - t0) % 60 < 40
                    temp = (95.0 if hot else 60.0) + (i * 7 + k) % 11
                    producer.produce(topics.temp, wl.temperature_value(temp, ts_ns), key)
                sends[names[s]].append(ts_ns / 1e9)
                k += 1
                n_sent += 1
            producer.poll(0)
            time.sleep(0.002)
        producer.flush(30)
        sent_s = time.time() - t0
        time.sleep(3)  # let the last windows closed by readings arrive
    finally:
        wl.interrupt(flow, 30)
        reader.stop.set()
        reader.join(10)
        wl.delete_topics(args.brokers, topics.all())

    lateness = args.lateness
    total, wait, pipe, kafka_ts, alerts, alert_kafka = [], [], [], [], [], []
    events: dict[str, int] = {}
    for arrived, produced_at, rec, key in reader.records:
        close_at = iso_s(rec["window_end"]) + lateness
        times = sends.get(f"{rec['family']}/{key}", [])
        j = bisect.bisect_left(times, close_at)
        if j >= len(times):
            continue  # closed by the idle timeout after production stopped
        closing = times[j]
        if iso_s(rec["window_start"]) < t0:
            continue  # the first window of each sensor is partial
        events[rec["event"]] = events.get(rec["event"], 0) + 1
        total.append((arrived - close_at) * 1000)
        wait.append((closing - close_at) * 1000)
        pipe.append((arrived - closing) * 1000)
        kafka_ts.append((produced_at - close_at) * 1000)
        if rec["event"] != "window":
            alerts.append((arrived - close_at) * 1000)
            alert_kafka.append((produced_at - close_at) * 1000)
    report = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": wl.machine(),
        "commit": wl.git_rev(),
        "sensors": args.sensors,
        "rate": args.rate,
        "achieved_rate": n_sent / sent_s,
        "seconds": args.seconds,
        "lateness_s": lateness,
        "reading_interval_ms": period * 1000,
        "events": events,
        "latency_from_close": summary(total),
        "latency_from_close_kafka_ts": summary(kafka_ts),
        "close_wait": summary(wait),
        "pipeline": summary(pipe),
        "alert_events_from_close": summary(alerts),
        "alert_events_from_close_kafka_ts": summary(alert_kafka),
        "target_p99_ms_after_close": 250,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(
        f"{args.sensors:,} sensors, {report['achieved_rate']:,.0f} msg/s for {sent_s:.0f} s "
        f"(one reading per sensor every {period * 1000:.0f} ms), lateness {lateness:g} s; "
        f"records {events}"
    )
    split: tuple[str, ...] = ()  # windows close by input time: a split is not meaningful
    for name in (
        "latency_from_close",
        "latency_from_close_kafka_ts",
        *split,
        "alert_events_from_close",
    ):
        s = report[name]
        print(
            f"  {name:<30} n={s['n']:<7} p50 {s['p50_ms']:7.1f} ms  p90 {s['p90_ms']:7.1f} ms  "
            f"p99 {s['p99_ms']:7.1f} ms  max {s['max_ms']:7.1f} ms"
        )
    p99 = report["latency_from_close"]["p99_ms"]
    print(
        f"target: p99 after window end + lateness <= 250 ms: {p99:.0f} ms, "
        f"{'met' if p99 <= 250 else 'NOT met'}; results: {args.json}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
