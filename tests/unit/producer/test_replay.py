"""``--replay``: the CSV reader (errors name the file and line), and the simulation of configured
families."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataflow.families import parse_families
from producer.replay import Layout, ReplayError, parse_time, read_rows, scan
from producer.simulate import FamilySimulation, generate_families, walk_range
from tests.checkout import ROOT, SHARED_DATA

NAB = SHARED_DATA / "nab/data/realKnownCause/nyc_taxi.csv"
UCI = SHARED_DATA / "airquality_uci/AirQualityUCI_reexport.csv"
H = 3_600_000_000_000


def csv(tmp_path: Path, text: str, name: str = "history.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_timestamp_value_rows_with_the_default_sensor(tmp_path: Path) -> None:
    path = csv(tmp_path, "timestamp,value\n2024-01-01 00:00:00,1.5\n2024-01-01T01:00:00Z,2\n\n")
    rows = list(read_rows(path, Layout(default_sensor_id="pump")))
    start = 1_704_067_200_000_000_000
    assert [(r.line, r.sensor_id, r.ts, r.value) for r in rows] == [
        (2, "pump", start, 1.5),
        (3, "pump", start + H, 2.0),
    ]


@pytest.mark.parametrize(
    ("cell", "ns"),
    [
        ("1704067200", 1_704_067_200_000_000_000),  # seconds
        ("1704067200.5", 1_704_067_200_500_000_000),
        ("1704067200000", 1_704_067_200_000_000_000),  # ms
        ("1704067200000000", 1_704_067_200_000_000_000),  # us
        ("1704067200000000000", 1_704_067_200_000_000_000),  # ns
        ("2024-01-01T02:00:00+02:00", 1_704_067_200_000_000_000),
        ("2024-01-01", 1_704_067_200_000_000_000),
    ],
)
def test_timestamps_follow_the_dataflows_auto_rule(cell: str, ns: int) -> None:
    assert parse_time(cell, None) == ns


def test_sensor_id_column_and_other_columns(tmp_path: Path) -> None:
    path = csv(tmp_path, "sensor_id,note,timestamp,value\na,x,1704067200,1\nb,y,1704067201,2\n")
    summary = scan(path, Layout())
    assert summary.rows == 2 and summary.sensors == {"a", "b"}
    assert [r.sensor_id for r in read_rows(path, Layout())] == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("", "", "empty file"),
        ("time,value\n1,2\n", "line 1", "no column 'timestamp'"),
        ("timestamp,value\n1704067200,1\n1704067201\n", "line 3", "1 fields, the header has 2"),
        ("timestamp,value\n1704067200,1\n1704067201,abc\n", "line 3", "'abc' is not a number"),
        ("timestamp,value\n1704067200,nan\n", "line 2", "not finite"),
        ("timestamp,value\n1704067200,\n", "line 2", "'' is not a number"),
        ("timestamp,value\nyesterday,1\n", "line 2", "timestamp: not ISO 8601"),
        ("timestamp,value\n1704067200,1\n4200000000000,1\n", "line 3", "outside 1970..2100"),
        ("timestamp,value\n1704067200,1e9\n", "line 2", "outside the family's valid range"),
        ("sensor_id,timestamp,value\n ,1704067200,1\n", "line 2", "empty sensor_id"),
        ('timestamp,value\n1704067200,1\n"2024,1\n', "line 3", "fields"),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path: Path, text: str, where: str, what: str) -> None:
    path = csv(tmp_path, text)
    with pytest.raises(ReplayError) as exc:
        scan(path, Layout(valid_range=(0.0, 100.0)))
    message = str(exc.value)
    assert message.startswith(f"{path}: ")
    assert where in message and what in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="cannot read"):
        scan(tmp_path / "nope.csv", Layout())


def test_skip_values_are_counted_not_sent(tmp_path: Path) -> None:
    path = csv(tmp_path, "timestamp,value\n1704067200,-200\n1704067201,3\n1704067202,-200.0\n")
    summary = scan(path, Layout(skip_values=(-200.0,), valid_range=(0.0, 10.0)))
    assert (summary.rows, summary.skipped) == (1, 2)
    assert [r.value for r in read_rows(path, Layout(skip_values=(-200.0,)))] == [3.0]


def test_out_of_order_rows_are_counted_per_sensor(tmp_path: Path) -> None:
    path = csv(
        tmp_path, "sensor_id,timestamp,value\na,1704067205,1\nb,1704067200,1\na,1704067201,1\n"
    )
    summary = scan(path, Layout())
    assert summary.out_of_order == 1
    assert summary.start_ns == 1_704_067_205_000_000_000  # the first row, not the earliest
    assert summary.first_ns == 1_704_067_200_000_000_000


@pytest.mark.skipif(not NAB.exists(), reason="NAB data not present")
def test_a_nab_file_reads_as_is() -> None:
    summary = scan(NAB, Layout())
    assert summary.rows == 10_320 and summary.skipped == 0 and summary.out_of_order == 0


@pytest.mark.skipif(not UCI.exists(), reason="UCI air-quality data not present")
def test_the_uci_air_quality_file_reads_with_its_layout() -> None:
    layout = Layout(
        timestamp=("Date", "Time"),
        value="CO_GT",
        time_format="%d/%m/%Y %H:%M:%S",
        skip_values=(-200.0,),
        valid_range=(-100.0, 100_000.0),
    )
    summary = scan(UCI, layout)
    assert summary.rows + summary.skipped == 9357
    assert summary.skipped > 0 and summary.out_of_order == 0
    first = next(read_rows(UCI, layout))
    assert (first.ts, first.value) == (1_078_941_600_000_000_000, 2.6)  # 2004-03-10 18h
    with pytest.raises(ReplayError, match="outside the family's valid range"):
        scan(
            UCI,
            Layout(
                timestamp=("Date", "Time"),
                value="CO_GT",
                time_format="%d/%m/%Y %H:%M:%S",
                valid_range=(-100.0, 100_000.0),
            ),
        )


def test_time_format_errors() -> None:
    with pytest.raises(ValueError, match="does not match"):
        parse_time("2024-01-01", "%d/%m/%Y")
    assert parse_time("01/02/2024 10:00:00", "%d/%m/%Y %H:%M:%S") == 1_706_781_600_000_000_000


# --- Simulating configured families -----------------------------------------------------------


def configured() -> tuple:
    return parse_families(
        {
            "families": {
                "humidity": {
                    "topic": "h",
                    "value": "reading.rh",
                    "valid_range": [0, 100],
                    "limits": [20, 80],
                },
                "temp": {
                    "topic": "m",
                    "sensor_id": "id",
                    "value": "temp",
                    "timestamp": "ts",
                    "valid_range": [-50, 200],
                },
                "vibration": {
                    "topic": "m",
                    "sensor_id": "id",
                    "value": "vib",
                    "timestamp": "ts",
                    "valid_range": [0, 10],
                },
            }
        },
        "test.yaml",
    )


def test_configured_walks_stay_in_range_and_revert_to_the_middle() -> None:
    fams = configured()
    groups = ((fams[0],), (fams[1], fams[2]))
    sim = FamilySimulation(start_ns=0, groups=groups, sensors=3, duration_s=2000)
    readings = list(generate_families(sim))
    assert len(readings) == 2 * 3 * 2000
    assert [r.sensor_id for r in readings[:6]] == [
        "humidity-1",
        "humidity-2",
        "humidity-3",
        "temp-1",
        "temp-2",
        "temp-3",
    ]
    for index, fam in ((0, fams[0]), (1, fams[1]), (1, fams[2])):
        slot = groups[index].index(fam)
        values = [r.values[slot] for r in readings if r.group == index]
        lo, hi = walk_range(fam)
        middle = (lo + hi) / 2
        assert all(fam.valid_range[0] <= v <= fam.valid_range[1] for v in values)
        assert abs(sum(values) / len(values) - middle) < 0.1 * (hi - lo)
        assert len(set(values)) > 50  # a walk, not a constant
    assert walk_range(fams[0]) == (20.0, 80.0)


def test_configured_simulation_is_seeded_and_limited() -> None:
    fams = configured()
    sim = FamilySimulation(start_ns=5, groups=((fams[0],),), sensors=2, interval_s=0.5, count=5)
    first, again = list(generate_families(sim)), list(generate_families(sim))
    assert first == again and len(first) == 5
    assert [r.ts for r in first] == [5, 5, 500_000_005, 500_000_005, 1_000_000_005]
    other = FamilySimulation(start_ns=5, groups=((fams[0],),), sensors=2, seed=7, count=5)
    assert [r.values for r in generate_families(other)] != [r.values for r in first]


def test_a_replay_into_a_built_in_family_uses_the_dataflow_s_valid_range(tmp_path: Path) -> None:
    """TEMPERATURE_VALID_RANGE is read as the dataflow reads it: a row outside stops the run."""
    import subprocess
    import sys

    csv = tmp_path / "h.csv"
    csv.write_text("timestamp,value\n2024-03-01 12:00:00,40\n2024-03-01 12:00:05,60\n")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "producer",
            "--replay",
            str(csv),
            "--family",
            "temperature",
            "--brokers",
            "127.0.0.1:1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "TEMPERATURE_VALID_RANGE": "0,50"},
    )
    assert run.returncode == 2, run.stderr
    assert f"{csv}: line 3: value 60" in run.stderr and "0..50" in run.stderr


@pytest.mark.parametrize(("rows", "bad_at"), [(3000, 1802), (2, 3), (0, 1)])
def test_a_byte_that_is_not_utf8_is_reported_at_its_own_line(
    tmp_path: Path, rows: int, bad_at: int
) -> None:
    """The text is decoded ahead of the CSV reader: a Latin-1 byte on line 1802 was reported at
    line 1489, one on line 3 of a short file at line 1."""
    lines = [b"timestamp,value"] + [
        f"2024-01-01 {i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d},{i}".encode()
        for i in range(rows)
    ]
    lines[bad_at - 1] = b"\xe9" + lines[bad_at - 1]
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(ReplayError, match=rf"latin1\.csv: line {bad_at}: 'utf-8' codec"):
        list(read_rows(path, Layout()))
