"""The notifier's pure logic (record -> Alertmanager alert, open set, resend, backoff,
settings) and its loop's ordering on fakes: no Kafka, no Alertmanager."""

from __future__ import annotations

import base64
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from dataflow.admin import StartupError
from dataflow.config import ConfigError
from dataflow.security import SECURITY_OPTIONS
from notifier import kafka as notifier_kafka
from notifier.__main__ import main, usage
from notifier.alertmanager import Alertmanager, DeliveryError
from notifier.alerts import (
    ALERTNAME,
    AmAlert,
    BadRecord,
    OpenAlerts,
    ResendClock,
    Resolved,
    alert_of,
    collapse,
    parse_go_duration,
    severity_of,
    state_value,
)
from notifier.backoff import Backoff
from notifier.config import ENV_DOCS, OPTIONS, Settings
from notifier.kafka import ensure_state_topic
from notifier.service import Notifier

NOW = datetime(2026, 11, 22, 21, 0, 0, tzinfo=UTC)
OPENED = "2026-11-22T20:28:20.000Z"
NOW_TEXT = "2026-11-22T21:00:00.000Z"


def record(
    event: str = "open",
    *,
    sensor: str = "2",
    reasons: tuple[str, ...] = ("threshold",),
    window: str = "20:28:20",
    mean: float | None = 97.082,
    alert_id: str | None = None,
    **extra: object,
) -> dict:
    start = f"2026-11-22T{window}.000Z"
    end_dt = datetime.fromisoformat(start.replace("Z", "+00:00")) + timedelta(seconds=5)
    rec = {
        "event": event,
        "alert_id": alert_id or f"temperature/{sensor}@1795379300000000000",
        "state": "resolved" if event == "resolved" else "open",
        "resolution": "clean" if event == "resolved" else None,
        "family": "temperature",
        "sensor_id": sensor,
        "window_start": start,
        "window_end": end_dt.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "count": 5,
        "mean": mean,
        "reasons": [] if event == "resolved" else list(reasons),
        "silent_seconds": None,
        "alert": {
            "opened_at": OPENED,
            "anomalous_windows": 1,
            "peak_mean": 97.082,
            "peak_at": OPENED,
            "peak_score": 0.0,
            "reasons": list(reasons),
        },
    }
    rec.update(extra)
    return rec


# --- record -> Alertmanager alert ----------------------------------------------------------


def test_open_record_becomes_a_firing_alert_with_the_issue_labels() -> None:
    alert = alert_of(record(unit="°C"))
    assert dict(alert.labels) == {
        "alertname": ALERTNAME,
        "family": "temperature",
        "sensor_id": "2",
        "severity": "critical",
        "alert_id": "temperature/2@1795379300000000000",
    }
    payload = alert.payload()
    assert payload["startsAt"] == OPENED  # the opening window's start, not now
    assert "endsAt" not in payload  # firing: Alertmanager applies its resolve_timeout
    notes = payload["annotations"]
    assert notes["mean"] == "97.082" and notes["unit"] == "°C"
    assert notes["window"] == "2026-11-22T20:28:20.000Z/2026-11-22T20:28:25.000Z"
    assert notes["reasons"] == "threshold"
    assert notes["summary"] == (
        "temperature/2: mean 97.082 °C over 20:28:20-20:28:25 UTC "
        "(threshold), open since 20:28:20 UTC"
    )
    assert "\n" not in notes["summary"]
    assert all(isinstance(v, str) for v in notes.values())


def test_unit_is_left_out_when_the_record_has_none() -> None:
    notes = alert_of(record()).annotations
    assert "unit" not in notes and "mean 97.082 over" in notes["summary"]


@pytest.mark.parametrize(
    ("alert_extra", "reasons", "expected"),
    [
        ({}, ("threshold",), "critical"),
        ({}, ("ml",), "warning"),
        ({}, ("ml", "threshold"), "critical"),
        ({"severity": "warning"}, ("threshold",), "warning"),  # the dataflow's word wins
        ({"severity": None}, ("ml",), "warning"),
    ],
)
def test_severity_comes_from_the_alert_else_from_its_reasons(
    alert_extra, reasons, expected
) -> None:
    rec = record(reasons=reasons)
    rec["alert"].update(alert_extra)
    assert severity_of(rec) == expected


@pytest.mark.parametrize(
    "broken",
    [
        {"alert": None},
        {"alert_id": None, "alert": {}},
        {"family": None, "alert": {"x": 1}},
    ],
)
def test_an_unreadable_alert_record_is_a_bad_record(broken: dict) -> None:
    rec = record()
    rec.update(broken)
    with pytest.raises(BadRecord):
        OpenAlerts().apply(rec, NOW)


def test_not_an_object_is_a_bad_record() -> None:
    with pytest.raises(BadRecord):
        OpenAlerts().apply(["open"], NOW)  # type: ignore[arg-type]


# --- the open set and label stability ------------------------------------------------------


def test_open_update_resolved_keep_one_label_set_and_the_start() -> None:
    alerts = OpenAlerts()
    opened = alerts.apply(record("open"), NOW)
    updated = alerts.apply(record("update", window="20:29:20", mean=99.5), NOW)
    resolved = alerts.apply(record("resolved", window="20:31:00", mean=60.0), NOW)
    posts = opened.posts + updated.posts + resolved.posts
    assert len(posts) == 3
    assert {p.key for p in posts} == {opened.posts[0].key}
    assert {p.starts_at for p in posts} == {OPENED}
    assert [p.ends_at for p in posts] == [None, None, "2026-11-22T20:31:05.000Z"]
    assert updated.posts[0].annotations["mean"] == "99.5"
    assert "resolved (clean windows)" in resolved.posts[0].annotations["summary"]
    assert len(alerts) == 0


def test_state_writes_put_the_open_alert_and_mark_it_resolved() -> None:
    alerts = OpenAlerts()
    aid = "temperature/2@1795379300000000000"
    opened = alerts.apply(record("open"), NOW)
    assert opened.state == {aid: opened.posts[0]}
    resolved = alerts.apply(record("resolved", window="20:31:00"), NOW)
    assert resolved.state == {aid: Resolved("2026-11-22T20:31:05.000Z")}
    assert resolved.state[aid].payload() == {"resolved": resolved.posts[0].ends_at}


def test_escalation_resolves_the_old_label_set_and_fires_the_new_one() -> None:
    alerts = OpenAlerts()
    warn = alerts.apply(record("open", reasons=("ml",)), NOW).posts[0]
    assert warn.labels["severity"] == "warning"
    change = alerts.apply(record("update", reasons=("ml", "threshold")), NOW)
    old, new = change.posts
    assert old.key == warn.key and old.ends_at is not None
    assert new.labels["severity"] == "critical" and new.ends_at is None
    assert new.starts_at == OPENED and new.labels["alert_id"] == warn.labels["alert_id"]
    # Never back down within the episode: a later record saying warning keeps critical.
    rec = record("update", reasons=("ml",))
    rec["alert"]["severity"] = "warning"
    again = alerts.apply(rec, NOW).posts
    assert [p.labels["severity"] for p in again] == ["critical"]
    resolved = alerts.apply(record("resolved", window="20:40:00"), NOW).posts
    assert [p.key for p in resolved] == [new.key] and resolved[0].ends_at


def test_resolved_end_is_never_in_the_future_nor_before_the_start() -> None:
    early_now = datetime(2026, 11, 22, 20, 30, 0, tzinfo=UTC)
    alerts = OpenAlerts()
    alerts.apply(record("open"), early_now)
    # A sensor clock running ahead: its resolving window ends after now.
    [post] = alerts.apply(record("resolved", window="20:45:00"), early_now).posts
    assert post.ends_at == "2026-11-22T20:30:00.000Z"
    # An end not after the start: the start moves back, the end stays (never in the future).
    before_start = datetime(2026, 11, 22, 20, 0, 0, tzinfo=UTC)
    ended = AmAlert({"a": "b"}, {}, OPENED).ended(before_start)
    assert ended.ends_at == "2026-11-22T20:00:00.000Z"
    assert ended.starts_at == "2026-11-22T19:59:59.999Z"


def test_a_sensor_clock_ahead_starts_now_and_ends_by_now() -> None:
    """opened_at an hour after now: Alertmanager would refuse the firing alert (400) and keep
    the resolved one firing until its future end."""
    now = datetime(2026, 11, 22, 19, 28, 20, tzinfo=UTC)  # an hour before OPENED
    alerts = OpenAlerts()
    [opened] = alerts.apply(record("open"), now).posts
    assert opened.starts_at == "2026-11-22T19:28:20.000Z" and opened.ends_at is None
    later = now + timedelta(minutes=1)
    [updated] = alerts.apply(record("update", window="20:29:20"), later).posts
    assert updated.starts_at == opened.starts_at  # the start first posted, not a moving one
    assert alerts.firing(later)[0].starts_at == opened.starts_at
    resolve_at = now + timedelta(minutes=2)
    [resolved] = alerts.apply(record("resolved", window="20:31:00"), resolve_at).posts
    assert resolved.starts_at == opened.starts_at
    assert resolved.ends_at == "2026-11-22T19:30:20.000Z"  # now, not the sensor's future
    # A resolve seen without its open (state lost): start and end both by now, in order.
    [alone] = OpenAlerts().apply(record("resolved", window="20:31:00"), resolve_at).posts
    assert alone.ends_at == "2026-11-22T19:30:20.000Z"
    assert alone.starts_at == "2026-11-22T19:30:19.999Z"


def test_a_state_record_starting_in_the_future_is_re_sent_starting_now() -> None:
    alerts = OpenAlerts()
    alerts.load("a", AmAlert({"alert_id": "a"}, {}, "2026-11-22T22:00:00.000Z"))
    [alert] = alerts.firing(NOW)
    assert alert.starts_at == "2026-11-22T21:00:00.000Z"


def test_a_stale_resolution_ends_now_and_says_why() -> None:
    alerts = OpenAlerts()
    alerts.apply(record("open"), NOW)
    stale = record(
        "resolved",
        window_start=None,
        window_end=None,
        mean=None,
        resolution="stale",
        silent_seconds=300.0,
    )
    [post] = alerts.apply(stale, NOW).posts
    assert post.ends_at == "2026-11-22T21:00:00.000Z"
    assert "silent for 300 s" in post.annotations["summary"]


def test_a_resolve_for_an_alert_not_in_the_set_is_still_posted() -> None:
    """After a crash between the post and the commit, the resolve is read again once the
    state forgot the alert: Alertmanager gets the resolution once more (harmless)."""
    [post] = OpenAlerts().apply(record("resolved", window="20:31:00"), NOW).posts
    assert post.labels["severity"] == "critical" and post.ends_at


def test_forgotten_sensor_resolves_its_open_alert() -> None:
    alerts = OpenAlerts()
    alerts.apply(record("open"), NOW)
    alerts.apply(record("open", sensor="3"), NOW)
    forgotten = {
        "event": "forgotten",
        "alert_id": None,
        "family": "temperature",
        "sensor_id": "2",
        "silent_seconds": 604800.0,
    }
    change = alerts.apply(forgotten, NOW)
    assert [p.labels["sensor_id"] for p in change.posts] == ["2"]
    assert change.posts[0].ends_at is not None
    assert len(alerts) == 1


def test_a_new_alert_of_a_sensor_closes_its_older_one() -> None:
    alerts = OpenAlerts()
    alerts.apply(record("open"), NOW)
    change = alerts.apply(record("open", alert_id="temperature/2@1795380000000000000"), NOW)
    assert [p.ends_at is None for p in change.posts] == [False, True]
    assert change.state["temperature/2@1795379300000000000"] == Resolved(NOW_TEXT)
    assert len(alerts) == 1


def test_window_records_change_nothing() -> None:
    alerts = OpenAlerts()
    change = alerts.apply(record("window", alert_id=None, alert=None), NOW)
    assert change.posts == [] and change.state == {} and len(alerts) == 0


def test_state_rebuild_from_puts_and_tombstones() -> None:
    live = OpenAlerts()
    writes: list[tuple[str, AmAlert | None]] = []
    for rec in (
        record("open"),
        record("open", sensor="3"),
        record("update", window="20:29:00"),
        record("resolved", sensor="3", window="20:30:00"),
    ):
        writes.extend(live.apply(rec, NOW).state.items())
    # Through the wire format, as the state topic stores them.
    stored = [(k, None if v is None else orjson.dumps(v.payload())) for k, v in writes]
    rebuilt = OpenAlerts()
    for key, value in stored:
        rebuilt.load(key, None if value is None else state_value(key, orjson.loads(value)))
    assert rebuilt.firing() == live.firing()
    assert [a.labels["sensor_id"] for a in rebuilt.firing()] == ["2"]
    # The resolved alert of sensor 3 is remembered across the restart: a replay stays quiet.
    assert rebuilt.resolved == 1
    replay = rebuilt.apply(record("open", sensor="3"), NOW)
    assert (
        replay.posts == []
        and replay.state == {}
        and replay.replayed == ["temperature/3@1795379300000000000"]
    )
    assert rebuilt.firing()[0].annotations["window"].startswith("2026-11-22T20:29:00")


def test_collapse_keeps_the_last_alert_per_label_set() -> None:
    a1 = AmAlert({"x": "1"}, {}, OPENED)
    b = AmAlert({"x": "2"}, {}, OPENED)
    a2 = a1.ended(NOW)
    assert collapse([a1, b, a2]) == [b, a2]


# --- resend and backoff --------------------------------------------------------------------


def test_resend_clock_is_due_at_once_then_every_interval_and_when_forced() -> None:
    clock = ResendClock(60)
    assert clock.due(1000.0) and clock.wait(1000.0) == 0
    clock.sent(1000.0)
    assert not clock.due(1059.9) and clock.wait(1030.0) == pytest.approx(30.0)
    assert clock.due(1060.0)
    clock.force()
    assert clock.due(1001.0)


def test_backoff_doubles_up_to_its_maximum_and_resets() -> None:
    backoff = Backoff(0.5, 30, jitter=0.2, rng=lambda: 0.0)
    assert [backoff.next_delay() for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    backoff.reset()
    assert backoff.next_delay() == 0.5
    jittered = Backoff(1, 1, jitter=0.2, rng=lambda: 1.0)
    assert jittered.next_delay() == pytest.approx(0.8)
    long = Backoff(0.5, 30)
    assert all(0 < long.next_delay() <= 30 for _ in range(2000))  # no overflow, never above


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(5, 1)


@pytest.mark.parametrize(
    ("text", "seconds"), [("5m", 300), ("1h30m", 5400), ("90s", 90), ("500ms", 0.5), ("1d", 86400)]
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m", "5x"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)


# --- settings -------------------------------------------------------------------------------


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.alertmanager_url == "http://127.0.0.1:9093"
    assert settings.anomalies_topic == "anomalies" and settings.group == "notifier"
    assert settings.resend_seconds * 3 <= settings.resolve_timeout_seconds
    assert settings.tls is None and settings.username is None
    assert {name: default for name, (default, _) in ENV_DOCS.items()}[
        "NOTIFIER_RESEND_SECONDS"
    ] == "60"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"ALERTMANAGER_URL": "ftp://x"}, "ALERTMANAGER_URL"),
        ({"ALERTMANAGER_URL": "http://u:p@am:9093"}, "ALERTMANAGER_URL"),
        ({"NOTIFIER_RESEND_SECONDS": "200"}, "NOTIFIER_RESEND_SECONDS"),
        ({"NOTIFIER_RESEND_SECONDS": "0"}, "NOTIFIER_RESEND_SECONDS"),
        ({"NOTIFIER_RESEND_SECONDS": "soon"}, "NOTIFIER_RESEND_SECONDS"),
        ({"ALERTMANAGER_RESOLVE_TIMEOUT_SECONDS": "60"}, "NOTIFIER_RESEND_SECONDS"),
        ({"NOTIFIER_BATCH_SIZE": "0"}, "NOTIFIER_BATCH_SIZE"),
        ({"NOTIFIER_BACKOFF_MAX_SECONDS": "0.1"}, "NOTIFIER_BACKOFF_MAX_SECONDS"),
        ({"NOTIFIER_OFFSET_RESET": "middle"}, "NOTIFIER_OFFSET_RESET"),
        ({"NOTIFIER_STATE_TOPIC": "anomalies"}, "NOTIFIER_STATE_TOPIC"),
        ({"NOTIFIER_GROUP": " "}, "NOTIFIER_GROUP"),
        ({"KAFKA_BROKERS": ","}, "KAFKA_BROKERS"),
        ({"ALERTMANAGER_CA_FILE": "/ca.pem"}, "ALERTMANAGER_CA_FILE"),  # with http://
        (
            {"ALERTMANAGER_URL": "https://am", "ALERTMANAGER_CA_FILE": "/nonexistent.pem"},
            "ALERTMANAGER_CA_FILE",
        ),
        (
            {"ALERTMANAGER_URL": "https://am", "ALERTMANAGER_CERT_FILE": "/c.pem"},
            "ALERTMANAGER_KEY_FILE",
        ),
        (
            {"ALERTMANAGER_URL": "https://am", "ALERTMANAGER_TLS_INSECURE": "maybe"},
            "ALERTMANAGER_TLS_INSECURE",
        ),
        ({"ALERTMANAGER_USERNAME": "ops"}, "ALERTMANAGER_PASSWORD"),
        ({"ALERTMANAGER_TIMEOUT_SECONDS": "-1"}, "ALERTMANAGER_TIMEOUT_SECONDS"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"NOTIFIER_RESOLVED_MEMORY": "-1"}, "NOTIFIER_RESOLVED_MEMORY"),
        ({"NOTIFIER_EXPIRE_SECONDS": "-1"}, "NOTIFIER_EXPIRE_SECONDS"),
        ({"NOTIFIER_METRICS_PORT": "70000"}, "NOTIFIER_METRICS_PORT"),
        ({"NOTIFIER_STATE_LOAD_TIMEOUT_SECONDS": "0"}, "NOTIFIER_STATE_LOAD_TIMEOUT_SECONDS"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "KAFKA_SASL_MECHANISM"),
    ],
)
def test_bad_setting_names_the_variable(env: dict, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env(env)


def test_the_password_is_never_in_a_message() -> None:
    settings = Settings.from_env(
        {
            "ALERTMANAGER_USERNAME": "ops",
            "ALERTMANAGER_PASSWORD": "s3cret-pw",
            "ALERTMANAGER_ALLOW_INSECURE_AUTH": "true",
        }
    )
    assert "s3cret-pw" not in settings.redacted_alertmanager()
    assert "***" in settings.redacted_alertmanager()
    with pytest.raises(ConfigError) as exc:
        Settings.from_env({"ALERTMANAGER_PASSWORD": "s3cret-pw"})
    assert "s3cret-pw" not in str(exc.value)


def test_https_with_a_ca_file(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello")
    with pytest.raises(ConfigError, match="ALERTMANAGER_CA_FILE"):
        Settings.from_env({"ALERTMANAGER_URL": "https://am", "ALERTMANAGER_CA_FILE": str(not_pem)})
    insecure = Settings.from_env(
        {"ALERTMANAGER_URL": "https://am", "ALERTMANAGER_TLS_INSECURE": "true"}
    )
    assert insecure.tls is not None and "NOT verified" in insecure.redacted_alertmanager()


def test_help_lists_every_variable(capsys) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ENV_DOCS)
    for option in (*OPTIONS, *SECURITY_OPTIONS):  # Kafka security too: the notifier reads it
        assert f"\n  {option.env} (default: {option.shown_default}): " in out, option.env
    assert usage().startswith("usage: python -m notifier")


def test_the_operations_page_lists_every_variable_with_its_default() -> None:
    page = (Path(__file__).resolve().parents[3] / "docs" / "operations.md").read_text()
    start = page.index("## Alertmanager: the notifier")
    section = page[start : page.index("\n## ", start + 1)]
    for option in OPTIONS:
        if option.env in ("KAFKA_BROKERS", "LOG_LEVEL"):
            continue  # the row "as for the dataflow"
        default = f"`{option.default}`" if option.default else "(unset)"
        assert f"| `{option.env}` | {default} |" in section, option.env


def test_a_bad_setting_exits_2_naming_it(monkeypatch, capsys) -> None:
    monkeypatch.setenv("NOTIFIER_RESEND_SECONDS", "nope")
    assert main([]) == 2
    assert "NOTIFIER_RESEND_SECONDS" in capsys.readouterr().err


# --- the Alertmanager client (httpx's mock transport) --------------------------------------


def client(handler) -> Alertmanager:
    settings = Settings.from_env(
        {
            "ALERTMANAGER_URL": "http://am:9093/prefix",
            "ALERTMANAGER_USERNAME": "ops",
            "ALERTMANAGER_PASSWORD": "pw",
            "ALERTMANAGER_ALLOW_INSECURE_AUTH": "true",
        }
    )
    return Alertmanager(settings, transport=httpx.MockTransport(handler))


def test_post_goes_to_api_v2_alerts_with_basic_auth() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    client(handler).post([alert_of(record())])
    [req] = seen
    assert req.method == "POST" and str(req.url) == "http://am:9093/prefix/api/v2/alerts"
    assert req.headers["authorization"] == "Basic " + base64.b64encode(b"ops:pw").decode()
    [body] = orjson.loads(req.content)
    assert body["labels"]["alertname"] == ALERTNAME and body["startsAt"] == OPENED


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(500, False), (503, False), (401, False), (404, False), (400, True), (422, True)],
)
def test_refusals_are_retryable_unless_the_alert_is_invalid(status: int, permanent: bool) -> None:
    am = client(lambda request: httpx.Response(status, text="nope"))
    with pytest.raises(DeliveryError) as exc:
        am.post([alert_of(record())])
    assert exc.value.permanent is permanent and str(status) in str(exc.value)


def test_a_connection_error_is_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(DeliveryError) as exc:
        client(handler).post([alert_of(record())])
    assert not exc.value.permanent


def test_resolve_timeout_is_read_from_the_status_api() -> None:
    config = "global:\n  resolve_timeout: 2m\nroute:\n  receiver: x\n"
    am = client(lambda request: httpx.Response(200, json={"config": {"original": config}}))
    assert am.resolve_timeout() == 120
    assert client(lambda request: httpx.Response(500)).resolve_timeout() is None


# --- the loop's order, on fakes ------------------------------------------------------------


class FakeMessage:
    def __init__(self, value: dict, offset: int, error: KafkaError | None = None) -> None:
        self._value, self._offset, self._error = orjson.dumps(value), offset, error

    def error(self) -> KafkaError | None:
        return self._error

    def value(self) -> bytes:
        return self._value

    def topic(self) -> str:
        return "anomalies"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class FakeAm:
    """Takes every post after ``failures`` failed ones; refuses (400) any request with an alert
    of a sensor in ``invalid``, as Alertmanager does: it keeps the request's valid alerts."""

    url = "http://am"

    def __init__(self, log: list, failures: int = 0, invalid: frozenset = frozenset()) -> None:
        self.log, self.failures, self.invalid = log, failures, invalid
        self.kept: list[str] = []

    def post(self, alerts) -> None:
        if self.failures:
            self.failures -= 1
            self.log.append(("post-failed", len(alerts)))
            raise DeliveryError("connection refused")
        bad = [a for a in alerts if a.labels["sensor_id"] in self.invalid]
        self.kept += [a.labels["sensor_id"] for a in alerts if a not in bad]
        if bad:
            self.log.append(("post-refused", len(alerts)))
            raise DeliveryError("HTTP 400: start time must be before end time", permanent=True)
        self.log.append(("post", [(a.labels["sensor_id"], a.ends_at is None) for a in alerts]))


class FakeProducer:
    def __init__(self, log: list) -> None:
        self.log, self.callbacks = log, []

    def produce(self, topic, key, value, on_delivery) -> None:
        self.log.append(("state", key.decode(), value is None))
        self.callbacks.append(on_delivery)

    def flush(self, timeout: float) -> int:
        for cb in self.callbacks:
            cb(None, None)
        self.callbacks.clear()
        return 0


class FakeConsumer:
    def __init__(self, log: list) -> None:
        self.log = log

    def commit(self, offsets, asynchronous: bool) -> None:
        assert asynchronous is False
        self.log.append(("commit", [(p.partition, p.offset) for p in offsets]))


def notifier(
    log: list,
    failures: int = 0,
    stop: threading.Event | None = None,
    invalid: frozenset = frozenset(),
) -> Notifier:
    settings = Settings.from_env(
        {"NOTIFIER_BACKOFF_INITIAL_SECONDS": "0.001", "NOTIFIER_BACKOFF_MAX_SECONDS": "0.002"}
    )
    return Notifier(
        settings,
        FakeAm(log, failures, invalid),
        FakeConsumer(log),
        FakeProducer(log),
        OpenAlerts(),
        stop or threading.Event(),
        clock=lambda: NOW.timestamp(),
        wall=lambda: NOW.timestamp(),
    )


def test_alertmanager_then_state_then_commit_after_retries() -> None:
    log: list = []
    n = notifier(log, failures=3)
    n.resend.sent(NOW.timestamp())  # just re-sent: not due for a minute
    aid = "temperature/2@1795379300000000000"
    assert n.handle([FakeMessage(record("open"), 7), FakeMessage(record("window"), 8)])
    assert log == [("post-failed", 1)] * 3 + [
        ("post", [("2", True)]),
        ("state", aid, False),
        ("commit", [(0, 9)]),
    ]
    assert n.counts["retries"] == 3
    assert n.resend.due(NOW.timestamp())  # after an outage: re-send the open set at once


def test_open_and_resolve_in_one_batch_post_only_the_resolution() -> None:
    log: list = []
    assert notifier(log).handle(
        [FakeMessage(record("open"), 0), FakeMessage(record("resolved", window="20:31:00"), 1)]
    )
    assert log[0] == ("post", [("2", False)])
    assert log[1][2] is False  # the state ends as the resolved marker (Resolved)


def test_a_stop_while_alertmanager_is_down_commits_nothing() -> None:
    log: list = []
    stop = threading.Event()
    n = notifier(log, failures=10**6, stop=stop)
    threading.Timer(0.2, stop.set).start()
    assert n.handle([FakeMessage(record("open"), 0)]) is False
    assert {entry[0] for entry in log} == {"post-failed"}


def test_a_bad_record_is_passed_over_and_committed() -> None:
    log: list = []
    n = notifier(log)
    assert n.handle([FakeMessage({"event": "open"}, 4)])
    assert log == [("commit", [(0, 5)])] and n.counts["bad"] == 1


def test_a_failed_resend_does_not_block_and_is_retried_soon() -> None:
    log: list = []
    n = notifier(log, failures=1)
    n.open.apply(record("open"), NOW)
    n.resend_open()  # fails once: returns at once, next try after a short backoff
    assert log == [("post-failed", 1)]
    assert not n.resend.due(NOW.timestamp()) and n.resend.wait(NOW.timestamp()) <= 0.002
    n.resend_open()
    assert log[-1] == ("post", [("2", True)])
    assert n.resend.wait(NOW.timestamp()) == 60  # back to the interval


def test_a_refused_alert_costs_the_others_nothing_and_is_counted() -> None:
    """Alertmanager refuses a request (400) for one invalid alert among valid ones: each is
    posted again on its own, the refused one counted as rejected, no outage assumed."""
    log: list = []
    n = notifier(log, invalid=frozenset({"3"}))
    n.resend.sent(NOW.timestamp())
    batch = [FakeMessage(record("open", sensor=s), i) for i, s in enumerate("1234")]
    assert n.handle(batch)
    assert ("post-refused", 4) in log
    assert [entry for entry in log if entry[0] == "post"] == [
        ("post", [("1", True), ("2", True)]),
        ("post", [("4", True)]),
    ]
    assert n.counts["rejected"] == 1 and n.counts["posted"] == 3
    assert not n._down and not n.resend.due(NOW.timestamp())  # Alertmanager answered
    assert log[-1] == ("commit", [(0, 4)])
    log.clear()
    n.resend_open()  # the re-send: the same split, the same count, still no outage
    assert n.counts["rejected"] == 2 and not n._down
    assert set(n.am.kept) == {"1", "2", "4"}  # type: ignore[attr-defined]


FENCED = "Broker: Static consumer fenced by other consumer with same group.instance.id"


def test_a_fenced_consumer_stops_the_notifier_before_it_posts_or_commits() -> None:
    """librdkafka reports the fencing as a message error with code _FATAL; confluent-kafka
    leaves its ``fatal()`` False."""
    log: list = []
    stop = threading.Event()
    n = notifier(log, stop=stop)
    fenced = KafkaError(KafkaError._FATAL, FENCED)
    assert not fenced.fatal()
    batch = [FakeMessage(record("open"), 0), FakeMessage({}, -1, error=fenced)]
    assert n.handle(batch) is False
    assert log == [] and stop.is_set() and n.fatal is fenced


def test_a_fatal_commit_error_stops_the_notifier() -> None:
    log: list = []
    n = notifier(log)

    def commit(offsets, asynchronous: bool) -> None:
        raise KafkaException(KafkaError(KafkaError._FATAL, FENCED))

    n.consumer.commit = commit  # type: ignore[method-assign]
    assert n.handle([FakeMessage(record("open"), 0)]) is False
    assert n.stop.is_set() and n.fatal is not None and n.fatal.code() == KafkaError._FATAL


class ScriptedConsumer(FakeConsumer):
    """Hands out ``batches`` one per consume (after ``assigned_after`` empty ones, no partition
    assigned yet), then sets ``stop``."""

    def __init__(self, log: list, batches: list, stop: threading.Event, assigned: bool) -> None:
        super().__init__(log)
        self.batches, self.stop, self.assigned = batches, stop, assigned

    def assignment(self) -> list:
        return [TopicPartition("anomalies", 0)] if self.assigned else []

    def consume(self, num_messages: int, timeout: float) -> list:
        if self.batches:
            return self.batches.pop(0)
        self.stop.set()
        return []


def eof() -> FakeMessage:
    return FakeMessage({}, -1, error=KafkaError(KafkaError._PARTITION_EOF))


def test_the_backlog_is_read_before_the_stored_open_set_is_re_sent() -> None:
    """The state says machine 2 is open; its ``resolved`` waits in the backlog: it must not
    page again at start-up."""
    log: list = []
    n = notifier(log)
    n.open.apply(record("open"), NOW)
    resolved = FakeMessage(record("resolved", window="20:31:00"), 5)
    n.consumer = ScriptedConsumer(log, [[resolved], [eof()], [], []], n.stop, assigned=True)
    n.run()
    posts = [entry for entry in log if entry[0] == "post"]
    assert posts == [("post", [("2", False)])]  # the resolution, never a firing re-send
    assert len(n.open) == 0


def test_the_first_re_send_waits_at_most_one_interval_for_the_backlog() -> None:
    log: list = []
    n = notifier(log)
    n.open.apply(record("open"), NOW)
    now = [0.0]

    def clock() -> float:
        now[0] += 7
        return now[0]

    posted_at: list[float] = []
    post = n.am.post
    n.am.post = lambda alerts: (posted_at.append(now[0]), post(alerts))  # type: ignore[method-assign]
    n.clock = clock
    n.consumer = ScriptedConsumer(log, [[] for _ in range(12)], n.stop, assigned=False)
    n.run()
    # No backlog end ever seen: re-sent once a re-send interval (60 s) has passed, not before.
    assert log == [("post", [("2", True)])]
    assert 7 + 60 <= posted_at[0] < 7 + 60 + 2 * 7


def test_a_replayed_open_of_a_resolved_alert_is_not_fired_again() -> None:
    alerts = OpenAlerts()
    alerts.apply(record("open"), NOW)
    alerts.apply(record("resolved", window="20:31:00"), NOW)
    for event in ("open", "update"):
        change = alerts.apply(record(event), NOW)
        assert change.posts == [] and change.replayed == ["temperature/2@1795379300000000000"]
    assert len(alerts) == 0
    # A new episode of the same sensor (another alert_id) fires as usual.
    new = alerts.apply(record("open", alert_id="temperature/2@1795380000000000000"), NOW)
    assert [p.ends_at for p in new.posts] == [None]


def test_the_resolved_memory_is_bounded_and_tombstones_what_it_forgets() -> None:
    alerts = OpenAlerts(resolved_memory=2)
    ids = [f"temperature/{s}@1795379300000000000" for s in "123"]
    for sensor in "123":
        alerts.apply(record("open", sensor=sensor), NOW)
    states = [
        alerts.apply(record("resolved", sensor=s, window="20:31:00"), NOW).state for s in "123"
    ]
    assert alerts.resolved == 2
    assert states[2] == {ids[2]: Resolved("2026-11-22T20:31:05.000Z"), ids[0]: None}
    # The forgotten one fires again on a replay; the remembered ones do not.
    assert alerts.apply(record("open", sensor="1"), NOW).posts
    assert not alerts.apply(record("open", sensor="3"), NOW).posts


def test_a_replayed_open_is_committed_and_counted_not_posted() -> None:
    log: list = []
    n = notifier(log)
    assert n.handle([FakeMessage(record("open"), 0), FakeMessage(record("resolved"), 1)])
    log.clear()
    assert n.handle([FakeMessage(record("open"), 2)])
    assert log == [("commit", [(0, 3)])] and n.counts["replayed"] == 1


def test_re_sends_are_scheduled_on_the_monotonic_clock() -> None:
    """A wall clock stepped back an hour must not hold the next re-send back an hour."""
    log: list = []
    settings = Settings.from_env({})
    n = Notifier(
        settings, FakeAm(log), FakeConsumer(log), FakeProducer(log), OpenAlerts(), threading.Event()
    )
    n.open.apply(record("open"), NOW)
    n.resend_open()
    assert n.resend.wait(time.monotonic()) == pytest.approx(settings.resend_seconds, abs=1)
    assert log[-1] == ("post", [("2", True)])


# --- expiry, metrics, the state topic -------------------------------------------------------


def sample(n: Notifier, name: str) -> float | None:
    return n.metrics.registry.get_sample_value(name)


def test_an_open_alert_without_events_for_the_expiry_age_is_resolved_and_counted() -> None:
    """Its ``resolved`` was lost (the notifier was down longer than the topic's retention)."""
    log: list = []
    n = notifier(log)  # NOTIFIER_EXPIRE_SECONDS: a day
    n.open.apply(record("open"), NOW - timedelta(days=1, seconds=1))
    n.open.apply(record("open", sensor="3"), NOW - timedelta(hours=23))
    assert n.expire()
    # Kept as expired, not a tombstone: a restarted notifier still knows not to hold its late
    # resolved firing.
    assert log == [("post", [("2", False)]), ("state", "temperature/2@1795379300000000000", False)]
    assert [a.labels["sensor_id"] for a in n.open.firing()] == ["3"]
    assert n.counts["expired"] == 1 and sample(n, "notifier_alerts_expired_total") == 1
    # Forgotten, not remembered as resolved: a later event is news and fires it again.
    assert n.open.apply(record("update"), NOW).posts[-1].ends_at is None


def test_an_event_restarts_the_expiry_age() -> None:
    alerts = OpenAlerts()
    alerts.apply(record("open"), NOW - timedelta(days=2))
    alerts.apply(record("update", window="20:29:20"), NOW - timedelta(hours=1))
    assert alerts.expire(NOW, timedelta(days=1)).posts == []
    [ended] = alerts.expire(NOW + timedelta(days=1), timedelta(days=1)).posts
    assert ended.ends_at == "2026-11-23T21:00:00.000Z" and ended.labels["sensor_id"] == "2"


def test_expiry_zero_never_expires() -> None:
    log: list = []
    n = notifier(log)
    n.settings = Settings.from_env({"NOTIFIER_EXPIRE_SECONDS": "0"})
    n.open.apply(record("open"), NOW - timedelta(days=365))
    assert n.expire() and log == [] and len(n.open) == 1


def test_the_metrics_follow_posts_retries_rejections_and_the_open_set() -> None:
    log: list = []
    n = notifier(log, failures=2, invalid=frozenset({"3"}))
    n.resend.sent(NOW.timestamp())
    assert sample(n, "notifier_last_success_timestamp_seconds") == 0
    assert n.handle([FakeMessage(record("open", sensor=s), i) for i, s in enumerate("123")])
    assert sample(n, "notifier_alerts_posted_total") == 2
    assert sample(n, "notifier_post_retries_total") == n.counts["retries"] == 4  # 2 down, 2 splits
    assert sample(n, "notifier_alerts_rejected_total") == 1
    assert sample(n, "notifier_events_total") == 3
    assert sample(n, "notifier_open_alerts") == 3
    assert sample(n, "notifier_last_success_timestamp_seconds") == NOW.timestamp()
    n.handle([FakeMessage(record("resolved", sensor="1"), 3)])
    assert sample(n, "notifier_open_alerts") == 2


class FakeAdmin:
    def __init__(self, policy: str) -> None:
        self.policy = policy

    def describe_configs(self, resources: list) -> dict:
        class Entry:
            value = self.policy

        class Future:
            def result(self, timeout: float) -> dict:
                return {"cleanup.policy": Entry()}

        return {resources[0]: Future()}


@pytest.mark.parametrize("policy", ["compact,delete", "delete", "delete,compact"])
def test_a_state_topic_that_is_not_exactly_compact_is_refused(policy: str) -> None:
    with pytest.raises(StartupError, match=f"cleanup.policy={policy}, not compact"):
        ensure_state_topic(FakeAdmin(policy), {"state"}, "state")  # type: ignore[arg-type]
    ensure_state_topic(FakeAdmin("compact"), {"state"}, "state")  # type: ignore[arg-type]


def test_the_state_load_deadline_is_the_setting(monkeypatch) -> None:
    class SlowConsumer:
        """A state topic with one record that never arrives."""

        def __init__(self, config: dict) -> None:
            pass

        def list_topics(self, topic: str, timeout: float) -> SimpleNamespace:
            return SimpleNamespace(topics={topic: SimpleNamespace(partitions={0: None})})

        def get_watermark_offsets(self, part, timeout: float) -> tuple[int, int]:
            return 0, 1

        def assign(self, parts: list) -> None:
            pass

        def poll(self, timeout: float) -> None:
            time.sleep(0.05)

        def close(self) -> None:
            pass

    monkeypatch.setattr(notifier_kafka, "Consumer", SlowConsumer)
    settings = Settings.from_env({"NOTIFIER_STATE_LOAD_TIMEOUT_SECONDS": "0.3"})
    started = time.monotonic()
    with pytest.raises(StartupError, match=r"within 0\.3 s \(NOTIFIER_STATE_LOAD_TIMEOUT"):
        notifier_kafka.load_state(settings)
    assert time.monotonic() - started < 5


# --- why: the description annotation ------------------------------------------------------

EXPLAIN = {
    "detector": "level",
    "detectors": ["level"],
    "value": 71.3,
    "baseline": 64.2,
    "unit": "°C",
    "spreads": 9.4,
    "threshold_spreads": 7.2,
    "seasonal": False,
    "text": "level 71.3 °C, 9.4 spreads above its usual 64.2 °C (pages beyond 7.2)",
}


def test_an_ml_alert_says_why_in_its_description() -> None:
    notes = alert_of(record(reasons=("ml",), mean=71.3, unit="°C", explain=EXPLAIN)).annotations
    assert notes["description"] == (
        "ml: level 71.3 °C, 9.4 spreads above its usual 64.2 °C (pages beyond 7.2)"
    )
    both = record(reasons=("threshold", "ml"), mean=97.082, unit="°C", explain=EXPLAIN)
    assert alert_of(both).annotations["description"] == (
        "threshold: mean 97.082 °C; ml: " + EXPLAIN["text"]
    )
    assert alert_of(record(explain=None)).annotations["description"] == "threshold: mean 97.082"


def test_the_description_stays_through_updates_and_the_resolution_that_say_nothing_of_why() -> None:
    alerts = OpenAlerts()
    opened = alerts.apply(record(reasons=("ml",), mean=71.3, explain=EXPLAIN), NOW)
    quiet = alerts.apply(record("update", reasons=(), window="20:29:20", mean=71.0), NOW)
    resolved = alerts.apply(record("resolved", window="20:31:00", mean=64.0), NOW)
    expected = "ml: " + EXPLAIN["text"]
    assert opened.posts[0].payload()["annotations"]["description"] == expected
    assert quiet.posts[0].annotations["description"] == expected
    assert resolved.posts[0].annotations["description"] == expected
    newer = dict(EXPLAIN, text="step +5.0 °C to 76.3 °C, 12.0 usual steps (pages beyond 6.0)")
    later = OpenAlerts()
    later.apply(record(reasons=("ml",), explain=EXPLAIN), NOW)
    moved = later.apply(record("update", reasons=("ml",), window="20:29:20", explain=newer), NOW)
    assert moved.posts[0].annotations["description"] == "ml: " + newer["text"]


# --- episodes read from a backlog ----------------------------------------------------------


def test_an_episode_opened_and_resolved_in_one_batch_is_held_firing_long_enough_to_page() -> None:
    """Alertmanager notifies nothing of an alert it first sees resolved, nor of one resolved
    within its group_wait: the episode read from a backlog (open and resolved together) paged
    no one. Its resolution ends ``min_firing`` after it was posted firing instead."""
    hold = timedelta(seconds=30)
    alerts = OpenAlerts(min_firing=hold)
    change = alerts.apply(record("open"), NOW)
    change += alerts.apply(record("resolved", window="20:31:00"), NOW)
    [post] = collapse(change.posts)
    assert post.starts_at == OPENED  # still says when it happened
    assert post.hold == hold  # ends 30 s after Alertmanager takes it: firing until then
    later = NOW + timedelta(minutes=3)  # Alertmanager was down: counted from when it answers
    assert post.shown_from(later).ends_at == "2026-11-22T21:03:30.000Z"
    # Its open never reached the notifier (only the resolve is left): shown from then on too.
    [post] = OpenAlerts(min_firing=hold).apply(record("resolved", sensor="3"), NOW).posts
    assert post.shown_from(NOW).ends_at == "2026-11-22T21:00:30.000Z"


def test_an_alert_shown_firing_long_enough_resolves_at_its_own_end() -> None:
    hold = timedelta(seconds=30)
    alerts = OpenAlerts(min_firing=hold)
    alerts.apply(record("open"), NOW - timedelta(minutes=5))
    [post] = alerts.apply(record("resolved", window="20:31:00"), NOW).posts
    assert post.shown_from(NOW).ends_at == "2026-11-22T20:31:05.000Z"
    # Posted 10 s ago: within Alertmanager's group_wait, so held to 30 s after the post.
    alerts.apply(
        record("open", sensor="4", alert_id="temperature/4@1"), NOW - timedelta(seconds=10)
    )
    [post] = alerts.apply(record("resolved", sensor="4", alert_id="temperature/4@1"), NOW).posts
    assert post.shown_from(NOW).ends_at == "2026-11-22T21:00:20.000Z"
    # One loaded from the state topic was posted in an earlier run: no hold.
    loaded = OpenAlerts(min_firing=hold)
    loaded.load("temperature/5@1", AmAlert({"alertname": "x"}, {}, OPENED, alert_id="t"))
    [post] = loaded.apply(record("resolved", sensor="5", alert_id="temperature/5@1"), NOW).posts
    assert post.shown_from(NOW).ends_at == "2026-11-22T20:28:25.000Z"
    # A resolution read again after a crash (remembered as resolved) is not fired again.
    again = alerts.apply(record("resolved", window="20:31:00"), NOW + timedelta(minutes=1))
    assert again.posts[0].shown_from(NOW).ends_at == "2026-11-22T20:31:05.000Z"


def test_an_expired_alert_s_late_resolution_is_not_held_firing_again() -> None:
    """Expired after a day without events, then its real ``resolved`` came: held firing as an
    episode never shown, it paged the on-call again about an alert that was ending."""
    alerts = OpenAlerts(min_firing=timedelta(seconds=30))
    alerts.apply(record("open"), NOW - timedelta(days=2))
    assert len(alerts.expire(NOW, timedelta(days=1)).posts) == 1
    [post] = alerts.apply(record("resolved", window="20:31:00"), NOW).posts
    assert post.hold == timedelta(0)


def test_an_escalation_is_a_new_alert_to_alertmanager_and_held_as_one() -> None:
    """The critical label set fires as a new alert; resolved soon after, it was not held (it
    inherited the warning's post time) and reached no one as firing."""
    hold = timedelta(seconds=90)
    alerts = OpenAlerts(min_firing=hold)
    alerts.apply(record("open", reasons=("ml",)), NOW - timedelta(minutes=10))
    alerts.apply(record("update", reasons=("ml", "threshold")), NOW - timedelta(seconds=20))
    [post] = alerts.apply(record("resolved", window="20:40:00"), NOW).posts
    assert post.labels["severity"] == "critical" and post.hold == timedelta(seconds=70)


def test_a_firing_post_delayed_by_an_outage_is_shown_from_when_alertmanager_took_it() -> None:
    hold = timedelta(seconds=30)
    alerts = OpenAlerts(min_firing=hold)
    opened = alerts.apply(record("open"), NOW)
    alerts.posted(opened.posts, NOW, NOW + timedelta(minutes=3))  # taken three minutes later
    [post] = alerts.apply(record("resolved"), NOW + timedelta(minutes=3, seconds=5)).posts
    assert post.hold == timedelta(seconds=25)


def test_expiry_waits_until_the_backlog_is_read() -> None:
    """Down for more than NOTIFIER_EXPIRE_SECONDS but within the topic's retention: the backlog
    holds the alert's events. The forced first re-send (the backlog still unread after one
    interval) re-sends it firing; expiring it there posted it resolved while the machine was
    still hot, and its ``update`` in the backlog then paged the episode a second time."""
    log: list = []
    n = notifier(log)
    n.open.apply(record("open"), NOW - timedelta(days=2))  # its last event: two days ago
    now = [0.0]

    def clock() -> float:
        now[0] += 7
        return now[0]

    n.clock = clock
    n.consumer = ScriptedConsumer(log, [[] for _ in range(12)], n.stop, assigned=False)
    n.run()
    assert log == [("post", [("2", True)])] and n.counts["expired"] == 0
    # Once the backlog is read, expiry does its work at the next re-send.
    log.clear()
    n.stop.clear()
    n.consumer = ScriptedConsumer(log, [[eof()]] + [[] for _ in range(12)], n.stop, assigned=True)
    n.resend.force()
    n.run()
    assert n.counts["expired"] == 1 and ("post", [("2", False)]) in log


@pytest.mark.parametrize("end", [123, ["2026-11-22T20:31:05.000Z"], {"a": 1}, True])
def test_a_resolved_record_whose_window_end_is_not_a_string_is_passed_over(end: object) -> None:
    """It raised AttributeError out of the loop, uncommitted: the notifier died on it at every
    restart, and no sensor's alert reached Alertmanager."""
    log: list = []
    n = notifier(log)
    rec = record("resolved", window="20:31:00")
    rec["window_end"] = end
    assert n.handle([FakeMessage(rec, 3)])
    assert n.counts["bad"] == 1 and log == [("commit", [(0, 4)])]


class StalledKafka:
    """The broker away for ``STALL`` s of a fake clock: the state topic's flush keeps its record
    pending (a second a call), or a commit fails, retriably (ten seconds a call)."""

    STALL = 400.0

    def __init__(self, log: list, stalled: str) -> None:
        self.log, self.stalled = log, stalled
        self.now = NOW.timestamp()
        self.until = self.now + self.STALL
        self.producer, self.consumer = FakeProducer(log), FakeConsumer(log)

    def flush(self, timeout: float) -> int:
        if self.stalled == "state" and self.now < self.until:
            self.now += timeout
            return 1
        return self.producer.flush(timeout)

    def commit(self, offsets, asynchronous: bool) -> None:
        if self.stalled == "commit" and self.now < self.until:
            self.now += 10.0
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "broker down", retriable=True))
        self.consumer.commit(offsets, asynchronous)

    def produce(self, *args, **kwargs) -> None:
        self.producer.produce(*args, **kwargs)

    def assignment(self) -> list:
        return [TopicPartition("anomalies", 0)]  # never read to its end: the backlog's wait


@pytest.mark.parametrize("stalled", ["state", "commit"])
def test_a_kafka_stall_in_a_batch_keeps_the_open_alerts_re_sent(stalled: str) -> None:
    """A batch waits for its state write and commit; meanwhile the open set is re-sent on its
    clock: held up for longer than Alertmanager's resolve timeout, every open alert expired
    there (a false resolved, then a second page) and no metric moved."""
    log: list = []
    kafka = StalledKafka(log, stalled)
    settings = Settings.from_env(
        {"NOTIFIER_BACKOFF_INITIAL_SECONDS": "0.001", "NOTIFIER_BACKOFF_MAX_SECONDS": "0.002"}
    )
    n = Notifier(
        settings,
        FakeAm(log),
        kafka,
        kafka,
        OpenAlerts(),
        threading.Event(),
        clock=lambda: kafka.now,
        wall=lambda: kafka.now,
    )
    n.open.apply(record("open", sensor="1"), NOW)  # open since before: from the state topic
    n.resend.sent(kafka.now)
    assert n.handle([FakeMessage(record("open", sensor="2"), 7)])
    resends = [e for e in log if e[0] == "post" and len(e[1]) == 2]
    assert resends and all(e == ("post", [("1", True), ("2", True)]) for e in resends)
    interval = settings.resend_seconds
    assert len(resends) >= StalledKafka.STALL // interval - 1
    assert interval * 3 <= settings.resolve_timeout_seconds  # so none expired meanwhile
    assert log[-1][0] == "commit"


def test_an_unreadable_resolved_leaves_its_alert_open_and_re_sent() -> None:
    """Passed over as unreadable, it changes nothing: the alert was taken out of the open set
    first, so it was neither resolved nor re-sent, and expired in Alertmanager unseen."""
    alerts = OpenAlerts()
    alerts.apply(record("open"), NOW)
    with pytest.raises(BadRecord, match="window_end is a int"):
        alerts.apply(record("resolved", window_end=1768464000), NOW)
    assert [a.labels["sensor_id"] for a in alerts.firing(NOW)] == ["2"]
    [ended] = alerts.apply(record("resolved"), NOW).posts  # a readable one still resolves it
    assert ended.ends_at is not None and len(alerts) == 0


def restarted(alerts: OpenAlerts, change_state: dict) -> OpenAlerts:
    """A new notifier's open set, from the state records ``change_state`` wrote (through their
    JSON, as the state topic holds them), on top of ``alerts``' open ones."""
    fresh = OpenAlerts(min_firing=alerts.min_firing)
    for alert in alerts.firing():
        fresh.load(alert.alert_id, state_value(alert.alert_id, alert.state_payload()))
    for alert_id, value in change_state.items():
        payload = (
            None
            if value is None
            else orjson.loads(
                orjson.dumps(
                    value.state_payload() if isinstance(value, AmAlert) else value.payload()
                )
            )
        )
        fresh.load(alert_id, None if payload is None else state_value(alert_id, payload))
    return fresh


def test_an_expired_alert_s_late_resolution_is_not_held_after_a_restart_either() -> None:
    """The expiry is kept in the state topic: a restarted notifier held the late ``resolved`` of
    an alert it had expired firing for ``min_firing``, and paged an episode that was ending."""
    alerts = OpenAlerts(min_firing=timedelta(seconds=90))
    alerts.apply(record("open"), NOW - timedelta(days=1, seconds=1))
    expired = alerts.expire(NOW, timedelta(days=1))
    assert [type(v).__name__ for v in expired.state.values()] == ["Expired"]
    after = restarted(alerts, expired.state)
    [ended] = after.apply(record("resolved", window="20:40:00"), NOW + timedelta(hours=1)).posts
    assert ended.hold == timedelta(0)
    # And a later event of it still fires it again: expired is not resolved.
    again = restarted(alerts, expired.state)
    assert again.apply(record("update"), NOW).posts[-1].ends_at is None


def test_a_short_episode_s_resolution_is_held_firing_after_a_restart_too() -> None:
    """When it was first posted is kept with it: a restarted notifier took every alert it
    loaded for one posted long ago, and let a resolution 20 s after the first post through
    unheld, before Alertmanager had notified anyone."""
    alerts = OpenAlerts(min_firing=timedelta(seconds=90))
    change = alerts.apply(record("open"), NOW)
    after = restarted(OpenAlerts(min_firing=timedelta(seconds=90)), change.state)
    [ended] = after.apply(record("resolved"), NOW + timedelta(seconds=20)).posts
    assert ended.hold == timedelta(seconds=70)
    # A record written before ``postedAt`` was kept: posted long ago, as before.
    old = {k: v for k, v in change.state[ended.alert_id].state_payload().items() if k != "postedAt"}
    legacy = OpenAlerts(min_firing=timedelta(seconds=90))
    legacy.load(ended.alert_id, state_value(ended.alert_id, old))
    [unheld] = legacy.apply(record("resolved"), NOW + timedelta(seconds=20)).posts
    assert unheld.hold == timedelta(0)


def test_the_state_keeps_when_alertmanager_took_a_first_post_after_an_outage() -> None:
    """Alertmanager down for two minutes at an alert's first post: it was shown from when it
    was taken, so that is what a restarted notifier must count its hold from."""
    log: list = []
    clock = [NOW.timestamp()]
    written: dict[str, dict] = {}

    class SlowAm(FakeAm):
        def post(self, alerts) -> None:
            clock[0] += 60.0  # each attempt a minute
            super().post(alerts)

    class Keeping(FakeProducer):
        def produce(self, topic, key, value, on_delivery) -> None:
            written[key.decode()] = orjson.loads(value)
            super().produce(topic, key, value, on_delivery)

    settings = Settings.from_env(
        {"NOTIFIER_BACKOFF_INITIAL_SECONDS": "0.001", "NOTIFIER_BACKOFF_MAX_SECONDS": "0.002"}
    )
    n = Notifier(
        settings,
        SlowAm(log, failures=1),
        FakeConsumer(log),
        Keeping(log),
        OpenAlerts(min_firing=timedelta(seconds=90)),
        threading.Event(),
        clock=lambda: clock[0],
        wall=lambda: clock[0],
    )
    n.resend.sent(clock[0])
    assert n.handle([FakeMessage(record("open"), 7)])
    [state] = written.values()
    assert state["postedAt"] == "2026-11-22T21:02:00.000Z"  # read at 21:00, taken at 21:02
