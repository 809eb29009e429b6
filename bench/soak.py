"""Soak: RSS of the dataflow over a long live run at 100k sensors.

Run by hand against the local broker (10 minutes by default):

    .venv/bin/python bench/soak.py                    # 100k sensors, one reading per 5 s each
    .venv/bin/python bench/soak.py --minutes 2        # a shorter check

The dataflow runs tailing (``KAFKA_TAIL=true``, one worker, default settings: alert events
only). A paced producer sends one reading per sensor per ``--interval`` seconds (100k sensors
every 5 s = 20,000 msg/s), half air quality, half temperature, event time = wall time; one
temperature sensor in 50 overheats for 20 s of every minute. Every ``--sample`` seconds it
records the dataflow's RSS (``/proc/PID/status``) and its status line (readings, windows), so
the report shows whether the flow kept up with the producer and whether memory stays flat.

Reported: RSS before production (start-up), after every sensor has been seen and closed a
window, peak and end; RSS per sensor ((end - start-up) / sensors); and the slope of RSS over
the second half of the run (MB per minute), which should be about 0 for flat state.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import workloads as wl
from workloads import ROOT

STATUS = re.compile(r"status readings=(\d+) rejected=\d+ late=(\d+) windows=(\d+)")


def last_status(path: Path) -> tuple[int, int, int] | None:
    """(readings, late, windows) of the last status line in the flow's log."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 8192))
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    found = STATUS.findall(text)
    return tuple(int(x) for x in found[-1]) if found else None  # type: ignore[return-value]


def slope_mb_per_min(samples: list[dict[str, float]]) -> float:
    """Least-squares slope of RSS against time."""
    if len(samples) < 2:
        return float("nan")
    xs = [s["t_s"] / 60 for s in samples]
    ys = [s["rss_mb"] for s in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


class Producer(threading.Thread):
    """One reading per sensor per ``interval`` seconds, spread evenly, event time = wall time."""

    def __init__(self, brokers: str, topics: wl.Topics, sensors: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.producer = wl.make_producer(brokers, **{"linger.ms": 20})
        self.topics, self.sensors, self.interval = topics, sensors, interval
        self.stop = threading.Event()
        self.sent = 0
        self.behind_s = 0.0  # how far the producer fell behind its schedule, at worst
        half = sensors // 2
        self.keys = [(True, i, f"Sensor{i + 1}".encode()) for i in range(half)]
        self.keys += [(False, i, str(i).encode()) for i in range(sensors - half)]
        # Interleave the families.
        self.keys = [
            k for pair in zip(self.keys[:half], self.keys[half:], strict=False) for k in pair
        ] + self.keys[2 * half :]

    def run(self) -> None:
        produce, poll = self.producer.produce, self.producer.poll
        aq, temp, keys, n = self.topics.aq, self.topics.temp, self.keys, self.sensors
        t0 = time.time()
        k = 0
        while not self.stop.is_set():
            now = time.time()
            due_k = int((now - t0) / self.interval * n)  # readings due by now
            if due_k - k > n:  # more than a whole round behind: note it
                self.behind_s = max(self.behind_s, (due_k - k) / n * self.interval)
            ts_ns = time.time_ns()
            stamp = wl.naive_stamp(ts_ns)
            hot_phase = 20 <= (now - t0) % 60 < 40
            for kk in range(k, due_k):
                is_aq, i, key = keys[kk % n]
                while True:
                    try:
                        if is_aq:
                            produce(aq, wl.air_quality_value(stamp, 20.0 + (i * 13 + kk) % 40), key)
                        else:
                            hot = hot_phase and i % wl.HOT_EVERY == 7
                            value = (95.0 if hot else 60.0) + (i * 7 + kk) % 11
                            produce(temp, wl.temperature_value(value, ts_ns), key)
                        break
                    except BufferError:
                        poll(0.01)
            self.sent += max(0, due_k - k)
            k = max(k, due_k)
            poll(0)
            time.sleep(0.01)
        self.producer.flush(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", default=os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092"))
    parser.add_argument("--sensors", type=int, default=100_000, help="both families together")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="seconds between two readings of one sensor"
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", type=Path, default=ROOT / "out" / "soak.json")
    args = parser.parse_args(argv)

    topics = wl.create_topics(args.brokers, args.partitions, "bench-soak")
    env = wl.bytewax_env(
        args.brokers,
        topics,
        KAFKA_TAIL="true",
        LOG_LEVEL="INFO",
        STATUS_INTERVAL_SECONDS=str(min(args.sample, 5.0)),
    )
    samples: list[dict[str, float]] = []
    with tempfile.NamedTemporaryFile(prefix="soak-flow-", suffix=".log") as log:
        flow = subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "dataflow.main:flow", "-w", str(args.workers)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
        producer = Producer(args.brokers, topics, args.sensors, args.interval)
        try:
            time.sleep(5)
            if flow.poll() is not None:
                raise RuntimeError(
                    f"dataflow exited {flow.returncode}: {Path(log.name).read_text()[-2000:]}"
                )
            startup_rss = wl.rss_mb(flow.pid) or float("nan")
            print(
                f"start-up RSS {startup_rss:.0f} MB; producing {args.sensors:,} sensors every "
                f"{args.interval:g} s ({args.sensors / args.interval:,.0f} msg/s) for "
                f"{args.minutes:g} min",
                flush=True,
            )
            producer.start()
            t0 = time.time()
            end = t0 + args.minutes * 60
            while time.time() < end:
                time.sleep(max(0.0, min(args.sample, end - time.time())))
                if flow.poll() is not None:
                    raise RuntimeError(f"dataflow exited {flow.returncode}")
                rss = wl.rss_mb(flow.pid) or float("nan")
                status = last_status(Path(log.name)) or (0, 0, 0)
                sample = {
                    "t_s": time.time() - t0,
                    "rss_mb": rss,
                    "sent": producer.sent,
                    "readings": status[0],
                    "late": status[1],
                    "windows": status[2],
                }
                samples.append(sample)
                print(
                    f"  {sample['t_s']:6.0f} s  RSS {rss:7.1f} MB  sent {producer.sent:>10,}  "
                    f"read {status[0]:>10,}  windows {status[2]:>10,}  late {status[1]:,}",
                    flush=True,
                )
        finally:
            producer.stop.set()
            producer.join(30)
            wl.interrupt(flow, 60)
            wl.delete_topics(args.brokers, topics.all())

    seconds = samples[-1]["t_s"] if samples else 0.0
    # "Warm": every sensor has sent twice and closed its first window (interval + lateness + a
    # sample), so every sensor's state exists.
    warm = [s for s in samples if s["t_s"] >= 2 * args.interval + 2 + args.sample]
    second_half = [s for s in samples if s["t_s"] >= seconds / 2]
    last = samples[-1]
    mid = second_half[0] if len(second_half) > 1 else samples[0]
    span = max(last["t_s"] - mid["t_s"], 1e-9)
    report = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": wl.machine(),
        "commit": wl.git_rev(),
        "sensors": args.sensors,
        "interval_s": args.interval,
        "target_rate": args.sensors / args.interval,
        "achieved_rate": last["sent"] / seconds,
        # Rates over the second half: the status line the flow logs is up to 5 s old.
        "consumed_rate": (last["readings"] - mid["readings"]) / span,
        "produced_rate_second_half": (last["sent"] - mid["sent"]) / span,
        "windows_per_s": (last["windows"] - mid["windows"]) / span,
        "minutes": seconds / 60,
        "producer_behind_s": producer.behind_s,
        "startup_rss_mb": startup_rss,
        "warm_rss_mb": warm[0]["rss_mb"] if warm else float("nan"),
        "peak_rss_mb": max(s["rss_mb"] for s in samples),
        "end_rss_mb": last["rss_mb"],
        "kb_per_sensor": (last["rss_mb"] - startup_rss) * 1024 / args.sensors,
        "slope_second_half_mb_per_min": slope_mb_per_min(second_half),
        "windows": last["windows"],
        "late": last["late"],
        "samples": samples,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(
        f"\n{args.sensors:,} sensors for {report['minutes']:.1f} min: produced "
        f"{report['achieved_rate']:,.0f} msg/s (target {report['target_rate']:,.0f}), flow read "
        f"{report['consumed_rate']:,.0f} msg/s in the second half, {report['windows']:,} windows"
    )
    print(
        f"RSS: start-up {startup_rss:.0f} MB, warm {report['warm_rss_mb']:.0f} MB, peak "
        f"{report['peak_rss_mb']:.0f} MB, end {report['end_rss_mb']:.0f} MB; "
        f"{report['kb_per_sensor']:.1f} KB per sensor; second-half slope "
        f"{report['slope_second_half_mb_per_min']:+.2f} MB/min"
    )
    print(
        f"targets: <= 10 KB per sensor: {'met' if report['kb_per_sensor'] <= 10 else 'NOT met'}; "
        f"100k sensors <= 2 GB: {'met' if report['peak_rss_mb'] <= 2048 else 'NOT met'}; "
        f"results: {args.json}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
