"""The Helm chart lints, renders and validates against Kubernetes' own schemas, for every value
set under ``charts/sensor-anomaly/ci/`` (one replica, three, recovery off, SASL/TLS).

No cluster runs here, so the checks are the ones that need none: ``helm lint --strict``,
``helm template``, every rendered object validated by ``kubernetes-validate`` in strict mode
(an unknown field fails, as a misspelt ``replica:`` must) against Kubernetes 1.33, and the
references between objects that an API server would only show as pods that never start: a
selector that matches no pod, a port or a volume named but not declared. What the pods run is
run for real in ``test_helm_cluster.py``.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest

from tests.chart import (
    CHART,
    KUBE_VERSION,
    NAMESPACE,
    VALUE_SETS,
    Obj,
    helm,
    helm_binary,
    one,
    render,
    template_args,
)
from tests.checkout import ROOT

# Kinds Kubernetes does not define (the Prometheus Operator's CRD): checked by hand below.
CUSTOM_KINDS = {"ServiceMonitor"}


@pytest.fixture(scope="module")
def helm_bin() -> str:
    return helm_binary()


@pytest.fixture(scope="module", params=VALUE_SETS, ids=lambda p: p.stem)
def rendered(request: pytest.FixtureRequest, helm_bin: str) -> Iterator[tuple[Path, list[Obj]]]:
    yield request.param, render(helm_bin, request.param)


def test_the_four_value_sets_are_there() -> None:
    assert {p.stem for p in VALUE_SETS} == {
        "one-replica",
        "three-replicas",
        "recovery-off",
        "sasl-tls",
    }


@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda p: p.stem)
def test_helm_lint_strict(helm_bin: str, values: Path) -> None:
    proc = helm(helm_bin, "lint", "--strict", str(CHART), "-f", str(values))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


def test_every_object_validates_strictly_against_kubernetes_1_33(
    rendered: tuple[Path, list[Obj]],
) -> None:
    _, objs = rendered
    kinds = set()
    for obj in objs:
        kinds.add(obj["kind"])
        if obj["kind"] in CUSTOM_KINDS:
            continue
        assert kubernetes_validate.validate(obj, KUBE_VERSION, strict=True) == "1.33"
    assert {"StatefulSet", "Service", "ConfigMap", "PodDisruptionBudget", "Job"} <= kinds


def test_strict_validation_refuses_a_misspelt_field(helm_bin: str) -> None:
    """Not vacuous: the same StatefulSet with `replica:` beside `replicas:` fails."""
    sts = one(render(helm_bin, VALUE_SETS[0]), "StatefulSet")
    bad = copy.deepcopy(sts)
    bad["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(bad, KUBE_VERSION, strict=True)


def test_a_misspelt_value_is_refused_by_the_chart_s_schema(helm_bin: str) -> None:
    proc = helm(helm_bin, *template_args(VALUE_SETS[0], ("dataflow.replica=3",)))
    assert proc.returncode != 0
    assert "additional properties 'replica' not allowed" in proc.stderr


@pytest.mark.parametrize(
    ("sets", "says"),
    [
        (("kafka.brokers=",), "kafka.brokers is required"),
        (("dataflow.replicas=1",), "recovery.partitions=2 is more than dataflow.replicas=1"),
        (("dataflow.shards=3", "dataflow.replicas=2"), "dataflow.shards=3 is fewer than the"),
        (("kafka.securityProtocol=SASL_SSL",), "needs kafka.sasl.existingSecret"),
        (("notifier.alertmanagerUrl=",), "notifier.alertmanagerUrl is required"),
        (("notifier.alertmanagerUrl=am:9093",), "must be an http:// or https:// URL"),
        (
            ("notifier.resolveTimeoutSeconds=120",),
            "notifier.resolveTimeoutSeconds=120 is under three times NOTIFIER_RESEND_SECONDS=60",
        ),
    ],
)
def test_values_the_programs_would_refuse_fail_the_render(
    helm_bin: str, sets: tuple[str, ...], says: str
) -> None:
    base = ("kafka.brokers=k:9092", "notifier.alertmanagerUrl=http://am:9093")
    proc = helm(helm_bin, *template_args(None, (*base, "dataflow.workersPerProcess=2", *sets)))
    assert proc.returncode != 0
    assert says in proc.stderr


def test_a_shorter_resolve_timeout_renders_with_a_re_send_to_match(helm_bin: str) -> None:
    """The check follows the notifier's rule, not a fixed floor: a 2m resolve timeout is fine
    with re-sends every 30 s, as the notifier takes it."""
    sets = (
        "kafka.brokers=k:9092",
        "notifier.alertmanagerUrl=http://am:9093",
        "notifier.resolveTimeoutSeconds=120",
        "notifier.env[0].name=NOTIFIER_RESEND_SECONDS",
        "notifier.env[0].value=30",
    )
    proc = helm(helm_bin, *template_args(None, sets))
    assert proc.returncode == 0, proc.stderr


def test_the_notifier_is_replaced_not_rolled(rendered: tuple[Path, list[Obj]]) -> None:
    """A rolling update starts the new notifier beside the old one, in one consumer group: the
    second fences the first (docs/operations.md), and both post meanwhile."""
    values, objs = rendered
    notifiers = [
        o for o in objs if o["kind"] == "Deployment" and "notifier" in o["metadata"]["name"]
    ]
    if values.stem == "recovery-off":  # the value set without a notifier
        assert notifiers == []
        return
    [dep] = notifiers
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}


def pod_specs(objs: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(workload, its pod template) of every StatefulSet, Deployment and Job."""
    for obj in objs:
        if obj["kind"] in ("StatefulSet", "Deployment", "Job"):
            yield obj, obj["spec"]["template"]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_selectors_ports_volumes_and_names_refer_to_what_exists(
    rendered: tuple[Path, list[Obj]],
) -> None:
    _, objs = rendered
    templates = [t for _, t in pod_specs(objs)]
    configmaps = {o["metadata"]["name"] for o in objs if o["kind"] == "ConfigMap"}
    for workload, template in pod_specs(objs):
        labels = template["metadata"]["labels"]
        if "selector" in workload["spec"]:
            assert matches(workload["spec"]["selector"]["matchLabels"], labels)
        spec = template["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            ports = {p["name"] for p in c.get("ports", [])}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe in c:
                    assert c[probe]["httpGet"]["port"] in ports, (c["name"], probe)
            claim_templates = workload["spec"].get("volumeClaimTemplates", [])
            claims = {t["metadata"]["name"] for t in claim_templates}
            for mount in c.get("volumeMounts", []):
                assert mount["name"] in volumes or mount["name"] in claims, (c["name"], mount)
            # Non-root, nothing gained, nothing written outside the mounted volumes.
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["resources"]["requests"] and c["resources"]["limits"], c["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for v in volumes.values():
            if "configMap" in v:
                assert v["configMap"]["name"] in configmaps, v
    for svc in (o for o in objs if o["kind"] == "Service"):
        assert any(matches(svc["spec"]["selector"], t["metadata"]["labels"]) for t in templates)
        named = {
            p["name"]
            for t in templates
            if matches(svc["spec"]["selector"], t["metadata"]["labels"])
            for c in t["spec"]["containers"]
            for p in c["ports"]
        }
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in named, port
    for pdb in (o for o in objs if o["kind"] == "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert any(matches(selector, t["metadata"]["labels"]) for t in templates)
    for monitor in (o for o in objs if o["kind"] == "ServiceMonitor"):
        selected = [
            s
            for s in objs
            if s["kind"] == "Service"
            and matches(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        ]
        assert {s["metadata"]["labels"][monitor["spec"]["jobLabel"]] for s in selected} >= {
            "sensor-dataflow"
        }
        for endpoint in monitor["spec"]["endpoints"]:
            for svc in selected:
                assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}


def test_the_dataflow_is_a_cluster_of_its_replicas(rendered: tuple[Path, list[Obj]]) -> None:
    """Pod name -> process id, a hostfile line per replica under the headless Service, the
    exchange port declared, the recovery claims and their init container."""
    values, objs = rendered
    sts = one(objs, "StatefulSet")
    name, replicas = sts["metadata"]["name"], sts["spec"]["replicas"]
    headless = one(objs, "Service", name)
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"]
    assert sts["spec"]["serviceName"] == name
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    [container] = sts["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["BYTEWAX_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["BYTEWAX_STATEFULSET_NAME"]["value"] == name
    exchange = next(p["containerPort"] for p in container["ports"] if p["name"] == "exchange")
    hosts = one(objs, "ConfigMap", f"{name}-hosts")["data"]["hostfile"].splitlines()
    assert hosts == [
        f"{name}-{i}.{name}.{NAMESPACE}.svc.cluster.local:{exchange}" for i in range(replicas)
    ]
    claims = sts["spec"].get("volumeClaimTemplates", [])
    inits = sts["spec"]["template"]["spec"].get("initContainers", [])
    if values.stem == "recovery-off":
        assert not claims and not inits and "BYTEWAX_RECOVERY_DIRECTORY" not in env
    else:
        assert [c["metadata"]["name"] for c in claims] == ["recovery"]
        assert [c["command"] for c in inits] == [["/app/entrypoint.sh", "init-recovery"]]
        assert int(env["BYTEWAX_RECOVERY_PARTITIONS"]["value"]) <= replicas


def test_credentials_come_only_from_existing_secrets(helm_bin: str) -> None:
    values = CHART / "ci" / "sasl-tls.yaml"
    objs = render(helm_bin, values)
    assert not [o for o in objs if o["kind"] == "Secret"], "the chart renders no Secret"
    for _, template in pod_specs(objs):
        for c in template["spec"]["containers"]:
            env = {e["name"]: e for e in c["env"]}
            for var in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
                ref = env[var]["valueFrom"]["secretKeyRef"]
                assert ref["name"] == "sensor-anomaly-kafka-user", var
                assert "value" not in env[var]
            assert env["KAFKA_SSL_CA_LOCATION"]["value"] == "/etc/sensor-anomaly/kafka-tls/ca.crt"
        tls = {v["name"]: v for v in template["spec"]["volumes"]}["kafka-tls"]
        assert tls["secret"]["secretName"] == "sensor-anomaly-kafka-tls"


def test_the_sensors_config_value_is_a_valid_sensors_file(helm_bin: str, tmp_path: Path) -> None:
    """The ConfigMap's file, as mounted, passes the dataflow's own check."""
    objs = render(helm_bin, CHART / "ci" / "three-replicas.yaml")
    name = one(objs, "StatefulSet")["metadata"]["name"].removesuffix("-dataflow")
    sensors = tmp_path / "sensors.yaml"
    sensors.write_text(one(objs, "ConfigMap", f"{name}-sensors")["data"]["sensors.yaml"])
    proc = subprocess.run(
        [sys.executable, "-m", "dataflow", "--check-config", str(sensors)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "pressure:" in proc.stdout


def test_every_variable_the_chart_sets_is_documented(rendered: tuple[Path, list[Obj]]) -> None:
    """In the README or the docs pages' tables and notes (docs/kubernetes.md for Bytewax's own
    cluster variables)."""
    _, objs = rendered
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    docs = "".join(page.read_text() for page in pages)
    for _, template in pod_specs(objs):
        for c in [*template["spec"].get("initContainers", []), *template["spec"]["containers"]]:
            for var in c["env"]:
                assert f"`{var['name']}" in docs, f"{c['name']}: {var['name']} is not documented"
