"""entrypoint.sh for real, against the local broker: wait, fail clearly, or exec the role.

The last test runs docker-compose.yml's app services (their command and environment, defaults
resolved) through entrypoint.sh outside Docker, which is as close to `docker compose up` as a
machine without a Docker engine gets. ``compose_pipeline`` is reused by test_rpk.py.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import yaml
from confluent_kafka.admin import AdminClient

from dataflow.admin import delete_topics
from tests.integration.conftest import BROKERS, ROOT, consume_all, free_port, python_env

ENTRYPOINT = ROOT / "entrypoint.sh"
START = "2024-03-19T13:57:00"
TOPIC_VARS = ("AIR_QUALITY_TOPIC", "TEMPERATURE_TOPIC", "ANOMALIES_TOPIC", "DLQ_TOPIC")
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


def env(**extra: str) -> dict[str, str]:
    """The test's own interpreter runs the roles; nothing inherited decides the topics."""
    base = python_env(PYTHON=sys.executable, STATUS_INTERVAL_SECONDS="0", **extra)
    for name in ("BYTEWAX_RECOVERY_DIRECTORY", "BYTEWAX_WORKERS", "BROKER_WAIT_TIMEOUT_SECONDS"):
        if name not in extra:
            base.pop(name, None)
    return base


def entrypoint(
    args: list[str], environ: dict[str, str], timeout: float = 180.0, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRYPOINT), *args],
        env=environ,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def closed_port() -> int:
    """A local port nothing listens on (just released by us)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unique_topics(prefix: str) -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    return {name: f"test-{prefix}-{name.split('_')[0].lower()}-{tag}" for name in TOPIC_VARS}


class _Forward(socketserver.BaseRequestHandler):
    """Pipe one client connection to the real broker, both ways."""

    def handle(self) -> None:
        host, port = BROKERS.split(",")[0].rsplit(":", 1)
        with socket.create_connection((host, int(port))) as upstream:

            def pump(src: socket.socket, dst: socket.socket) -> None:
                with contextlib.suppress(OSError):
                    while data := src.recv(65536):
                        dst.sendall(data)
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)

            back = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
            back.start()
            pump(self.request, upstream)
            back.join(10)


# --- No broker / a broker that comes up late -----------------------------------------------


def test_init_recovery_gives_a_cluster_process_its_own_partition_only(tmp_path: Path) -> None:
    """Pod N of a StatefulSet keeps partition N of the set; a pod past the count holds none; a
    second run finds the partition and leaves it; a pod name that is not the set's is refused.
    (The chart's init container; test_helm_cluster.py runs a cluster on what it makes.)"""

    def init(pod: str, directory: Path) -> subprocess.CompletedProcess[str]:
        return entrypoint(
            ["init-recovery"],
            env(
                BYTEWAX_RECOVERY_DIRECTORY=str(directory),
                BYTEWAX_RECOVERY_PARTITIONS="2",
                BYTEWAX_POD_NAME=pod,
                BYTEWAX_STATEFULSET_NAME="flow",
            ),
        )

    for i in range(3):
        proc = init(f"flow-{i}", tmp_path / f"claim-{i}")
        assert proc.returncode == 0, proc.stderr
    assert [sorted(p.name for p in (tmp_path / f"claim-{i}").iterdir()) for i in range(3)] == [
        ["part-0.sqlite3"],
        ["part-1.sqlite3"],
        [],
    ]
    assert "process 2 holds no recovery partition" in proc.stderr
    again = init("flow-1", tmp_path / "claim-1")
    assert again.returncode == 0 and "initialising" not in again.stderr
    bad = init("other-0", tmp_path / "claim-x")
    assert bad.returncode == 1
    assert (
        "BYTEWAX_POD_NAME 'other-0' is not a pod of BYTEWAX_STATEFULSET_NAME 'flow'" in bad.stderr
    )


def test_unknown_or_missing_role_is_a_usage_error() -> None:
    proc = entrypoint(["consumer"], env())
    assert proc.returncode == 2
    assert "unknown role 'consumer'" in proc.stderr
    assert "producer, dataflow, notifier, init-topics, init-recovery or wait" in proc.stderr
    proc = entrypoint([], env())
    assert proc.returncode == 2
    assert "no role given" in proc.stderr


def test_without_a_broker_it_waits_then_fails_naming_the_address(tmp_path: Path) -> None:
    address = f"127.0.0.1:{closed_port()}"
    sent_log = tmp_path / "sent.jsonl"
    began = time.monotonic()
    proc = entrypoint(
        ["producer", "--count", "1", "--log-sent", str(sent_log)],
        env(KAFKA_BROKERS=address, BROKER_WAIT_TIMEOUT_SECONDS="3"),
        timeout=60,
    )
    elapsed = time.monotonic() - began
    assert proc.returncode == 1
    assert f"waiting up to 3 s for a Kafka broker at {address}" in proc.stderr
    assert f"giving up: no Kafka broker at {address} (KAFKA_BROKERS) within 3 s" in proc.stderr
    assert 3 <= elapsed < 20, "it waited for the timeout, then stopped"
    assert "python -m producer" not in proc.stderr and not sent_log.exists(), "no role ran"


def test_bad_settings_fail_before_waiting() -> None:
    began = time.monotonic()
    proc = entrypoint(
        ["dataflow"],
        env(KAFKA_BROKERS=f"127.0.0.1:{closed_port()}", BYTEWAX_WORKERS="two"),
        timeout=60,
    )
    assert proc.returncode == 1
    assert "BYTEWAX_WORKERS must be a whole number >= 1, got 'two'" in proc.stderr
    assert "waiting" not in proc.stderr
    assert time.monotonic() - began < 10


def test_a_bad_security_setting_is_reported_as_such_not_as_a_missing_broker() -> None:
    began = time.monotonic()
    settings = env(
        KAFKA_BROKERS=f"127.0.0.1:{closed_port()}",
        KAFKA_SECURITY_PROTOCOL="SASL",
        BROKER_WAIT_TIMEOUT_SECONDS="30",
    )
    proc = entrypoint(["wait"], settings, timeout=60)
    assert proc.returncode == 2
    assert "KAFKA_SECURITY_PROTOCOL='SASL'" in proc.stderr
    assert "giving up" not in proc.stderr
    assert time.monotonic() - began < 10, "it did not wait for a broker"


def test_it_proceeds_once_a_late_broker_answers(admin: AdminClient) -> None:
    port = closed_port()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), _Forward, bind_and_activate=False)
    server.daemon_threads = True
    server.allow_reuse_address = True
    began = time.monotonic()
    waiter = subprocess.Popen(
        [str(ENTRYPOINT), "wait"],
        cwd=ROOT,
        text=True,
        env=env(KAFKA_BROKERS=f"127.0.0.1:{port}", BROKER_WAIT_TIMEOUT_SECONDS="60"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(3)
        assert waiter.poll() is None, "it must keep waiting while nothing answers"
        server.server_bind()
        server.server_activate()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        _, err = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
        server.shutdown()
        server.server_close()
    assert waiter.returncode == 0, err
    assert 3 <= time.monotonic() - began < 40


# --- With the broker up --------------------------------------------------------------------


def test_it_execs_the_producer_in_place(topic_factory, tmp_path: Path) -> None:
    """Same PID becomes `python -m producer`, so a container's SIGTERM reaches Python."""
    aq, temp = topic_factory("ep-aq"), topic_factory("ep-temp")
    sent_log = tmp_path / "sent.jsonl"
    proc = subprocess.Popen(
        [
            str(ENTRYPOINT),
            "producer",
            "--realtime",
            "--duration",
            "60",
            "--start",
            START,
            "--sensors",
            "2",
            "--air-quality-topic",
            aq,
            "--temperature-topic",
            temp,
            "--log-sent",
            str(sent_log),
        ],
        cwd=ROOT,
        env=env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        cmdline: list[bytes] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
            if (
                b"-m" in cmdline
                and b"producer" in cmdline
                and sent_log.exists()
                and sent_log.stat().st_size > 0
            ):
                break
            time.sleep(0.1)
        assert cmdline[:1] == [sys.executable.encode()], cmdline
        assert cmdline[1:3] == [b"-m", b"producer"], cmdline
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert f"waiting up to 60 s for a Kafka broker at {BROKERS}" in err
    sent = int(re.search(r"sent (\d+) messages \(0 failed\)", err)[1])
    assert 0 < sent < 60 * 4, "SIGTERM stopped a 60 s real-time run early"
    assert len(consume_all(aq)) + len(consume_all(temp)) == sent


def test_dataflow_initialises_recovery_once_and_resumes(topic_factory, tmp_path: Path) -> None:
    topics = {
        "AIR_QUALITY_TOPIC": topic_factory("ep-aq"),
        "TEMPERATURE_TOPIC": topic_factory("ep-temp"),
        "ANOMALIES_TOPIC": topic_factory("ep-anomalies", 1),
        "DLQ_TOPIC": topic_factory("ep-dlq", 1),
    }
    produced = entrypoint(
        [
            "producer",
            "--scenario",
            "overheat",
            "--sensors",
            "4",
            "--duration",
            "60",
            "--start",
            START,
            "--air-quality-topic",
            topics["AIR_QUALITY_TOPIC"],
            "--temperature-topic",
            topics["TEMPERATURE_TOPIC"],
        ],
        env(),
    )
    assert produced.returncode == 0, produced.stderr[-3000:]

    recovery = tmp_path / "state" / "recovery"  # does not exist yet
    flow_env = env(
        **topics,
        KAFKA_TAIL="false",
        BYTEWAX_WORKERS="2",
        BYTEWAX_RECOVERY_DIRECTORY=str(recovery),
        BYTEWAX_RECOVERY_PARTITIONS="2",
    )
    first = entrypoint(["dataflow"], flow_env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "initialising recovery directory" in first.stderr
    assert f"dataflow.main:flow -w 2 -r {recovery} -s 10 -b 0" in first.stderr
    assert sorted(p.name for p in recovery.glob("part-*.sqlite3")) == [
        "part-0.sqlite3",
        "part-1.sqlite3",
    ]
    events = [orjson.loads(m.value()) for m in consume_all(topics["ANOMALIES_TOPIC"])]
    assert [(e["event"], e["sensor_id"], e["threshold_alarm"]) for e in events] == [
        ("open", "2", True)
    ]

    second = entrypoint(["dataflow"], flow_env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "initialising" not in second.stderr, "an initialised directory is reused"
    # Resumed at the snapshotted offsets: nothing is read, scored or written twice.
    assert [orjson.loads(m.value()) for m in consume_all(topics["ANOMALIES_TOPIC"])] == events


def test_init_topics_creates_missing_topics_and_leaves_existing_ones(
    admin: AdminClient,
    topic_factory,
) -> None:
    names = unique_topics("init")
    names["AIR_QUALITY_TOPIC"] = topic_factory("init-aq", 1)  # exists already
    try:
        for _ in range(2):  # a second `docker compose up` runs it again
            proc = entrypoint(["init-topics"], env(**names, TOPIC_PARTITIONS="2"))
            assert proc.returncode == 0, proc.stderr[-3000:]
            assert "topics ready: " + " ".join(names[n] for n in TOPIC_VARS) in proc.stdout
        meta = admin.list_topics(timeout=10).topics
        assert {n: len(meta[names[n]].partitions) for n in TOPIC_VARS} == {
            "AIR_QUALITY_TOPIC": 1,
            "TEMPERATURE_TOPIC": 2,
            "ANOMALIES_TOPIC": 2,
            "DLQ_TOPIC": 2,
        }
    finally:
        delete_topics(admin, [names[n] for n in TOPIC_VARS[1:]])


def test_init_topics_rejects_bad_settings_naming_the_variable(admin: AdminClient) -> None:
    proc = entrypoint(["init-topics"], env(**unique_topics("bad"), TOPIC_PARTITIONS="0"))
    assert proc.returncode != 0
    assert "TOPIC_PARTITIONS" in proc.stderr
    assert not {n for n in admin.list_topics(timeout=10).topics if n.startswith("test-bad-")}


# --- docker-compose.yml's services, run through the entrypoint ------------------------------


def compose_service(name: str) -> tuple[list[str], dict[str, str]]:
    """A service's command and environment as `docker compose up` passes them by default."""
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][name]
    environ = {
        k: INTERPOLATION.sub(lambda m: m.group("default") or "", str(v))
        for k, v in service["environment"].items()
    }
    return service["command"], environ


@contextlib.contextmanager
def compose_pipeline(admin: AdminClient, workdir: Path) -> Iterator[dict[str, str]]:
    """Run the topics, producer and dataflow services in order against the local broker.

    Only what must differ outside Docker is overridden: the broker address, unique topic
    names, a recovery directory under ``workdir``, a free port for the dataflow's metrics API
    (compose enables it on 3030, which may be taken here) and its cache file in ``workdir``;
    and the producer sends 60 s of event time at full speed and the dataflow stops at the end
    of its input, instead of running forever.
    Yields the topic names; deletes the topics afterwards.
    """
    topics = unique_topics("compose")
    overrides = {
        "topics": {},
        "producer": {
            "PRODUCER_REALTIME": "false",
            "PRODUCER_DURATION_SECONDS": "60",
            "PRODUCER_START": START,
        },
        "dataflow": {
            "KAFKA_TAIL": "false",
            "BYTEWAX_RECOVERY_DIRECTORY": str(workdir / "recovery"),
            "BYTEWAX_DATAFLOW_API_PORT": str(free_port()),
            "BYTEWAX_DATAFLOW_API_CACHE_PATH": str(workdir),
        },
    }
    try:
        for name, extra in overrides.items():
            command, environ = compose_service(name)
            environ.update(KAFKA_BROKERS=BROKERS, **topics, **extra)
            proc = entrypoint(command, env(**environ))
            assert proc.returncode == 0, f"{name}: {proc.stderr[-3000:]}"
        yield topics
    finally:
        delete_topics(admin, list(topics.values()))


def test_compose_services_run_end_to_end(admin: AdminClient, tmp_path: Path) -> None:
    with compose_pipeline(admin, tmp_path) as topics:
        meta = admin.list_topics(timeout=10).topics
        assert {len(meta[t].partitions) for t in topics.values()} == {3}  # TOPIC_PARTITIONS
        events = [orjson.loads(m.value()) for m in consume_all(topics["ANOMALIES_TOPIC"])]
        opened = [(e["family"], e["sensor_id"]) for e in events if e["event"] == "open"]
        assert opened == [("temperature", "2")], events  # the overheat scenario's machine
        assert all(e["sensor_id"] == "2" for e in events if e["threshold_alarm"])
        assert consume_all(topics["DLQ_TOPIC"]) == []
        assert list((tmp_path / "recovery").glob("part-*.sqlite3")), "recovery was on"
