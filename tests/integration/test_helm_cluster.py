"""The chart's StatefulSet, run for real: its pods' commands as one Bytewax cluster on this machine.

The chart is rendered (``helm template``) against the local broker, and each of its
``replicas`` pods is run as the kubelet would run it: the init containers, then the container,
with the rendered command and environment, ``BYTEWAX_POD_NAME`` from the downward API
(``<statefulset>-<i>``), each volume a directory of the pod's own (the recovery claim one that
outlives the pod), and the hostfile's names replaced by 127.0.0.1 ports, in order. The pods
share this machine's network, so each serves Bytewax's API on a port of its own.

On test_scaling.py's seeded workload (both families, late readings, bad messages) the pods must
write what one process of the same command writes, each pod doing part of the reading and the
windowing; and a pod killed mid-stream (SIGKILL), whose peer then stops too, must resume with
its claim on another "node" (its directory moved) and lose nothing: every record the one
process writes, in each sensor's order, and nothing else. Output of the epoch the cluster
resumed from is written again (Bytewax's output is at least once), as the same bytes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.chart import Obj, helm_binary, one, render
from tests.integration.conftest import BROKERS, ROOT, consume_all, free_port, wait_for
from tests.integration.test_recovery import committed_epoch
from tests.integration.test_scaling import (
    ENV,
    PARTITIONS,
    RUN_TIMEOUT_S,
    Record,
    anomaly_stream,
    assert_same,
    dlq_stream,
    last_status,
    produce_workload,
    records,
    run_cluster,
)

REPLICAS = 2
# Eight times test_scaling's fleet, whose workload drains in a few seconds: long enough for
# snapshots to land mid-stream and the kill to come well before the end.
SENSORS = 2000
IMAGE_APP = "/app/"  # the image's WORKDIR: entrypoint.sh, here the checkout's


@dataclass
class Pod:
    """One replica: what its init containers and its container run, with which environment."""

    name: str
    inits: list[tuple[list[str], dict[str, str]]]
    command: list[str]
    env: dict[str, str]
    claim: Path | None  # the recovery claim's directory
    api_port: int
    log: Path
    proc: subprocess.Popen[str] | None = field(default=None, repr=False)

    def init(self) -> str:
        """Run the init containers (a new pod's, or one rescheduled); their stderr."""
        out = ""
        for command, env in self.inits:
            proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, f"{self.name} init: {proc.stderr}"
            out += proc.stderr
        return out

    def start(self) -> None:
        with self.log.open("a") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=log, text=True
            )

    def stderr(self) -> str:
        return self.log.read_text()


def values_file(tmp_path: Path, topics: dict[str, str], **recovery: object) -> Path:
    """The chart's values for this machine's broker: the test topics, no notifier, and the
    comparison's settings (test_scaling.ENV) through the chart's dataflow.env."""
    path = tmp_path / "values.yaml"
    values = {
        "kafka": {"brokers": BROKERS, "waitTimeoutSeconds": 30},
        "notifier": {"enabled": False},
        "topics": {**topics, "partitions": PARTITIONS},
        "dataflow": {
            "replicas": REPLICAS,
            "env": [{"name": k, "value": v} for k, v in ENV.items()],
            "recovery": {"partitions": REPLICAS, **recovery},
        },
    }
    path.write_text(yaml.safe_dump(values))
    return path


def localize(container: Obj, pod: str, dirs: dict[str, Path]) -> dict[str, str]:
    """The container's environment on this machine: downward-API names filled in, paths under
    a volume's mount moved to that volume's directory."""
    mounts = {m["mountPath"]: dirs[m["name"]] for m in container.get("volumeMounts", [])}
    env = {"PATH": os.environ["PATH"], "HOME": str(dirs["tmp"])}
    for var in container["env"]:
        if "valueFrom" in var:
            assert var["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}, var
            env[var["name"]] = pod
            continue
        value = var["value"]
        for mount in sorted(mounts, key=len, reverse=True):  # the innermost mount first
            if value == mount or value.startswith(f"{mount}/"):
                value = str(mounts[mount]) + value[len(mount) :]
                break
        env[var["name"]] = value
    return env


def command(container: Obj) -> list[str]:
    cmd = list(container["command"])
    assert cmd[0].startswith(IMAGE_APP), cmd
    return [str(ROOT / cmd[0][len(IMAGE_APP) :]), *cmd[1:]]


def pods_of(objs: list[Obj], root: Path) -> list[Pod]:
    """Each replica of the rendered StatefulSet, as the kubelet would start it here."""
    sts = one(objs, "StatefulSet")
    name, spec = sts["metadata"]["name"], sts["spec"]["template"]["spec"]
    [container] = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    hosts = one(objs, "ConfigMap", f"{name}-hosts")["data"]["hostfile"].splitlines()
    assert len(hosts) == sts["spec"]["replicas"] == REPLICAS
    assert all(h.endswith(f":{ports['exchange']}") for h in hosts)
    hostfile_dir = root / "hosts"
    hostfile_dir.mkdir()
    (hostfile_dir / "hostfile").write_text("".join(f"127.0.0.1:{free_port()}\n" for _ in hosts))
    claims = [c["metadata"]["name"] for c in sts["spec"].get("volumeClaimTemplates", [])]
    out = []
    for i in range(REPLICAS):
        pod = f"{name}-{i}"
        dirs = {"hosts": hostfile_dir}
        for volume in spec["volumes"]:
            if "emptyDir" in volume:
                dirs[volume["name"]] = root / pod / volume["name"]
        for claim in claims:
            dirs[claim] = root / "claims" / f"{claim}-{pod}"
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        env = localize(container, pod, dirs)
        assert env["BYTEWAX_DATAFLOW_API_PORT"] == str(ports["metrics"])
        env["BYTEWAX_DATAFLOW_API_PORT"] = str(free_port())
        inits = [(command(c), localize(c, pod, dirs)) for c in spec.get("initContainers", [])]
        claim = dirs.get("recovery")
        log = root / pod / "stderr.log"
        out.append(
            Pod(
                pod,
                inits,
                command(container),
                env,
                claim,
                int(env["BYTEWAX_DATAFLOW_API_PORT"]),
                log,
            )
        )
    return out


def run_pods(pods: list[Pod]) -> None:
    """Start every pod, wait for all to finish (KAFKA_TAIL=false); each must exit 0."""
    for pod in pods:
        pod.start()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        for pod in pods:
            assert pod.proc is not None
            pod.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        stop(pods)
    for pod in pods:
        assert pod.proc is not None
        assert pod.proc.returncode == 0, (
            f"{pod.name}: exit {pod.proc.returncode}\n{pod.stderr()[-3000:]}"
        )


def stop(pods: list[Pod]) -> None:
    for pod in pods:
        if pod.proc is not None and pod.proc.poll() is None:
            pod.proc.kill()
            pod.proc.wait()


def output_topics(topic_factory: Callable[..., str]) -> dict[str, str]:
    return {
        "anomalies": topic_factory("helm-anomalies", 1),
        "deadLetters": topic_factory("helm-dlq", 1),
    }


@pytest.fixture(scope="module")
def helm_bin() -> str:
    return helm_binary()


@pytest.fixture(scope="module")
def workload(module_topic_factory: Callable[..., str]) -> dict[str, str]:
    """The input topics, filled once with test_scaling's seeded workload."""
    aq = module_topic_factory("helm-aq", PARTITIONS)
    temp = module_topic_factory("helm-temp", PARTITIONS)
    produce_workload(aq, temp, SENSORS)
    return {"airQuality": aq, "temperature": temp}


@pytest.fixture
def topics(workload: dict[str, str], topic_factory: Callable[..., str]) -> dict[str, str]:
    """The workload's input topics and fresh output topics of this test's own."""
    return {**workload, **output_topics(topic_factory)}


@pytest.fixture(scope="module")
def one_process(
    helm_bin: str,
    workload: dict[str, str],
    module_topic_factory: Callable[..., str],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[Record], list[Record]]:
    """What one process of the pods' command writes: pod 0's command and environment without
    the cluster (no pod name, hostfile or recovery)."""
    root = tmp_path_factory.mktemp("one")
    topics = {**workload, **output_topics(module_topic_factory)}
    [pod, _] = pods_of(render(helm_bin, values_file(root, topics, enabled=False)), root)
    cluster = ("BYTEWAX_POD_NAME", "BYTEWAX_STATEFULSET_NAME", "BYTEWAX_HOSTFILE_PATH")
    env = {k: v for k, v in pod.env.items() if k not in cluster}
    run_cluster([pod.command], env)
    out = records(topics["anomalies"]), records(topics["deadLetters"])
    assert len(out[0]) > 1000 and out[1], "the comparison is not vacuous"
    # No record twice: a repeat after a resume is then told from the record itself.
    assert all(len(set(recs)) == len(recs) for recs in out)
    return out


def test_the_pods_write_what_one_process_writes(
    helm_bin: str,
    topics: dict[str, str],
    one_process: tuple[list[Record], list[Record]],
    tmp_path: Path,
) -> None:
    pods = pods_of(render(helm_bin, values_file(tmp_path, topics)), tmp_path)
    for i, pod in enumerate(pods):
        assert f"initialising recovery partition {i} of {REPLICAS}" in pod.init()
        # Its own partition only: the cluster holds each exactly once.
        assert pod.claim is not None
        assert sorted(p.name for p in pod.claim.iterdir()) == [f"part-{i}.sqlite3"]
    run_pods(pods)

    want_anomalies, want_dead = one_process
    assert_same("anomalies", records(topics["anomalies"]), want_anomalies, anomaly_stream)
    assert_same("dead letters", records(topics["deadLetters"]), want_dead, dlq_stream)
    for pod in pods:
        status = last_status(pod.stderr())
        assert status.get("readings", 0) > 0 and status.get("windows", 0) > 0, pod.stderr()[-2000:]


def test_a_pod_killed_mid_stream_resumes_from_its_claim_losing_nothing(
    helm_bin: str,
    topics: dict[str, str],
    one_process: tuple[list[Record], list[Record]],
    tmp_path: Path,
) -> None:
    values = values_file(tmp_path, topics, snapshotIntervalSeconds=1)
    pods = pods_of(render(helm_bin, values), tmp_path)
    for pod in pods:
        pod.init()
        pod.start()
    victim, peer = pods[1], pods[0]
    assert victim.claim is not None
    try:
        # Every pod serves the probes' endpoint.
        for pod in pods:
            wait_for(f"{pod.name}'s /metrics", lambda p=pod: api_answers(p.api_port), pod.proc)
        wait_for("output", lambda: consume_all(topics["anomalies"], timeout=5), victim.proc)
        # Then one more epoch committed to the victim's partition, so that its snapshot holds
        # state from after that output.
        seen = max(committed_epoch(victim.claim, 1), 0)
        wait_for("a snapshot", lambda: committed_epoch(victim.claim, 1) > seen, victim.proc)
        assert peer.proc is not None and peer.proc.poll() is None, "finished before the kill"
        victim.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        victim.proc.wait(30)  # type: ignore[union-attr]
        # Its peer cannot go on alone: it stops with an error, and its container restarts.
        assert peer.proc.wait(60) != 0
    finally:
        stop(pods)
    written_before = len(consume_all(topics["anomalies"]))
    assert 0 < written_before < len(one_process[0]), "the kill was not mid-stream"

    # The victim is rescheduled on another node: its claim follows it, its init container
    # runs again and finds its partition there.
    moved = tmp_path / "other-node" / victim.claim.name
    shutil.move(victim.claim, moved)
    victim.env = {k: v.replace(str(victim.claim), str(moved)) for k, v in victim.env.items()}
    victim.inits = [
        (cmd, {k: v.replace(str(victim.claim), str(moved)) for k, v in env.items()})
        for cmd, env in victim.inits
    ]
    assert "initialising" not in victim.init()
    assert sorted(p.name for p in moved.iterdir() if p.suffix == ".sqlite3") == ["part-1.sqlite3"]
    run_pods(pods)

    got_anomalies, got_dead = records(topics["anomalies"]), records(topics["deadLetters"])
    want_anomalies, want_dead = one_process
    for name, got, want, stream in (
        ("anomalies", got_anomalies, want_anomalies, anomaly_stream),
        ("dead letters", got_dead, want_dead, dlq_stream),
    ):
        # Written again after the resume: only records already written, byte for byte.
        unique = list(dict.fromkeys(got))
        assert_same(f"{name} after the kill", unique, want, stream)
        again = Counter(got) - Counter(unique)
        assert sum(again.values()) < written_before, f"{name}: resumed from the start?"


def api_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False
