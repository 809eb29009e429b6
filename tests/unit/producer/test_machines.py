"""The producer and machine families: one message per machine and tick carrying every channel,
a fault that only the channels' relation shows, and multi-column CSVs replayed."""

import math
import statistics
from pathlib import Path

import orjson
import pytest

from dataflow.families import parse_families
from dataflow.readings import formats_of, parse
from producer.replay import Layout, read_rows
from producer.shapes import build_message
from producer.simulate import FamilySimulation, generate_families, relation_fault_machine

START = 1_709_287_200 * 10**9  # 2024-03-01 10:00 UTC
PUMPS = {
    "families": {
        "pump": {
            "topic": "pumps",
            "machine": "asset.id",
            "channels": {"current": "amps", "flow": "hydraulic.m3h"},
            "timestamp": "ts",
            "timestamp_format": "ms",
            "valid_range": [0, 100],
        }
    }
}
(PUMP,) = parse_families(PUMPS, "pumps.yaml")


def test_a_machine_message_carries_every_channel_and_reads_back() -> None:
    msg = build_message((PUMP,), "p1", START, ((12.5, 40.0),))
    doc = orjson.loads(msg.value)
    assert doc == {
        "asset": {"id": "p1"},
        "amps": 12.5,
        "hydraulic": {"m3h": 40.0},
        "ts": 1_709_287_200_000,
    }
    got = [parse(f, msg.key, msg.value) for f in formats_of(PUMP)]
    assert [(r.sensor_id, r.value, r.ts) for r in got] == [
        ("p1/current", 12.5, START),
        ("p1/flow", 40.0, START),
    ]


def test_a_channel_not_sent_is_left_out() -> None:
    doc = orjson.loads(build_message((PUMP,), "p1", START, ((math.nan, 40.0),)).value)
    assert "amps" not in doc and doc["hydraulic"] == {"m3h": 40.0}
    with pytest.raises(ValueError, match="one value per channel"):
        build_message((PUMP,), "p1", START, ((1.0,),))
    with pytest.raises(ValueError, match="finite"):
        build_message((PUMP,), "p1", START, ((math.nan, math.nan),))


def correlation(a: list[float], b: list[float]) -> float:
    return statistics.correlation(a, b)


def test_the_relation_fault_breaks_only_the_first_machines_relation() -> None:
    sim = FamilySimulation(
        start_ns=START,
        groups=((PUMP,),),
        sensors=2,
        interval_s=1.0,
        duration_s=4000,
        relation_fault_after_s=2000,
    )
    by_machine: dict[str, list[tuple[float, ...]]] = {}
    for r in generate_families(sim):
        (values,) = r.values
        assert isinstance(values, tuple) and len(values) == 2
        by_machine.setdefault(r.sensor_id, []).append(values)
    broken = relation_fault_machine(PUMP)
    assert set(by_machine) == {broken, "pump-2"}
    for machine, rows in by_machine.items():
        before, after = rows[:2000], rows[2000:]
        r_before = correlation([v[0] for v in before], [v[1] for v in before])
        r_after = correlation([v[0] for v in after], [v[1] for v in after])
        assert r_before > 0.5, machine
        if machine == broken:
            assert r_after < -0.5
            # each channel alone: the same level and spread as before, within the range
            for ch in range(2):
                a, b = [v[ch] for v in before], [v[ch] for v in after]
                assert abs(statistics.mean(a) - statistics.mean(b)) < 0.5 * statistics.stdev(a)
                assert 0.7 < statistics.stdev(b) / statistics.stdev(a) < 1.4
                assert all(0 <= x <= 100 for x in b)
        else:
            assert r_after > 0.5


def test_without_a_fault_every_machine_keeps_its_relation() -> None:
    sim = FamilySimulation(start_ns=START, groups=((PUMP,),), sensors=2, duration_s=3000)
    rows = [
        r.values[0] for r in generate_families(sim) if r.sensor_id == relation_fault_machine(PUMP)
    ]
    assert correlation([v[0] for v in rows[1500:]], [v[1] for v in rows[1500:]]) > 0.5


def test_a_multi_column_csv_replays_into_a_machine_family(tmp_path: Path) -> None:
    path = tmp_path / "rig.csv"
    path.write_text(
        "timestamp,sensor_id,current,flow,label\n"
        "2024-03-01T10:00:00Z,p1,12.5,40,0\n"
        "2024-03-01T10:00:01Z,p1,,41,0\n"
        "2024-03-01T10:00:02Z,p1,-200,-200,1\n"
        "2024-03-01T10:00:03Z,p2,13,42,1\n"
    )
    layout = Layout(channels=PUMP.channel_names, skip_values=(-200.0,), valid_range=(0, 100))
    rows = list(read_rows(path, layout))
    assert [(r.sensor_id, r.ts - START) for r in rows] == [
        ("p1", 0),
        ("p1", 10**9),
        ("p2", 3 * 10**9),
    ]
    assert rows[0].values == (12.5, 40.0)
    assert math.isnan(rows[1].values[0]) and rows[1].values[1] == 41.0
    doc = orjson.loads(build_message((PUMP,), "p1", rows[1].ts, (rows[1].values,)).value)
    assert "amps" not in doc and doc["hydraulic"]["m3h"] == 41.0


def test_a_machine_csv_without_a_channel_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rig.csv"
    path.write_text("timestamp,current\n2024-03-01T10:00:00Z,1\n")
    with pytest.raises(ValueError, match="no column 'flow'"):
        list(read_rows(path, Layout(channels=PUMP.channel_names)))


PER_CHANNEL = """families:
  pump:
    topic: pump-readings
    machine: asset.id
    channels: {current: elec.amps, flow: hydraulic.m3h}
    timestamp: ts
    timestamp_format: ms
    valid_range: [0, 1000]
  compressor:
    topic: compressor-readings
    machine: unit
    channel: sensor
    value: reading
    channels: [suction, discharge]
    timestamp: ts
    valid_range: [0, 1000]
"""


def test_a_per_channel_family_is_refused_at_start_up_or_left_out_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Named, it was accepted and crashed at its first message, after the families before it
    were sent; among the file's families, it is left out and said so."""
    from producer.sending import outgoing
    from producer.settings import parse_settings

    path = tmp_path / "sensors.yaml"
    path.write_text(PER_CHANNEL)
    with pytest.raises(SystemExit) as exit_:
        parse_settings(["--sensors-config", str(path), "--families", "compressor"], {})
    assert exit_.value.code == 2
    assert "family 'compressor' sends a message per channel" in capsys.readouterr().err
    settings = parse_settings(["--sensors-config", str(path), "--count", "4"], {})
    assert [f.name for g in settings.groups for f in g.families] == ["pump"]
    assert any(note.startswith("not simulated: compressor") for note in settings.notes)
    sent = list(outgoing(settings, 1_700_000_000 * 10**9))
    assert sent and {topic for topic, *_ in sent} == {"pump-readings"}
