"""``python -m eval``: the CLI on a tiny synthetic NAB-style folder, detectors, real files."""

import json
import math
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from eval import detectors, nab
from eval.__main__ import main

NAB_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nab"
START = datetime(2015, 9, 1, tzinfo=UTC)
STEP = timedelta(minutes=5)
ROWS = 1200
SPIKE = range(800, 804)  # rows
DROP = range(900, 906)


def stamp(i: int) -> str:
    return (START + i * STEP).strftime("%Y-%m-%d %H:%M:%S")


def synthetic(seed: int, spike: range = range(0), drop: range = range(0)) -> list[float]:
    """A daily cycle with noise, plus an upward spike or a drop."""
    rng = random.Random(seed)
    out = []
    for i in range(ROWS):
        v = 50 + 5 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 1)
        if i in spike:
            v += 40
        if i in drop:
            v = 10.0
        out.append(round(v, 3))
    return out


def write_csv(path: Path, values: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["timestamp,value"] + [f"{stamp(i)},{v}" for i, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    write_csv(data / "synthetic" / "spike.csv", synthetic(1, spike=SPIKE))
    write_csv(data / "synthetic" / "drop.csv", synthetic(2, drop=DROP))
    write_csv(data / "other" / "unlabelled.csv", synthetic(3))
    labels = tmp_path / "labels" / "combined_windows.json"
    labels.parent.mkdir()
    labels.write_text(json.dumps({
        "synthetic/spike.csv": [[stamp(780) + ".000000", stamp(830) + ".000000"]],
        "synthetic/drop.csv": [[stamp(880) + ".000000", stamp(930) + ".000000"]],
    }))
    return data, labels


def strict_json(path: Path) -> dict:
    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    return json.loads(path.read_text(), parse_constant=no_constants)


def test_help_lists_the_options(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--data", "--labels", "--json", "--plots", "--profile", "--seed",
                 "--through-broker"):
        assert flag in out


def test_bad_arguments_fail_with_a_message(tmp_path: Path, capsys) -> None:
    assert main(["--data", str(tmp_path / "nope"), "--labels", str(tmp_path / "x.json")]) == 2
    assert "not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--labels", "x.json"])  # --data is required
    assert exc.value.code == 2


def test_cli_writes_the_json_format_and_one_png_per_file(corpus, tmp_path: Path, capsys) -> None:
    data, labels = corpus
    out, plots = tmp_path / "out" / "eval.json", tmp_path / "plots"
    assert main(["--data", str(data), "--labels", str(labels), "--json", str(out),
                 "--plots", str(plots)]) == 0
    printed = capsys.readouterr()
    assert "mean over files" in printed.out and "synthetic/spike.csv" in printed.out
    assert "other/unlabelled.csv" in printed.err  # skipped, and said so

    result = strict_json(out)
    files = ["synthetic/drop.csv", "synthetic/spike.csv"]
    keys = {"nab_standard", "precision", "recall", "false_alarms_per_day"}
    assert set(result) == {*files, "baselines", "summary"}
    for f in files:
        assert set(result[f]) == keys
    assert set(result["baselines"]) == {"random", "threshold"}
    for name in ("random", "threshold"):
        assert set(result["baselines"][name]) == set(files)
        for f in files:
            assert set(result["baselines"][name][f]) == keys
    assert set(result["summary"]) == {"ours", "random", "threshold"}

    # Ours finds both anomalies; the threshold rule is one-sided: the spike, not the drop.
    assert result["synthetic/spike.csv"]["recall"] == 1.0
    assert result["synthetic/drop.csv"]["recall"] == 1.0
    assert result["baselines"]["threshold"]["synthetic/spike.csv"]["recall"] == 1.0
    assert result["baselines"]["threshold"]["synthetic/drop.csv"]["recall"] == 0.0
    assert result["baselines"]["threshold"]["synthetic/drop.csv"]["precision"] is None

    pngs = sorted(p.relative_to(plots).as_posix() for p in plots.rglob("*.png"))
    assert pngs == ["synthetic/drop.png", "synthetic/spike.png"]
    for p in pngs:
        assert (plots / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_result_other_seed_other_random_baseline(corpus, tmp_path: Path) -> None:
    data, labels = corpus
    runs = {}
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        out = tmp_path / f"{name}.json"
        assert main(["--data", str(data), "--labels", str(labels), "--json", str(out),
                     "--seed", seed, "--random-rate", "0.02"]) == 0
        runs[name] = strict_json(out)
    assert runs["a"] == runs["b"]
    assert runs["a"]["baselines"]["random"] != runs["c"]["baselines"]["random"]
    assert {k: v for k, v in runs["a"].items() if k.endswith(".csv")} == \
        {k: v for k, v in runs["c"].items() if k.endswith(".csv")}  # ours has no seed here


def test_random_detector_is_seeded_per_file() -> None:
    a = detectors.random_detector(20_000, 0.01, 42, "x.csv")
    assert a == detectors.random_detector(20_000, 0.01, 42, "x.csv")
    assert a != detectors.random_detector(20_000, 0.01, 42, "y.csv")
    assert a != detectors.random_detector(20_000, 0.01, 43, "x.csv")
    assert 150 <= sum(a) <= 250


def test_ours_replays_the_rows_through_a_dataflow_shard(tmp_path: Path) -> None:
    path = tmp_path / "spike.csv"
    write_csv(path, synthetic(1, spike=SPIKE))
    series = nab.load_series(path)
    fitted = detectors.fit(series)
    assert fitted.window_seconds == 300 and fitted.probation == 180
    det, results = detectors.ours(series, detectors.OursConfig(mode="windows"))
    assert len(results) == ROWS  # one window per row at the sampling period
    assert [r.stats.count for r in results[:3]] == [1, 1, 1]
    flagged = [i for i, d in enumerate(det) if d]
    assert SPIKE[0] in flagged
    alerts, _ = detectors.ours(series)
    assert sum(alerts) <= sum(det)  # one detection per episode, not one per window
    assert any(alerts[780 : SPIKE[-1] + 1])  # an alert is open by the spike's end


def test_threshold_baseline_level_comes_from_probation(tmp_path: Path) -> None:
    path = tmp_path / "spike.csv"
    write_csv(path, synthetic(1, spike=SPIKE))
    series = nab.load_series(path)
    det, level = detectors.threshold(series, margin=0.1, mode="windows")
    head = series.values[:180]
    assert level == pytest.approx(max(head) + 0.1 * (max(head) - min(head)))
    assert [i for i, d in enumerate(det) if d] == [i for i, v in enumerate(series.values)
                                                   if v >= level]


@pytest.mark.skipif(not (NAB_DIR / "data").is_dir(),
                    reason=f"NAB data not found at {NAB_DIR} (read-only, beside the checkout)")
def test_real_nab_files(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    began = time.monotonic()
    assert main(["--data", str(NAB_DIR / "data"),
                 "--labels", str(NAB_DIR / "labels" / "combined_windows.json"),
                 "--json", str(out)]) == 0
    assert time.monotonic() - began < 30
    result = strict_json(out)
    files = sorted(k for k in result if k.endswith(".csv"))
    assert files == ["realKnownCause/ambient_temperature_system_failure.csv",
                     "realTraffic/TravelTime_387.csv", "realTraffic/TravelTime_451.csv",
                     "realTraffic/occupancy_6005.csv", "realTraffic/occupancy_t4013.csv",
                     "realTraffic/speed_6005.csv", "realTraffic/speed_7578.csv",
                     "realTraffic/speed_t4013.csv"]
    for f in files:
        for rec in (result[f], result["baselines"]["random"][f]):
            assert -1000 < rec["nab_standard"] <= 100
    summary = result["summary"]
    # The seeded random baseline lands where NAB's random does (about 11-17 corpus-wide) ...
    assert -10 < summary["random"]["nab_standard"] < 35
    # ... and ours must stay clearly above it, and beat it on every file (issue #3's target: the
    # mean over files >= 60 and no file lost to the seeded random detector).
    assert summary["ours"]["nab_standard"] > summary["random"]["nab_standard"] + 15
    assert summary["ours"]["nab_standard"] >= 60
    lost = {f: (result[f]["nab_standard"], result["baselines"]["random"][f]["nab_standard"])
            for f in files
            if result[f]["nab_standard"] <= result["baselines"]["random"][f]["nab_standard"]}
    assert not lost, f"ours <= random on {lost}"
    assert summary["random"]["files_ours_beats"] == len(files)


def test_normal_fleet_raises_less_than_one_alert_per_sensor_day() -> None:
    """Issue target: < 1 alert per sensor-day on a normal fleet (here 6 h x 10 sensors; the full
    24 h run is `python -m eval.fleet`)."""
    from eval.fleet import alerts_per_sensor_day

    rate, _opens = alerts_per_sensor_day(6, 5, seed=1, env={})
    assert rate < 1.0
    # The same fleet with the deviation gate off pages constantly: the test can fail.
    noisy, _ = alerts_per_sensor_day(6, 5, seed=1, env={"ML_MIN_DEVIATION": "0"})
    assert noisy > 10
