"""Unit tests for ``producer.sending``: the send loop and its accounting of deliveries, the
SASL/TLS settings reaching every client, and the login probe (no broker: Kafka is faked)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

import dataflow.admin
from dataflow.security import NOT_TLS_AFTER, KafkaSecurity
from producer import sending
from producer.__main__ import main
from producer.settings import parse_settings, parse_start
from producer.shapes import encode
from producer.simulate import AIR_QUALITY, TEMPERATURE, SimulationConfig, generate
from tests import certs
from tests.certs import TlsFiles
from tests.unit.producer.logins import PASSWORD, SCRAM_ENV

# --- The send loop, against a fake kafka-python producer ---------------------------------------


class FakeMetadata:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset


class FakeFuture:
    def __init__(self) -> None:
        self.callbacks: list[Callable[[Any], None]] = []
        self.errbacks: list[Callable[[BaseException], None]] = []

    def add_callback(self, fn: Callable[..., None], *args: Any) -> FakeFuture:
        self.callbacks.append(lambda value: fn(*args, value))
        return self

    def add_errback(self, fn: Callable[..., None], *args: Any) -> FakeFuture:
        self.errbacks.append(lambda exc: fn(*args, exc))
        return self


class FakeProducer:
    """Resolves futures on flush; fails every message whose key is in ``fail_keys``."""

    instances: ClassVar[list[FakeProducer]] = []
    fail_keys: ClassVar[set[bytes]] = set()

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.pending: list[tuple[str, bytes, FakeFuture]] = []
        self.offsets: dict[str, int] = {}
        self.closed = False
        FakeProducer.instances.append(self)

    def send(self, topic: str, value: bytes, key: bytes) -> FakeFuture:
        self.sent.append((topic, key, value))
        future = FakeFuture()
        self.pending.append((topic, key, future))
        return future

    def flush(self, timeout: float | None = None) -> None:
        for topic, key, future in self.pending:
            if key in self.fail_keys:
                for errback in future.errbacks:
                    errback(RuntimeError("boom"))
            else:
                offset = self.offsets.get(topic, 0)
                self.offsets[topic] = offset + 1
                for callback in future.callbacks:
                    callback(FakeMetadata(topic, 0, offset))
        self.pending.clear()

    def close(self, timeout: float | None = None) -> None:
        from kafka.errors import KafkaTimeoutError

        if self.pending:  # like kafka-python: close() flushes and raises if it can't
            raise KafkaTimeoutError("Timeout waiting for future")
        self.closed = True


@pytest.fixture
def fake_kafka(monkeypatch: pytest.MonkeyPatch) -> type[FakeProducer]:
    import kafka

    created: list[tuple[tuple[str, ...], list[str], int]] = []
    FakeProducer.instances = []
    FakeProducer.fail_keys = set()
    monkeypatch.setattr(kafka, "KafkaProducer", FakeProducer)

    def ensure_topics(brokers, topics, partitions, security=None, stop=None) -> None:
        created.append((tuple(brokers), list(topics), partitions))

    monkeypatch.setattr(sending, "ensure_topics", ensure_topics)
    FakeProducer.created_topics = created  # type: ignore[attr-defined]
    return FakeProducer


def test_run_sends_exactly_the_simulated_messages_and_logs_deliveries(
    fake_kafka: type[FakeProducer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_path = tmp_path / "sent.jsonl"
    argv = [
        "--sensors", "2", "--duration", "3", "--start", "2024-03-19T13:57:06",
        "--scenario", "overheat", "--overheat-sensor", "1",
        "--temperature-topic", "temps", "--log-sent", str(log_path), "--partitions", "4",
    ]  # fmt: skip
    assert main(argv) == 0
    (producer,) = fake_kafka.instances
    assert producer.closed
    assert fake_kafka.created_topics == [  # type: ignore[attr-defined]
        (("127.0.0.1:9092",), ["air-quality", "temps"], 4)
    ]
    expected = SimulationConfig(
        start_ns=parse_start("2024-03-19T13:57:06") or 0,
        sensors=2,
        duration_s=3,
        scenario="overheat",
        overheat_sensor="1",
    )
    topics = {AIR_QUALITY: "air-quality", TEMPERATURE: "temps"}
    assert producer.sent == [(topics[r.family], *encode(r)) for r in generate(expected)]
    assert len(producer.sent) == 12

    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert len(lines) == 12
    assert lines[0] == {
        "topic": "air-quality",
        "key": "Sensor1",
        "value": json.loads(producer.sent[0][2]),
        "partition": 0,
        "offset": 0,
    }
    assert all(isinstance(line["value"], dict) for line in lines)
    assert "sent 12 messages (0 failed)" in capsys.readouterr().err


def test_history_goes_first_then_the_run_says_it_switched(
    fake_kafka: type[FakeProducer], caplog: pytest.LogCaptureFixture
) -> None:
    argv = [
        "--sensors", "3", "--duration", "4", "--start", "2024-03-19T13:57:06",
        "--history", "30", "--history-skip", "2", "--scenario", "overheat,shift",
    ]  # fmt: skip
    with caplog.at_level(logging.INFO, logger="producer"):
        assert main(argv) == 0
    (producer,) = fake_kafka.instances
    expected = SimulationConfig(
        start_ns=parse_start("2024-03-19T13:57:06") or 0,
        sensors=3,
        duration_s=4,
        history_s=30,
        history_skip=("2",),
        scenario="overheat,shift",
    )
    topics = {AIR_QUALITY: "air-quality", TEMPERATURE: "temperature_readings"}
    assert producer.sent == [(topics[r.family], *encode(r)) for r in generate(expected)]
    assert len(producer.sent) == 30 * 5 + 4 * 6
    switched = [r.getMessage() for r in caplog.records if "history sent" in r.getMessage()]
    assert len(switched) == 1 and switched[0].startswith("history sent: 150 messages in ")


def test_run_reports_failed_deliveries_and_exits_nonzero(
    fake_kafka: type[FakeProducer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_kafka.fail_keys = {b"0"}
    log_path = tmp_path / "sent.jsonl"
    argv = ["--sensors", "2", "--count", "8", "--start", "now", "--log-sent", str(log_path)]
    assert main(argv) == 1
    assert "sent 8 messages (2 failed)" in capsys.readouterr().err
    logged = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert len(logged) == 6 and all(line["key"] != "0" for line in logged)


def test_flush_timeout_aborts_pending_and_counts_them_failed(
    fake_kafka: type[FakeProducer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Broker gone at shutdown: flush times out, pending records are aborted, exit 1."""
    from kafka.errors import KafkaTimeoutError

    class Sender:
        def __init__(self, producer: FakeProducer) -> None:
            self.producer = producer

        def force_close(self) -> None:
            for _, _, future in self.producer.pending:
                for errback in future.errbacks:
                    errback(RuntimeError("Producer is closed forcefully."))
            self.producer.pending.clear()

    def flush_times_out(self: FakeProducer, timeout: float | None = None) -> None:
        raise KafkaTimeoutError("Timeout waiting for future")

    original_init = FakeProducer.__init__

    def init_with_sender(self: FakeProducer, **config: Any) -> None:
        original_init(self, **config)
        self._sender = Sender(self)  # type: ignore[attr-defined]

    monkeypatch.setattr(FakeProducer, "flush", flush_times_out)
    monkeypatch.setattr(FakeProducer, "__init__", init_with_sender)
    assert main(["--count", "6", "--start", "now"]) == 1
    (producer,) = fake_kafka.instances
    assert producer.closed
    assert "sent 6 messages (6 failed)" in capsys.readouterr().err


def test_run_stops_when_asked_and_still_flushes(fake_kafka: type[FakeProducer]) -> None:
    stop = threading.Event()
    stop.set()
    settings = parse_settings(["--count", "5"], environ={})
    assert sending.run(settings, stop) == 0
    (producer,) = fake_kafka.instances
    assert producer.sent == [] and producer.closed


def test_unreachable_kafka_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kafka.errors import KafkaTimeoutError

    def unreachable(*args: Any) -> None:
        raise KafkaTimeoutError("Unable to bootstrap")

    monkeypatch.setattr(sending, "ensure_topics", unreachable)
    assert main(["--count", "1"]) == 1
    assert "sent 0 messages (0 failed)" in capsys.readouterr().err


# --- Security settings (SASL/TLS from the environment) ------------------------------------------


class FakeAdmin:
    """confluent-kafka's ``AdminClient`` as ``dataflow.admin`` uses it: both topics exist."""

    instances: ClassVar[list[FakeAdmin]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        FakeAdmin.instances.append(self)

    def list_topics(self, timeout: float) -> Any:
        return SimpleNamespace(topics={"air-quality": None, "temperature_readings": None})


def test_security_settings_reach_the_producer_and_the_admin_client(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import kafka

    caplog.set_level(logging.DEBUG)

    FakeProducer.instances, FakeProducer.fail_keys, FakeAdmin.instances = [], set(), []
    monkeypatch.setattr(kafka, "KafkaProducer", FakeProducer)
    monkeypatch.setattr(dataflow.admin, "AdminClient", FakeAdmin)  # the real ensure_topics runs
    probed: list[tuple[tuple[str, ...], KafkaSecurity]] = []
    monkeypatch.setattr(sending, "check_login", lambda brokers, sec: probed.append((brokers, sec)))
    for name, value in SCRAM_ENV.items():
        monkeypatch.setenv(name, value)
    assert main(["--count", "4", "--start", "now", "--log-level", "DEBUG"]) == 0

    expected = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "alice",
        "sasl_plain_password": PASSWORD,
    }
    (admin,) = FakeAdmin.instances
    (producer,) = FakeProducer.instances
    assert KafkaSecurity.from_env(SCRAM_ENV).librdkafka().items() <= admin.config.items()
    assert expected.items() <= producer.config.items() and len(producer.sent) == 4
    assert probed == [(("127.0.0.1:9092",), KafkaSecurity.from_env(SCRAM_ENV))]
    out = capsys.readouterr().err + caplog.text
    assert "SASL_PLAINTEXT, SCRAM-SHA-256 as 'alice', password ***" in out
    assert PASSWORD not in out


def test_plaintext_is_the_default_and_skips_the_login_probe(
    fake_kafka: type[FakeProducer], monkeypatch: pytest.MonkeyPatch
) -> None:
    import confluent_kafka.admin

    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("no probe without SASL")

    monkeypatch.setattr(confluent_kafka.admin, "AdminClient", boom)
    assert main(["--count", "2", "--start", "now"]) == 0
    (producer,) = fake_kafka.instances
    assert producer.config["security_protocol"] == "PLAINTEXT"
    assert not any(key.startswith("sasl_") for key in producer.config)


def test_refused_login_exits_1_with_a_clear_message_and_no_password(
    fake_kafka: type[FakeProducer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    def refuse(brokers: Any, security: KafkaSecurity) -> None:
        raise sending.LoginRefused(
            "SASL authentication error: Authentication failed during "
            "authentication due to invalid credentials"
        )

    monkeypatch.setattr(sending, "check_login", refuse)
    for name, value in SCRAM_ENV.items():
        monkeypatch.setenv(name, value)
    assert main(["--count", "1"]) == 1
    assert fake_kafka.instances == []  # no producer after a refused login
    out = capsys.readouterr().err + caplog.text
    assert "authentication failed at 127.0.0.1:9092" in out
    assert "invalid credentials" in out and "KAFKA_SASL_PASSWORD" in out
    assert "sent 0 messages (0 failed)" in out
    assert PASSWORD not in out


class FakeConfluentAdmin:
    """Reports ``errors`` through error_cb when polled; ``answers`` says if metadata works."""

    errors: ClassVar[list[Any]] = []
    answers: ClassVar[bool] = False
    configs: ClassVar[list[dict[str, Any]]] = []
    metadata_requests: ClassVar[int] = 0

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        FakeConfluentAdmin.configs.append(config)

    def list_topics(self, timeout: float) -> object:
        from confluent_kafka import KafkaError, KafkaException

        FakeConfluentAdmin.metadata_requests += 1
        if self.answers:
            return object()
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Failed to get metadata"))

    def poll(self, timeout: float) -> int:
        for error in self.errors:
            self.config["error_cb"](error)
        return len(self.errors)


@pytest.fixture
def confluent_admin(monkeypatch: pytest.MonkeyPatch) -> type[FakeConfluentAdmin]:
    import confluent_kafka.admin

    FakeConfluentAdmin.errors, FakeConfluentAdmin.answers = [], False
    FakeConfluentAdmin.configs, FakeConfluentAdmin.metadata_requests = [], 0
    monkeypatch.setattr(confluent_kafka.admin, "AdminClient", FakeConfluentAdmin)
    return FakeConfluentAdmin


def test_check_login_names_the_refusal_and_masks_the_password(
    confluent_admin: type[FakeConfluentAdmin],
) -> None:
    from confluent_kafka import KafkaError

    confluent_admin.errors = [
        KafkaError(
            KafkaError._AUTHENTICATION,
            f"SASL authentication error: invalid credentials (echoing {PASSWORD})",
        )
    ]
    security = KafkaSecurity.from_env(SCRAM_ENV)
    with pytest.raises(sending.LoginRefused) as exc:
        sending.check_login(("h:1",), security)
    assert "invalid credentials" in str(exc.value)
    assert PASSWORD not in str(exc.value) and "***" in str(exc.value)
    (config,) = confluent_admin.configs
    assert config["bootstrap.servers"] == "h:1"
    assert security.librdkafka().items() <= config.items()


@pytest.mark.parametrize("answers", [True, False])
def test_check_login_leaves_other_outcomes_to_kafka_python(
    answers: bool, confluent_admin: type[FakeConfluentAdmin]
) -> None:
    """A broker that answers, or none at all: no error here, and no retrying until the probe's
    timeout either: one metadata request, then the probe gives up (the fake never blocks, so a
    probe that kept asking would show in the count, not as a slow test)."""
    from confluent_kafka import KafkaError

    confluent_admin.answers = answers
    confluent_admin.errors = [KafkaError(KafkaError._TRANSPORT, "Connection refused")]
    assert sending.check_login(("h:1",), KafkaSecurity.from_env(SCRAM_ENV)) is None
    assert confluent_admin.metadata_requests == 1


@pytest.fixture
def mtls_env(tls_files: TlsFiles) -> dict[str, str]:
    """SSL with a CA and a client certificate: real files, as the settings load them."""
    return certs.mtls_env(tls_files)


def test_tls_settings_reach_the_producer_the_admin_client_and_the_probe(
    mtls_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import kafka

    FakeProducer.instances, FakeProducer.fail_keys, FakeAdmin.instances = [], set(), []
    monkeypatch.setattr(kafka, "KafkaProducer", FakeProducer)
    monkeypatch.setattr(dataflow.admin, "AdminClient", FakeAdmin)
    probed: list[KafkaSecurity] = []
    monkeypatch.setattr(sending, "check_login", lambda brokers, sec: probed.append(sec))
    for name, value in mtls_env.items():
        monkeypatch.setenv(name, value)
    assert main(["--count", "2", "--start", "now"]) == 0
    expected = {
        "security_protocol": "SSL",
        "ssl_cafile": mtls_env["KAFKA_SSL_CA_LOCATION"],
        "ssl_certfile": mtls_env["KAFKA_SSL_CERT_LOCATION"],
        "ssl_keyfile": mtls_env["KAFKA_SSL_KEY_LOCATION"],
    }
    (admin,) = FakeAdmin.instances
    (producer,) = FakeProducer.instances
    assert KafkaSecurity.from_env(mtls_env).librdkafka().items() <= admin.config.items()
    assert expected.items() <= producer.config.items()
    assert probed == [KafkaSecurity.from_env(mtls_env)]  # TLS alone is probed too


@pytest.mark.parametrize(
    ("code", "text", "named"),
    [
        (
            "_SSL",
            "ssl://h:1/bootstrap: SSL handshake failed: error:0A000086:SSL routines::"
            "certificate verify failed: broker certificate could not be verified",
            "KAFKA_SSL_CA_LOCATION",
        ),
        # A rejected client certificate is a _TRANSPORT error, like a broker that is down: it
        # must not be taken for one (that would leave it to kafka-python's 30 s timeout).
        (
            "_TRANSPORT",
            "ssl://h:1/bootstrap: Receive failed: error:0A000412:SSL routines::"
            "ssl/tls alert bad certificate: SSL alert number 42",
            "KAFKA_SSL_CERT_LOCATION=",
        ),
    ],
)
def test_check_login_names_a_tls_refusal_at_once(
    code: str,
    text: str,
    named: str,
    mtls_env: dict[str, str],
    confluent_admin: type[FakeConfluentAdmin],
) -> None:
    from confluent_kafka import KafkaError

    confluent_admin.errors = [
        KafkaError(getattr(KafkaError, code), text),
        KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"),
    ]
    with pytest.raises(sending.TlsRefused) as exc:
        sending.check_login(("h:1",), KafkaSecurity.from_env(mtls_env))
    assert confluent_admin.metadata_requests == 1  # at the first answer, not after retrying
    assert str(exc.value).startswith(f"{text}; ") and named in str(exc.value)


def test_check_login_names_a_broker_without_tls(
    mtls_env: dict[str, str], confluent_admin: type[FakeConfluentAdmin]
) -> None:
    """Handshakes closed by a listener without TLS are _TRANSPORT errors, like a broker that is
    down; the probe must read them, or the producer waits out a timeout."""
    from confluent_kafka import KafkaError

    closed = (
        "ssl://h:1/bootstrap: SSL handshake failed: Disconnected: SSL connection closed by "
        "peer: connecting to a PLAINTEXT broker listener? (after 1ms in state SSL_HANDSHAKE)"
    )
    confluent_admin.errors = [KafkaError(KafkaError._TRANSPORT, closed)] * NOT_TLS_AFTER
    with pytest.raises(sending.TlsRefused) as exc:
        sending.check_login(("h:1",), KafkaSecurity.from_env(mtls_env))
    assert confluent_admin.metadata_requests == 1
    assert str(exc.value).startswith(f"{closed}; the broker did not speak TLS")


def test_refused_tls_exits_1_with_one_clear_line(
    mtls_env: dict[str, str],
    fake_kafka: type[FakeProducer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def refuse(brokers: Any, security: KafkaSecurity) -> None:
        raise sending.TlsRefused("SSL handshake failed: certificate verify failed; check it")

    monkeypatch.setattr(sending, "check_login", refuse)
    for name, value in mtls_env.items():
        monkeypatch.setenv(name, value)
    assert main(["--count", "1"]) == 1
    assert fake_kafka.instances == []  # no producer after a refusal
    out = capsys.readouterr().err + caplog.text
    assert (
        f"TLS with Kafka at 127.0.0.1:9092 failed (SSL, CA {mtls_env['KAFKA_SSL_CA_LOCATION']}"
        ", client certificate "
    ) in out
    assert "certificate verify failed; check it" in out
    assert "sent 0 messages (0 failed)" in out


def test_a_stop_while_the_broker_is_awaited_ends_the_run_at_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SIGTERM sets ``stop``; the wait for a broker did not look at it and ran its 30 s, past a
    container's stop timeout. Now: exit 0 with the summary line, within an attempt or two."""
    import time

    from producer.settings import parse_settings

    settings = parse_settings(["--brokers", "127.0.0.1:1"], {})
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    began = time.monotonic()
    assert sending.run(settings, stop) == sending.EXIT_OK
    assert time.monotonic() - began < sending.BOOTSTRAP_TIMEOUT_MS / 1000 / 3
    assert capsys.readouterr().err.endswith("sent 0 messages (0 failed)\n")
