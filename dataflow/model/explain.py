"""Why the model called a window anomalous, in the sensor's own units. Pure.

The scorer decides each window with a handful of comparisons and keeps no record of them: most
windows are clean, and a record per window would cost every one of them. Only a window it calls
an ML anomaly gets ``Evidence``: which detectors fired (a small bitmask) and the numbers each
compared, taken *before* the window was learned (the level, spread, peaks and drift sums it was
judged against). ``explain`` turns that into the ``explain`` object of the window's record, and
only for records that are written.

The detectors, in the order ``explain`` names them:

- ``level``: the mean's distance from the sensor's usual level (or from its seasonal baseline for
  this time, where one is used), in spreads. A spread is about one standard deviation of the
  sensor's window means (1.25 running mean absolute deviations, ``features``).
- ``step``: the change from the window before, in usual steps (the same, of the steps).
- ``burst``: the level distance averaged over the last ``BURST_WINDOWS`` windows: bursts that
  come more often than they did.
- ``trees``: HalfSpaceTrees' score beyond its own decayed peak (only with ``hst_novelty``).
- ``drift``: a CUSUM sum of the clipped level distance crossed its limit: a departure that is
  moderate in each window but lasts.
- ``pattern``: the last few windows' shape is far from every shape of the sensor's recent past
  (only with ``ML_PATTERN``; ``dataflow.model.pattern``).
- ``machine``: a machine's joint model (``dataflow.model.machine``) found its channels' window
  vector unusual; ``explain_machine`` names the drivers, each in its own spreads.

An envelope's threshold is what its feature had to exceed: its floor, or its margin times the
feature's decayed peak (``novelty.cut``: times the *distance* the peak stands for, also beyond
the knee), whichever is higher. Features beyond ``Z_KNEE`` spreads reach the envelopes softened
(logarithmic); for the level and the step the explanation gives the real distance and the
threshold hardened back, so a large number means what it says: the margin times the real
distance of the peak.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from dataflow.model.features import harden

LEVEL, STEP, BURST, TREES, DRIFT, PATTERN = 1, 2, 4, 8, 16, 32
DETECTORS = (
    (LEVEL, "level"),
    (STEP, "step"),
    (BURST, "burst"),
    (TREES, "trees"),
    (DRIFT, "drift"),
    (PATTERN, "pattern"),
)


class Evidence(NamedTuple):
    """What an ML-anomalous window was judged against (every number from before it was learned).

    Distances and thresholds named ``*_z``/``*_cut`` are the detectors' own (softened) feature
    values; ``baseline``, ``spread``, ``step`` and ``step_spread`` are in the mean's units.
    """

    fired: int  # bitmask of LEVEL, STEP, BURST, TREES, DRIFT, PATTERN
    mean: float
    baseline: float  # the usual level (seasonal expectation plus the residual's level if used)
    seasonal: bool
    spread: float  # one spread, in the mean's units (0: the sensor has not varied yet)
    level_cut: float
    step: float  # from the window before (of the residuals, where seasonal)
    step_spread: float  # one usual step, in the mean's units
    step_cut: float
    burst: float  # mean level distance of the last ``burst_windows`` windows
    burst_windows: int
    burst_cut: float
    score: float  # HalfSpaceTrees' score, and the cut it had to beat
    score_cut: float
    drift: float  # the drift sum nearer its limit: positive upward, negative downward
    drift_limit: float
    pattern: float = 0.0  # the last few windows' distance to the nearest recent shape, spreads
    pattern_cut: float = 0.0


def names_of(fired: int) -> list[str]:
    """The detectors a ``fired`` bitmask names, in ``DETECTORS`` order."""
    return [name for bit, name in DETECTORS if fired & bit]


def _decimals(spread: float) -> int:
    """Decimals that show a third of a spread (none for a large one, at most six)."""
    if not spread > 0 or math.isinf(spread):
        return 3
    return max(0, min(6, math.ceil(-math.log10(spread / 3))))


def _ratio(dev: float, unit: float) -> float | None:
    return round(dev / unit, 2) if unit > 0 else None


def _fixed(x: float, places: int) -> str:
    """``x`` to ``places`` decimals; a huge one (a declared range reaches 1e300) in 6
    significant digits, or a pager's text would be hundreds of digits long."""
    return f"{x:.{places}f}" if abs(x) < 1e12 else f"{x:.6g}"


def _spreads(x: float | None) -> str:
    return "beyond measure" if x is None else _fixed(abs(x), 1)


def explain(ev: Evidence, unit: str | None = None) -> dict[str, Any]:
    """The record's ``explain`` object: the first detector that fired (in ``DETECTORS`` order)
    with its numbers, every detector that fired, and one line of text naming each of them."""
    places = _decimals(ev.spread)
    fine = _decimals(min(ev.spread, ev.step_spread))  # a step is told in its own precision
    u = f" {unit}" if unit else ""

    def num(x: float, places: int = places) -> str:
        return f"{_fixed(x, places)}{u}"

    dev = ev.mean - ev.baseline
    side = "above" if dev >= 0 else "below"
    usual = f"its usual {num(ev.baseline)}" + (" for this time" if ev.seasonal else "")
    level_spreads = _ratio(dev, ev.spread)
    names: list[str] = []
    texts: list[str] = []
    facts: dict[str, tuple[float, float | None, float | None]] = {}
    for bit, name in DETECTORS:
        if not ev.fired & bit:
            continue
        names.append(name)
        if bit == LEVEL:
            cut = round(harden(ev.level_cut), 2)
            facts[name] = (ev.baseline, level_spreads, cut)
            texts.append(
                f"level {num(ev.mean)}, {_spreads(level_spreads)} spreads {side} {usual} "
                f"(pages beyond {cut:.1f})"
            )
        elif bit == STEP:
            steps = _ratio(ev.step, ev.step_spread)
            cut = round(harden(ev.step_cut), 2)
            facts[name] = (ev.mean - ev.step, steps, cut)
            texts.append(
                f"step {ev.step:+.{fine}f}{u} to {num(ev.mean, fine)}"
                + (" against its seasonal baseline" if ev.seasonal else "")
                + f", {_spreads(steps)} usual steps (pages beyond {cut:.1f})"
            )
        elif bit == BURST:
            burst, cut = round(ev.burst, 2), round(ev.burst_cut, 2)
            facts[name] = (ev.baseline, burst, cut)
            texts.append(
                f"burst: the last {ev.burst_windows} windows averaged {burst:.1f} spreads from "
                f"{usual} (pages beyond {cut:.1f})"
                + ("" if ev.fired & LEVEL else f", now {num(ev.mean)}")
            )
        elif bit == TREES:
            facts[name] = (ev.baseline, level_spreads, None)
            texts.append(
                f"trees: score {ev.score:.3f} beyond {ev.score_cut:.3f}, {num(ev.mean)} against "
                f"{usual}"
            )
        elif bit == PATTERN:
            distance, cut = round(ev.pattern, 2), round(ev.pattern_cut, 2)
            facts[name] = (ev.baseline, distance, cut)
            texts.append(
                f"pattern: the last windows' shape is {distance:.1f} spreads from any recent one "
                f"(pages beyond {cut:.1f}), now {num(ev.mean)} against {usual}"
            )
        else:
            drift, limit = round(ev.drift, 2), round(ev.drift_limit, 2)
            facts[name] = (ev.baseline, drift, limit)
            way = "above" if drift >= 0 else "below"
            texts.append(
                f"drift: a lasting shift {way} {usual}, now {num(ev.mean)} "
                f"({_spreads(level_spreads)} spreads); its sum reached {abs(drift):.1f} spreads "
                f"(pages beyond {limit:.1f})"
            )
    if not names:  # not an ML anomaly's evidence: nothing to say beyond the numbers
        names.append("level")
        facts["level"] = (ev.baseline, level_spreads, round(harden(ev.level_cut), 2))
        texts.append(f"{num(ev.mean)}, {_spreads(level_spreads)} spreads {side} {usual}")
    baseline, spreads, threshold = facts[names[0]]
    return {
        "detector": names[0],
        "detectors": names,
        "value": ev.mean,
        "baseline": baseline,
        "unit": unit,
        "spreads": spreads,
        "threshold_spreads": threshold,
        "seasonal": ev.seasonal,
        "text": "; ".join(texts),
    }


def _driver(name: str, z: float, movement: float) -> str:
    """One driver in words: its deviation, or, where its chart drove it, how much it moves."""
    if not movement:
        return f"{name} {z:+.1f} spreads"
    if movement >= 1.0:
        return f"{name} moving {movement:.1f}x its usual"
    return f"{name} gone still ({movement:.0%} of its usual movement)"


def explain_machine(drivers: tuple[tuple[str, float, float], ...], score: float) -> dict[str, Any]:
    """A machine window's ``explain``: the joint model fired; its drivers, ranked, each with
    its deviation in its own spreads (or its movement, where its chart drove it), and the joint
    score against its limit (1), told as "over 999" beyond that: a chart gone still scores
    without bound, and the number says nothing more."""
    told = ", ".join(_driver(*d) for d in drivers[:3]) or "no driver"
    joint = f"{score:.2f}" if score < 1000 else "over 999"
    return {
        "detector": "machine",
        "detectors": ["machine"],
        "value": score,
        "baseline": None,
        "unit": None,
        "spreads": drivers[0][1] if drivers else None,
        "threshold_spreads": None,
        "seasonal": False,
        "drivers": [d[0] for d in drivers],
        "text": f"machine: its channels together are unusual (joint score {joint}, pages "
        f"beyond 1.00), driven by {told}",
    }
