"""scripts/prometheus.sh: start, status and stop are idempotent, only its own server is touched,
and bad settings are refused before anything starts. No dataflow needed: a target that does
not answer is just `up == 0`.

Needs ``prometheus`` and ``promtool`` (Debian package ``prometheus``): under ``make test`` a
missing one fails, otherwise the tests skip with the reason (tests/tools.py).
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import ROOT, free_port
from tests.tools import require_tool

SCRIPT = ROOT / "scripts" / "prometheus.sh"


def run(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    require_tool("prometheus", "Debian package `prometheus`")
    require_tool("promtool", "Debian package `prometheus`")
    return {
        **os.environ,
        "PROMETHEUS_DIR": str(tmp_path / "prometheus"),
        "PROMETHEUS_PORT": str(free_port()),
        "PROMETHEUS_SCRAPE_TARGETS": f"127.0.0.1:{free_port()}",
        "PROMETHEUS_SCRAPE_INTERVAL": "2s",
        "PROMETHEUS_ALERTMANAGERS": "",
    }


def test_start_status_stop_are_idempotent(env: dict[str, str], tmp_path: Path) -> None:
    assert run("status", env).returncode == 1
    try:
        first = run("start", env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"prometheus up on http://127.0.0.1:{env['PROMETHEUS_PORT']}" in first.stdout
        again = run("start", env)
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
        assert again.stderr == ""
        # Other settings for a running server: it is left alone, and start says so.
        changed = run("start", {**env, "PROMETHEUS_SCRAPE_INTERVAL": "5s"})
        assert changed.returncode == 0
        assert "stop it first" in changed.stderr
        assert run("status", env).returncode == 0

        config = yaml.safe_load((tmp_path / "prometheus" / "prometheus.yml").read_text())
        assert config["global"] == {"scrape_interval": "2s", "evaluation_interval": "2s"}
        assert config["rule_files"] == [str(ROOT / "ops/prometheus/rules/*.yml")]
        assert config["scrape_configs"][0]["static_configs"] == [
            {"targets": [env["PROMETHEUS_SCRAPE_TARGETS"]]}
        ]
        assert "alerting" not in config  # no Alertmanager unless PROMETHEUS_ALERTMANAGERS
        # Listens on the loopback only.
        pid = (tmp_path / "prometheus" / "prometheus.pid").read_text().strip()
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert f"--web.listen-address=127.0.0.1:{env['PROMETHEUS_PORT']}".encode() in args
    finally:
        stopped = run("stop", env)
    assert stopped.returncode == 0
    assert "prometheus stopped" in stopped.stdout
    assert run("status", env).returncode == 1
    again = run("stop", env)
    assert again.returncode == 0
    assert "not running" in again.stdout


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PROMETHEUS_PORT", "99999", "PROMETHEUS_PORT must be a TCP port number"),
        ("PROMETHEUS_SCRAPE_TARGETS", "dataflow", "'dataflow' is not host:port"),
        ("PROMETHEUS_SCRAPE_INTERVAL", "fast", "PROMETHEUS_SCRAPE_INTERVAL must be a duration"),
        ("PROMETHEUS_ALERTMANAGERS", "127.0.0.1", "'127.0.0.1' is not host:port"),
    ],
)
def test_bad_settings_are_refused(env: dict[str, str], name: str, value: str, message: str) -> None:
    proc = run("start", {**env, name: value})
    assert proc.returncode == 1
    assert message in proc.stderr
    assert run("status", env).returncode == 1


def test_a_busy_port_is_refused(env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run("start", {**env, "PROMETHEUS_PORT": str(port)})
    assert proc.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in proc.stderr


def test_alertmanagers_go_into_the_config(env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, "PROMETHEUS_ALERTMANAGERS": f"127.0.0.1:{free_port()}"}
    try:
        proc = run("start", env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        config = yaml.safe_load((tmp_path / "prometheus" / "prometheus.yml").read_text())
        assert config["alerting"] == {
            "alertmanagers": [{"static_configs": [{"targets": [env["PROMETHEUS_ALERTMANAGERS"]]}]}]
        }
    finally:
        assert run("stop", env).returncode == 0
