"""One PNG per evaluated file: the series, labelled windows, probation, and our detections.

Why a picture: a NAB score says *that* a detector missed or over-fired, not *where*; the plot
shows whether alerts land early in a window, late, or in a burst of false alarms. Each detection
is marked with what fired (``eval.detectors.fired_in``: ``level``, ``step+level``, ``drift`` ...,
coloured by the first), so a tuning run shows which detector pays and which over-fires.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit

import matplotlib.dates as mdates
import matplotlib.pyplot as plt

from eval.nab import Series, Window


def _dt(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


# matplotlib annotates x positions as floats, yet converts datetimes itself (its date units, which
# also pick the date ticks): x positions are held as ``Any`` for that, not for the values.


# Colour of a detection's mark by the first detector that fired (rules: anything else).
COLOURS = {
    "level": "#d62828",
    "step": "#f77f00",
    "burst": "#2a9d8f",
    "drift": "#8338ec",
    "trees": "#3a5a40",
    "ml": "#d62828",
}
RULE_COLOUR = "#444444"


def mark_detectors(
    ax: Any, times: Sequence[Any], values: Sequence[float], fired: Mapping[int, str]
) -> list[Any]:
    """Write what fired beside each detection (row -> ``level+step``, say); return the texts."""
    texts = []
    for i, what in sorted(fired.items()):
        if not 0 <= i < len(times):
            continue
        colour = COLOURS.get(what.split("+", 1)[0], RULE_COLOUR)
        texts.append(
            ax.annotate(
                what,
                (times[i], values[i]),
                xytext=(0, 9),
                textcoords="offset points",
                ha="center",
                fontsize=8,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7},
                color=colour,
                zorder=6,
            )
        )
    return texts


def plot_file(
    out: Path,
    title: str,
    series: Series,
    windows: Sequence[Window],
    probation: int,
    ours: Sequence[bool],
    threshold: float | None = None,
    subtitle: str = "",
    fired: Mapping[int, str] | None = None,
) -> Path:
    """Write ``out`` (PNG) and return it; ``fired`` names what fired at each detection's row."""
    times: list[Any] = [_dt(t) for t in series.timestamps]
    fig, ax = plt.subplots(figsize=(14, 4.5), dpi=100)
    try:
        ax.plot(times, series.values, lw=0.7, color="#1f4e79", label="value")
        for i, (start, end) in enumerate(windows):
            x0: Any = _dt(start)
            x1: Any = _dt(end)
            ax.axvspan(
                x0,
                x1,
                color="#f4a261",
                alpha=0.35,
                lw=0,
                label="labelled window" if i == 0 else None,
            )
        if 0 < probation < len(times):
            ax.axvspan(
                times[0],
                times[probation],
                color="0.5",
                alpha=0.15,
                lw=0,
                label=f"probation ({probation} rows, not scored)",
            )
            ax.axvline(times[probation], color="0.4", lw=0.8, ls="--")
        if threshold is not None:
            ax.axhline(threshold, color="#6a4c93", lw=0.8, ls=":", label="threshold baseline")
        hits = [i for i, d in enumerate(ours) if d]
        if hits:
            scored = sum(1 for i in hits if i >= probation)
            ax.scatter(
                [times[i] for i in hits],
                [series.values[i] for i in hits],
                marker="v",
                s=60,
                color="#d62828",
                zorder=5,
                label=f"our detections ({scored} scored, {len(hits) - scored} in probation)"
                + (", with what fired" if fired else ""),
            )
            if fired:
                mark_detectors(ax, times, series.values, fired)
        ax.set_title(f"{title}\n{subtitle}" if subtitle else title, fontsize=10)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
        ax.legend(loc="upper left", fontsize=8, framealpha=0.8)
        ax.grid(alpha=0.3)
        fig.autofmt_xdate()
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out)
    finally:
        plt.close(fig)
    return out
