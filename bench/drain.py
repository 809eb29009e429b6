"""Drain rate of the dataflow at 1k and at 100k sensors, same readings per sensor per window.

Run by hand (``make bench``) against the local broker. For each fleet size it loads the same
number of temperature readings into fresh topics with confluent-kafka's producer, then runs
``python -m bytewax.run dataflow.main:flow`` with ``KAFKA_TAIL=false`` until it has drained them,
and subtracts the start-up time measured on empty topics. Only the number of sensors changes
between the runs, so the ratio of the cost per message shows how the design scales with fleet size.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import workloads as wl
from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parents[1]
T0_NS = 1_710_856_625 * 1_000_000_000


def load(brokers: str, topic: str, sensors: int, messages: int, per_window: int) -> float:
    """Tick by tick, every sensor sends one reading; ``per_window`` ticks fill a 5 s window."""
    producer = Producer(
        {
            "bootstrap.servers": brokers,
            "linger.ms": 50,
            "batch.size": 1 << 20,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    step = 5_000_000_000 // per_window
    keys = [str(i).encode() for i in range(sensors)]
    started = time.perf_counter()
    sent = 0
    tick = 0
    while sent < messages:
        ts = T0_NS + tick * step
        for i, key in enumerate(keys):
            value = wl.temperature_value(60.0 + (i * 7 + tick) % 11, ts)
            while True:
                try:
                    producer.produce(topic, value, key)
                    break
                except BufferError:
                    producer.poll(0.05)
            sent += 1
            if sent == messages:
                break
        producer.poll(0)
        tick += 1
    producer.flush(120)
    return time.perf_counter() - started


def run_flow(topics: wl.Topics, brokers: str, workers: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds of one drain of the flow."""
    env = wl.bytewax_env(brokers, topics)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bytewax.run", "dataflow.main:flow", "-w", str(workers)],
        cwd=ROOT,
        env=env,
        check=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", default=os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092"))
    parser.add_argument(
        "--sensors",
        default="1000,100000",
        help="comma-separated fleet sizes (default: 1000,100000)",
    )
    parser.add_argument(
        "--messages", type=int, default=1_000_000, help="readings per run (default: 1,000,000)"
    )
    parser.add_argument(
        "--per-window",
        type=int,
        default=10,
        help="readings per sensor per 5 s window (default: 10)",
    )
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1, help="runs per fleet size; median reported")
    args = parser.parse_args(argv)

    empty = wl.create_topics(args.brokers, args.partitions, "bench-drain")
    idle = [run_flow(empty, args.brokers, args.workers) for _ in range(2)]
    startup = statistics.median(w for w, _ in idle)
    startup_cpu = statistics.median(c for _, c in idle)
    print(f"start-up on empty topics: {startup:.2f} s, {startup_cpu:.2f} s CPU", flush=True)

    per_msg: dict[int, float] = {}
    cpu_per_msg: dict[int, float] = {}
    for sensors in (int(s) for s in args.sensors.split(",")):
        topics = wl.create_topics(args.brokers, args.partitions, "bench-drain")
        load_s = load(args.brokers, topics.temp, sensors, args.messages, args.per_window)
        walls, cpus = [], []
        for _ in range(args.runs):
            wall, cpu = run_flow(topics, args.brokers, args.workers)
            walls.append(wall)
            cpus.append(cpu)
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        drain = max(wall - startup, 1e-9)
        per_msg[sensors] = drain / args.messages
        cpu_per_msg[sensors] = (cpu - startup_cpu) / args.messages
        print(
            f"{sensors:>7} sensors: loaded {args.messages:,} in {load_s:.1f} s; "
            f"drained in {drain:.2f} s (+{startup:.2f} s start-up) = "
            f"{args.messages / drain:,.0f} msg/s, {drain / args.messages * 1e6:.2f} us/msg; "
            f"CPU {cpu:.1f} s, {cpu_per_msg[sensors] * 1e6:.2f} CPU us/msg",
            flush=True,
        )
        wl.delete_topics(args.brokers, topics.all())
    wl.delete_topics(args.brokers, empty.all())
    if len(per_msg) >= 2:
        sizes = sorted(per_msg)
        ratio = per_msg[sizes[-1]] / per_msg[sizes[0]]
        cpu_ratio = cpu_per_msg[sizes[-1]] / cpu_per_msg[sizes[0]]
        print(
            f"cost per message, {sizes[-1]:,} vs {sizes[0]:,} sensors: {ratio:.2f}x wall, "
            f"{cpu_ratio:.2f}x CPU (CPU is less sensitive to other load on the machine)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
