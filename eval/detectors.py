"""The detectors compared on NAB files: ours (the dataflow's own code), NAB's random, threshold.

``ours`` is a small adapter, not a re-implementation: the CSV rows become ``Reading``s of one
sensor, folded by the dataflow's ``ShardState`` built by ``shard_config(Settings.from_env(...))``,
exactly as a shard of the running flow would fold them. What differs from production is only
configuration, fitted to each file's *probation* rows (which NAB does not score, and which a
deployment would have as history):

- ``WINDOW_SECONDS`` = the file's median sampling interval, so a window holds one reading, or a
  few where sampling is irregular (NAB scores rows; a 5 s window over 5-minute data would be one
  reading anyway, and a much longer one would blur the row an alert belongs to);
- the feature range (``AIR_QUALITY_LIMITS``): probation min and max, padded by ``limit_pad`` of
  their spread on each side (the production defaults, 0-500, are for air-quality units). The
  default pad, 1.0, scored better than 0.1 or 0.5: a value beyond the range falls into an edge
  leaf that it shares with ordinary values, so the range must leave room for the unusual;
- ``ALLOWED_LATENESS_SECONDS=0``: a row whose timestamp is behind a closed window is late, as in
  the flow: counted, not scored (real feeds repeat timestamps and sometimes step back);
- the valid range (``AIR_QUALITY_VALID_RANGE``): the widest the flow accepts, as a user would
  declare for series without physical units; each row is encoded as the producer encodes a
  reading and decoded by the flow's parser, so a row the flow would refuse is refused here too
  (counted, not scored).

Every other rule runs as in the flow, at its defaults: each row arrives at its own timestamp on
a virtual wall clock, with the source caught up, so the silence rules (closing windows on input
time, idle, stale, forgetting) act as they would on a live feed of that file.

The air-quality family is used because it has no threshold rule by default, so ``ours`` is the
ML path; the threshold baseline is the same flow with only the threshold rule.

Detections: the dataflow emits one *alert open* per anomalous episode (``WindowResult.alert``),
and that is what a person is paged for, so those are the detections (``mode="alerts"``). With
``mode="windows"`` every anomalous window is a detection instead. A detection is charged to the
last row inside the window: the window's alert is raised from those rows.
"""

from __future__ import annotations

import bisect
import itertools
import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dataflow.config import Settings
from dataflow.families import AIR_QUALITY, MAX_MAGNITUDE
from dataflow.flow import shard_config
from dataflow.model.explain import names_of
from dataflow.progress import Beat
from dataflow.readings import BadMessage, Reading, format_of, parse
from dataflow.shard import LateReading, Result, SensorEvent, ShardState, WindowResult
from eval.nab import Series, probation_rows, rows_at, seen_until
from producer.shapes import encode

SENSOR_ID = "nab"
PART = "nab/0"  # the one input partition a file's rows arrive on
NEVER_READY = str(10**12)  # WARMUP_WINDOWS that no file reaches: the model never raises
MODES = ("alerts", "windows")


@dataclass(frozen=True)
class Fitted:
    """What a detector may know about a file before scoring starts: its probation rows."""

    probation: int  # rows
    window_seconds: int
    lo: float  # probation min and max
    hi: float

    @property
    def spread(self) -> float:
        return self.hi - self.lo if self.hi > self.lo else max(abs(self.hi), 1.0)


def sampling_seconds(timestamps: Sequence[int]) -> int:
    """Median interval between distinct consecutive timestamps, whole seconds (at least 1)."""
    gaps = [b - a for a, b in itertools.pairwise(timestamps) if b > a]
    if not gaps:
        return 1
    return max(1, round(statistics.median(gaps) / 1e9))


def fit(series: Series) -> Fitted:
    """Facts from the probation rows only (all rows if probation is empty)."""
    n = len(series.values)
    p = probation_rows(n)
    head = series.values[:p] if p >= 2 else series.values
    times = series.timestamps[:p] if p >= 2 else series.timestamps
    return Fitted(p, sampling_seconds(times), min(head), max(head))


@dataclass(frozen=True)
class OursConfig:
    """How ``ours`` is configured for a file; ``env`` overrides any dataflow variable."""

    limit_pad: float = 1.0  # of the probation spread, each side
    mode: str = "alerts"
    env: Mapping[str, str] = field(default_factory=dict)


def base_env(fitted: Fitted, limit_pad: float) -> dict[str, str]:
    """Dataflow settings for one NAB file, fitted to its probation rows (see module doc)."""
    pad = limit_pad * fitted.spread
    return {
        "WINDOW_SECONDS": str(fitted.window_seconds),
        "ALLOWED_LATENESS_SECONDS": "0",
        "AIR_QUALITY_LIMITS": f"{fitted.lo - pad!r},{fitted.hi + pad!r}",
        "EMIT_ALL_WINDOWS": "true",  # the adapter needs every window, not only alert events
        "SHARDS": "1",
        "AIR_QUALITY_VALID_RANGE": f"{-MAX_MAGNITUDE!r},{MAX_MAGNITUDE!r}",
    }


@dataclass(frozen=True)
class Replay:
    """What a shard made of one file: every closed window; how many rows were late; how many
    alerts were resolved as stale (silence); how many rows the parser refused."""

    windows: list[WindowResult]
    late: int
    stale: int = 0
    refused: int = 0


def replay(series: Series, env: Mapping[str, str]) -> Replay:
    """Fold the rows as one sensor's messages through the flow's parser and a dataflow shard,
    each at its own time on a virtual wall clock (see the module doc)."""
    settings = Settings.from_env(dict(env))
    (family,) = [f for f in settings.families if f.name == AIR_QUALITY]
    fmt = format_of(family)
    state = ShardState(shard_config(settings))
    out: list[Result] = []
    refused = 0
    first = series.timestamps[0] / 1e9 if series.timestamps else 0.0
    for ts, value in zip(series.timestamps, series.values, strict=True):
        key, message = encode(Reading(AIR_QUALITY, SENSOR_ID, ts, value))
        try:
            reading = parse(fmt, key, message)
        except BadMessage:
            refused += 1
            continue
        now = ts / 1e9
        # The flow's timers and the source's beats run while it waits for the row: what falls
        # due in the gap (a stale alert, a forgotten sensor) happens before the row arrives.
        just_before = now - 0.001
        out.extend(state.ingest([Beat(PART, just_before, first)], just_before))
        out.extend(state.expire(just_before))
        out.extend(state.ingest([Beat(PART, now, first), reading], now))
        out.extend(state.expire(now))
    out.extend(state.flush())
    return Replay(
        [r for r in out if isinstance(r, WindowResult)],
        sum(1 for r in out if isinstance(r, LateReading)),
        sum(1 for r in out if isinstance(r, SensorEvent) and r.event == "resolved"),
        refused,
    )


def is_alert_open(res: WindowResult) -> bool:
    """The window opened an alert (the dataflow's alert lifecycle)."""
    alert = getattr(res, "alert", None)
    return alert is not None and alert.event == "open"


def detections(series: Series, results: Sequence[WindowResult], mode: str) -> list[bool]:
    """Row detections from scored windows: alert opens, or every anomalous window."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if mode == "alerts" and results and not hasattr(results[0], "alert"):
        raise RuntimeError("this dataflow emits no alert events; use mode='windows'")
    pick = is_alert_open if mode == "alerts" else (lambda r: r.anomaly)
    return rows_at(series.timestamps, [r.stats.end - 1 for r in results if pick(r)])


def fired_in(res: WindowResult) -> str:
    """What fired in a window, for a plot: its rules, then the model's detectors, joined by
    ``+`` (``level+step``; ``ml`` when the window carries no evidence)."""
    names = list(res.fired)
    if res.ml_anomaly:
        names += names_of(res.why.fired) if res.why is not None else ["ml"]
    return "+".join(names)


def fired_by(series: Series, results: Sequence[WindowResult], mode: str) -> dict[int, str]:
    """Row -> what fired (``fired_in``), at the rows ``detections`` marks; a later detection
    charged to the same row wins, as there."""
    pick = is_alert_open if mode == "alerts" else (lambda r: r.anomaly)
    clock = seen_until(series.timestamps)
    out: dict[int, str] = {}
    for res in results:
        if pick(res):
            i = bisect.bisect_right(clock, res.stats.end - 1) - 1
            if i >= 0:
                out[i] = fired_in(res)
    return out


def ours(series: Series, config: OursConfig = OursConfig()) -> tuple[list[bool], Replay]:
    """The dataflow's ML path on one file; detections, and the scored windows."""
    fitted = fit(series)
    env = {**base_env(fitted, config.limit_pad), **config.env}
    run = replay(series, env)
    return detections(series, run.windows, config.mode), run


def threshold_level(fitted: Fitted, margin: float) -> float:
    """The threshold baseline's level: probation max plus ``margin`` of the probation spread."""
    return fitted.hi + margin * fitted.spread


def threshold(
    series: Series, margin: float = 0.1, mode: str = "alerts"
) -> tuple[list[bool], float]:
    """The dataflow's fixed threshold rule alone (no model), its level from probation."""
    fitted = fit(series)
    level = threshold_level(fitted, margin)
    env = {
        **base_env(fitted, OursConfig.limit_pad),
        "AIR_QUALITY_THRESHOLD": repr(level),
        "WARMUP_WINDOWS": NEVER_READY,
    }
    return detections(series, replay(series, env).windows, mode), level


def random_scores(rows: int, seed: int = 42) -> list[float]:
    """NAB's random detector (``nab/detectors/random``): each row's anomaly score is drawn
    uniformly from [0, 1] by a generator seeded with ``seed`` (NAB's: 42) when the file starts,
    so every file gets the same sequence and a file's scores do not depend on the others.

    Its detections are the rows at or above the threshold NAB's optimiser picks for it over the
    corpus (``eval.nab.optimise_threshold``), as for every NAB detector: no firing rate is
    chosen by hand.
    """
    rng = random.Random(seed)
    return [rng.uniform(0.0, 1.0) for _ in range(rows)]
