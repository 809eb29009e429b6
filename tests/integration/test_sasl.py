"""Secured cluster: producer -> SASL listener -> dataflow -> anomalies, for PLAIN and SCRAM.

One private broker for the module (``scripts/broker.sh`` with ``KAFKA_SASL_PORT`` on free ports in
a temporary directory, users from ``KAFKA_SASL_USERS``, SCRAM credentials written at format time),
so the shared broker is not reconfigured. Clients reach it only through its SASL_PLAINTEXT port,
configured by the ``KAFKA_SECURITY_PROTOCOL`` / ``KAFKA_SASL_*`` variables. Every log the test can
see -- the producer's and the dataflow's output at ``LOG_LEVEL=DEBUG`` with librdkafka's
``debug=all`` (some 5,000 lines a run), broker.sh's output, and everything in the broker's
directory but ``server.properties`` (the broker's own log, the format log, the KRaft metadata
log) -- is scanned for the passwords.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from dataflow.security import KafkaSecurity
from tests.integration.conftest import ROOT, consume_all, free_port, python_env, run_module
from tests.tools import require_tool

START = "2024-03-19T13:57:00"
# Unique per run, so finding one in a log can only mean it leaked; with the punctuation that
# scripts/broker.sh allows, so the JAAS config, the properties file and StorageTool's
# [name=..,password=..] syntax are all exercised.
TAG = uuid.uuid4().hex
USERS = {"alice": f"Al1ce-{TAG}~!@#%^&*()+/?:.", "bob": f"b0b-{TAG[::-1]}_pw"}
# Which user logs in with which mechanism: both users, all three mechanisms.
LOGINS = {"SCRAM-SHA-256": "alice", "SCRAM-SHA-512": "bob", "PLAIN": "alice"}


@dataclass(frozen=True)
class SaslBroker:
    address: str  # the SASL_PLAINTEXT listener; the PLAINTEXT one is never used by clients here
    directory: Path
    start_output: str


def security_env(mechanism: str, user: str, password: str) -> dict[str, str]:
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": mechanism,
        "KAFKA_SASL_USERNAME": user,
        "KAFKA_SASL_PASSWORD": password,
    }


def leaks(text: str | bytes, secrets: list[str]) -> list[str]:
    """The secrets (and their random cores, in case of escaping) found in ``text``."""
    data = text.encode() if isinstance(text, str) else text
    needles = [*secrets, TAG, TAG[::-1]]
    return [n for n in needles if n.encode() in data]


def broker_dir_leaks(directory: Path, secrets: list[str]) -> dict[str, list[str]]:
    """Secrets in any file of the broker's directory but server.properties (which holds them)."""
    found = {}
    # The broker may be running: it deletes segments and topic directories at any time. os.walk
    # passes over a directory that vanishes (Path.rglob raises), and so does this over a file.
    for dirpath, _, filenames in os.walk(directory):
        for name in filenames:
            path = Path(dirpath, name)
            if name == "server.properties" or not path.is_file():
                continue
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue  # deleted since it was listed: it holds nothing now
            hits = leaks(data, secrets)
            if hits:
                found[str(path.relative_to(directory))] = hits
    return found


@pytest.fixture(scope="module")
def sasl_broker(admin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslBroker]:
    """A private broker with a SCRAM/PLAIN SASL listener; ``admin`` skips (or fails) like the
    other integration tests when there is no Kafka at all."""
    require_tool(
        "java",
        "Java 17+, e.g. Debian package `openjdk-17-jre-headless`; the test runs its own broker",
    )
    directory = tmp_path_factory.mktemp("sasl") / "broker"
    sasl_port = free_port()
    env = {
        **os.environ,
        "BROKER_DIR": str(directory),
        "KAFKA_PORT": str(free_port()),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "KAFKA_SASL_PORT": str(sasl_port),
        "KAFKA_SASL_USERS": ",".join(f"{u}:{p}" for u, p in USERS.items()),
    }
    started = subprocess.run(
        [ROOT / "scripts/broker.sh", "start"], env=env, capture_output=True, text=True, timeout=180
    )
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield SaslBroker(f"127.0.0.1:{sasl_port}", directory, started.stdout + started.stderr)
    finally:
        subprocess.run(
            [ROOT / "scripts/broker.sh", "stop"], env=env, capture_output=True, timeout=60
        )
    # After shutdown too: nothing the broker wrote on the way down holds a password.
    assert broker_dir_leaks(directory, list(USERS.values())) == {}


def test_broker_start_sets_up_sasl_without_showing_a_password(sasl_broker: SaslBroker) -> None:
    assert f"SASL_PLAINTEXT {sasl_broker.address}" in sasl_broker.start_output
    assert leaks(sasl_broker.start_output, list(USERS.values())) == []
    props = sasl_broker.directory / "server.properties"
    assert stat.S_IMODE(props.stat().st_mode) == 0o600  # it holds the PLAIN passwords
    assert not (sasl_broker.directory / "format.args").exists()  # the SCRAM @argfile is gone
    assert broker_dir_leaks(sasl_broker.directory, list(USERS.values())) == {}


@pytest.mark.parametrize("mechanism", list(LOGINS))
def test_overheat_alert_through_a_sasl_listener(sasl_broker: SaslBroker, mechanism: str) -> None:
    user = LOGINS[mechanism]
    run = f"sasl-{mechanism.lower()}-{uuid.uuid4().hex[:8]}"
    topics = {
        "AIR_QUALITY_TOPIC": f"{run}-aq",
        "TEMPERATURE_TOPIC": f"{run}-temp",
        "ANOMALIES_TOPIC": f"{run}-anomalies",
        "DLQ_TOPIC": f"{run}-dlq",
    }
    secured = security_env(mechanism, user, USERS[user])
    # As chatty as the programs get: DEBUG for our loggers, every librdkafka debug context in
    # the dataflow (kafka-python stays at WARNING by design: its DEBUG output holds the password).
    env = python_env(
        KAFKA_BROKERS=sasl_broker.address,
        KAFKA_TAIL="false",
        LOG_LEVEL="DEBUG",
        STATUS_INTERVAL_SECONDS="1",
        KAFKA_CONSUMER_CONFIG="debug=all",
        KAFKA_PRODUCER_CONFIG="debug=all",
        **topics,
        **secured,
    )

    produced = run_module(
        [
            "producer",
            "--scenario",
            "overheat",
            "--start",
            START,
            "--duration",
            "40",
            "--sensors",
            "3",
        ],
        env,
        timeout=120,
    )
    flow = run_module(["bytewax.run", "dataflow.main:flow"], env, timeout=180)
    logs = {"producer": produced.stdout + produced.stderr, "dataflow": flow.stdout + flow.stderr}
    assert produced.returncode == 0, logs["producer"][-3000:]
    assert flow.returncode == 0, logs["dataflow"][-3000:]
    assert "sent 240 messages (0 failed)" in logs["producer"]
    assert "sasl.password = [redacted]" in logs["dataflow"]  # librdkafka's debug output was on
    for name, text in logs.items():
        assert f"{mechanism} as '{user}', password ***" in text, f"{name} logged no settings"
        assert leaks(text, list(USERS.values())) == [], f"a password in the {name} output"

    config = {
        "bootstrap.servers": sasl_broker.address,
        **KafkaSecurity.from_env(secured).librdkafka(),
    }
    events = [
        orjson.loads(m.value()) for m in consume_all(topics["ANOMALIES_TOPIC"], config=config)
    ]
    opened = [(e["family"], e["sensor_id"]) for e in events if e["event"] == "open"]
    assert opened == [("temperature", "2")]
    assert consume_all(topics["DLQ_TOPIC"], config=config) == []
    assert broker_dir_leaks(sasl_broker.directory, list(USERS.values())) == {}


def test_wrong_password_fails_the_producer_with_an_authentication_error(
    sasl_broker: SaslBroker,
) -> None:
    wrong = f"wr0ng-{uuid.uuid4().hex}"
    env = python_env(
        KAFKA_BROKERS=sasl_broker.address,
        LOG_LEVEL="DEBUG",
        AIR_QUALITY_TOPIC=f"sasl-wrong-{wrong[-8:]}-aq",
        TEMPERATURE_TOPIC=f"sasl-wrong-{wrong[-8:]}-temp",
        **security_env("SCRAM-SHA-256", "alice", wrong),
    )
    proc = run_module(["producer", "--count", "10"], env, timeout=90)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "authentication failed" in output and "invalid credentials" in output, output
    assert "KAFKA_SASL_PASSWORD" in output  # says what to check
    assert wrong not in output and leaks(output, list(USERS.values())) == []
    assert "sent 0 messages" in output


def test_wrong_password_stops_the_dataflow_at_start_up_with_the_reason(
    sasl_broker: SaslBroker,
) -> None:
    wrong = f"wr0ng-{uuid.uuid4().hex}"
    env = python_env(
        KAFKA_BROKERS=sasl_broker.address,
        LOG_LEVEL="DEBUG",
        KAFKA_TAIL="false",
        **security_env("SCRAM-SHA-256", "alice", wrong),
    )
    began = time.monotonic()
    proc = run_module(["bytewax.run", "dataflow.main:flow"], env, timeout=90)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "refused the login" in output and "invalid credentials" in output, output
    assert "Traceback" not in output
    assert time.monotonic() - began < 20, "it did not wait out the metadata timeout"
    assert wrong not in output and leaks(output, list(USERS.values())) == []


def test_wait_for_broker_logs_in_and_names_a_refused_login(sasl_broker: SaslBroker) -> None:
    script = [
        sys.executable,
        "-m",
        "dataflow.admin",
        "wait",
        "--brokers",
        sasl_broker.address,
        "--timeout",
        "10",
    ]
    # From the repository root, as broker.sh and the entrypoint run it.
    good = subprocess.run(
        script,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **security_env("SCRAM-SHA-512", "bob", USERS["bob"])},
    )
    assert good.returncode == 0, good.stderr
    wrong = f"wr0ng-{uuid.uuid4().hex}"
    bad = subprocess.run(
        [*script[:-1], "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **security_env("SCRAM-SHA-512", "bob", wrong)},
    )
    assert bad.returncode == 1
    assert "SASL authentication error" in bad.stderr, bad.stderr
    assert wrong not in bad.stderr + bad.stdout
    # A PLAINTEXT client on the SASL port gets no answer at all.
    plain = subprocess.run(
        [*script[:-1], "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"},
    )
    assert plain.returncode == 1


@pytest.mark.parametrize(
    ("users", "named"),
    [
        ('alice:has"quote', "user 'alice'"),
        ("alice:has space", "user 'alice'"),
        ("alice:", "user 'alice' has an empty password"),
        ("alice:pw1,alice:pw2", "user 'alice' is given twice"),
        ("al ice:pw", "user name 'al ice'"),
        ("", "KAFKA_SASL_USERS must name at least one"),
    ],
)
def test_broker_rejects_bad_sasl_users_without_echoing_passwords(
    users: str, named: str, tmp_path: Path
) -> None:
    """Checked before anything starts, so this needs neither java nor a broker."""
    env = {
        **os.environ,
        "BROKER_DIR": str(tmp_path / "broker"),
        "KAFKA_PORT": str(free_port()),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "KAFKA_SASL_PORT": str(free_port()),
        "KAFKA_SASL_USERS": users,
    }
    proc = subprocess.run(
        [ROOT / "scripts/broker.sh", "start"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert named in proc.stderr and "KAFKA_SASL_USERS" in proc.stderr, proc.stderr
    for secret in ('has"quote', "has space", "pw1", "pw2"):
        assert secret not in proc.stderr + proc.stdout
    assert not (tmp_path / "broker").exists()  # failed before touching anything
