"""docker-compose.yml's health checks, run here against local servers (there is no Docker engine).

Each check runs as its container would run it, with only what must differ outside Docker
swapped in: this checkout's interpreter and console scripts for the app image's `python` and
`sensor-wait-for-broker`, and the local server's port for the one the service listens on in its
container. Each must pass while its server answers and fail once it is gone: a check that
passes regardless would make `depends_on: service_healthy` wait for nothing. Grafana, Console
and Redpanda cannot run here; their checks are only checked statically (test_compose.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from bench.workloads import interrupt
from tests.integration.conftest import BROKERS, ROOT, free_port, python_env, scrape, wait_for
from tests.integration.test_entrypoint import compose_service
from tests.tools import require_tool

SERVICES = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
VENV_BIN = Path(sys.executable).parent


def health_command(service: str, port: int | None = None) -> list[str]:
    """The service's health check as this machine can run it."""
    out = []
    for part in SERVICES[service]["healthcheck"]["test"][1:]:  # after "CMD"
        part = str(part)
        if part == "python":
            part = sys.executable
        elif part == "sensor-wait-for-broker":
            part = str(VENV_BIN / part)
        elif port is not None and part.startswith("http://"):
            url = urlsplit(part)
            part = url._replace(netloc=f"{url.hostname}:{port}").geturl()
        out.append(part)
    return out


def check(command: list[str], env: dict[str, str] | None = None) -> int:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60).returncode


def test_the_broker_check_of_the_app_services_follows_the_broker() -> None:
    """topics, producer and notifier share one check; run with each one's compose environment
    (BROKER_WAIT_TIMEOUT_SECONDS=120 there: the check's own --timeout must win)."""
    [command] = {tuple(health_command(s)) for s in ("topics", "producer", "notifier")}
    limit = float(str(SERVICES["producer"]["healthcheck"]["timeout"]).rstrip("s"))
    for service in ("topics", "producer", "notifier"):
        _, environ = compose_service(service)
        assert environ["BROKER_WAIT_TIMEOUT_SECONDS"] == "120"
        up = {**os.environ, **environ, "KAFKA_BROKERS": BROKERS}
        assert check(list(command), up) == 0, service
    down = {**os.environ, **environ, "KAFKA_BROKERS": f"127.0.0.1:{free_port()}"}
    started = time.monotonic()
    assert check(list(command), down) != 0
    assert time.monotonic() - started < limit, "a down broker must fail within the timeout"


def test_the_dataflow_check_follows_its_metrics_api(topic_factory, tmp_path: Path) -> None:
    port = free_port()
    env = python_env(
        BYTEWAX_DATAFLOW_API_ENABLED="true",
        BYTEWAX_DATAFLOW_API_PORT=str(port),
        BYTEWAX_DATAFLOW_API_CACHE_PATH=str(tmp_path),
        STATUS_INTERVAL_SECONDS="0",
        AIR_QUALITY_TOPIC=topic_factory("aq"),
        TEMPERATURE_TOPIC=topic_factory("t"),
        ANOMALIES_TOPIC=topic_factory("anomalies"),
        DLQ_TOPIC=topic_factory("dlq"),
    )
    command = health_command("dataflow")
    assert check(command, env) != 0, "nothing listens yet"
    flow = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "dataflow.main:flow"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for("the metrics API", lambda: _answers(port), flow)
        assert check(command, env) == 0
    finally:
        interrupt(flow, 30)
    assert check(command, env) != 0


def _answers(port: int) -> bool:
    try:
        return bool(scrape(port))
    except OSError:
        return False


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """scripts/alertmanager.sh with the repository's config, on a free port."""
    require_tool("prometheus-alertmanager", "Debian package `prometheus-alertmanager`")
    port = free_port()
    env = {
        **os.environ,
        "ALERTMANAGER_PORT": str(port),
        "ALERTMANAGER_DIR": str(tmp_path / "am"),
        "ALERTMANAGER_CONFIG": str(ROOT / "ops" / "alertmanager" / "alertmanager.yml"),
    }
    yield port, env
    _script("alertmanager.sh", "stop", env)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """scripts/prometheus.sh with the repository's config and rules, on a free port."""
    require_tool("prometheus", "Debian package `prometheus`")
    require_tool("promtool", "Debian package `prometheus`")
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_PORT": str(port),
        "PROMETHEUS_DIR": str(tmp_path / "prometheus"),
        "PROMETHEUS_SCRAPE_TARGETS": f"127.0.0.1:{free_port()}",
        "PROMETHEUS_ALERTMANAGERS": "",
    }
    yield port, env
    _script("prometheus.sh", "stop", env)


def _script(name: str, command: str, env: dict[str, str]) -> None:
    script = str(ROOT / "scripts" / name)
    proc = subprocess.run([script, command], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{name} {command}: {proc.stdout}{proc.stderr}"


@pytest.mark.parametrize(
    ("service", "server"), [("alertmanager", "alertmanager"), ("prometheus", "prometheus")]
)
def test_the_http_checks_follow_their_server(
    service: str, server: str, request: pytest.FixtureRequest
) -> None:
    require_tool("wget", "Debian package `wget` (the images' busybox has its own)")
    port, env = request.getfixturevalue(server)
    command = health_command(service, port)
    assert check(command) != 0, "nothing listens yet"
    _script(f"{server}.sh", "start", env)
    assert check(command) == 0
    _script(f"{server}.sh", "stop", env)
    assert check(command) != 0
