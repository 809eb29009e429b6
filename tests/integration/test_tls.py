"""TLS: producer -> TLS listener -> dataflow -> anomalies, with and without client certificates
(one of them with an encrypted key), and with a SASL login over TLS.

One private broker for the module (``scripts/broker.sh`` with ``KAFKA_SSL_PORT``,
``KAFKA_MTLS_PORT`` and ``KAFKA_SASL_SSL_PORT`` on free ports in a temporary directory, so the
shared broker is not reconfigured); broker.sh makes its CA and certificates with openssl. Clients
reach it only through its TLS ports, configured by ``KAFKA_SECURITY_PROTOCOL=SSL`` (or
``SASL_SSL``), the ``KAFKA_SSL_*`` and the ``KAFKA_SASL_*`` variables. A second CA, made here,
stands for a client configured with the wrong one, and signs a client certificate the broker must
not accept; its PLAINTEXT port stands for a broker that does not speak TLS.
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
from tests.certs import Pair, encrypt_key, make_ca, make_cert
from tests.integration.conftest import ROOT, consume_all, free_port, python_env, run_module
from tests.tools import require_tool

START = "2024-03-19T13:57:00"
# The clients' own timeouts are 30 s (the dataflow's metadata wait, the producer's bootstrap);
# a refused certificate must be reported well before, with time to spare for a loaded machine.
FAST_S = 15.0
DATAFLOW = ["bytewax.run", "dataflow.main:flow"]
PRODUCER = ["producer", "--count", "10"]
# Unique per run, so finding one in a log can only mean it leaked.
TAG = uuid.uuid4().hex
KEY_PASSWORD = f"key-{TAG}"
SASL_USER, SASL_PASSWORD = "carol", f"c4rol-{TAG[::-1]}"
SECRETS = (KEY_PASSWORD, SASL_PASSWORD, TAG, TAG[::-1])


@dataclass(frozen=True)
class TlsBroker:
    ssl: str  # the TLS listener: the broker shows its certificate, asks for none
    mtls: str  # the mutual-TLS listener: a client certificate from the broker's CA is required
    sasl_ssl: str  # TLS as on ``ssl``, then a SASL login by SASL_USER
    plain: str  # the PLAINTEXT listener: no TLS at all
    tls_dir: Path
    start_output: str
    wrong_ca: Pair  # a CA the broker's certificate is not signed by
    stranger: Pair  # a client certificate signed by wrong_ca
    encrypted: Pair  # the client certificate, its key encrypted with KEY_PASSWORD

    def env(self, *, ca: Path | None = None, client: Pair | None = None) -> dict[str, str]:
        """The client variables: the broker's CA unless ``ca``, a client certificate if given."""
        env = {
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CA_LOCATION": str(ca or self.tls_dir / "ca.pem"),
        }
        if client is not None:
            env |= {
                "KAFKA_SSL_CERT_LOCATION": str(client.cert),
                "KAFKA_SSL_KEY_LOCATION": str(client.key),
            }
        return env

    @property
    def client(self) -> Pair:
        """The client certificate broker.sh made with the broker's CA."""
        return Pair(self.tls_dir / "client.pem", self.tls_dir / "client.key")


@pytest.fixture(scope="module")
def tls_broker(admin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    """A private broker with a TLS and a mutual-TLS listener; ``admin`` skips (or fails) like the
    other integration tests when there is no Kafka at all."""
    require_tool(
        "java",
        "Java 17+, e.g. Debian package `openjdk-17-jre-headless`; the test runs its own broker",
    )
    require_tool("openssl", "Debian package `openssl`; broker.sh makes the broker's certificates")
    directory = tmp_path_factory.mktemp("tls") / "broker"
    ssl_port, mtls_port, sasl_ssl_port, plain_port = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    )
    env = {
        **os.environ,
        "BROKER_DIR": str(directory),
        "KAFKA_PORT": str(plain_port),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "KAFKA_SSL_PORT": str(ssl_port),
        "KAFKA_MTLS_PORT": str(mtls_port),
        "KAFKA_SASL_SSL_PORT": str(sasl_ssl_port),
        "KAFKA_SASL_USERS": f"{SASL_USER}:{SASL_PASSWORD}",
    }
    started = subprocess.run(
        [ROOT / "scripts/broker.sh", "start"], env=env, capture_output=True, text=True, timeout=180
    )
    assert started.returncode == 0, started.stdout + started.stderr
    wrong_ca = make_ca(tmp_path_factory.mktemp("wrong-ca"), "wrong-ca")
    # An encrypted copy of broker.sh's client key, made by openssl as an operator would.
    encrypted_key = tmp_path_factory.mktemp("encrypted") / "client.key"
    try:
        yield TlsBroker(
            f"127.0.0.1:{ssl_port}",
            f"127.0.0.1:{mtls_port}",
            f"127.0.0.1:{sasl_ssl_port}",
            f"127.0.0.1:{plain_port}",
            directory / "tls",
            started.stdout + started.stderr,
            wrong_ca,
            make_cert(wrong_ca, "stranger"),
            Pair(
                directory / "tls" / "client.pem",
                encrypt_key(directory / "tls" / "client.key", encrypted_key, KEY_PASSWORD),
            ),
        )
    finally:
        subprocess.run(
            [ROOT / "scripts/broker.sh", "stop"], env=env, capture_output=True, timeout=60
        )


def test_broker_start_makes_its_certificates_with_private_keys(tls_broker: TlsBroker) -> None:
    out = tls_broker.start_output
    assert f"made a CA and TLS certificates in {tls_broker.tls_dir}" in out
    assert (
        f"SSL {tls_broker.ssl}, mutual TLS {tls_broker.mtls}, SASL_SSL {tls_broker.sasl_ssl}" in out
    )
    assert not [secret for secret in SECRETS if secret in out]
    assert stat.S_IMODE(tls_broker.tls_dir.stat().st_mode) == 0o700
    for key in ("ca.key", "broker.key", "client.key", "broker-keystore.pem"):
        assert stat.S_IMODE((tls_broker.tls_dir / key).stat().st_mode) == 0o600, key
    san = subprocess.run(
        [
            "openssl",
            "x509",
            "-noout",
            "-ext",
            "subjectAltName",
            "-in",
            tls_broker.tls_dir / "broker.pem",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "IP Address:127.0.0.1" in san and "DNS:localhost" in san
    # The default broker directory, where `make broker` would put them, is never committed.
    ignored = subprocess.run(["git", "check-ignore", "-q", ".broker/tls/client.key"], cwd=ROOT)
    assert ignored.returncode == 0


def listener(tls_broker: TlsBroker, how: str) -> tuple[str, dict[str, str]]:
    """The address and the client variables of ``how`` the overheat test connects."""
    if how == "tls":
        return tls_broker.ssl, tls_broker.env()
    if how == "mutual-tls":
        return tls_broker.mtls, tls_broker.env(client=tls_broker.client)
    if how == "mutual-tls-encrypted-key":
        secured = tls_broker.env(client=tls_broker.encrypted)
        return tls_broker.mtls, {**secured, "KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD}
    assert how == "sasl-ssl"
    return tls_broker.sasl_ssl, {
        **tls_broker.env(),
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "KAFKA_SASL_USERNAME": SASL_USER,
        "KAFKA_SASL_PASSWORD": SASL_PASSWORD,
    }


@pytest.mark.parametrize("how", ["tls", "mutual-tls", "mutual-tls-encrypted-key", "sasl-ssl"])
def test_overheat_alert_over_tls(tls_broker: TlsBroker, how: str) -> None:
    """Every client the two programs make (kafka-python's producer, librdkafka's admin,
    consumers and sinks) uses the key password and the SASL login, and shows neither."""
    address, secured = listener(tls_broker, how)
    mutual = how.startswith("mutual")
    run = f"tls-{how[:4]}{uuid.uuid4().hex[:8]}"
    topics = {
        "AIR_QUALITY_TOPIC": f"{run}-aq",
        "TEMPERATURE_TOPIC": f"{run}-temp",
        "ANOMALIES_TOPIC": f"{run}-anomalies",
        "DLQ_TOPIC": f"{run}-dlq",
    }
    env = python_env(
        KAFKA_BROKERS=address,
        KAFKA_TAIL="false",
        LOG_LEVEL="DEBUG",
        STATUS_INTERVAL_SECONDS="1",
        # librdkafka prints every client's settings, the key password among them (masked).
        KAFKA_CONSUMER_CONFIG="debug=conf",
        KAFKA_PRODUCER_CONFIG="debug=conf",
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
    flow = run_module(DATAFLOW, env, timeout=180)
    logs = {"producer": produced.stdout + produced.stderr, "dataflow": flow.stdout + flow.stderr}
    assert produced.returncode == 0, logs["producer"][-3000:]
    assert flow.returncode == 0, logs["dataflow"][-3000:]
    assert "sent 240 messages (0 failed)" in logs["producer"]
    described = KafkaSecurity.from_env(secured).redacted()
    assert ("client certificate" in described) == mutual
    for name, text in logs.items():
        assert f"{address} ({described}" in text, f"{name} logged no TLS settings"
        assert "Traceback" not in text, name
        assert not [secret for secret in SECRETS if secret in text], f"a secret in {name}"
    if how == "mutual-tls-encrypted-key":
        assert "ssl.key.password = [redacted]" in logs["dataflow"]

    config = {"bootstrap.servers": address, **KafkaSecurity.from_env(secured).librdkafka()}
    events = [
        orjson.loads(m.value()) for m in consume_all(topics["ANOMALIES_TOPIC"], config=config)
    ]
    opened = [(e["family"], e["sensor_id"]) for e in events if e["event"] == "open"]
    assert opened == [("temperature", "2")]
    assert consume_all(topics["DLQ_TOPIC"], config=config) == []


def refused(
    tls_broker: TlsBroker, program: list[str], address: str, secured: dict[str, str]
) -> str:
    """Run ``program`` against ``address``; assert it fails fast and cleanly; its output."""
    run = uuid.uuid4().hex[:8]
    env = python_env(
        KAFKA_BROKERS=address,
        KAFKA_TAIL="false",
        AIR_QUALITY_TOPIC=f"{run}-aq",
        TEMPERATURE_TOPIC=f"{run}-temp",
        **secured,
    )
    began = time.monotonic()
    proc = run_module(program, env, timeout=90)
    took = time.monotonic() - began
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert took < FAST_S, f"took {took:.1f} s: it waited out a timeout\n{output}"
    assert "Traceback" not in output
    line = next(
        (x for x in output.splitlines() if f"TLS with Kafka at {address} failed" in x), None
    )
    assert line is not None, output  # one line names the broker, the reason and what to check
    return line


@pytest.mark.parametrize("program", [PRODUCER, DATAFLOW], ids=["producer", "dataflow"])
def test_a_client_with_the_wrong_ca_fails_in_seconds_naming_the_broker_and_the_reason(
    tls_broker: TlsBroker, program: list[str]
) -> None:
    line = refused(tls_broker, program, tls_broker.ssl, tls_broker.env(ca=tls_broker.wrong_ca.cert))
    assert "certificate verify failed" in line
    assert (
        f"KAFKA_SSL_CA_LOCATION must be the CA that signed it ({tls_broker.wrong_ca.cert})" in line
    )


@pytest.mark.parametrize("program", [PRODUCER, DATAFLOW], ids=["producer", "dataflow"])
def test_mutual_tls_refuses_a_client_without_a_certificate(
    tls_broker: TlsBroker, program: list[str]
) -> None:
    line = refused(tls_broker, program, tls_broker.mtls, tls_broker.env())
    assert "alert bad certificate" in line or "alert certificate required" in line, line
    assert "set KAFKA_SSL_CERT_LOCATION and KAFKA_SSL_KEY_LOCATION" in line


def test_mutual_tls_refuses_a_certificate_from_another_ca(tls_broker: TlsBroker) -> None:
    line = refused(
        tls_broker, PRODUCER, tls_broker.mtls, tls_broker.env(client=tls_broker.stranger)
    )
    assert (
        f"did not accept the client certificate KAFKA_SSL_CERT_LOCATION={tls_broker.stranger.cert}"
    ) in line


@pytest.mark.parametrize("program", [PRODUCER, DATAFLOW], ids=["producer", "dataflow"])
def test_a_tls_client_on_a_port_without_tls_fails_in_seconds_saying_so(
    tls_broker: TlsBroker, program: list[str]
) -> None:
    """The broker closes the TLS handshake of a client on its PLAINTEXT port: that comes back on
    every retry, so the client says so at once instead of waiting out its timeout."""
    line = refused(tls_broker, program, tls_broker.plain, tls_broker.env())
    assert "SSL handshake failed" in line, line
    assert "the broker did not speak TLS" in line
    assert "KAFKA_BROKERS must name a listener for KAFKA_SECURITY_PROTOCOL=SSL" in line


def test_wait_for_broker_stops_on_a_port_without_tls(tls_broker: TlsBroker) -> None:
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "dataflow.admin", "wait", "--brokers", tls_broker.plain],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, **tls_broker.env(), "BROKER_WAIT_TIMEOUT_SECONDS": "60"},
    )
    assert proc.returncode == 1, proc.stderr
    assert time.monotonic() - began < FAST_S, proc.stderr
    assert f"error: TLS with Kafka at {tls_broker.plain} failed" in proc.stderr
    assert "the broker did not speak TLS" in proc.stderr and "Traceback" not in proc.stderr


def test_wait_for_broker_answers_over_tls_and_stops_on_the_wrong_ca(
    tls_broker: TlsBroker,
) -> None:
    """The container entrypoint's first step: a wrong CA must not be waited out."""
    script = [sys.executable, "-m", "dataflow.admin", "wait", "--timeout", "60"]
    for address, client in ((tls_broker.ssl, None), (tls_broker.mtls, tls_broker.client)):
        good = subprocess.run(
            [*script, "--brokers", address],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=90,
            env={**os.environ, **tls_broker.env(client=client)},
        )
        assert good.returncode == 0, good.stderr
    began = time.monotonic()
    bad = subprocess.run(
        [*script, "--brokers", tls_broker.ssl],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, **tls_broker.env(ca=tls_broker.wrong_ca.cert)},
    )
    assert bad.returncode == 1
    assert time.monotonic() - began < FAST_S, bad.stderr
    assert f"error: TLS with Kafka at {tls_broker.ssl} failed" in bad.stderr
    assert "certificate verify failed" in bad.stderr and "Traceback" not in bad.stderr
