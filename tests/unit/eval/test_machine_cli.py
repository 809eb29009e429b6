"""``python -m eval machine``: a CSV of one machine's channels through the flow's machine model,
one output line per input row."""

import csv
import random
from pathlib import Path

import pytest

from eval.__main__ import main

BREAK = 400


def write_rig(path: Path, sep: str = ",", rows: int = 600) -> list[str]:
    """A pump at 1 Hz: current and flow follow the load, a temperature of its own, and a label
    column; from row ``BREAK`` the flow falls against the current, each within its range."""
    rng = random.Random(11)
    times = []
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, delimiter=sep)
        w.writerow(["label", "datetime", "current", "flow", "temp"])
        for i in range(rows):
            load = rng.gauss(0, 1)
            broken = i >= BREAK
            t = f"2024-03-01 12:{i // 60:02d}:{i % 60:02d}"
            times.append(t)
            w.writerow(
                [
                    int(broken),
                    t,
                    round(20 + 2 * load + rng.gauss(0, 0.2), 4),
                    round(50 + 5 * load + rng.gauss(0, 0.5) - (4.0 if broken else 0.0), 4),
                    round(40 + rng.gauss(0, 1), 4),
                ]
            )
    return times


def read_out(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["timestamp", "alert", "anomaly", "drivers"]
        return list(reader)


@pytest.mark.parametrize("sep", [",", ";"])
def test_one_line_per_row_with_alert_anomaly_and_drivers(tmp_path: Path, sep: str) -> None:
    rig = tmp_path / "rig.csv"
    times = write_rig(rig, sep)
    out = tmp_path / "out" / "rig.csv"
    args = ["machine", str(rig), "--time-column", "datetime", "--ignore", "label"]
    assert main([*args, "--sep", sep, "--out", str(out)]) == 0
    rows = read_out(out)
    assert [r["timestamp"] for r in rows] == times
    assert {r["alert"] for r in rows} <= {"0", "1"} and {r["anomaly"] for r in rows} <= {"0", "1"}
    opened = [i for i, r in enumerate(rows) if r["alert"] == "1"]
    assert len(opened) == 1 and opened[0] >= BREAK
    flagged = [r for r in rows[BREAK:] if r["anomaly"] == "1"]
    assert len(flagged) > 0.8 * (len(rows) - BREAK)
    for r in flagged:
        names = r["drivers"].split("|")
        assert set(names[:2]) == {"current", "flow"}
        assert "label" not in names
    assert all(r["drivers"] == "" for r in rows if r["anomaly"] == "0")
    assert sum(r["anomaly"] == "1" for r in rows[:BREAK]) <= 4


def test_the_label_column_would_be_a_channel_unless_ignored(tmp_path: Path) -> None:
    rig = tmp_path / "rig.csv"
    write_rig(rig, rows=300)
    out = tmp_path / "out.csv"
    assert main(["machine", str(rig), "--time-column", "datetime", "--out", str(out)]) == 0
    assert len(read_out(out)) == 300


def test_the_time_column_defaults_to_the_first(tmp_path: Path) -> None:
    rig = tmp_path / "rig.csv"
    rig.write_text(
        "ts,a,b\n" + "".join(f"{1_700_000_000 + 60 * i},{i % 7},{i % 5}\n" for i in range(30))
    )
    out = tmp_path / "out.csv"
    assert main(["machine", str(rig), "--out", str(out)]) == 0
    rows = read_out(out)
    assert [r["timestamp"] for r in rows] == [str(1_700_000_000 + 60 * i) for i in range(30)]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--time-column", "when"], "no column 'when'"),
        (["--time-column", "datetime", "--ignore", "nope"], "--ignore names no column"),
    ],
)
def test_usage_errors_say_what_is_wrong(tmp_path: Path, capsys, extra, message) -> None:
    rig = tmp_path / "rig.csv"
    write_rig(rig, rows=20)
    assert main(["machine", str(rig), *extra, "--out", str(tmp_path / "o.csv")]) == 2
    assert message in capsys.readouterr().err
