"""docker-compose.yml, Dockerfile and .dockerignore agree with the code (no Docker engine here).

Compose is parsed with PyYAML (merge keys resolved) and ``${NAME:-default}`` is resolved as
Compose does with an empty environment, so these checks see what ``docker compose up`` runs
by default. The environments are then validated by the code's own settings parsers.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

import dataflow
from dataflow.config import ENV_DOCS, Settings
from producer.settings import OPTIONS, parse_settings
from tests.checkout import ROOT, project_files
from tests.tools import require_tool

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("topics", "producer", "dataflow")
DOCKERFILE = (ROOT / "Dockerfile").read_text()
ENTRYPOINT = (ROOT / "entrypoint.sh").read_text()
# The reference pages the compose file is documented in.
DEPLOYMENT = (ROOT / "docs" / "deployment.md").read_text()
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")
TOPIC_VARS = ("AIR_QUALITY_TOPIC", "TEMPERATURE_TOPIC", "ANOMALIES_TOPIC", "DLQ_TOPIC")


def resolve(value: object) -> str:
    """A compose value as Compose passes it with nothing set in the shell or .env."""
    text = str(value)
    text = INTERPOLATION.sub(lambda m: m.group("default") or "", text)
    return text.replace("$$", "$")


def env_of(service: str) -> dict[str, str]:
    return {k: resolve(v) for k, v in SERVICES[service].get("environment", {}).items()}


def flags(command: list[str]) -> dict[str, str]:
    """``--name=value`` / ``--name value`` items of a command list."""
    out: dict[str, str] = {}
    items = [part for item in command for part in str(item).split(" ", 1)]
    for i, item in enumerate(items):
        if item.startswith("--"):
            name, sep, value = item[2:].partition("=")
            if not sep and i + 1 < len(items) and not items[i + 1].startswith("--"):
                value = items[i + 1]
            out[name] = value
    return out


def listeners(spec: str) -> dict[str, str]:
    """``internal://host:port,external://host:port`` -> {name: host:port}."""
    return dict(part.split("://", 1) for part in spec.split(","))


def entrypoint_roles() -> set[str]:
    """The roles entrypoint.sh's main() dispatches on (the arms of its case statement)."""
    body = ENTRYPOINT[ENTRYPOINT.index('case "$role" in') :]
    body = body[: body.index("esac")]
    arms = re.findall(r"^\s{4}([a-z][a-z-]*)\)", body, flags=re.M)
    return set(arms)


def documented_docker_vars() -> set[str]:
    """Variables in the tables of docs/deployment.md ("Run with Docker")."""
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", DEPLOYMENT, flags=re.M))


def published(service: str) -> list[tuple[str, int, int]]:
    """A service's published ports as (host address as written, host port, container port);
    the address is "" when the spec has none (every interface)."""
    out = []
    for spec in SERVICES[service].get("ports", []):
        *address, host, container = str(spec).rsplit(":", 2)
        out.append((address[0] if address else "", int(host), int(container)))
    return out


def port_pairs(service: str) -> list[tuple[int, int]]:
    return [(host, container) for _, host, container in published(service)]


def documented_metrics_vars() -> set[str]:
    """Bytewax's metrics variables, documented in docs/operations.md's "Metrics." paragraph."""
    start = OPERATIONS.index("**Metrics.**")
    paragraph = OPERATIONS[start : OPERATIONS.index("\n\n", start)]
    return set(re.findall(r"`(BYTEWAX_[A-Z0-9_]+)(?:=[^`]*)?`", paragraph))


# --- Redpanda ------------------------------------------------------------------------------


def test_expected_services_exist() -> None:
    assert {
        "redpanda",
        "topics",
        "producer",
        "dataflow",
        "console",
        "prometheus",
        "grafana",
    } <= set(SERVICES)


@pytest.mark.parametrize(
    ("service", "repo"),
    [
        ("redpanda", "docker.redpanda.com/redpandadata/redpanda"),
        ("console", "docker.redpanda.com/redpandadata/console"),
    ],
)
def test_images_are_pinned_to_a_release(service: str, repo: str) -> None:
    image = SERVICES[service]["image"]
    name, _, tag = image.rpartition(":")
    assert name == repo
    assert re.fullmatch(r"v\d+\.\d+\.\d+", tag), f"{image}: pin a release, not {tag!r}"


@pytest.mark.parametrize(
    ("service", "repo", "tag"),
    [
        ("prometheus", "prom/prometheus", r"v\d+\.\d+\.\d+"),
        ("grafana", "grafana/grafana", r"\d+\.\d+\.\d+"),
    ],
)
def test_monitoring_images_are_pinned_to_a_release(service: str, repo: str, tag: str) -> None:
    image = SERVICES[service]["image"]
    name, _, version = image.rpartition(":")
    assert name == repo
    assert re.fullmatch(tag, version), f"{image}: pin a release, not {version!r}"


# The first release without a known hole these images must stay at or above: a pin can move
# up, never back to a vulnerable release.
PATCHED = {
    # CVE-2023-40577: stored cross-site scripting through the v1 alerts API (fixed in 0.25.1).
    "prom/alertmanager": (0, 25, 1),
    # 11.x is out of support; 13.2.2 is the security release the pin was moved to.
    "grafana/grafana": (13, 2, 2),
}


def version_of(image: str) -> tuple[int, ...]:
    tag = image.rpartition(":")[2]
    match = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)", tag)
    assert match, f"{image}: pin a release, not {tag!r}"
    return tuple(int(part) for part in match.groups())


@pytest.mark.parametrize(("repo", "minimum"), sorted(PATCHED.items()))
def test_images_are_at_or_above_their_patched_release(repo: str, minimum: tuple[int, ...]) -> None:
    [image] = [s["image"] for s in SERVICES.values() if s["image"].rpartition(":")[0] == repo]
    assert version_of(image) >= minimum, f"{image} is older than {minimum}, which fixed a hole"


def test_redpanda_is_a_single_dev_container_node() -> None:
    command = SERVICES["redpanda"]["command"]
    assert command[:2] == ["redpanda", "start"]
    opts = flags(command)
    assert opts["mode"] == "dev-container"
    assert opts["smp"] == "1"


def test_redpanda_advertises_an_internal_and_an_external_listener() -> None:
    opts = flags(SERVICES["redpanda"]["command"])
    bind = listeners(opts["kafka-addr"])
    advertised = listeners(opts["advertise-kafka-addr"])
    assert set(bind) == set(advertised) == {"internal", "external"}
    # Inside the network: the service name. Outside: the IPv4 loopback the port is published on.
    assert advertised["internal"] == f"redpanda:{bind['internal'].rsplit(':', 1)[1]}"
    host, port = advertised["external"].rsplit(":", 1)
    assert host == "127.0.0.1"
    assert bind["external"] == f"0.0.0.0:{port}"
    assert (int(port), int(port)) in port_pairs("redpanda")
    assert any(container == 9644 for _, container in port_pairs("redpanda")), "admin API"


def test_every_client_uses_the_internal_listener() -> None:
    internal = listeners(flags(SERVICES["redpanda"]["command"])["advertise-kafka-addr"])["internal"]
    for service in APP_SERVICES:
        assert env_of(service)["KAFKA_BROKERS"] == internal, service
    console = yaml.safe_load(env_of("console")["CONSOLE_CONFIG_FILE"])
    assert console["kafka"]["brokers"] == [internal]
    assert SERVICES["console"]["environment"]["CONFIG_FILEPATH"] in SERVICES["console"]["command"]
    assert (8080, 8080) in port_pairs("console")


def test_redpanda_has_a_healthcheck_that_asks_the_cluster() -> None:
    check = SERVICES["redpanda"]["healthcheck"]
    test = " ".join(check["test"][1:]) if isinstance(check["test"], list) else check["test"]
    assert "rpk cluster health" in test or "/v1/status/ready" in test
    assert check["retries"] >= 10, "Redpanda can take a while on a cold start"


# --- Published ports -----------------------------------------------------------------------

BIND_ADDRESS = re.compile(r"\$\{(?P<name>[A-Z][A-Z0-9_]*_BIND_ADDRESS):-127\.0\.0\.1\}")


def test_every_published_port_is_on_the_loopback_unless_a_documented_variable_opens_it() -> None:
    """Nothing in this stack but Grafana asks for a login: a port published without an address
    is open on every interface of the host (and Docker's rules bypass a host firewall)."""
    documented = documented_docker_vars()
    variables = set()
    for name in SERVICES:
        for address, host, container in published(name):
            spec = f"{name}: {address}:{host}:{container}"
            match = BIND_ADDRESS.fullmatch(address)
            assert match, f"{spec}: publish on ${{<NAME>_BIND_ADDRESS:-127.0.0.1}}"
            assert resolve(address) == "127.0.0.1", spec
            where = "docs/deployment.md"
            assert match["name"] in documented, f"{spec}: document {match['name']} in {where}"
            variables.add(match["name"])
    # One variable per kind of access, so opening one (the Kafka API) opens nothing else.
    assert {
        "REDPANDA_KAFKA_BIND_ADDRESS",
        "REDPANDA_ADMIN_BIND_ADDRESS",
        "CONSOLE_BIND_ADDRESS",
        "ALERTMANAGER_BIND_ADDRESS",
        "PROMETHEUS_BIND_ADDRESS",
        "GRAFANA_BIND_ADDRESS",
    } <= variables


# --- Health checks -------------------------------------------------------------------------


def healthcheck(service: str) -> list[str]:
    """A service's health-check command, without the leading CMD."""
    test = SERVICES[service]["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] == "CMD", f"{service}: an exec-form command"
    return [str(part) for part in test[1:]]


def test_every_service_has_a_health_check() -> None:
    for name, service in SERVICES.items():
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name}: no health check"
        assert healthcheck(name), name


@pytest.mark.parametrize("service", ["alertmanager", "prometheus", "grafana", "console"])
def test_http_health_checks_ask_the_port_the_service_listens_on(service: str) -> None:
    [url] = [part for part in healthcheck(service) if part.startswith("http://")]
    host, _, port = urlsplit(url).netloc.partition(":")
    assert host == "127.0.0.1"  # inside the container, whatever the published address
    assert any(container == int(port) for _, container in port_pairs(service)), url
    if service == "alertmanager":
        listen = flags(SERVICES[service]["command"])["web.listen-address"]
        assert listen.rsplit(":", 1)[1] == port


def test_app_services_without_an_endpoint_check_the_broker_with_the_entrypoint_s_wait() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for name in ("topics", "producer", "notifier"):
        command = healthcheck(name)
        assert command[0] in project["project"]["scripts"], f"{name}: {command[0]} is installed"
        timeout = float(command[command.index("--timeout") + 1])
        assert timeout < float(str(SERVICES[name]["healthcheck"]["timeout"]).rstrip("s"))


def test_the_dataflow_s_health_check_asks_its_metrics_api() -> None:
    command = healthcheck("dataflow")
    assert command[:2] == ["python", "-c"]
    assert "BYTEWAX_DATAFLOW_API_PORT" in command[2] and "/metrics" in command[2]
    assert env_of("dataflow")["BYTEWAX_DATAFLOW_API_ENABLED"] == "true"


def test_services_wait_for_what_they_need_to_be_healthy() -> None:
    """The notifier starts once Alertmanager is ready, Grafana once Prometheus is; Console,
    the topic set-up, the producer and the dataflow once the broker is."""
    for name, needs in {
        "notifier": "alertmanager",
        "grafana": "prometheus",
        "console": "redpanda",
        "topics": "redpanda",
        "producer": "redpanda",
        "dataflow": "redpanda",
    }.items():
        assert SERVICES[name]["depends_on"][needs] == {"condition": "service_healthy"}, name


# --- Topic set-up, producer, dataflow ------------------------------------------------------


def test_app_services_share_one_image_built_from_the_dockerfile() -> None:
    for service in APP_SERVICES:
        assert SERVICES[service]["build"] == ".", service
        assert SERVICES[service]["image"] == SERVICES["dataflow"]["image"], service
        assert SERVICES[service]["init"] is True, f"{service}: SIGTERM must reach Python"


def test_commands_are_entrypoint_roles() -> None:
    roles = entrypoint_roles()
    assert {"producer", "dataflow", "init-topics", "wait"} <= roles
    assert SERVICES["topics"]["command"] == ["init-topics"]
    assert SERVICES["producer"]["command"] == ["producer"]
    assert SERVICES["dataflow"]["command"] == ["dataflow"]


def test_topic_set_up_creates_the_codes_default_topics() -> None:
    env = env_of("topics")
    assert {name: env[name] for name in TOPIC_VARS} == {
        name: ENV_DOCS[name][0] for name in TOPIC_VARS
    }
    assert env["TOPIC_PARTITIONS"] == ENV_DOCS["TOPIC_PARTITIONS"][0]
    assert SERVICES["topics"]["restart"] == "no"
    assert SERVICES["topics"]["depends_on"] == {"redpanda": {"condition": "service_healthy"}}


def test_all_app_services_agree_on_topics() -> None:
    for service in APP_SERVICES:
        env = env_of(service)
        assert {name: env[name] for name in TOPIC_VARS} == {
            name: ENV_DOCS[name][0] for name in TOPIC_VARS
        }, service


@pytest.mark.parametrize("service", ["producer", "dataflow"])
def test_producer_and_dataflow_wait_for_the_topics(service: str) -> None:
    assert SERVICES[service]["depends_on"] == {
        "redpanda": {"condition": "service_healthy"},
        "topics": {"condition": "service_completed_successfully"},
    }


def test_restart_policies() -> None:
    assert SERVICES["redpanda"]["restart"] == "unless-stopped"
    assert SERVICES["dataflow"]["restart"] == "unless-stopped"
    assert SERVICES["producer"]["restart"] == "on-failure"  # a finished run stays finished


def test_every_app_variable_is_documented_and_interpolated_under_its_own_name() -> None:
    documented = (
        set(ENV_DOCS)
        | {o.env for o in OPTIONS}
        | documented_docker_vars()
        | documented_metrics_vars()
    )
    for service in APP_SERVICES:
        for name, raw in SERVICES[service]["environment"].items():
            assert name in documented, f"{service}: {name} is not documented in docs/"
            for match in INTERPOLATION.finditer(str(raw)):
                assert match.group("name") == name, f"{service}: {name} reads ${match[0]}"


def test_entrypoint_variables_are_documented_in_the_readme() -> None:
    header = ENTRYPOINT[: ENTRYPOINT.index("set -euo pipefail")]
    names = set(re.findall(r"^#\s+([A-Z][A-Z0-9_]+)\s", header, flags=re.M))
    assert {
        "KAFKA_BROKERS",
        "BROKER_WAIT_TIMEOUT_SECONDS",
        "BYTEWAX_WORKERS",
        "BYTEWAX_RECOVERY_DIRECTORY",
    } <= names
    assert names - {"KAFKA_BROKERS"} <= documented_docker_vars()


def test_dataflow_environment_is_valid_for_the_dataflow() -> None:
    env = env_of("dataflow")
    settings = Settings.from_env(env)  # raises ConfigError naming a bad variable
    assert settings.brokers == ("redpanda:9092",)
    assert int(env["BYTEWAX_WORKERS"]) >= 1
    assert float(env["BYTEWAX_SNAPSHOT_INTERVAL"]) > 0


def test_producer_environment_is_valid_for_the_producer() -> None:
    settings = parse_settings([], env_of("producer"))  # exits 2 on a bad value
    assert settings.brokers == ("redpanda:9092",)
    assert settings.scenario == "overheat"
    assert settings.realtime is True
    assert settings.count is None and settings.duration_s is None  # runs until stopped


def documented_override() -> dict:
    """docs/deployment.md's docker-compose.override.yml for a sensors file."""
    block = re.search(r"```yaml\n(# docker-compose\.override\.yml\n.*?)```", DEPLOYMENT, re.S)
    assert block, "docs/deployment.md: the override example for a sensors file is gone"
    return yaml.safe_load(block.group(1))


def test_the_documented_sensors_file_override_gives_a_producer_that_starts(
    tmp_path: Path,
) -> None:
    """``SENSORS_CONFIG=... docker compose up -d`` with the documented override: compose's own
    ``overheat`` scenario is refused beside a sensors file (exit 2, restarted for ever), so the
    override must set one the producer takes; its environment merged over compose's, as
    Compose merges an override's mapping."""
    sensors = tmp_path / "sensors.yaml"
    sensors.write_text(
        "families:\n  pressure:\n    topic: pressure\n    value: pa\n    valid_range: [0, 200000]\n"
    )
    override = documented_override()["services"]["producer"]
    env = {**env_of("producer"), **override.get("environment", {})}
    env["SENSORS_CONFIG"] = str(sensors)  # where the mount puts the file, here
    settings = parse_settings([], env)  # exits 2 on a refused combination
    assert [f.name for g in settings.groups for f in g.families] == ["pressure"]
    with pytest.raises(SystemExit):  # and compose's default alone is refused: the test bites
        parse_settings([], {**env_of("producer"), "SENSORS_CONFIG": str(sensors)})


def test_recovery_directory_is_a_named_volume_the_image_prepares() -> None:
    directory = env_of("dataflow")["BYTEWAX_RECOVERY_DIRECTORY"]
    mounts = dict(v.split(":", 1) for v in SERVICES["dataflow"]["volumes"])
    named = {source for source, target in mounts.items() if target == directory}
    assert named and named <= set(COMPOSE["volumes"]), "recovery must survive `compose down`"
    # A fresh named volume copies the image's directory, owner included: it must exist there,
    # owned by the non-root user.
    assert re.search(rf"install -d -o app -g app {re.escape(directory)}\b", DOCKERFILE)


# --- Prometheus and Grafana ----------------------------------------------------------------


def mounts(service: str) -> dict[str, str]:
    """Container path -> host source (a ./path or a named volume), read-only ones marked."""
    out = {}
    for spec in SERVICES[service]["volumes"]:
        source, target, *mode = spec.split(":")
        out[target] = source + (":ro" if mode == ["ro"] else "")
    return out


def test_dataflow_serves_its_metrics_where_prometheus_scrapes() -> None:
    assert env_of("dataflow")["BYTEWAX_DATAFLOW_API_ENABLED"] == "true"
    port = env_of("dataflow").get("BYTEWAX_DATAFLOW_API_PORT", "3030")  # Bytewax's default
    config = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "sensor-dataflow"]
    assert job["static_configs"] == [{"targets": [f"dataflow:{port}"]}]


def test_prometheus_runs_the_repository_config_and_keeps_its_data() -> None:
    service = SERVICES["prometheus"]
    opts = flags(service["command"])
    config = opts["config.file"]
    directory, _, name = config.rpartition("/")
    volumes = mounts("prometheus")
    assert volumes[directory] == "./ops/prometheus:ro"
    assert (ROOT / "ops/prometheus" / name).is_file()
    assert volumes[opts["storage.tsdb.path"]] in COMPOSE["volumes"]
    assert port_pairs("prometheus") == [(9090, 9090)]
    assert service["restart"] == "unless-stopped"


def test_grafana_is_provisioned_from_the_repository_with_the_dashboard_as_home() -> None:
    service = SERVICES["grafana"]
    volumes = mounts("grafana")
    assert volumes["/etc/grafana/provisioning"] == "./ops/grafana/provisioning:ro"
    [provider] = yaml.safe_load(
        (ROOT / "ops/grafana/provisioning/dashboards/sensor-anomaly.yml").read_text()
    )["providers"]
    dashboards = provider["options"]["path"]
    assert volumes[dashboards] == "./ops/grafana/dashboards:ro"
    home = env_of("grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    directory, _, name = home.rpartition("/")
    assert directory == dashboards  # provisioned too: Grafana needs the home dashboard to exist
    assert (ROOT / "ops/grafana/dashboards" / name).is_file()
    assert volumes["/var/lib/grafana"] in COMPOSE["volumes"]
    assert port_pairs("grafana") == [(3000, 3000)]
    assert service["depends_on"] == {"prometheus": {"condition": "service_healthy"}}
    assert service["restart"] == "unless-stopped"


def test_grafana_s_admin_password_is_a_required_secret_not_a_variable() -> None:
    grafana = SERVICES["grafana"]
    env = grafana["environment"]
    # A plain variable shows in `docker inspect`; Grafana reads the password from a file.
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    directory, _, secret = env["GF_SECURITY_ADMIN_PASSWORD__FILE"].rpartition("/")
    assert directory == "/run/secrets"  # where Compose puts a secret granted by its short name
    assert grafana["secrets"] == [secret]
    # Its source is a variable of the shell or .env, with no default anywhere: Compose refuses
    # to start Grafana while it is unset.
    assert COMPOSE["secrets"][secret] == {"environment": "GF_ADMIN_PASSWORD"}
    raw = (ROOT / "docker-compose.yml").read_text()
    defaults = [m[0] for m in INTERPOLATION.finditer(raw) if m["name"] == "GF_ADMIN_PASSWORD"]
    assert defaults == [], defaults
    assert "GF_ADMIN_PASSWORD" in documented_docker_vars()
    # ... and the .env that holds it is never committed.
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored or "/.env" in ignored, ".env must be in .gitignore"


def test_grafana_datasource_is_the_prometheus_service() -> None:
    [source] = yaml.safe_load(
        (ROOT / "ops/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    host_port = source["url"].removeprefix("http://")
    host, _, port = host_port.partition(":")
    assert host == "prometheus"
    assert any(p.endswith(f":{port}") for p in SERVICES["prometheus"]["ports"])


# --- Dockerfile ----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name (``AS ...``; the last, unnamed one is "final") -> its instructions."""
    out: dict[str, list[tuple[str, str]]] = {}
    steps: list[tuple[str, str]] = []
    for kw, rest in dockerfile_instructions():
        if kw == "FROM":
            _, _, name = rest.partition(" AS ")
            steps = out.setdefault(name.strip() or "final", [])
        steps.append((kw, rest))
    return out


def copied(steps: list[tuple[str, str]]) -> list[str]:
    """What COPY instructions take from the build context (not ``--from`` another stage)."""
    sources = []
    for kw, rest in steps:
        words = shlex.split(rest)
        if kw == "COPY" and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[:-1] if not w.startswith("--")]
    return sources


def test_dockerfile_base_is_a_pinned_slim_python_311() -> None:
    bases = {rest.partition(" AS ")[0] for kw, rest in dockerfile_instructions() if kw == "FROM"}
    [base] = bases  # the wheel is built on the interpreter it is installed on
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", base), base


def test_dockerfile_installs_the_pinned_requirements_then_the_project_wheel() -> None:
    steps = stages()["final"]
    copy = steps.index(("COPY", "requirements.txt ./"))
    [install] = [
        i
        for i, (kw, rest) in enumerate(steps)
        if kw == "RUN" and "pip install" in rest and "-r requirements.txt" in rest
    ]
    [project] = [
        i
        for i, (kw, rest) in enumerate(steps)
        if kw == "RUN" and "from=build" in rest and "pip install" in rest
    ]
    assert copy < install < project
    # The pins are the tested set: installing the project must not resolve its ranges again.
    assert "--no-deps" in steps[project][1]
    # The app's code comes after, so a code change keeps the dependency layer cached.
    assert copied(steps) == ["requirements.txt", "entrypoint.sh"]


def test_dockerfile_builds_the_wheel_from_the_declared_packages() -> None:
    build = stages()["build"]
    [wheel] = [rest for kw, rest in build if kw == "RUN" and "pip wheel" in rest]
    assert "--no-deps" in wheel and "--wheel-dir /wheels" in wheel
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", project["project"]["readme"]}
    needed |= {f"{package.split('.')[0]}/" for package in project["tool"]["setuptools"]["packages"]}
    assert set(copied(build)) == needed


def test_dockerfile_runs_as_a_non_root_user() -> None:
    [user] = [rest for kw, rest in dockerfile_instructions() if kw == "USER"]
    assert user.split(":")[0] not in ("root", "0")
    last_user = max(i for i, (kw, _) in enumerate(dockerfile_instructions()) if kw == "USER")
    assert all(kw != "RUN" for kw, _ in dockerfile_instructions()[last_user:])


def test_dockerfile_entrypoint_is_entrypoint_sh() -> None:
    steps = dict(
        (kw, rest) for kw, rest in stages()["final"] if kw in ("WORKDIR", "ENTRYPOINT", "CMD")
    )
    entry = json.loads(steps["ENTRYPOINT"])
    assert entry == [f"{steps['WORKDIR']}/entrypoint.sh"]
    assert json.loads(steps["CMD"])[0] in entrypoint_roles()
    assert "-m dataflow.admin wait" in ENTRYPOINT  # the broker wait lives in dataflow/
    assert (ROOT / "entrypoint.sh").stat().st_mode & 0o111, "entrypoint.sh must be executable"


def test_the_image_wheel_builds_from_the_docker_context_and_imports(tmp_path: Path) -> None:
    """The build stage's step, run here on the files Docker would send (what the build stage
    copies, less what .dockerignore drops): the wheel holds every module of the packages and
    the console scripts, and its packages import from where it is installed.

    Offline: the venv's setuptools builds it (no build isolation). The Docker build itself,
    with its isolated build, is not run here.
    """
    patterns = dockerignore_patterns()
    context = tmp_path / "context"
    for source in copied(stages()["build"]):
        path = ROOT / source
        for file in [path] if path.is_file() else project_files(under=source):
            rel = file.relative_to(ROOT).as_posix()
            if not dockerignored(rel, patterns):
                (context / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, context / rel)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir"]
    build = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    [wheel] = wheels.glob("*.whl")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode()
    for package in project["tool"]["setuptools"]["packages"]:
        for module in project_files("*.py", under=package.replace(".", "/")):
            assert module.relative_to(ROOT).as_posix() in names
    for script, target in project["project"]["scripts"].items():
        assert f"{script} = {target}" in scripts
    site = tmp_path / "site"
    install = subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    probe = (
        "import dataflow.main, notifier.service, producer.shapes\n"
        "print(dataflow.__file__)\nprint(dataflow.sources_digest())"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        # No build beside this copy: the source runs (the image has its own, in /app/compiled).
        env={**os.environ, "PYTHONPATH": str(site), "DATAFLOW_COMPILED": "off"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    where, digest = ran.stdout.split()
    assert Path(where).is_relative_to(site)
    # The compiled stage stamps its build with the checkout's digest; the image requires it to
    # be the installed package's, so the wheel must hold the modules as they are, no more.
    assert digest == dataflow.sources_digest(ROOT / "dataflow")


def test_dockerfile_ships_the_compiled_shard_and_requires_it() -> None:
    """The compiled stage builds with the project's script from what it copies; the final
    stage takes its output and requires it (a stale build fails at start, not silently)."""
    build = stages()["compiled"]
    assert set(copied(build)) == {
        "requirements.txt",
        "pyproject.toml",
        "dataflow/",
        "scripts/compile.sh",
    }
    [compile_step] = [rest for kw, rest in build if kw == "RUN" and "compile.sh" in rest]
    assert "OUT=/compiled" in compile_step
    final = stages()["final"]
    assert ("COPY", "--from=compiled /compiled /app/compiled") in final
    env = " ".join(rest for kw, rest in final if kw == "ENV")
    assert "DATAFLOW_COMPILED_DIR=/app/compiled" in env and "DATAFLOW_COMPILED=require" in env
    patterns = dockerignore_patterns()
    assert not any(dockerignored(path.rstrip("/"), patterns) for path in copied(build))


def dockerignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also matches a path's parents."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_dockerfile_copies_and_drops_local_state() -> None:
    patterns = dockerignore_patterns()
    sources = [source for steps in stages().values() for source in copied(steps)]
    for source in sources:
        path = ROOT / source
        files = [path] if path.is_file() else project_files("*.py", under=source)
        assert files, source
        for file in files:
            rel = file.relative_to(ROOT).as_posix()
            assert not dockerignored(rel, patterns), f"{rel} is excluded from the build context"
    for local in (
        ".venv/bin/python",
        ".broker/kafka.log",
        ".git/HEAD",
        "dataflow/__pycache__/x.pyc",
        "tests/unit/project/test_compose.py",
    ):
        assert dockerignored(local, patterns), local
    # An allow-list entry names something that exists: a stale one hides a removed file.
    for kept in (p[1:].rstrip("/") for p in patterns if p.startswith("!")):
        assert (ROOT / kept).exists(), f".dockerignore allows {kept!r}, which is not there"


# --- Shell scripts -------------------------------------------------------------------------


def shell_scripts() -> list[Path]:
    """Every shell script of the project (not of .venv or .broker, never walked: the broker
    changes its data directory while the tests run)."""
    return project_files("*.sh")


def test_container_scripts_are_strict_bash() -> None:
    scripts = [ROOT / "entrypoint.sh", ROOT / "scripts" / "rpk.sh"]
    assert set(scripts) <= set(shell_scripts())
    for script in scripts:
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), script
        assert "set -euo pipefail" in text, script


def test_shellcheck_is_clean_on_every_shell_script() -> None:
    shellcheck = require_tool("shellcheck", "Debian package `shellcheck`")
    proc = subprocess.run([shellcheck, *map(str, shell_scripts())], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- Notifier and Alertmanager -------------------------------------------------------------

AM_CONFIG = ROOT / "ops" / "alertmanager" / "alertmanager.yml"


def test_notifier_and_alertmanager_services_exist() -> None:
    assert {"notifier", "alertmanager"} <= set(SERVICES)


def test_alertmanager_image_is_pinned_to_a_release() -> None:
    name, _, tag = SERVICES["alertmanager"]["image"].rpartition(":")
    assert name == "prom/alertmanager"
    assert re.fullmatch(r"v\d+\.\d+\.\d+", tag), f"pin a release, not {tag!r}"


def test_alertmanager_runs_the_ops_config_alone_and_publishes_its_api() -> None:
    am = SERVICES["alertmanager"]
    opts = flags(am["command"])
    mounts = {
        target.removesuffix(":ro"): source
        for source, target in (v.split(":", 1) for v in am["volumes"])
    }
    assert mounts[opts["config.file"]] == "./ops/alertmanager/alertmanager.yml"
    assert AM_CONFIG.is_file()
    assert opts["cluster.listen-address"] == "", "one instance: no gossip port"
    assert mounts[opts["storage.path"]] in COMPOSE["volumes"], "silences survive `down`"
    port = int(opts["web.listen-address"].rsplit(":", 1)[1])
    assert (port, port) in port_pairs("alertmanager")
    assert am["restart"] == "unless-stopped"


def test_notifier_is_an_app_service_run_through_the_entrypoint() -> None:
    notifier = SERVICES["notifier"]
    assert notifier["build"] == "." and notifier["image"] == SERVICES["dataflow"]["image"]
    assert notifier["init"] is True
    assert notifier["command"] == ["notifier"] and "notifier" in entrypoint_roles()
    assert notifier["restart"] == "unless-stopped"
    assert notifier["depends_on"] == {
        "redpanda": {"condition": "service_healthy"},
        "topics": {"condition": "service_completed_successfully"},
        "alertmanager": {"condition": "service_healthy"},
    }
    copied = {shlex.split(rest)[0] for kw, rest in dockerfile_instructions() if kw == "COPY"}
    assert "notifier/" in copied


def test_notifier_environment_is_valid_and_points_at_the_services() -> None:
    from notifier.config import ENV_DOCS as NOTIFIER_ENV_DOCS
    from notifier.config import Settings as NotifierSettings

    env = env_of("notifier")
    settings = NotifierSettings.from_env(env)  # raises ConfigError naming a bad variable
    internal = listeners(flags(SERVICES["redpanda"]["command"])["advertise-kafka-addr"])["internal"]
    assert settings.brokers == (internal,)
    assert settings.anomalies_topic == env_of("dataflow")["ANOMALIES_TOPIC"]
    am_port = flags(SERVICES["alertmanager"]["command"])["web.listen-address"].rsplit(":", 1)[1]
    assert settings.alertmanager_url == f"http://alertmanager:{am_port}"
    kafka_env = set(env_of("dataflow")) | set(ENV_DOCS)
    for name, raw in SERVICES["notifier"]["environment"].items():
        assert name in NOTIFIER_ENV_DOCS or name in kafka_env or name in documented_docker_vars(), (
            f"notifier: {name} is not a setting"
        )
        for match in INTERPOLATION.finditer(str(raw)):
            assert match.group("name") == name, f"notifier: {name} reads ${match[0]}"
            docs = NOTIFIER_ENV_DOCS if name in NOTIFIER_ENV_DOCS else ENV_DOCS
            assert match.group("default") == docs[name][0], name


def test_notifier_resolve_timeout_equals_the_alertmanager_config() -> None:
    from notifier.alerts import parse_go_duration
    from notifier.config import Settings as NotifierSettings

    config = yaml.safe_load(AM_CONFIG.read_text())
    actual = parse_go_duration(config["global"]["resolve_timeout"])
    settings = NotifierSettings.from_env(env_of("notifier"))
    assert settings.resolve_timeout_seconds == actual
    assert settings.resend_seconds * 3 <= actual


def test_alertmanager_config_passes_amtool_check_config() -> None:
    amtool = require_tool("amtool", "Debian package `prometheus-alertmanager`")
    proc = subprocess.run([amtool, "check-config", str(AM_CONFIG)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_alertmanager_config_routes_to_a_webhook_that_hears_resolutions() -> None:
    config = yaml.safe_load(AM_CONFIG.read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    [hook] = receivers[config["route"]["receiver"]]["webhook_configs"]
    assert hook["send_resolved"] is True
    assert {"alertname", "sensor_id"} <= set(config["route"]["group_by"])
