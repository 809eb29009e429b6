"""Integration fixtures: the real local Kafka broker (``make broker``), unique topics per test.

Skipped with a reason when no broker answers, unless ``REQUIRE_BROKER=1`` (set by ``make test``,
which starts the broker), where a missing broker is a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from dataflow.admin import StartupError, connect, delete_topics, ensure_topics

ROOT = Path(__file__).resolve().parents[2]
BROKERS = os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def admin() -> AdminClient:
    try:
        client, _ = connect(BROKERS, timeout_s=5)
    except StartupError as exc:
        if os.environ.get("REQUIRE_BROKER") == "1":
            pytest.fail(f"no Kafka broker at {BROKERS}: {exc}")
        pytest.skip(f"no Kafka broker at {BROKERS} (start one with `make broker`): {exc}")
    return client


@pytest.fixture
def topic_factory(admin: AdminClient) -> Iterator[Callable[..., str]]:
    """Create uniquely named topics; delete them after the test."""
    yield from _topic_maker(admin)


@pytest.fixture(scope="module")
def module_topic_factory(admin: AdminClient) -> Iterator[Callable[..., str]]:
    """``topic_factory`` for a module-scoped fixture (one flow run shared by several tests);
    the topics are deleted after the module."""
    yield from _topic_maker(admin)


def _topic_maker(admin: AdminClient) -> Iterator[Callable[..., str]]:
    made: list[str] = []

    def make(prefix: str, partitions: int = 3) -> str:
        name = f"test-{prefix}-{uuid.uuid4().hex[:10]}"
        ensure_topics(admin, [name], partitions, existing=())
        made.append(name)
        return name

    yield make
    delete_topics(admin, made)


def consume_all(
    topic: str, timeout: float = 30.0, brokers: str = BROKERS, config: dict[str, str] | None = None
) -> list:
    """Every message currently in ``topic``, read from the beginning to the end offsets.

    ``config`` adds client settings (e.g. SASL) and may override the bootstrap servers.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            **(config or {}),
            "group.id": f"t-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout)
        error = meta.topics[topic].error
        if error is not None:
            if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                return []  # not created yet: nothing in it
            raise RuntimeError(f"{topic}: {error}")  # e.g. not authorised
        parts = [TopicPartition(topic, p, 0) for p in meta.topics[topic].partitions]
        ends = {p.partition: consumer.get_watermark_offsets(p, timeout=timeout)[1] for p in parts}
        pending = {p for p, end in ends.items() if end > 0}
        consumer.assign(parts)
        out = []
        while pending:
            msg = consumer.poll(timeout)
            if msg is None:
                raise TimeoutError(f"{topic}: nothing more within {timeout} s, {pending} pending")
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                    continue
                raise RuntimeError(msg.error())
            out.append(msg)
            if msg.offset() + 1 >= ends[msg.partition()]:
                pending.discard(msg.partition())
        return out
    finally:
        consumer.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(server: int | str) -> dict[str, float]:
    """A Prometheus text endpoint as ``name{labels}`` -> value, comment lines skipped.

    ``server`` is a local port (the dataflow's API) or a base URL (Alertmanager). The keys are
    the sample lines' own text, so a test names a series exactly as ``/metrics`` prints it.
    """
    base = f"http://127.0.0.1:{server}" if isinstance(server, int) else server
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def wait_for(
    what: str,
    check: Callable[[], object],
    proc: subprocess.Popen[str] | None = None,
    timeout: float = 60.0,
) -> object:
    """Poll ``check`` until it returns something truthy (returned), failing after ``timeout``
    or as soon as ``proc`` (the program under test) exits; a loaded machine takes its time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"exited ({proc.returncode}) waiting for {what}: {err}")
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def python_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "KAFKA_BROKERS": BROKERS, "PYTHONPATH": str(ROOT)}
    env.update(extra)
    return env


def run_module(
    args: list[str], env: dict[str, str], timeout: float = 180.0
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ...`` from the repository root, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
