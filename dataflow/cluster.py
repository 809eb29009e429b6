"""The shape of the Bytewax cluster a process joins, and whether the flow's keys fit it.

Bytewax runs one flow on ``processes x workers`` workers. Two things are spread over them:

- **shards** (``SHARDS``): the flow's Bytewax keys; each lives on one worker, chosen by its
  hash. Fewer shards than workers leaves a worker with no windows to keep, ever.
- **input partitions**: the partitions of the input topics; Bytewax gives each to one worker,
  balanced (the worker with the fewest so far, lowest index first). Fewer partitions than
  workers leaves a worker, and with several processes possibly a whole process, reading
  nothing, ever.

Either is a cluster that cannot use what it was given, and it does not mend itself: the flow
refuses to start, naming the variable (``check_shards`` before it connects to Kafka,
``check_input_partitions`` once the topics' partition counts are known).

The flow is built before Bytewax starts the cluster, so the shape is read here the way
``bytewax.run`` reads it (``-w``/``-i``/``-a``, ``BYTEWAX_WORKERS_PER_PROCESS``,
``BYTEWAX_ADDRESSES``, ``BYTEWAX_POD_NAME`` with ``BYTEWAX_STATEFULSET_NAME``, and
``BYTEWAX_HOSTFILE_PATH``); by then ``bytewax.run`` has already checked the arguments' types.
Pure: no Bytewax import.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dataflow.config import ConfigError


@dataclass(frozen=True)
class ClusterShape:
    """Processes of the cluster and worker threads in each."""

    processes: int = 1
    workers_per_process: int = 1

    @property
    def workers(self) -> int:
        return self.processes * self.workers_per_process

    def __str__(self) -> str:
        procs = "process" if self.processes == 1 else "processes"
        each = "worker" if self.workers_per_process == 1 else "workers"
        return f"{self.processes} {procs} x {self.workers_per_process} {each}"


def _run_options(argv: Sequence[str]) -> argparse.Namespace:
    """``bytewax.run``'s scaling options of ``argv`` (its program name first); the rest ignored."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("-w", "--workers-per-process", type=int)
    parser.add_argument("-i", "--process-id", type=int)
    parser.add_argument("-a", "--addresses")
    known, _ = parser.parse_known_args(list(argv[1:]))
    return known


def cluster_shape(argv: Sequence[str], env: Mapping[str, str]) -> ClusterShape:
    """The cluster ``bytewax.run`` with these arguments and environment starts."""
    opts = _run_options(argv)
    workers = opts.workers_per_process
    if workers is None:
        workers = int(env.get("BYTEWAX_WORKERS_PER_PROCESS") or 1)
    addresses = opts.addresses or env.get("BYTEWAX_ADDRESSES")
    in_cluster = (
        opts.process_id is not None
        or env.get("BYTEWAX_PROCESS_ID")
        or ("BYTEWAX_POD_NAME" in env and "BYTEWAX_STATEFULSET_NAME" in env)
    )
    if addresses is None and in_cluster and env.get("BYTEWAX_HOSTFILE_PATH"):
        lines = Path(env["BYTEWAX_HOSTFILE_PATH"]).read_text().splitlines()
        addresses = ";".join(line.strip() for line in lines if line.strip())
    processes = len([a for a in addresses.split(";") if a]) if addresses and in_cluster else 1
    return ClusterShape(max(processes, 1), max(workers, 1))


def check_shards(shards: int, shape: ClusterShape) -> None:
    """``ConfigError`` naming ``SHARDS`` when some worker would never hold a shard."""
    if shards < shape.workers:
        raise ConfigError(
            f"SHARDS={shards} is fewer than the cluster's {shape.workers} workers ({shape}): "
            f"{shape.workers - shards} would never hold a sensor. Set SHARDS to at least "
            f"{shape.workers} (several times it spreads the sensors more evenly), or run fewer "
            "workers; SHARDS is fixed once a recovery store exists"
        )


def check_input_partitions(partitions: Mapping[str, int], shape: ClusterShape) -> None:
    """``ConfigError`` when the input topics (topic -> partition count) have fewer partitions
    in all than the cluster has workers: some worker would never read, and with several
    processes a whole process may read nothing."""
    total = sum(partitions.values())
    if total >= shape.workers:
        return
    counts = ", ".join(f"{topic} ({n})" for topic, n in partitions.items())
    raise ConfigError(
        f"the input topics have {total} partitions in all, {counts}, fewer than the cluster's "
        f"{shape.workers} workers ({shape}): {shape.workers - total} would never read. Run at "
        f"most {total} workers, or use input topics with more partitions (TOPIC_PARTITIONS "
        "for the ones the flow or sensor-init-topics creates; adding partitions to a topic "
        "that holds readings moves sensors to other partitions)"
    )
