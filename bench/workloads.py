"""Workloads and Kafka helpers shared by the bench scripts (``harness``, ``floor``, ``latency``,
``soak``); the integration tests stop flows with its ``interrupt`` too. Runs in the main
``.venv`` (confluent-kafka, orjson); of the project it imports ``dataflow.admin`` (topics) and
``dataflow.timestamps``, neither of which needs Bytewax. So the Quix Streams peer, whose venv has
no project, must not import it: what the peer shares with the harness is in ``offsets.py``.

A workload is a fleet of mixed families, half air-quality sensors (topic ``aq``, key
``SensorN``, value ``{"timestamp": "YYYY-mm-dd HH:MM:SS.ffffff", "value": x}``) and half machine
temperature sensors (topic ``temp``, key ``"N"``, value ``{"Temperature_C": x, "Timestamp": ns}``).
Event time advances tick by tick: at every tick each sensor sends one reading, families
interleaved, so the input looks like a live fleet replayed in order. One temperature sensor in
``HOT_EVERY`` runs hot (mean >= 95 degC) in every ``HOT_PERIOD``-th window, so there are threshold
alarms (and alert open/resolve events) to write.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from dataflow import admin as kafka_admin
from dataflow.timestamps import NAIVE_FORMAT, ns_to_datetime

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
WINDOW_NS = 5_000_000_000
T0_NS = 1_710_856_625 * 1_000_000_000  # 2024-03-19 13:57:05 UTC, on a window boundary
HOT_EVERY = 50  # one temperature sensor in 50 overheats...
HOT_PERIOD = 4  # ...in every 4th of its windows (alert opens, then resolves)


@dataclass(frozen=True)
class Workload:
    name: str
    sensors: int  # both families together, half each
    per_window: int  # readings per sensor per 5 s window (ticks per window)
    messages: int

    @property
    def step_ns(self) -> int:
        return WINDOW_NS // self.per_window


WORKLOADS = {
    # 1k sensors at 10 Hz of event time: 50 readings per window, 1M readings = 20k windows.
    "W1": Workload("W1", sensors=1_000, per_window=50, messages=1_000_000),
    # 100k sensors, one reading per sensor per 5 s window: 1M readings = 1M windows.
    "W2": Workload("W2", sensors=100_000, per_window=1, messages=1_000_000),
    # W1's readings per window over W2's fleet: beside W1 in one run, the cost of a fleet's size
    # alone (the fleet ratio). 10M readings = two windows per sensor, W1's windows at 10M.
    "W3": Workload("W3", sensors=100_000, per_window=50, messages=10_000_000),
}


@dataclass
class Topics:
    aq: str
    temp: str
    anomalies: str
    dlq: str
    extra: list[str] = field(default_factory=list)  # e.g. the peer's output topic

    def env(self) -> dict[str, str]:
        """The dataflow's topic variables."""
        return {
            "AIR_QUALITY_TOPIC": self.aq,
            "TEMPERATURE_TOPIC": self.temp,
            "ANOMALIES_TOPIC": self.anomalies,
            "DLQ_TOPIC": self.dlq,
        }

    @property
    def inputs(self) -> list[str]:
        return [self.aq, self.temp]

    def all(self) -> list[str]:
        return [self.aq, self.temp, self.anomalies, self.dlq, *self.extra]


def admin(brokers: str) -> AdminClient:
    """An admin client that has had a metadata answer (``dataflow.admin.connect``)."""
    return kafka_admin.connect(brokers)[0]


def create_topics(brokers: str, partitions: int, prefix: str = "bench") -> Topics:
    """Four fresh topics with a unique tag; the caller deletes them (``delete_topics``)."""
    tag = uuid.uuid4().hex[:8]
    topics = Topics(
        f"{prefix}-aq-{tag}", f"{prefix}-temp-{tag}", f"{prefix}-anom-{tag}", f"{prefix}-dlq-{tag}"
    )
    new_topics(brokers, topics.all(), partitions)
    return topics


def new_topics(brokers: str, names: list[str], partitions: int) -> None:
    kafka_admin.ensure_topics(admin(brokers), names, partitions, existing=())


def delete_topics(brokers: str, names: list[str]) -> None:
    if not names:
        return
    with contextlib.suppress(Exception):  # best effort: the broker is gone, ...
        kafka_admin.delete_topics(admin(brokers), names)


def delete_prefixed(brokers: str, *substrings: str) -> list[str]:
    """Delete every topic whose name contains one of ``substrings`` (a peer's changelogs)."""
    names = [t for t in kafka_admin.connect(brokers)[1] if any(s in t for s in substrings)]
    delete_topics(brokers, names)
    return names


def hot(sensor: int, window: int) -> bool:
    """Is temperature sensor ``sensor`` overheating in its ``window``-th window?"""
    return sensor % HOT_EVERY == 7 and window % HOT_PERIOD == 2


@dataclass
class LoadResult:
    messages: int
    windows: int  # distinct (sensor, window) pairs: what the flow scores at EOF
    hot_windows: int  # temperature windows with mean >= 90
    seconds: float
    event_seconds: float  # event time covered


def make_producer(brokers: str, **extra: object) -> Producer:
    return Producer(
        {
            "bootstrap.servers": brokers,
            "linger.ms": 50,
            "batch.size": 1 << 20,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
            **extra,
        }
    )


def naive_stamp(ts_ns: int) -> bytes:
    """The air-quality tutorial's timestamp for ``ts_ns``; a loader formats it once per tick."""
    return ns_to_datetime(ts_ns).strftime(NAIVE_FORMAT).encode()


def air_quality_value(stamp: bytes, value: float) -> bytes:
    """An air-quality message value, as ``producer.shapes`` writes the tutorial's shape but
    by %-formatting bytes: a loader must outrun the flow it feeds, and a dict through
    ``json.dumps`` per message cannot. tests/unit/project/test_bench.py reads these back."""
    return b'{"timestamp":"%s","value":%.2f}' % (stamp, value)


def temperature_value(value: float, ts_ns: int) -> bytes:
    """A machine-temperature message value (see ``air_quality_value``)."""
    return b'{"Temperature_C":%.2f,"Timestamp":%d}' % (value, ts_ns)


def readings(
    wl: Workload, total: int, t0_ns: int = T0_NS, step_ns: int | None = None
) -> Iterator[tuple[bool, bytes, bytes, bool, bool]]:
    """The workload's messages in production order: ``(is_aq, key, value, opens, hot)``.

    ``opens``: the reading is its sensor's first in a window; ``hot``: that window overheats.
    ``t0_ns`` and ``step_ns`` (event time of the first tick, between ticks; the workload's by
    default) let a fleet's past be made sparser than its live ticks (``inproc.py --warm``).
    """
    step = wl.step_ns if step_ns is None else step_ns
    half = wl.sensors // 2
    aq_keys = [f"Sensor{i + 1}".encode() for i in range(half)]
    temp_keys = [str(i).encode() for i in range(wl.sensors - half)]
    # Families interleaved: Sensor1, 0, Sensor2, 1, ...
    order: list[tuple[bool, int, bytes]] = []
    for i in range(max(half, wl.sensors - half)):
        if i < half:
            order.append((True, i, aq_keys[i]))
        if i < len(temp_keys):
            order.append((False, i, temp_keys[i]))
    sent = tick = 0
    while sent < total:
        ts = t0_ns + tick * step
        window = tick // wl.per_window
        first_of_window = tick % wl.per_window == 0
        # The air-quality string is the same for the whole tick: format it once.
        stamp = naive_stamp(ts)
        n = min(wl.sensors, total - sent)
        for is_aq, i, key in order[:n]:
            if is_aq:
                value = 20.0 + (i * 13 + tick * 7) % 40
                yield (
                    True,
                    key,
                    air_quality_value(stamp, value),
                    first_of_window,
                    False,
                )
            else:
                is_hot = hot(i, window)
                value = (95.0 if is_hot else 60.0) + (i * 7 + tick) % 11
                yield (
                    False,
                    key,
                    temperature_value(value, ts),
                    first_of_window,
                    is_hot,
                )
        sent += n
        tick += 1


def load(brokers: str, topics: Topics, wl: Workload, messages: int | None = None) -> LoadResult:
    """Produce ``wl`` (or its first ``messages``) into ``topics.aq`` / ``topics.temp``."""
    total = wl.messages if messages is None else messages
    producer = make_producer(brokers)
    produce = producer.produce
    started = time.perf_counter()
    sent = windows = hot_windows = 0

    def send(topic: str, value: bytes, key: bytes) -> None:
        while True:
            try:
                produce(topic, value, key)
                return
            except BufferError:
                producer.poll(0.05)

    for is_aq, key, value, opens, is_hot in readings(wl, total):
        send(topics.aq if is_aq else topics.temp, value, key)
        sent += 1
        windows += opens
        hot_windows += opens and is_hot
        if sent % 1000 == 0:
            producer.poll(0)
    producer.flush(300)
    ticks = -(-sent // wl.sensors)
    return LoadResult(
        sent, windows, hot_windows, time.perf_counter() - started, ticks * wl.step_ns / 1e9
    )


@dataclass
class Measured:
    wall: float
    cpu: float
    maxrss_mb: float
    returncode: int
    stdout: str
    stderr: str


def interrupt(proc: subprocess.Popen, timeout: float) -> None:
    """Ctrl-C for a running flow, as a user stops it; killed if it has not exited in time."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_measured(
    cmd: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 3600
) -> Measured:
    """Run ``cmd`` to completion; wall time, and CPU and peak RSS of that one child (wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(
            wall,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss / 1024,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def run_cluster(
    cmds: list[list[str]],
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    timeout: float = 3600,
) -> Measured:
    """Run several processes together (a Bytewax cluster) until all exit.

    Wall time until the last one exits; CPU summed; peak RSS summed (what the cluster holds).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        procs = {
            subprocess.Popen(c, cwd=cwd, env=env, stdout=out, stderr=err).pid: None for c in cmds
        }
        cpu = rss = 0.0
        code = 0
        while any(v is None for v in procs.values()):
            for pid, done in procs.items():
                if done is not None:
                    continue
                got, status, usage = os.wait4(pid, os.WNOHANG)
                if got:
                    procs[pid] = True
                    cpu += usage.ru_utime + usage.ru_stime
                    rss += usage.ru_maxrss / 1024
                    code = code or os.waitstatus_to_exitcode(status)
            if time.perf_counter() - started > timeout:
                for pid, done in procs.items():
                    if done is None:
                        os.kill(pid, 9)
            time.sleep(0.01)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return Measured(
            wall,
            cpu,
            rss,
            code,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def rss_mb(pid: int) -> float | None:
    """Current RSS of ``pid`` from /proc (Linux), in MB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None
    return None


def machine() -> str:
    """A one-line description of this machine, for result tables."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem_gb:.0f} GB RAM"


def git_rev() -> str:
    """The commit measured, ``+dirty`` when dataflow/ has uncommitted changes."""

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout

    rev = git("rev-parse", "--short", "HEAD").strip() or "?"
    return rev + ("+dirty" if git("status", "--porcelain", "dataflow").strip() else "")


def bytewax_env(brokers: str, topics: Topics, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        **topics.env(),
        "KAFKA_BROKERS": brokers,
        "KAFKA_TAIL": "false",
        "PYTHONPATH": str(ROOT),
        "STATUS_INTERVAL_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env
