"""Scaling changes nothing: ``-w 1``, ``-w 2`` and two processes (``-i/-a``) write the same output.

One seeded workload of both families (air quality and machine temperature, several hundred
sensors, each keyed by its id so it lives in one of 4 input partitions) is drained three times
by the real ``python -m bytewax.run dataflow.main:flow``, each run into its own output topics.
The anomaly and dead-letter topics must hold the same multiset of (key, value, headers) in all
three runs, and each sensor's records must come in the same order (only the interleaving of
different sensors may differ: they live in different shards, possibly on different workers).

Settings that would make a comparison meaningless or flaky are pinned:

- Nothing about time: silence is input time, which a backlog read at any speed moves the same
  way, so the idle, stale and TTL rules run at their defaults.
- ``EMIT_ALL_WINDOWS=true``: every scored window is written, not only alert events, so the
  comparison covers every window's count, mean, score, quantile cut and model state.
- ``HST_WINDOW_SIZE=4``, ``WARMUP_WINDOWS=4``: models are ready after 8 windows, so ML anomalies
  (and ``ml_cut``) appear within the 24 windows per sensor; ``AIR_QUALITY_THRESHOLD`` gives the
  air-quality family alarms too, and ``ALERT_UPDATE_WINDOWS=2`` lets open alerts send updates.
- ``SHARDS`` stays at its default (32): enough keys that both workers get shards; the status
  lines of the two processes are checked to show that each really did part of the work.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import Producer

from tests.integration.conftest import BROKERS, ROOT, consume_all, free_port, python_env

PARTITIONS = 4
SENSORS = 250  # per family
WINDOWS = 24  # 5 s windows per sensor
WINDOW_NS = 5_000_000_000
BASE_NS = 1_710_856_620_000_000_000  # a window boundary (2024-03-19T13:57:00Z)
SEED = 20240319

ENV = {
    "KAFKA_TAIL": "false",
    "EMIT_ALL_WINDOWS": "true",
    "HST_WINDOW_SIZE": "4",
    "WARMUP_WINDOWS": "4",
    "AIR_QUALITY_THRESHOLD": "100",
    "ALERT_UPDATE_WINDOWS": "2",
    "STATUS_INTERVAL_SECONDS": "0.001",  # per-process counters, to see both processes worked
    "KAFKA_BATCH_SIZE": "500",  # several polls per partition: batches cross shards and epochs
}
RUN_TIMEOUT_S = 120.0


@dataclass
class Workload:
    messages: int
    late: int  # readings sent behind their sensor's closed windows
    malformed: int
    partitions_used: set[tuple[str, int]]


def _aq_ts(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def produce_workload(aq_topic: str, temp_topic: str, sensors: int = SENSORS) -> Workload:
    """Seeded readings of ``sensors`` sensors of both families in event-time order, each sensor
    in one partition.

    Temperature: every 10th machine overheats (>= 90 degC) for windows 8-11 then cools (open,
    resolved), every 25th heats up from window 18 to the end (open, updates). Air quality: every
    10th sensor spikes above the threshold in windows 12-14, every 15th jumps to a level the
    model flags but the threshold does not. Every 7th sensor also sends one reading 15 s behind
    its clock (late), and a few malformed messages go in between.
    """
    rng = random.Random(SEED)
    events: list[tuple[int, str, bytes, bytes]] = []  # (order ns, topic, key, value)
    late = 0
    for fam, topic in (("aq", aq_topic), ("temp", temp_topic)):
        for i in range(sensors):
            key = (f"Sensor{i + 1}" if fam == "aq" else str(i)).encode()
            base = rng.uniform(20, 40) if fam == "aq" else rng.uniform(60, 70)
            # about 2 readings per window, with jitter; the sensor's clock only moves forward
            t = rng.randrange(0, 2_000_000_000)
            n = 0
            while t < WINDOWS * WINDOW_NS:
                w = t // WINDOW_NS
                if fam == "temp":
                    if i % 10 == 3 and 8 <= w <= 11:
                        val = round(rng.uniform(93, 99), 2)
                    elif i % 25 == 4 and w >= 18:  # rising: the open alert gets updates
                        val = round(92 + 3 * (w - 18) + rng.uniform(0, 1), 2)
                    else:
                        val = round(base + rng.gauss(0, 1.0), 2)
                    value = {"Temperature_C": val, "Timestamp": BASE_NS + t}
                else:
                    if i % 10 == 5 and 12 <= w <= 14:
                        val = round(rng.uniform(110, 140), 1)
                    elif i % 15 == 7 and w >= 16:
                        val = round(base + 45 + rng.gauss(0, 1.0), 1)
                    else:
                        val = round(base + rng.gauss(0, 1.5), 1)
                    value = {"timestamp": _aq_ts(BASE_NS + t), "value": val}
                events.append((t, topic, key, orjson.dumps(value)))
                n += 1
                if i % 7 == 2 and n == 20:  # one reading far behind: its window has closed
                    old = t - 15_000_000_000
                    stale = (
                        {"Temperature_C": 66.0, "Timestamp": BASE_NS + old}
                        if fam == "temp"
                        else {"timestamp": _aq_ts(BASE_NS + old), "value": 30.0}
                    )
                    events.append((t + 1, topic, key, orjson.dumps(stale)))
                    late += 1
                t += rng.randrange(1_500_000_000, 3_000_000_000)
    bad = [
        (temp_topic, b"11", b"{not json"),
        (temp_topic, b"12", b'"{\\"Temperature_C\\": 1}"'),
        (aq_topic, b"Sensor3", b'{"timestamp": "yesterday", "value": 1}'),
        (aq_topic, b"Sensor4", b'{"timestamp": "2024-03-19 13:57:01", "value": "high"}'),
    ]
    for j, (topic, key, value) in enumerate(bad):
        events.append((j * 30_000_000_000 + 7, topic, key, value))
    events.sort(key=lambda e: e[0])  # stable: a sensor's own order is kept

    producer = Producer({"bootstrap.servers": BROKERS, "linger.ms": 20})
    used: set[tuple[str, int]] = set()
    for _, topic, key, value in events:
        part = zlib.crc32(key) % PARTITIONS  # explicit: one partition per sensor, all used
        used.add((topic, part))
        while True:
            try:
                producer.produce(topic, key=key, value=value, partition=part)
                break
            except BufferError:  # the local queue is full: let deliveries drain it, then again
                producer.poll(0.5)
        producer.poll(0)
    assert producer.flush(30) == 0
    return Workload(len(events), late, len(bad), used)


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bytewax.run", "dataflow.main:flow", *args]


def run_cluster(cmds: list[list[str]], env: dict[str, str]) -> list[str]:
    """Start the processes together, wait for all; return each one's stderr."""
    procs = [
        subprocess.Popen(
            c, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for c in cmds
    ]
    deadline = time.monotonic() + RUN_TIMEOUT_S
    errs: list[str] = []
    try:
        for p in procs:
            _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            errs.append(err)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, err in zip(procs, errs, strict=True):
        assert p.returncode == 0, f"{p.args}: exit {p.returncode}\n{err[-3000:]}"
    return errs


def last_status(stderr: str) -> dict[str, int]:
    """The counters of a process's last status line (they only grow)."""
    lines = re.findall(r"status ((?:\w+=\d+ ?)+)", stderr)
    return {k: int(v) for k, v in (kv.split("=") for kv in lines[-1].split())} if lines else {}


Record = tuple[bytes | None, bytes, tuple[tuple[str, bytes], ...]]


def records(topic: str) -> list[Record]:
    return [(m.key(), m.value(), tuple(m.headers() or ())) for m in consume_all(topic)]


def per_stream(recs: list[Record], stream: Callable[[Record], object]) -> dict[object, list]:
    out: dict[object, list] = defaultdict(list)
    for r in recs:
        out[stream(r)].append(r)
    return dict(out)


def anomaly_stream(r: Record) -> object:
    v = orjson.loads(r[1])
    return v["family"], v["sensor_id"]


def dlq_stream(r: Record) -> object:
    # Late readings are written by the worker holding the sensor's shard, rejected messages by
    # the one reading the partition: each kind keeps its order, their interleaving may not.
    return r[0], dict(r[2]).get("reason") == b"late"


def assert_same(
    name: str, got: list[Record], want: list[Record], stream: Callable[[Record], object]
) -> None:
    gc, wc = Counter(got), Counter(want)
    if gc != wc:
        extra, missing = list((gc - wc).elements()), list((wc - gc).elements())
        pytest.fail(
            f"{name}: {len(got)} records vs {len(want)}; {len(extra)} extra, e.g. "
            f"{extra[:3]}; {len(missing)} missing, e.g. {missing[:3]}"
        )
    gs, ws = per_stream(got, stream), per_stream(want, stream)
    bad = [k for k in ws if gs.get(k) != ws[k]]
    assert not bad, f"{name}: order differs within {len(bad)} sensor(s), e.g. {bad[:3]}"


def test_one_worker_two_workers_and_two_processes_write_the_same(topic_factory) -> None:
    aq, temp = topic_factory("scale-aq", PARTITIONS), topic_factory("scale-temp", PARTITIONS)
    load = produce_workload(aq, temp)
    assert len(load.partitions_used) == 2 * PARTITIONS

    outputs: dict[str, tuple[list[Record], list[Record]]] = {}
    stderrs: dict[str, list[str]] = {}
    for name in ("-w 1", "-w 2", "2 processes"):
        anomalies = topic_factory("scale-anomalies", 1)
        dlq = topic_factory("scale-dlq", 1)
        env = python_env(
            AIR_QUALITY_TOPIC=aq,
            TEMPERATURE_TOPIC=temp,
            ANOMALIES_TOPIC=anomalies,
            DLQ_TOPIC=dlq,
            **ENV,
        )
        if name == "2 processes":
            addrs = ";".join(f"127.0.0.1:{free_port()}" for _ in range(2))
            cmds = [_cmd("-w", "1", "-i", str(i), "-a", addrs) for i in range(2)]
        else:
            cmds = [_cmd("-w", name.split()[1])]
        stderrs[name] = run_cluster(cmds, env)
        outputs[name] = (records(anomalies), records(dlq))

    # Not vacuous: every window of every sensor, alerts of both families and both reasons,
    # late readings and rejected messages.
    anomalies, dead = outputs["-w 1"]
    values = [orjson.loads(v) for _, v, _ in anomalies]
    events = Counter(v["event"] for v in values)
    assert events["window"] > 2 * SENSORS * (WINDOWS - 2), events
    assert events["open"] and events["update"] and events["resolved"], events
    assert {v["family"] for v in values if v["event"] == "open"} == {"air_quality", "temperature"}
    reasons = {r for v in values for r in v["reasons"]}
    assert reasons == {"threshold", "ml"}
    assert any(v["model_ready"] for v in values)
    assert all(v["ml_cut"] is None for v in values)  # HalfSpaceTrees does not vote by default
    dead_reasons = Counter(dict(h)["reason"] for _, _, h in dead)
    assert dead_reasons[b"late"] == load.late > 0
    assert sum(dead_reasons.values()) == load.late + load.malformed
    windows = events["window"] + sum(n for e, n in events.items() if e != "window")

    # Both processes of the cluster did part of the reading and of the windowing.
    for err in stderrs["2 processes"]:
        status = last_status(err)
        assert status.get("readings", 0) > 0 and status.get("windows", 0) > 0, err[-2000:]
    assert sum(last_status(e).get("windows", 0) for e in stderrs["2 processes"]) <= windows

    for name in ("-w 2", "2 processes"):
        got_anomalies, got_dead = outputs[name]
        assert_same(f"anomalies {name} vs -w 1", got_anomalies, anomalies, anomaly_stream)
        assert_same(f"dead letters {name} vs -w 1", got_dead, dead, dlq_stream)
