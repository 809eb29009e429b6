"""``python -m eval --loco``: leave-one-category-out model selection, an honest estimate.

The detector's settings were chosen by looking at the development files, so its score on them
flatters it. Here the choice is part of what is measured: for each NAB category in turn, the
few settings that are tuned (``DEFAULT_GRID``, or ``--grid``) are chosen by a small grid search
on the *other* categories, and the held-out category is scored with the point chosen there. The
held-out categories' results are pooled as NAB pools a corpus (sums of raw, null and perfect,
``eval.nab.corpus_score``): that is the estimate of performance on series of a kind the settings
never saw.

Each grid point runs once over every file (``ours`` only, in-process); the per-file scores are
kept and every fold is a sum over them. A category without labelled windows (NAB's
``artificialNoAnomaly``) has no score of its own, but its false alarms count, both when points
are chosen on it and in the pool when it is held out.

Fewer knobs beat more: every knob added multiplies the points and gives the search more ways to
fit the files it looks at.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataflow.config import OPTIONS, ConfigError, Settings
from eval import detectors
from eval.nab import FileScore, Profile, Window, corpus_score, load_series, score_file

# The settings the last tuning moved most (bench/RESULTS.md, "What each part is worth"), three
# values each around the defaults (6 and 16): 9 points.
DEFAULT_GRID: dict[str, tuple[str, ...]] = {
    "ML_NOVELTY_FLOOR": ("4", "6", "8"),
    "ML_DRIFT_LIMIT": ("12", "16", "20"),
}

Point = tuple[tuple[str, str], ...]  # ((NAME, value), ...), in grid order
# (point, file) -> that file's score at that point
ScoreFn = Callable[[Sequence[Point], Sequence[str]], dict[tuple[Point, str], FileScore]]


def points(grid: Mapping[str, Sequence[str]]) -> list[Point]:
    """Every combination of the grid's values, the first knob varying slowest."""
    names = list(grid)
    return [tuple(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


def label(point: Point) -> str:
    return " ".join(f"{k}={v}" for k, v in point) or "(defaults)"


def category(path: str) -> str:
    return path.split("/", 1)[0] if "/" in path else ""


@dataclass(frozen=True)
class Fold:
    """One held-out category: the point chosen on the others, and what it scored."""

    category: str
    files: list[str]
    point: Point
    others: float | None  # the other categories' pooled score at that point (what chose it)
    scores: list[FileScore]  # the held-out files at that point

    @property
    def held_out(self) -> float | None:
        return corpus_score(self.scores)


@dataclass(frozen=True)
class Loco:
    grid: dict[str, tuple[str, ...]]
    files: list[str]
    folds: list[Fold]
    by_point: dict[Point, list[FileScore]]  # each of ``files`` at each point

    @property
    def pooled(self) -> float | None:
        return corpus_score(s for f in self.folds for s in f.scores)

    def tuned_on_all(self) -> tuple[Point, float | None]:
        """The point best on every file at once, and its score: the optimistic figure."""
        return _best({p: corpus_score(scores) for p, scores in self.by_point.items()})


def _best(scores: Mapping[Point, float | None]) -> tuple[Point, float | None]:
    """The highest score; of equals, the first point in grid order."""
    items = list(scores.items())
    best, top = items[0]
    for p, s in items[1:]:
        if s is not None and (top is None or s > top):
            best, top = p, s
    return best, top


def select(
    files: Sequence[str],
    grid: Mapping[str, Sequence[str]],
    scored: Mapping[tuple[Point, str], FileScore],
) -> Loco:
    """The folds, from every file's score at every point."""
    grid_points = points(grid)
    cats: dict[str, list[str]] = {}
    for f in files:
        cats.setdefault(category(f), []).append(f)
    folds = []
    for held, mine in cats.items():
        others = [f for f in files if category(f) != held]
        on_others = {p: corpus_score(scored[p, f] for f in others) for p in grid_points}
        chosen, score = _best(on_others)
        folds.append(Fold(held, mine, chosen, score, [scored[chosen, f] for f in mine]))
    by_point = {p: [scored[p, f] for f in files] for p in grid_points}
    return Loco({k: tuple(v) for k, v in grid.items()}, list(files), folds, by_point)


@dataclass(frozen=True)
class _Task:
    data: Path
    rel: str
    windows: list[Window]
    profile: Profile
    config: detectors.OursConfig


def _score_one(task: _Task) -> FileScore:
    series = load_series(task.data / task.rel)
    fired, _ = detectors.ours(series, task.config)
    return score_file(series.timestamps, fired, task.windows, task.profile)


def scorer(
    data: Path,
    windows: Mapping[str, list[Window]],
    profile: Profile,
    base: detectors.OursConfig,
    jobs: int | None = None,
) -> ScoreFn:
    """Score ``ours`` on each (point, file), in ``jobs`` processes (default: one per CPU; 1: in
    this process). A point's settings go over ``base.env`` (``--set``)."""

    def run(
        grid_points: Sequence[Point], files: Sequence[str]
    ) -> dict[tuple[Point, str], FileScore]:
        keys = [(p, f) for p in grid_points for f in files]
        tasks = [
            _Task(
                data,
                f,
                windows[f],
                profile,
                detectors.OursConfig(base.limit_pad, base.mode, {**base.env, **dict(p)}),
            )
            for p, f in keys
        ]
        workers = jobs if jobs is not None else (os.cpu_count() or 1)
        if workers <= 1:
            results: Iterable[FileScore] = map(_score_one, tasks)
            return dict(zip(keys, results, strict=True))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return dict(zip(keys, pool.map(_score_one, tasks, chunksize=1), strict=True))

    return run


def run(
    files: Sequence[str],
    grid: Mapping[str, Sequence[str]],
    score: ScoreFn,
) -> Loco:
    """Score every point on every file once, then choose per held-out category."""
    return select(files, grid, score(points(grid), files))


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def table(loco: Loco, profile_name: str) -> str:
    head = (
        f"{'held-out category':<24} {'files':>5} {'held-out':>8} {'others':>7} "
        f"{'FA':>4} {'found':>7}   point chosen on the other categories"
    )
    lines = [
        f"Leave one category out (NAB {profile_name} profile, pooled): each category scored with "
        "the grid point best on the others.",
        "grid: " + "; ".join(f"{k} in {','.join(v)}" for k, v in loco.grid.items()),
        head,
        "-" * len(head),
    ]
    for f in loco.folds:
        found = sum(s.windows_found for s in f.scores)
        wins = sum(s.windows for s in f.scores)
        lines.append(
            f"{f.category or '(top level)':<24} {len(f.files):>5} {_fmt(f.held_out):>8} "
            f"{_fmt(f.others):>7} {sum(s.false_positives for s in f.scores):>4} "
            f"{f'{found}/{wins}':>7}   {label(f.point)}"
        )
    every = [s for f in loco.folds for s in f.scores]
    lines.append("-" * len(head))
    lines.append(
        f"{'POOLED held-out':<24} {len(every):>5} {_fmt(loco.pooled):>8} {'':>7} "
        f"{sum(s.false_positives for s in every):>4} "
        f"{f'{sum(s.windows_found for s in every)}/{sum(s.windows for s in every)}':>7}"
    )
    point, score = loco.tuned_on_all()
    lines.append(
        f"For comparison, tuned on every file at once: {label(point)} scores {_fmt(score)} "
        "pooled (in-sample, optimistic)."
    )
    return "\n".join(lines)


def to_json(loco: Loco, profile_name: str) -> dict[str, Any]:
    key = f"nab_{profile_name}"

    def counts(scores: list[FileScore]) -> dict[str, Any]:
        return {
            "false_alarms": sum(s.false_positives for s in scores),
            "windows_found": sum(s.windows_found for s in scores),
            "windows": sum(s.windows for s in scores),
            "files": len(scores),
        }

    point, score = loco.tuned_on_all()
    every = [s for f in loco.folds for s in f.scores]
    return {
        "grid": {k: list(v) for k, v in loco.grid.items()},
        "folds": {
            f.category: {
                "point": dict(f.point),
                f"{key}_held_out": f.held_out,
                f"{key}_others": f.others,
                **counts(f.scores),
            }
            for f in loco.folds
        },
        "pooled": {f"{key}_held_out": loco.pooled, **counts(every)},
        "tuned_on_all": {"point": dict(point), key: score},
        "points": [
            {
                "point": dict(p),
                key: corpus_score(scores),
                "categories": {
                    f.category: corpus_score(
                        s for s, path in zip(scores, loco.files, strict=True) if path in f.files
                    )
                    for f in loco.folds
                },
            }
            for p, scores in loco.by_point.items()
        ],
    }


def check_setting(flag: str, name: str, value: str | None = None) -> None:
    """``ValueError`` unless ``name`` is a dataflow setting that takes ``value``: a misspelt
    override would otherwise be ignored, and its run look like the setting made no difference."""
    if name not in {o.env for o in OPTIONS}:
        raise ValueError(f"{flag} {name}: not a dataflow setting")
    if value is None:
        return
    try:
        Settings.from_env({name: value})
    except ConfigError as exc:
        raise ValueError(f"{flag} {name}={value}: {exc}") from None


def parse_grid(items: Sequence[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    """``NAME=v1,v2`` pairs -> a grid. Each name must be a dataflow setting, given once, and
    each value one the dataflow accepts (``ValueError`` naming the first that is not)."""
    grid: dict[str, tuple[str, ...]] = {}
    for name, values in items:
        vals = tuple(v.strip() for v in values.split(",") if v.strip())
        check_setting("--grid", name)
        if not vals:
            raise ValueError(f"--grid {name}: no values")
        if name in grid:
            raise ValueError(f"--grid {name}: given twice")
        for v in vals:
            check_setting("--grid", name, v)
        grid[name] = vals
    return grid
