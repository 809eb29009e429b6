"""Issue 27 through the real broker: a machine family whose fault shows only in the relation of
two channels opens one machine alert naming both as drivers; normal machines stay quiet.

A sensors file declares one machine family (``machine`` and ``channels``, docs/machines.md),
1 s windows. The producer runs as a user runs it: it simulates two pumps (channels following
one load) for 300 s of event time, and from 200 s on the first pump's flow follows the load
the other way (``--relation-fault-after``): each channel stays in its range, only their
relation breaks. It then replays a CSV (a column per channel) of a third, normal pump. The flow
runs to the end of the input (``KAFKA_TAIL=false``) and writes every window; the models are
made ready within the run (``HST_WINDOW_SIZE``, ``WARMUP_WINDOWS``).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import orjson

from tests.integration.conftest import consume_all, python_env, run_module

SECONDS = 300
FAULT_AFTER = 200
INTERVAL = 0.25


def sensors_file(path: Path, topic: str) -> Path:
    path.write_text(
        f"""\
families:
  pump:
    topic: {topic}
    machine: asset
    channels: {{current: amps, flow: hydraulic.m3h}}
    timestamp: ts
    timestamp_format: ms
    valid_range: [0, 100]
    window_seconds: 1
""",
        encoding="utf-8",
    )
    return path


def rig_csv(path: Path, start: int) -> Path:
    """A normal pump's history: current and flow following one load, a row every 0.25 s."""
    rng = random.Random(7)
    load = 0.0
    lines = ["timestamp,sensor_id,current,flow"]
    for i in range(int(SECONDS / INTERVAL)):
        load = 0.995 * load + 0.1 * rng.gauss(0, 1)
        ms = start * 1000 + int(i * INTERVAL * 1000)
        lines.append(
            f"{ms},rig-7,{50 + 3 * load + rng.gauss(0, 0.3):.3f},"
            f"{45 + 3 * load + rng.gauss(0, 0.3):.3f}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_relation_fault_opens_one_machine_alert_naming_both_channels(
    topic_factory, tmp_path: Path
) -> None:
    topic, anomalies, dlq = (topic_factory(n, 1) for n in ("pumps", "anomalies", "dlq"))
    config = sensors_file(tmp_path / "sensors.yaml", topic)
    start = int(time.time()) - 3600  # recent: retention keeps it; long past: windows close
    produced = run_module(
        [
            "producer",
            "--families",
            "pump",
            "--sensors",
            "2",
            "--interval",
            str(INTERVAL),
            "--duration",
            str(SECONDS),
            "--relation-fault-after",
            str(FAULT_AFTER),
            "--start",
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
        ],
        python_env(SENSORS_CONFIG=str(config)),
        timeout=180,
    )
    assert produced.returncode == 0, produced.stderr[-3000:]
    replayed = run_module(
        ["producer", "--replay", str(rig_csv(tmp_path / "rig.csv", start)), "--family", "pump"],
        python_env(SENSORS_CONFIG=str(config)),
        timeout=180,
    )
    assert replayed.returncode == 0, replayed.stderr[-3000:]

    flow = run_module(
        ["bytewax.run", "dataflow.main:flow"],
        python_env(
            SENSORS_CONFIG=str(config),
            KAFKA_TAIL="false",
            EMIT_ALL_WINDOWS="true",
            HST_WINDOW_SIZE="20",
            WARMUP_WINDOWS="40",
            STATUS_INTERVAL_SECONDS="0",
            LOG_LEVEL="ERROR",
            ANOMALIES_TOPIC=anomalies,
            DLQ_TOPIC=dlq,
        ),
        timeout=300,
    )
    assert flow.returncode == 0, flow.stderr[-3000:]
    records = [orjson.loads(m.value()) for m in consume_all(anomalies)]
    assert not consume_all(dlq)

    machines = [r for r in records if "machine" in r]
    by_machine: dict[str, list[dict]] = {}
    for r in machines:
        by_machine.setdefault(r["machine"], []).append(r)
    assert set(by_machine) == {"pump-1", "pump-2", "rig-7"}
    for name, recs in by_machine.items():  # one record per 1 s window, each scored once
        starts = [r["window_start"] for r in recs]
        assert len(starts) == len(set(starts)) >= SECONDS - 2, name
        assert all(r["count"] == 2 for r in recs), name

    opened = [r for r in records if r["event"] == "open"]
    assert len(opened) == 1, [(r["sensor_id"], r["window_start"]) for r in opened]
    (alert,) = opened
    assert alert["machine"] == "pump-1" and alert["family"] == "pump"
    assert alert["reasons"] == ["ml"]
    assert {d["channel"] for d in alert["drivers"]} == {"current", "flow"}
    fault_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + FAULT_AFTER))
    assert alert["window_start"] >= fault_at
    # The channels' own records: in range, and none of them paged.
    channels = [r for r in records if r["sensor_id"].startswith("pump-1/")]
    assert {r["sensor_id"] for r in channels} == {"pump-1/current", "pump-1/flow"}
    assert all(r["event"] == "window" for r in channels)
    assert all(r["event"] in ("window", "update", "resolved") for r in records if r is not alert)
