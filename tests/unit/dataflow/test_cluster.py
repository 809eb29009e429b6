"""The cluster's shape as ``bytewax.run`` reads it, and the start-up refusals of shards and input
partitions that do not fit it (``dataflow/cluster.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataflow.cluster import (
    ClusterShape,
    check_input_partitions,
    check_shards,
    cluster_shape,
)
from dataflow.config import ConfigError

RUN = ["/x/bytewax/run.py", "dataflow.main:flow"]


def test_one_process_by_default_with_its_workers() -> None:
    assert cluster_shape(RUN, {}) == ClusterShape(1, 1)
    assert cluster_shape([*RUN, "-w", "3", "-r", "s/", "-s", "1", "-b", "0"], {}).workers == 3
    assert cluster_shape([*RUN, "--workers-per-process=2"], {}) == ClusterShape(1, 2)
    assert cluster_shape(RUN, {"BYTEWAX_WORKERS_PER_PROCESS": "4"}) == ClusterShape(1, 4)
    # The argument wins over the variable, as in bytewax.run.
    assert cluster_shape([*RUN, "-w", "2"], {"BYTEWAX_WORKERS_PER_PROCESS": "4"}).workers == 2


def test_processes_from_the_addresses() -> None:
    argv = [*RUN, "-w", "2", "-i", "1", "-a", "h0:1;h1:1;h2:1"]
    assert cluster_shape(argv, {}) == ClusterShape(3, 2)
    env = {"BYTEWAX_PROCESS_ID": "0", "BYTEWAX_ADDRESSES": "h0:1;h1:1"}
    assert cluster_shape(RUN, env) == ClusterShape(2, 1)


def test_processes_from_a_statefulset_s_hostfile(tmp_path: Path) -> None:
    """The Kubernetes convention of bytewax.run: the pod name gives the process id, the
    hostfile (blank lines skipped) the peers."""
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("flow-0.flow:9999\nflow-1.flow:9999\n\nflow-2.flow:9999\n")
    env = {
        "BYTEWAX_POD_NAME": "flow-2",
        "BYTEWAX_STATEFULSET_NAME": "flow",
        "BYTEWAX_HOSTFILE_PATH": str(hostfile),
    }
    assert cluster_shape([*RUN, "-w", "2"], env) == ClusterShape(3, 2)
    # Without a process id the hostfile is not read: one process.
    assert cluster_shape(RUN, {"BYTEWAX_HOSTFILE_PATH": str(hostfile)}) == ClusterShape(1, 1)


def test_shards_fewer_than_workers_are_refused_naming_shards() -> None:
    check_shards(4, ClusterShape(2, 2))
    check_shards(32, ClusterShape(3, 1))
    with pytest.raises(ConfigError) as err:
        check_shards(3, ClusterShape(2, 2))
    text = str(err.value)
    assert text.startswith(
        "SHARDS=3 is fewer than the cluster's 4 workers (2 processes x 2 workers)"
    )
    assert "1 would never hold a sensor" in text


def test_input_partitions_fewer_than_workers_are_refused_naming_them() -> None:
    check_input_partitions({"air-quality": 3, "temperature": 3}, ClusterShape(3, 2))
    check_input_partitions({"temperature": 1}, ClusterShape(1, 1))
    with pytest.raises(ConfigError) as err:
        check_input_partitions({"air-quality": 1, "temperature": 2}, ClusterShape(2, 2))
    text = str(err.value)
    assert "3 partitions in all, air-quality (1), temperature (2)" in text
    assert "the cluster's 4 workers (2 processes x 2 workers): 1 would never read" in text
    assert "TOPIC_PARTITIONS" in text


def test_shape_text() -> None:
    assert str(ClusterShape(1, 1)) == "1 process x 1 worker"
    assert str(ClusterShape(3, 2)) == "3 processes x 2 workers"


def test_the_flow_refuses_to_start_before_it_connects(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``SHARDS`` below the workers of ``-w``: exit 2 naming it, before any broker is asked
    (there is none at this address)."""
    from dataflow.main import make_flow

    monkeypatch.setattr("sys.argv", [*RUN, "-w", "4"])
    monkeypatch.setenv("SHARDS", "2")
    monkeypatch.setenv("KAFKA_BROKERS", "127.0.0.1:1")
    with pytest.raises(SystemExit) as exit_:
        make_flow()
    assert exit_.value.code == 2
    assert "configuration error: SHARDS=2 is fewer than the cluster's 4 workers" in (
        capsys.readouterr().err
    )
