"""The evaluation's plots mark which detector fired at each of our detections."""

import random
from pathlib import Path

from eval import detectors
from eval.nab import Series
from eval.plots import COLOURS, mark_detectors, plot_file

T0 = 1_700_000_000 * 10**9
STEP = 300 * 10**9  # five-minute rows, as NAB's


def spiky() -> Series:
    rng = random.Random(3)
    values = [50.0 + rng.gauss(0, 1) for _ in range(1200)]
    values[1000] = 90.0
    return Series([T0 + i * STEP for i in range(len(values))], values)


def test_each_detection_row_is_labelled_with_what_fired() -> None:
    series = spiky()
    found, run = detectors.ours(series)
    fired = detectors.fired_by(series, run.windows, "alerts")
    rows = [i for i, d in enumerate(found) if d]
    assert 1000 in rows and sorted(fired) == rows
    assert fired[1000].split("+")[0] == "level" and "step" in fired[1000].split("+")


def test_the_plot_writes_each_label_in_its_detectors_colour(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    series = spiky()
    fig, ax = plt.subplots()
    try:
        texts = mark_detectors(
            ax, series.timestamps, series.values, {1000: "level+step", 5: "drift", 9999: "x"}
        )
        assert [t.get_text() for t in texts] == ["drift", "level+step"]  # by row, none beyond
        assert texts[0].get_color() == COLOURS["drift"]
        assert texts[1].get_color() == COLOURS["level"]
    finally:
        plt.close(fig)
    out = plot_file(
        tmp_path / "f.png",
        "f.csv",
        series,
        [(T0 + 990 * STEP, T0 + 1010 * STEP)],
        180,
        [i == 1000 for i in range(len(series.values))],
        fired={1000: "level+step"},
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
