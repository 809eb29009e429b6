"""Producer (overheat) -> dataflow -> anomalies topic -> ``python -m notifier`` -> a real
Alertmanager (Debian's prometheus-alertmanager, started by ``scripts/alertmanager.sh``).

One run, in the order an operator would meet it:

1. machine 2 overheats: Alertmanager shows one firing alert for it, with the issue's labels and
   the opening window's start, and its webhook receiver is notified;
2. Alertmanager restarts (it keeps alerts in memory only): the notifier's retries and re-sends
   bring the same alert back;
3. the notifier is killed and Alertmanager restarted: a new notifier, whose group has already
   committed past the ``open`` event, rebuilds the open alert from its state topic;
4. the machine cools down while Alertmanager is down: the ``resolved`` event waits, uncommitted,
   and reaches Alertmanager once it is back, held firing until ``NOTIFIER_MIN_FIRING_SECONDS``
   (the default) after the alert was first posted, then resolved and notified.

Throughout, Alertmanager never holds a second alert for machine 2. Every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from dataflow.admin import ensure_topics
from notifier.config import NOTIFIER_MIN_FIRING_SECONDS
from tests.integration.conftest import (
    BROKERS,
    ROOT,
    consume_all,
    free_port,
    python_env,
    run_module,
    scrape,
    wait_for,
)
from tests.integration.test_ops_metrics import Prometheus
from tests.integration.test_ops_metrics import script as prometheus_script
from tests.tools import require_tool

SCRIPT = ROOT / "scripts" / "alertmanager.sh"
ALERT_LABELS = {"alertname", "family", "sensor_id", "severity", "alert_id"}


class Webhook:
    """A webhook receiver on 127.0.0.1: what Alertmanager notified."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class LocalAlertmanager:
    """``scripts/alertmanager.sh`` on a free port with its own directory and config."""

    def __init__(self, directory: Path, webhook_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = directory / "alertmanager.yml"
        # Quick notifications for the test; resolve_timeout long, so an alert that leaves the
        # API was resolved by the notifier, not expired.
        config.write_text(
            "global:\n  resolve_timeout: 5m\n"
            "route:\n  receiver: hook\n  group_by: [alertname, sensor_id]\n"
            "  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n"
            f"receivers:\n  - name: hook\n    webhook_configs:\n      - url: {webhook_url}\n"
            "        send_resolved: true\n"
        )
        self.env = {
            **os.environ,
            "ALERTMANAGER_PORT": str(self.port),
            "ALERTMANAGER_DIR": str(directory / "am"),
            "ALERTMANAGER_CONFIG": str(config),
        }

    def script(self, command: str) -> str:
        proc = subprocess.run(
            [str(SCRIPT), command], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, f"alertmanager.sh {command}: {proc.stdout}{proc.stderr}"
        return proc.stdout

    def alerts(self, sensor: str = "2") -> list[dict[str, Any]]:
        """The active alerts of ``sensor`` in Alertmanager's API (resolved ones are not listed)."""
        url = f"{self.url}/api/v2/alerts?filter=sensor_id%3D%22{sensor}%22"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.load(resp)

    def received(self, status: str) -> float:
        """alertmanager_alerts_received_total for ``status`` (firing, resolved), API v2."""
        for series, value in scrape(self.url).items():
            if (
                series.startswith("alertmanager_alerts_received_total")
                and f'status="{status}"' in series
                and 'version="v2"' in series
            ):
                return value
        return 0.0


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[LocalAlertmanager]:
    require_tool("prometheus-alertmanager", "Debian package `prometheus-alertmanager`")
    hook = Webhook()
    am = LocalAlertmanager(tmp_path, hook.url)
    am.webhook = hook  # type: ignore[attr-defined]
    am.script("start")
    try:
        yield am
    finally:
        am.script("stop")
        hook.close()


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGINT as a user's Ctrl-C; killed if it has not exited in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def committed(group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": BROKERS, "group.id": group})
    try:
        parts = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=30
        )
        return {p.partition: p.offset for p in parts}
    finally:
        consumer.close()


def end_offsets(topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": BROKERS, "group.id": f"t-{uuid.uuid4().hex}"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def test_overheat_reaches_alertmanager_survives_outages_and_resolves(
    topic_factory, admin, alertmanager: LocalAlertmanager, tmp_path: Path
) -> None:
    topics = {
        "AIR_QUALITY_TOPIC": topic_factory("aq"),
        "TEMPERATURE_TOPIC": topic_factory("t"),
        "ANOMALIES_TOPIC": topic_factory("anomalies"),
        "DLQ_TOPIC": topic_factory("dlq", 1),
    }
    anomalies = topics["ANOMALIES_TOPIC"]
    state_topic = f"test-notifier-state-{uuid.uuid4().hex[:10]}"
    group = f"test-notifier-{uuid.uuid4().hex[:10]}"
    notifier_env = python_env(
        ANOMALIES_TOPIC=anomalies,
        NOTIFIER_STATE_TOPIC=state_topic,
        NOTIFIER_GROUP=group,
        ALERTMANAGER_URL=alertmanager.url,
        NOTIFIER_RESEND_SECONDS="2",
        NOTIFIER_BACKOFF_INITIAL_SECONDS="0.2",
        NOTIFIER_BACKOFF_MAX_SECONDS="1",
        NOTIFIER_METRICS_PORT=str(free_port()),
    )
    logs: list[Path] = []

    def start_notifier() -> subprocess.Popen:
        log = tmp_path / f"notifier-{len(logs)}.log"
        logs.append(log)
        return subprocess.Popen(
            [sys.executable, "-m", "notifier"],
            cwd=ROOT,
            env=notifier_env,
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )

    def log_has(text: str, count: int = 1) -> bool:
        return logs[-1].read_text().count(text) >= count

    def context() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs)

    # Event times well in the past (not live): windows close by event time, the same every run.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    flow = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "dataflow.main:flow"],
        cwd=ROOT,
        env=python_env(
            **topics, IDLE_TIMEOUT_SECONDS="2", ALERT_STALE_SECONDS="0", STATUS_INTERVAL_SECONDS="0"
        ),
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "flow.log").open("w"),
    )
    first_post_after = datetime.now(UTC)  # nothing was posted before this
    notifier = start_notifier()
    seen_label_sets: set[tuple[tuple[str, str], ...]] = set()

    def firing() -> list[dict[str, Any]]:
        alerts = alertmanager.alerts()
        seen_label_sets.update(tuple(sorted(a["labels"].items())) for a in alerts)
        return alerts

    try:
        produced = run_module(
            [
                "producer",
                "--scenario",
                "overheat",
                "--families",
                "temperature",
                "--sensors",
                "3",
                "--duration",
                "60",
                "--start",
                start.strftime("%Y-%m-%dT%H:%M:%S"),
                "--temperature-topic",
                topics["TEMPERATURE_TOPIC"],
                "--air-quality-topic",
                topics["AIR_QUALITY_TOPIC"],
            ],
            python_env(),
        )
        assert produced.returncode == 0, produced.stderr[-3000:]

        # 1. Firing, with the labels and the opening window's start.
        [alert] = wait_for("machine 2's alert in Alertmanager", firing, notifier, timeout=120)
        opens = [orjson.loads(m.value()) for m in consume_all(anomalies)]
        opens = [r for r in opens if r["event"] == "open"]
        assert [r["sensor_id"] for r in opens] == ["2"], opens
        opened = opens[0]
        labels = alert["labels"]
        assert set(labels) == ALERT_LABELS
        assert labels == {
            "alertname": "SensorAnomaly",
            "family": "temperature",
            "sensor_id": "2",
            "severity": "critical",
            "alert_id": opened["alert_id"],
        }
        assert alert["startsAt"] == opened["alert"]["opened_at"]
        assert alert["annotations"]["reasons"] == "threshold"
        assert float(alert["annotations"]["mean"]) >= 90
        assert alert["status"]["state"] == "active"
        assert alertmanager.alerts(sensor="0") == alertmanager.alerts(sensor="1") == []
        hook = alertmanager.webhook  # type: ignore[attr-defined]
        wait_for(
            "a firing notification at the webhook",
            lambda: any(
                n["status"] == "firing" and n["alerts"][0]["labels"] == labels
                for n in hook.received
            ),
            timeout=30,
        )

        # 2. Alertmanager restarts and forgets: the re-sends bring the same alert back.
        alertmanager.script("stop")
        wait_for(
            "the notifier to see Alertmanager down",
            lambda: log_has("did not take"),
            notifier,
            timeout=30,
        )
        alertmanager.script("start")
        [back] = wait_for("the alert back after the restart", firing, notifier, timeout=30)
        assert back["labels"] == labels and back["startsAt"] == alert["startsAt"]

        # 3. The notifier is killed; a new one has only its state topic to know the alert.
        def all_committed() -> bool:
            ends = end_offsets(anomalies, 3)
            return committed(group, anomalies, 3) == {p: e or -1001 for p, e in ends.items()}

        wait_for("every event so far committed", all_committed, notifier, timeout=30)
        notifier.kill()
        notifier.wait()
        alertmanager.script("stop")
        alertmanager.script("start")
        assert firing() == [], "a restarted Alertmanager has no alerts until they are re-sent"
        notifier = start_notifier()
        [rebuilt] = wait_for("the alert rebuilt from the state topic", firing, notifier, timeout=60)
        assert rebuilt["labels"] == labels and rebuilt["startsAt"] == alert["startsAt"]
        assert "1 open alert(s)" in logs[-1].read_text(), context()

        # 4. The machine cools down while Alertmanager is down.
        alertmanager.script("stop")
        cool = Producer({"bootstrap.servers": BROKERS})
        base_ns = int((start + timedelta(seconds=60)).timestamp()) * 1_000_000_000
        for sec in range(30):
            cool.produce(
                topics["TEMPERATURE_TOPIC"],
                key=b"2",
                value=orjson.dumps(
                    {"Temperature_C": 60.0, "Timestamp": base_ns + sec * 1_000_000_000}
                ),
            )
        assert cool.flush(30) == 0

        def resolved_record() -> Any:
            for msg in consume_all(anomalies):
                rec = orjson.loads(msg.value())
                if rec["event"] == "resolved":
                    return msg.partition(), msg.offset(), rec
            return None

        part, offset, resolved = wait_for("the resolved event", resolved_record, flow, timeout=60)
        assert resolved["alert_id"] == labels["alert_id"]
        wait_for(
            "a failed delivery of the resolution",
            lambda: log_has("did not take 0 firing and 1 resolved", 2),
            notifier,
            timeout=30,
        )
        assert committed(group, anomalies, 3)[part] <= offset, (
            "committed past an event Alertmanager has not taken"
        )
        alertmanager.script("start")  # a new process: its counters start at 0
        wait_for(
            "the resolution to reach Alertmanager",
            lambda: alertmanager.received("resolved") + alertmanager.received("firing") >= 1,
            notifier,
            timeout=30,
        )
        wait_for(
            "the resolved event committed",
            lambda: committed(group, anomalies, 3)[part] == offset + 1,
            notifier,
            timeout=30,
        )
        # At the default NOTIFIER_MIN_FIRING_SECONDS the resolution of an alert first posted
        # less than that long ago is held firing until then (the restart in step 3 kept when),
        # never re-sent open; then Alertmanager resolves it and notifies the webhook.
        shown_resolved(alertmanager, "2", first_post_after)
        wait_for("the resolution's end", lambda: firing() == [], notifier, timeout=MIN_FIRING + 30)
        wait_for(
            "a resolved notification at the webhook",
            lambda: notified(hook, "2", "resolved"),
            notifier,
            timeout=30,
        )
        assert alertmanager.received("firing") <= 1, "no open alert posted after the resolve"
        assert len(seen_label_sets) == 1, f"a second alert appeared: {seen_label_sets}"
        assert notifier.poll() is None, context()
    finally:
        stop(notifier)
        stop(flow)
        admin.delete_topics([state_topic])
    assert notifier.returncode == 0, context()
    text = logs[-1].read_text()
    assert "Traceback" not in text and "stopped by SIGINT" in text, context()


#: The notifier's default NOTIFIER_MIN_FIRING_SECONDS, which these tests run at unless they say.
MIN_FIRING = float(NOTIFIER_MIN_FIRING_SECONDS.default)


def shown_resolved(am: LocalAlertmanager, sensor: str, first_post_after: datetime) -> bool:
    """Alertmanager has ``sensor``'s last post as a resolution, held firing (True) or ended: held
    until ``MIN_FIRING`` after its first post (after ``first_post_after``), not re-sent open
    (which Alertmanager would end ``resolve_timeout``, five minutes, after the post); ended at
    once only when that time has passed."""
    alerts = am.alerts(sensor)
    now = datetime.now(UTC)
    earliest = first_post_after + timedelta(seconds=MIN_FIRING)
    if not alerts:
        assert now >= earliest, f"resolved before {MIN_FIRING} s of firing: {now} < {earliest}"
        return False
    [alert] = alerts
    ends = datetime.fromisoformat(alert["endsAt"])
    assert earliest <= ends <= now + timedelta(seconds=MIN_FIRING), (alert, earliest, now)
    return True


# --- notifier on its own: alert records written straight to its topic -----------------------


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def alert_record(event: str, sensor: str, opened: datetime, window_end: datetime) -> bytes:
    """One of the dataflow's alert events, as it writes them to the anomalies topic."""
    return orjson.dumps(
        {
            "event": event,
            "alert_id": f"temperature/{sensor}@{int(opened.timestamp() * 1e9)}",
            "state": "resolved" if event == "resolved" else "open",
            "resolution": "clean" if event == "resolved" else None,
            "family": "temperature",
            "sensor_id": sensor,
            "window_start": iso(window_end - timedelta(seconds=5)),
            "window_end": iso(window_end),
            "count": 5,
            "mean": 60.0 if event == "resolved" else 97.0,
            "reasons": [] if event == "resolved" else ["threshold"],
            "silent_seconds": None,
            "alert": {"opened_at": iso(opened), "anomalous_windows": 1, "reasons": ["threshold"]},
        }
    )


class NotifierRun:
    """``python -m notifier`` processes on one anomalies topic, state topic and group, each with
    its log file; records are written to the topic as the dataflow would."""

    def __init__(self, anomalies: str, am: LocalAlertmanager, tmp_path: Path, **env: str) -> None:
        self.anomalies = anomalies
        self.state_topic = f"test-notifier-state-{uuid.uuid4().hex[:10]}"
        self.group = f"test-notifier-{uuid.uuid4().hex[:10]}"
        self.env = python_env(
            ANOMALIES_TOPIC=anomalies,
            NOTIFIER_STATE_TOPIC=self.state_topic,
            NOTIFIER_GROUP=self.group,
            ALERTMANAGER_URL=am.url,
            NOTIFIER_RESEND_SECONDS="2",
            NOTIFIER_BACKOFF_INITIAL_SECONDS="0.2",
            NOTIFIER_BACKOFF_MAX_SECONDS="1",
            **{"NOTIFIER_METRICS_PORT": str(free_port()), **env},
        )
        self.tmp_path = tmp_path
        self.logs: list[Path] = []
        self.procs: list[subprocess.Popen] = []
        self.producer = Producer({"bootstrap.servers": BROKERS})

    def start(self, **env: str) -> subprocess.Popen:
        log = self.tmp_path / f"notifier-{len(self.logs)}.log"
        self.logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "notifier"],
            cwd=ROOT,
            env={**self.env, **env},
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )
        self.procs.append(proc)
        return proc

    def send(self, *values: bytes) -> None:
        for value in values:
            self.producer.produce(self.anomalies, key=b"temperature/7", value=value)
        assert self.producer.flush(30) == 0

    def all_committed(self) -> bool:
        ends = end_offsets(self.anomalies, 1)
        return committed(self.group, self.anomalies, 1) == {p: e or -1001 for p, e in ends.items()}

    def context(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.logs)

    def close(self, admin) -> None:
        for proc in self.procs:
            stop(proc)
        admin.delete_topics([self.state_topic])


@pytest.fixture
def notifiers(topic_factory, admin, alertmanager, tmp_path: Path) -> Iterator[NotifierRun]:
    run = NotifierRun(topic_factory("anomalies", 1), alertmanager, tmp_path)
    try:
        yield run
    finally:
        run.close(admin)


def test_a_sensor_clock_ahead_fires_now_and_resolves_now(
    notifiers: NotifierRun, alertmanager: LocalAlertmanager
) -> None:
    """The sensor's clock runs an hour ahead: Alertmanager refuses a firing alert that starts
    after its own end (400), and keeps a resolved one firing until its end."""
    now = datetime.now(UTC)
    ahead = now + timedelta(hours=1)
    notifiers.send(alert_record("open", "7", ahead, ahead + timedelta(seconds=5)))
    # Resolved within seconds of its post: held firing NOTIFIER_MIN_FIRING_SECONDS first.
    proc = notifiers.start(NOTIFIER_MIN_FIRING_SECONDS="3")
    [alert] = wait_for(
        "the alert of the sensor ahead in Alertmanager",
        lambda: alertmanager.alerts("7"),
        proc,
        timeout=60,
    )
    assert datetime.fromisoformat(alert["startsAt"]) <= datetime.now(UTC)
    assert "refused" not in notifiers.logs[-1].read_text(), notifiers.context()
    notifiers.send(alert_record("resolved", "7", ahead, ahead + timedelta(minutes=2)))
    wait_for("the resolved alert gone from the active ones", lambda: not alertmanager.alerts("7"))
    hook = alertmanager.webhook  # type: ignore[attr-defined]
    wait_for(
        "a resolved notification of the sensor ahead",
        lambda: notified(hook, "7", "resolved"),
        proc,
        timeout=30,
    )
    assert proc.poll() is None, notifiers.context()


def notified(hook: Any, sensor: str, status: str) -> bool:
    """Alertmanager notified the webhook of ``sensor``'s alert with ``status``."""
    return any(
        n["status"] == status and n["alerts"][0]["labels"].get("sensor_id") == sensor
        for n in list(hook.received)
    )


def test_an_episode_opened_and_resolved_in_a_backlog_still_pages(
    notifiers: NotifierRun, alertmanager: LocalAlertmanager
) -> None:
    """The notifier was down while a sensor's alert opened and resolved: it reads both in one
    batch. Alertmanager notifies nothing of an alert it first sees resolved, so the episode
    paged no one; now it is held firing for NOTIFIER_MIN_FIRING_SECONDS, then resolved."""
    opened = datetime.now(UTC) - timedelta(minutes=10)
    notifiers.send(
        alert_record("open", "8", opened, opened + timedelta(seconds=5)),
        alert_record("resolved", "8", opened, opened + timedelta(minutes=2)),
    )
    proc = notifiers.start(NOTIFIER_MIN_FIRING_SECONDS="4")
    hook = alertmanager.webhook  # type: ignore[attr-defined]
    wait_for("a firing notification of the episode", lambda: notified(hook, "8", "firing"), proc)
    wait_for("then its resolution", lambda: notified(hook, "8", "resolved"), proc, timeout=30)
    [firing] = [n for n in hook.received if n["status"] == "firing"][:1]
    assert firing["alerts"][0]["startsAt"].startswith(iso(opened)[:19])  # when it happened
    assert proc.poll() is None, notifiers.context()


def test_a_fenced_notifier_exits_non_zero_with_one_line(notifiers: NotifierRun) -> None:
    """A second notifier in the same group (same group.instance.id) fences the first."""
    first = notifiers.start()
    wait_for("the first notifier to start", lambda: "state topic" in notifiers.logs[0].read_text())
    time.sleep(5)  # joined: static members get their assignment within a few seconds
    second = notifiers.start(NOTIFIER_METRICS_PORT=str(free_port()))  # beside the first
    try:
        first.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the fenced notifier kept running:\n{notifiers.context()}")
    assert first.returncode == 3, notifiers.context()
    mine = [
        line
        for line in notifiers.logs[0].read_text().splitlines()
        if " notifier: " in line and ("ERROR" in line or "WARNING" in line)
    ]
    assert len(mine) == 1 and "fenced" in mine[0], notifiers.context()
    assert second.poll() is None, notifiers.context()


def test_a_restart_reads_the_backlog_before_it_re_sends(
    notifiers: NotifierRun, alertmanager: LocalAlertmanager
) -> None:
    """The alert is open in the state topic, its ``resolved`` waits in the backlog: the new
    notifier must not post it firing first."""
    opened = datetime.now(UTC) - timedelta(minutes=5)
    notifiers.send(alert_record("open", "7", opened, opened + timedelta(seconds=5)))
    first_post_after = datetime.now(UTC)
    first = notifiers.start()
    wait_for("the alert in Alertmanager", lambda: alertmanager.alerts("7"), first, timeout=60)
    wait_for("the open event committed", notifiers.all_committed, first, timeout=30)
    first.kill()
    first.wait()
    notifiers.send(alert_record("resolved", "7", opened, opened + timedelta(minutes=1)))
    alertmanager.script("stop")
    alertmanager.script("start")  # its counters start at 0
    second = notifiers.start()
    wait_for("the resolved event committed", notifiers.all_committed, second, timeout=60)
    time.sleep(3)  # a re-send interval (2 s): a late re-send would show too
    # One post, the resolution: held firing (the alert was first posted seconds ago, which the
    # restart kept), or ended if that took longer than NOTIFIER_MIN_FIRING_SECONDS. An open
    # re-sent before the backlog was read would be a second post.
    held = shown_resolved(alertmanager, "7", first_post_after)
    received = (alertmanager.received("firing"), alertmanager.received("resolved"))
    assert received == ((1, 0) if held else (0, 1)), notifiers.context()


def test_a_replayed_open_of_a_resolved_alert_stays_quiet_across_a_restart(
    notifiers: NotifierRun, alertmanager: LocalAlertmanager
) -> None:
    """The dataflow replays an episode already resolved (e.g. after its own restart): the
    notifier, restarted meanwhile, remembers the resolved id from its state topic."""
    opened = datetime.now(UTC) - timedelta(minutes=5)
    open_event = alert_record("open", "7", opened, opened + timedelta(seconds=5))
    notifiers.send(open_event, alert_record("resolved", "7", opened, opened + timedelta(minutes=1)))
    first = notifiers.start()
    wait_for("both events committed", notifiers.all_committed, first, timeout=60)
    stop(first)
    assert first.returncode == 0, notifiers.context()
    alertmanager.script("stop")
    alertmanager.script("start")  # its counters start at 0
    second = notifiers.start()
    wait_for("the state loaded", lambda: "state topic" in notifiers.logs[-1].read_text(), second)
    notifiers.send(open_event)
    wait_for("the replayed open committed", notifiers.all_committed, second, timeout=60)
    time.sleep(3)  # a re-send interval (2 s)
    assert alertmanager.alerts("7") == [], notifiers.context()
    assert alertmanager.received("firing") == 0, notifiers.context()


def test_a_state_topic_with_delete_in_its_policy_is_refused(notifiers: NotifierRun, admin) -> None:
    """compact,delete: retention would drop the record of an alert open longer than it."""
    ensure_topics(
        admin, [notifiers.state_topic], 1, existing=(), config={"cleanup.policy": "compact,delete"}
    )
    proc = notifiers.start()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"started on a compact,delete state topic:\n{notifiers.context()}")
    assert proc.returncode == 1, notifiers.context()
    errors = [line for line in notifiers.logs[0].read_text().splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "cleanup.policy=compact,delete" in errors[0], notifiers.context()


def test_an_alert_without_events_expires_and_prometheus_sees_it(
    notifiers: NotifierRun, alertmanager: LocalAlertmanager, tmp_path: Path
) -> None:
    """The resolve was lost: after NOTIFIER_EXPIRE_SECONDS without an event the notifier
    resolves the alert itself, and says so in its metrics, which Prometheus scrapes and its
    NotifierAlertsExpired rule fires on."""
    require_tool("prometheus", "Debian package `prometheus`")
    require_tool("promtool", "Debian package `prometheus`")
    port = int(notifiers.env["NOTIFIER_METRICS_PORT"])
    prom_env = {
        **os.environ,
        "PROMETHEUS_DIR": str(tmp_path / "prometheus"),
        "PROMETHEUS_PORT": str(free_port()),
        "PROMETHEUS_SCRAPE_TARGETS": f"127.0.0.1:{free_port()}",  # no dataflow here
        "PROMETHEUS_NOTIFIER_TARGETS": f"127.0.0.1:{port}",
        "PROMETHEUS_SCRAPE_INTERVAL": "1s",
        "PROMETHEUS_ALERTMANAGERS": "",
    }
    started = prometheus_script("start", prom_env)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        prom = Prometheus(int(prom_env["PROMETHEUS_PORT"]), prom_env)
        opened = datetime.now(UTC) - timedelta(minutes=5)
        notifiers.send(alert_record("open", "7", opened, opened + timedelta(seconds=5)))
        proc = notifiers.start(NOTIFIER_EXPIRE_SECONDS="3")
        wait_for("the alert in Alertmanager", lambda: alertmanager.alerts("7"), proc, timeout=60)
        metrics = scrape(port)
        assert metrics["notifier_open_alerts"] == 1 and metrics["notifier_events_total"] == 1
        wait_for("the alert expired", lambda: not alertmanager.alerts("7"), proc, timeout=30)
        assert alertmanager.received("resolved") >= 1
        metrics = scrape(port)
        assert metrics["notifier_alerts_expired_total"] == 1, notifiers.context()
        assert metrics["notifier_open_alerts"] == 0
        assert metrics["notifier_alerts_posted_total"] >= 2  # the open, the expiry
        assert metrics["notifier_last_success_timestamp_seconds"] > opened.timestamp()
        assert "expired: no event of it" in notifiers.logs[-1].read_text()
        wait_for(
            "Prometheus to scrape the notifier's expiry",
            lambda: prom.scalar('notifier_alerts_expired_total{job="sensor-notifier"}') == 1,
            proc,
            timeout=30,
        )
        wait_for(
            "NotifierAlertsExpired to fire",
            lambda: any(
                a["labels"]["alertname"] == "NotifierAlertsExpired" and a["state"] == "firing"
                for a in prom.get("/api/v1/alerts")["alerts"]
            ),
            proc,
            timeout=60,
        )
    finally:
        stopped = prometheus_script("stop", prom_env)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
