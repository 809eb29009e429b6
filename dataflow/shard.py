"""The state of one shard: many sensors' open windows, models and silence clocks.

A fleet has 100k sensors; Bytewax's per-key window operators slow down as keys grow. So a sensor
is not a Bytewax key: sensors are hashed into a fixed number of shards, and one ``ShardState`` per
shard, held by ``op.stateful_batch``, folds a whole batch of readings in one loop. Pure: no Kafka,
no Bytewax; wall-clock time is passed in, so tests control it.

Silence is measured in *input time* (``dataflow.progress``): how far the sensor's input
partition has moved on since the sensor was last heard, never the wall clock alone. A restart, a
broker outage or a slow backlog therefore makes no sensor look silent: while the flow is behind,
disconnected or just restored, only the readings it reads move input time. And it is measured
against the sensor's own cadence: a sensor is silent after ``SILENCE_GAPS`` of its usual gaps
between readings, or the configured duration, whichever is longer, so a sensor that reports
every five minutes is not "silent" between two of its readings. Four rules act on silence:

- a window closes when the sensor's clock, run on by its partition's input time, passes the
  window's end plus the lateness, without waiting for its next reading; less the sensor's usual
  gap between hearings beyond its usual time between readings (``_close_wait``), at most
  ``idle_timeout_s``, so a sensor whose readings come in bundles (a gateway's) up to that far
  apart is not closed between two of them (raise it for gateways that bundle longer), while one
  that sends each reading as it is made closes at its end and lateness. Never before its end:
  a window of a sensor that fell silent in its middle stays open, so a reading that comes later
  is not late;
- an open alert of a sensor silent for ``stale_s`` is resolved as ``stale`` (only clean windows
  resolve an alert otherwise, and a machine that overheated and went offline would stay "open"
  until it came back);
- a sensor silent for ``state_ttl_s`` is forgotten, its windows closed first: a fleet that
  replaces devices and ids would otherwise keep every id it ever saw. Its next reading starts a
  fresh model, with a warm-up. Sensors are swept for this every ``sweep_s`` of wall time.

Two guards on input: a reading dated more than ``max_future_ns`` ahead of the wall clock is
refused (``future``) before it can move any clock; and a shard keeps at most ``max_sensors``
sensors, refusing readings of new ones beyond (``sensor_limit``), so a producer that keys every
message by a new id cannot grow the state until the process dies.

Closed windows are scored in batches (issue 28): at a fleet's scale every reading closes a
window, and scoring them one at a time in Python was most of a shard's time. A closed window is
queued with its place in the output; the queue is drained at the end of each call, and wherever
alert state is read right after scoring, with one ``ColumnScorer.score_batch`` per family (and
settings); then each window is acted on in queue order exactly as if scored when it closed, so
the results, their order and every side effect are the same (``tests/unit/dataflow/
test_shard_batch.py``). A family whose settings the column-wise scorer refuses keeps a scorer
per sensor, in the same queue. Most windows of a running fleet are clean: the rows a batch's
model called clean and no rule's condition holds for (both over the batch) get only the clean
window's bookkeeping (``_quiet``) when their sensor has no alert open, not the whole per-window
path (``_window``).

Steady sensors go faster still (issue 28): the lane (``dataflow.lane``) keeps their windows,
clocks and clean bookkeeping in slot arrays, and compiled loops fold a ``Rows``'s readings, a
group of closes and a drain's calm windows for all of them at once. A loop stops at the first
step only the object path takes, which hands that sensor back (``Lane.evict``) and takes the
step; a sensor read from a ``Rows`` goes into the lane once nothing about it is unusual
(``_laneable``). ``sensors`` hands every sensor back first; a snapshot writes each as the
object path keeps it, so the format is the same with or without the lane.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from itertools import chain, islice, repeat
from operator import le, sub
from typing import Any, Final, NamedTuple, cast

import numpy as np
from numpy.typing import NDArray

from dataflow.alerts import AlertEvent, AlertTracker
from dataflow.closes import CloseQueue
from dataflow.families import ML, Family
from dataflow.lane import (
    B_COUNT,
    B_END,
    B_HEARD,
    B_KIND,
    B_MAX,
    B_MEAN,
    B_MIN,
    B_SLOT,
    B_START,
    BUNDLE_READINGS,
    CSLOT,
    EMPTY,
    GAP_CLIP,
    GAP_WEIGHT,
    JUMP_GAPS,
    L_FIRST,
    L_MARK,
    L_SECOND,
    L_SEG,
    L_SLOT,
    NOT_LANED,
    PART,
    SCORER,
    SILENCE_GAPS,
    TOUCH,
    WINDOW,
    WINDOWS,
    Block,
    Lane,
    Stretch,
    block_arrays,
)
from dataflow.lane import expire as lane_expire
from dataflow.lane import fold as lane_fold
from dataflow.lane import quiet as lane_quiet
from dataflow.machines import MachineWindows
from dataflow.model.columns import Batch, ColumnScorer
from dataflow.model.explain import Evidence
from dataflow.model.machine import MachineParams
from dataflow.model.scoring import STRUCTURAL, ModelParams, SensorScorer, window_scatter
from dataflow.pickled import State, fields_of, restore, restore_fields, state_of
from dataflow.progress import (
    BEAT_GRACE_S,
    Beat,
    Lead,
    PartClock,
    SilenceQueue,
    grace,
    lead_time,
)
from dataflow.readings import Reading, Rows, Run
from dataflow.rules import RuleSet
from dataflow.windows import _NEVER as _W_NEVER
from dataflow.windows import Jumps, SensorWindows, WindowStats, rebase, restart_skip

# Final: a compiled build (mypyc) reads these as constants, not from the module's dictionary at
# every use. BATCH and COLUMN_ROWS below are not: the tests set them.
_NEVER: Final = float("inf")
RESTART_READINGS: Final = 3  # readings behind a sensor's clock, over a window, that restart it
NO_PART: Final = ""  # readings that came without a partition's beat (tests, the evaluation)
# Closed windows are queued and scored in batches, column-wise (``ColumnScorer``) where the
# family's model allows. False: every window is scored as it closes, by a per-sensor scorer
# (the path before issue 28, kept for the test that proves both give the same results).
BATCH = True
# A drain with fewer of one ColumnScorer's windows than this scores them per sensor. Their slots
# are taken out as per-sensor scorers (``to_scorer``) and stay out, scored per window, until a
# drain large enough puts them back (``_load``), so a shard whose batches close few windows (few
# sensors, many readings each) pays the conversion once, not at every drain. A call of
# ``score_batch`` costs about two windows of the per-window scorer whatever its size, but a
# lower bound moved slots out and back more often and cost W1 more (bench/RESULTS.md).
COLUMN_ROWS = 32
# Steady sensors' windows and silence clocks are folded in slot arrays by compiled loops
# (``dataflow.lane``). False: every sensor on the object path (the path before it, kept for
# the tests that prove both give the same results).
LANE = True


@dataclass(frozen=True)
class FamilySetup:
    """One family as a shard sees it: its declaration (rules, unit) and its model's parameters,
    which hold its window length."""

    family: Family
    model: ModelParams
    machine: MachineParams | None = None  # a machine family's joint model (dataflow.machines)

    @property
    def window_ns(self) -> int:
        return self.model.window_ns

    def __getstate__(self) -> dict[str, Any]:
        return fields_of(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        restore_fields(self, state)


@dataclass(frozen=True)
class ShardConfig:
    """What a shard needs to know; built once from ``Settings``. Durations are floors, in
    seconds of input time."""

    lateness_ns: int
    idle_timeout_s: float
    families: dict[str, FamilySetup]
    emit_all: bool = False
    update_every: int = 12  # windows between two events of one alert, at least
    resolve_after: int = 3  # clean windows that resolve an alert
    cooldown: int = 48  # windows after an alert before the model alone opens another
    adapt_after: int = 360  # clean windows before an alert whose sensor stayed away resolves
    stale_s: float = 300.0  # silence that resolves an open alert as stale (0: never)
    refresh_s: float = 3600.0  # an open alert's event time without events before it is re-sent
    state_ttl_s: float = 7 * 86_400.0  # silence after which a sensor is forgotten
    max_future_ns: int = 300 * 10**9  # readings further ahead of the wall clock are refused
    max_sensors: int = 40_000  # sensors one shard keeps at most
    shards: int = 1  # how many shards the fleet is hashed into (a snapshot's must match)

    # family -> window length in ns, looked up per reading
    window_ns: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "window_ns", {name: setup.window_ns for name, setup in self.families.items()}
        )

    def __getstate__(self) -> dict[str, Any]:
        return fields_of(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        restore_fields(self, state)

    @property
    def grace_s(self) -> float:
        """How long a partition's input time runs on past its source's last word
        (``progress.grace``): no longer than the lateness."""
        return grace(self.lateness_ns / 1e9)

    @property
    def refresh_ns(self) -> int:
        return round(self.refresh_s * 1e9)

    @property
    def idle_timeout_ns(self) -> int:
        return int(self.idle_timeout_s * 1e9)

    @property
    def sweep_s(self) -> float:
        """How often the shard looks for sensors to forget: a tenth of the TTL, at most 60 s."""
        return min(self.state_ttl_s / 10, 60.0)


# What the classes a snapshot holds are built with while it is unpickled, before their state is
# set: a class compiled to a native one (mypyc) is made by calling its ``__init__`` with no
# arguments. A shard is always built with its own configuration, a sensor with its rules.
_UNPICKLED = ShardConfig(lateness_ns=0, idle_timeout_s=0.0, families={})
_NO_RULES = RuleSet()

# Settings a restored shard simply takes (named as ShardConfig's fields, for its log line).
_PLAIN_SETTINGS = (
    "idle_timeout_s",
    "stale_s",
    "refresh_s",
    "state_ttl_s",
    "update_every",
    "resolve_after",
    "cooldown",
    "adapt_after",
    "emit_all",
    "max_future_ns",
    "max_sensors",
)


class WindowResult(NamedTuple):
    """A closed and scored window of one sensor, and the alert event it caused, if any."""

    family: str
    sensor_id: str
    stats: WindowStats
    score: float
    model_ready: bool
    ml_anomaly: bool
    ml_cut: float | None
    threshold: float | None  # the sensor's first rule's level, as the tutorial's field
    fired: tuple[str, ...] = ()  # the rules that fired, by name
    severity: str | None = None  # the highest of the reasons' severities
    unit: str | None = None
    alert: AlertEvent | None = None
    why: Evidence | None = None  # an ML anomaly's evidence (``dataflow.model.explain``)
    # A machine's window (``sensor_id`` is the machine id): the channels that drove it, ranked,
    # each with its deviation in its own spreads. None: a sensor's window.
    drivers: tuple[tuple[str, float, float], ...] | None = None

    @property
    def threshold_alarm(self) -> bool:
        """A rule fired (the tutorial's name for it)."""
        return bool(self.fired)

    @property
    def anomaly(self) -> bool:
        return bool(self.fired) or self.ml_anomaly

    @property
    def reasons(self) -> list[str]:
        return [*self.fired, ML] if self.ml_anomaly else list(self.fired)


class SensorEvent(NamedTuple):
    """What happened to a sensor without a window: its alert went stale, or it was forgotten.

    ``event`` is ``resolved`` (with ``alert``, resolution ``stale``) or ``forgotten``;
    ``silent_s`` is the input time since the sensor was last heard.
    """

    family: str
    sensor_id: str
    event: str
    silent_s: float
    alert: AlertEvent | None = None
    unit: str | None = None


FORGOTTEN: Final = "forgotten"
LATE: Final = "late"
FUTURE: Final = "future"
SENSOR_LIMIT: Final = "sensor_limit"
_DETAILS = {
    LATE: "its window had already closed",
    FUTURE: "its time is further ahead of the wall clock than MAX_FUTURE_SECONDS",
    SENSOR_LIMIT: "its shard keeps MAX_SENSORS_PER_SHARD sensors already; a new one is refused",
}


class LateReading(NamedTuple):
    """A reading the shard cannot use (late, from the future, or a sensor beyond the limit):
    routed to the dead-letter topic with its reason, never silently dropped."""

    reading: Reading
    reason: str = LATE

    @property
    def detail(self) -> str:
        return _DETAILS[self.reason]


Result = WindowResult | SensorEvent | LateReading  # what a shard hands on


def _scatters(
    count: NDArray[np.float64], low: NDArray[np.float64], high: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``window_scatter`` over rows, bit for bit (IEEE square root and division, as ``math``)."""
    with np.errstate(all="ignore"):
        scatter = (high - low) / (9.0 * np.sqrt(count))
    honest = (count >= 2) & (high >= low) & (scatter < np.inf)
    return np.where(honest, scatter, 0.0)


_new: Final = tuple.__new__  # a row of a ``Rows`` as the ``Reading`` it is, where one is kept


def _follow_cadence(sensor: _Sensor, stats: WindowStats) -> None:
    """Learn the sensor's usual time between readings from a closed window, by the readings'
    own times (not by when they were read, which a backlog compresses): within the window, or
    between windows; then mark the window's end as the sensor's last."""
    last = sensor.last_end
    if last:
        size = stats.end - stats.start
        count = stats.count
        # A window of one reading behind the last (a clock that came back) says nothing of the
        # time between readings: its step would be negative.
        if count > 1 or stats.start >= last:
            step = (size / count if count > 1 else stats.start - last + size) / 1e9
            cad = sensor.cadence
            if cad == 0.0:
                sensor.cadence = step
            else:
                cap = GAP_CLIP * cad
                sensor.cadence = cad + GAP_WEIGHT * ((step if step < cap else cap) - cad)
    sensor.last_end = stats.end


def _note_closes(sensor: _Sensor, closed: list[WindowStats]) -> None:
    """Windows a sensor has just closed, in order: a long stretch unwritten before one (longer
    than a window and than ``JUMP_GAPS`` of its usual gaps: its clock jumped over it, or it fell
    silent) is where a clock set back may restart; a window closed is in no stretch. At close
    time, not when scored: a restart later in the same batch must see both."""
    end = sensor.closed_end
    jumps = sensor.jumps
    for stats in closed:
        start = stats.start
        skipped = start - end
        if end and skipped > stats.end - start and skipped > JUMP_GAPS * 1e9 * sensor.cadence:
            if jumps is None:
                jumps = sensor.jumps = Jumps()
            jumps.gap(end, start)
        if jumps is not None:
            jumps.wrote(start, stats.end)
        end = stats.end
    sensor.closed_end = end


def _close_wait(sensor: _Sensor, idle: float) -> float:
    """How far a sensor's clock lags its partition's input time when its windows are closed by
    a timer: its usual gap between hearings less its usual time between readings, at most
    ``idle``. A sensor heard about as often as it reads (each reading sent when made) waits for
    nothing beyond the lateness: waiting a whole gap more delayed every window, and its alert,
    by one reading interval. One whose readings come in bundles waits for the next bundle, which
    holds the readings made in between. Nothing while its cadence is not known (until its
    second window closes): a gap alone does not tell bundles from readings.

    Heard once (its gap not known), a sensor whose one hearing brought more than a reading (a
    window closed, or one holding two) sent a bundle: it waits ``idle``, as long as bundles may
    be apart, since the next bundle's time is not known. Waiting nothing (or its cadence less,
    once its first bundle closed two windows) cut a gateway's first windows before its second
    bundle, whose readings for them were late."""
    cadence, gap = sensor.cadence, sensor.gap
    if gap == 0.0:
        win = sensor.windows
        if win.closed_any() or any(acc[0] > 1 for acc in win.open.values()):
            return idle
        return 0.0
    wait = gap - cadence
    if wait <= 0.0 or cadence == 0.0:
        return 0.0
    return wait if wait < idle else idle


def _limit_of(sensor: _Sensor, floor: float) -> float:
    """How long a sensor is heard from nothing before it counts as silent: ``floor`` (the stale
    time, or the state TTL), or longer by its own cadence (a slow sensor is not silent between
    two of its readings)."""
    return max(floor, SILENCE_GAPS * sensor.cadence)


# A window's scores from a batch, as ``_window`` reads them: score, ML anomaly, ready, evidence,
# and the model's home (level, reach).
_Scored = tuple[float, bool, bool, Evidence | None, float, float]


def _scored_rows(b: Batch, rows: NDArray[np.intp] | None) -> list[_Scored]:
    """The batch's scores of ``rows`` (None: all), each row's as Python values."""
    score, ml, ready, level, reach = (
        col if rows is None else col[rows] for col in (b.score, b.ml, b.ready, b.level, b.reach)
    )
    js = range(len(b.score)) if rows is None else rows.tolist()
    why = b.why
    return [
        (s, m, r, why.get(j) if m else None, lv, rc)
        for j, s, m, r, lv, rc in zip(
            js,
            score.tolist(),
            ml.tolist(),
            ready.tolist(),
            level.tolist(),
            reach.tolist(),
            strict=True,
        )
    ]


def _calm(sensors: list[_Sensor], means: NDArray[np.float64], ml: Any) -> Any:
    """Per row of a batch: the model called it clean and none of its sensor's rules' conditions
    holds for its mean (so ``RuleSet.fired`` would fire nothing and end every streak). None
    when the rows' sensors do not share one ``RuleSet`` (overrides): they go window by window."""
    rules = sensors[0].rules
    for sensor in sensors:
        if sensor.rules is not rules:
            return None
    return _calm_by(rules, means, ml)


def _calm_by(rules: RuleSet, means: NDArray[np.float64], ml: Any) -> Any:
    """``_calm`` of rows whose sensors share ``rules`` (the lane's: ``_laneable``)."""
    calm = ~ml
    for level, above, _, _ in rules._plan:
        calm &= ~(means >= level if above else means <= level)
    return calm


def _segments(
    rows: list[int], laned: list[tuple[int, Block, NDArray[np.int64]]]
) -> list[list[int] | tuple[Block, NDArray[np.int64]]]:
    """One ColumnScorer's rows of the queue (their places) and of the lane's blocks (each after
    the queue's rows before its place), in queue order: a slot's windows are scored in it."""
    segments: list[list[int] | tuple[Block, NDArray[np.int64]]] = []
    done = 0
    for place, block, mine in laned:
        upto = bisect_left(rows, place, done)
        if upto > done:
            segments.append(rows[done:upto])
            done = upto
        segments.append((block, mine))
    if done < len(rows):
        segments.append(rows[done:] if done else rows)
    return segments


def _stats(bi: NDArray[np.int64], bf: NDArray[np.float64], r: int) -> WindowStats:
    """A block's row as the ``WindowStats`` the object path would have closed."""
    return _new(
        WindowStats,
        (
            int(bi[r, B_START]),
            int(bi[r, B_END]),
            int(bi[r, B_COUNT]),
            float(bf[r, B_MEAN]),
            float(bf[r, B_MIN]),
            float(bf[r, B_MAX]),
        ),
    )


def _place(
    moved: dict[int, tuple[list[Result], list[tuple[int, Result]]]],
    out: list[Result],
    pos: int,
    written: list[Result],
) -> None:
    """What a window wrote (``written``, then emptied), for its place ``pos`` in ``out``."""
    place = moved.get(id(out))
    if place is None:
        place = moved[id(out)] = (out, [])
    place[1].extend((pos, r) for r in written)
    written.clear()


# What a snapshot keeps of each class (``dataflow.pickled``): a slotted class's ``__slots__``,
# in their order; ``ShardState``'s attributes in the order ``__init__`` sets them.
_PART_STATE = ("clock", "closes", "lead", "stale")


class _Part:
    """One input partition as a shard sees it: its input time, and its sensors' silences."""

    __slots__ = _PART_STATE

    def __init__(self, name: str = "") -> None:  # a default: see _UNPICKLED
        self.clock = PartClock(name)
        self.lead = Lead()  # what its readings move input time to (``Lead``)
        self.closes = CloseQueue()  # windows to close by input time
        self.stale = SilenceQueue()  # sensors with an open alert

    def __getstate__(self) -> tuple[None, dict[str, Any]]:
        """As pickled before ``CloseQueue`` (snapshot format v14): its closes as a list of the
        tuples the heap held (``CloseQueue.entries``)."""
        _, slots = state_of(self, _PART_STATE)
        slots["closes"] = self.closes.entries()
        return None, slots

    def __setstate__(self, state: State) -> None:
        slots = dict(state[1])
        self.closes = CloseQueue(slots.pop("closes", ()))
        restore(self, (None, slots))  # as pickled (a migration fills in what is not)

    @property
    def topic(self) -> str:
        """The topic of a partition named ``topic/partition``."""
        return (self.clock.name or "").rpartition("/")[0]


# A queued closed window: (key, sensor, stats, the output list, its place there, the sensor's
# last hearing then); or a queued silence touch: (key, sensor, None, its partition, 0, heard).
_Row = tuple[tuple[str, str], "_Sensor", WindowStats | None, Any, int, float]


_SENSOR_STATE = (
    "_scorer",
    "alerts",
    "batch",
    "cadence",
    "closed_end",
    "cols",
    "gap",
    "heard",
    "jumps",
    "last_end",
    "late_from",
    "late_n",
    "machine",
    "moved",
    "part",
    "rules",
    "slot",
    "streaks",
    "windows",
)


class _Sensor:
    # ``lane``: its slot in the shard's lane while it is there (``dataflow.lane``), where its
    # windows, clocks and clean bookkeeping are kept instead of here; never pickled (a snapshot
    # takes every sensor out of the lane first).
    __slots__ = (*_SENSOR_STATE, "lane", "rowed")

    def __init__(self, rules: RuleSet = _NO_RULES) -> None:  # a default: see _UNPICKLED
        self.windows = SensorWindows()
        # Its model, made at its first closed window: a slot of its family's ColumnScorer, or
        # (a family whose model that cannot score) a scorer of its own. Both: the slot is
        # reserved, its state taken out as the scorer (see COLUMN_ROWS).
        self._scorer: SensorScorer | None = None
        self.cols: ColumnScorer | None = None
        self.slot = -1
        self.alerts = AlertTracker()
        self.part: _Part | None = None  # the partition its readings come from
        self.heard = 0.0  # its partition's input time when it was last heard
        self.gap = 0.0  # its usual input time between two hearings (0: not known yet)
        self.cadence = 0.0  # its usual time between two readings, by their own times, s
        self.batch = -1.0  # wall time of the batch it was last heard in
        self.late_from: int | None = None  # event time where its current run of late began
        self.late_n = 0  # readings in that run
        self.last_end = 0  # end of its last scored window, ns (0: none yet)
        self.jumps: Jumps | None = None  # where its windows were jumped over (a restart's)
        self.closed_end = 0  # end of its last closed window, ns, as it closed (0: none yet)
        self.moved = False  # seen on a second partition (reported once)
        self.machine: tuple[tuple[str, str], int] | None = None  # its machine, its channel
        self.rules = rules  # its family's, with its override; shared with its like
        self.streaks = rules.streaks()  # consecutive windows each rule has held, if it counts
        self.lane = NOT_LANED
        self.rowed = False  # read from a ``Rows`` (what the lane folds) since it last read a run

    def __getstate__(self) -> State:
        return state_of(self, _SENSOR_STATE)

    def __setstate__(self, state: State) -> None:
        self.jumps = None  # a snapshot from before it knows of no jump
        self.lane, self.rowed = NOT_LANED, False
        restore(self, state)  # an older snapshot's ``scorer`` goes through its setter
        if "closed_end" not in state[1]:
            self.closed_end = state[1].get("last_end", 0)

    @property
    def scorer(self) -> SensorScorer | None:
        """Its model as a per-sensor scorer: its own (or its slot's, taken out), or a copy of
        its slot's state (to read, not to change: changes to a copy do not reach the slot)."""
        cols: ColumnScorer | None = getattr(self, "cols", None)  # unset while one upgrades
        if cols is not None and self._scorer is None:
            return cols.to_scorer(self.slot)
        return self._scorer

    @scorer.setter
    def scorer(self, scorer: SensorScorer | None) -> None:
        # An older snapshot's pickle sets it by name (``dataflow.upgrade`` moves it to a slot).
        self._scorer = scorer

    def set_rules(self, rules: RuleSet) -> None:
        """New rules (the configuration changed across a restart): streaks start again."""
        if rules != self.rules:
            self.rules, self.streaks = rules, rules.streaks()


_COUNTS = (
    "alerts_opened",
    "alerts_resolved",
    "anomalies",
    "forgotten",
    "future",
    "late",
    "left_out",
    "limited",
    "moved",
    "windows",
)


class ShardCounts:
    """Counters a shard keeps; the flow sums them for status and metrics."""

    __slots__ = _COUNTS

    def __init__(self) -> None:
        self.alerts_opened = self.alerts_resolved = self.anomalies = 0
        self.forgotten = self.late = self.windows = 0
        self.future = self.limited = self.moved = 0
        self.left_out = 0  # machine channels' windows closed after their machine's was scored

    def __getstate__(self) -> State:
        return state_of(self, _COUNTS)

    def __setstate__(self, state: State) -> None:
        """Counts pickled before a counter existed start it at 0."""
        self.__init__()  # type: ignore[misc]
        restore(self, state)

    def take(self) -> dict[str, int]:
        """The counts since the last call, which start again from zero."""
        out = {name: getattr(self, name) for name in _COUNTS}
        self.__init__()  # type: ignore[misc]
        return out


_SHARD_STATE = (
    "config",
    "sensors",
    "parts",
    "open_alerts",
    "next_sweep",
    "counts",
    "notes",
    "pending",
    "machines",
    "_touched",
    "columns",
    "_queue",
)


class ShardState:
    """All sensors of one shard. Picklable, so Bytewax recovery can snapshot it."""

    def __init__(self, config: ShardConfig = _UNPICKLED) -> None:
        self.config = config
        self._sensors: dict[tuple[str, str], _Sensor] = {}  # ``sensors``
        self.parts: dict[str, _Part] = {}
        self.open_alerts = 0  # sensors of this shard with an open alert
        self.next_sweep = _NEVER  # wall time of the next look for sensors to forget
        self.counts = ShardCounts()
        self.notes: list[str] = []  # one-line news for the log (a sensor on a second partition)
        self.pending: list[Result] = []  # results of a restore's reconfiguration, not yet out
        self.machines: dict[tuple[str, str], MachineWindows] = {}  # (family, machine id) ->
        self._touched: set[tuple[str, str]] = set()  # machines with windows filed, not yet due
        # Per family, its ColumnScorers: one for its current model settings, and any a restore
        # kept with settings the current ones could not retune.
        self.columns: dict[str, list[ColumnScorer]] = {}
        # Closed windows not scored yet, and silence-queue touches queued behind them, in the
        # order the per-window path would have acted on them (``_drain``). Empty between calls.
        self._queue: list[_Row] = []
        self._lanes()

    def _lanes(self) -> None:
        """The lane (``dataflow.lane``), empty: not pickled, as a snapshot holds every sensor
        on the object path."""
        self._lane = Lane()
        # Blocks of the lane's closed windows, each after the first ``n`` rows of ``_queue``.
        self._blocks: list[tuple[int, Block]] = []
        # Sensors read from a ``Rows`` that closed a window on the object path since the last
        # call, with no scorer of their own: the lane may take them in once their windows are
        # drained (``_adopt``). Noted at a close, not at each reading: a sensor cannot come in
        # before its first.
        self._rowed: list[tuple[str, str]] = []
        self._lane_config: ShardConfig | None = None  # the settings ``_lane_fits`` is of
        self._lane_fits = False

    @property
    def sensors(self) -> dict[tuple[str, str], _Sensor]:
        """Every sensor, each with its own state: the lane's are handed back first."""
        if len(self._lane):
            self._lane.evict_all(_W_NEVER)
        return self._sensors

    @sensors.setter
    def sensors(self, sensors: dict[tuple[str, str], _Sensor]) -> None:
        self._sensors = sensors

    def tracked(self) -> int:
        """How many sensors the shard keeps (``len(sensors)``, the lane's left there)."""
        return len(self._sensors)

    def __getstate__(self) -> dict[str, Any]:
        # The lane's sensors stay in it: their own fields are brought up to date to be pickled
        # (handing them all back, each snapshot would cost the lane every sensor's way in).
        self._lane.sync_all(_W_NEVER)
        return {
            name: self._sensors if name == "sensors" else getattr(self, name)
            for name in _SHARD_STATE
            if name == "sensors" or hasattr(self, name)
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._lanes()
        restore(self, state)  # an older format's, as pickled: ``dataflow.upgrade`` fills it in

    # -- input -------------------------------------------------------------------------------

    def _part(self, name: str) -> _Part:
        part = self.parts.get(name)
        if part is None:
            part = self.parts[name] = _Part(name)
        return part

    def _new_sensor(self, key: tuple[str, str]) -> _Sensor | None:
        if len(self._sensors) >= self.config.max_sensors:
            return None
        family, sensor_id = key
        sensor = self._sensors[key] = _Sensor(
            self.config.families[family].family.rules_for(sensor_id)
        )
        return sensor

    def _join(self, key: tuple[str, str], sensor: _Sensor, part: _Part) -> None:
        """The sensor's readings come from ``part`` (first heard, or moved)."""
        old = sensor.part
        if old is not None:
            self._drain()  # its queued windows act on its alert on the old partition
            sensor.gap = 0.0  # input times of two partitions do not compare
            # A family moved to another topic (``reconfigure`` says so) moves every sensor:
            # no keying error, nothing to warn about per sensor.
            retopic = old.topic != part.topic
            if not sensor.moved and not retopic:
                sensor.moved = True
                self.counts.moved += 1
                self.notes.append(
                    f"sensor {key[0]}/{key[1]} moved from partition {old.clock.name or '-'} to "
                    f"{part.clock.name or '-'}: key every message by its sensor (or machine) id "
                    "so a sensor's readings stay in one partition, or they may be late"
                )
            sensor.heard, sensor.batch = part.clock.input, -1.0  # heard anew, on the new one
            self._rehome(key, sensor, old, part)
        sensor.part = part

    def _rehome(self, key: tuple[str, str], sensor: _Sensor, old: _Part, part: _Part) -> None:
        """Move a sensor from partition ``old`` to ``part``, heard at ``sensor.heard``: its
        place in the silence queues if an alert is open, and its pending close, which was queued
        on the old partition."""
        old.stale.drop(key)
        sensor.part = part
        if sensor.alerts.alert_id is not None:
            part.stale.touch(key, sensor.heard)
        self._arm(key, sensor)

    def _arm(self, key: tuple[str, str], sensor: _Sensor, wait: float | None = None) -> None:
        """Queue the close of the sensor's earliest open window on its partition's input time
        (``ingest`` does the same inline, once per window). ``wait``: its ``_close_wait``, when
        the caller has it."""
        win, part = sensor.windows, sensor.part
        if win.open and part is not None:
            if wait is None:
                wait = _close_wait(sensor, self.config.idle_timeout_s)
            due = sensor.heard + wait + (win.next_close - win.max_ts) / 1e9
            part.closes.push(due, key, win.next_close)

    def ingest(self, readings: Iterable[Reading | Run | Rows | Beat], now: float) -> list[Result]:
        """Fold a batch (readings single, as runs or as rows, each partition's after its
        ``Beat``) at wall time ``now``; return closed windows and refused readings."""
        cfg = self.config
        sizes, lateness, idle = cfg.window_ns, cfg.lateness_ns, cfg.idle_timeout_s
        sensors = self._sensors
        now_ns = int(now * 1e9)
        horizon = now_ns + cfg.max_future_ns
        # A reading this far past its sensor's last may end a silence its alert goes stale for.
        silence_ns = round(cfg.stale_s * 1e9) if cfg.stale_s > 0 else _NEVER
        silence_lane = round(cfg.stale_s * 1e9) if cfg.stale_s > 0 else EMPTY
        if self.next_sweep == _NEVER:
            self.next_sweep = now + cfg.sweep_s
        # A restore's reconfiguration results first (``reconfigure``): they are of windows that
        # closed before any of this batch's, whose alert events these readings' windows follow.
        out: list[Result] = self.pending
        self.pending = []
        part = self._part(NO_PART)
        clock = part.clock
        beat_grace = cfg.grace_s
        base = clock.at(now, beat_grace)  # input time before this segment's readings
        # The partition's lead (``Lead``), in locals while its readings are read.
        span = cfg.idle_timeout_ns
        lead = part.lead
        lkey, first, second, mark = lead.key, lead.first, lead.second, lead.mark
        seg = 0  # the segment's latest event time so far, ns, capped at the wall clock (0: none)
        mate = False  # a sensor other than the lead heard in the segment, at or past ``second``
        for reading in chain.from_iterable(map(self._items(horizon), readings)):
            # Tests of the class (``Run``, ``Reading`` and ``Beat`` are final; a row of a
            # ``Rows`` is a plain tuple of a ``Reading``'s fields), then each kind is unpacked as
            # itself: unpacking beats four attribute reads. The sensor's lookup is written in
            # both reading branches: a call per reading, or a slice of the reading hoisted above
            # the branch, measured slower (bench/RESULTS.md).
            kind = type(reading)
            if kind is tuple or kind is Reading:
                family, sensor_id, ts, value, _ = reading
                if ts > horizon:
                    out.append(LateReading(_new(Reading, reading), FUTURE))
                    self.counts.future += 1
                    continue
                key = (family, sensor_id)
                sensor = sensors.get(key)
                if sensor is None:
                    sensor = self._new_sensor(key)
                    if sensor is None:
                        out.append(LateReading(_new(Reading, reading), SENSOR_LIMIT))
                        self.counts.limited += 1
                        continue
                elif sensor.lane >= 0:  # the lane left this reading to the object path
                    self._lane.evict(sensor, _W_NEVER)
                if kind is tuple:  # a candidate for the lane from its next close (``_score``)
                    sensor.rowed = True
                if sensor.part is not part:
                    self._join(key, sensor, part)
                size = sizes[family]
                win = sensor.windows
                if ts - win.max_ts >= silence_ns:
                    self._back(key, sensor, ts, size, out)
                before = win.next_close
                if (
                    ts + size + lateness <= win.max_ts
                    or (
                        (jumps := sensor.jumps) is not None
                        and jumps.skip_from <= ts < jumps.skip_to
                    )
                    or not win.add(ts, value, size, lateness)
                ):
                    if not self._one(key, sensor, _new(Reading, reading), size, out):
                        continue
                elif sensor.late_from is not None:
                    sensor.late_from = None
                last = ts
            elif kind is Run:  # one that folds whole (``_items``): in order, none late
                family, sensor_id, stamps, values, _ = reading
                key = (family, sensor_id)
                sensor = sensors.get(key)
                if sensor is None:
                    sensor = self._new_sensor(key)
                    if sensor is None:
                        out.extend(LateReading(r, SENSOR_LIMIT) for r in reading.readings())
                        self.counts.limited += len(stamps)
                        continue
                elif sensor.lane >= 0:
                    self._lane.evict(sensor, _W_NEVER)
                sensor.rowed = False  # read in runs: the lane would hand it back at each
                if sensor.part is not part:
                    self._join(key, sensor, part)
                size = sizes[family]
                win = sensor.windows
                if stamps[0] - win.max_ts >= silence_ns:
                    self._back(key, sensor, stamps[0], size, out)
                before = win.next_close
                last = stamps[-1]
                win.add_sorted(stamps, values, size, lateness)
                if sensor.late_from is not None:
                    sensor.late_from = None
            elif kind is Stretch:  # rows of sensors in the lane (``_lane_rows``): folded there
                st = cast("Stretch", reading)
                lane = self._lane
                lead_in = lane.lead
                lead_in[L_SLOT] = NOT_LANED if lkey is None else lane.index.get(lkey, NOT_LANED)
                lead_in[L_FIRST], lead_in[L_SECOND], lead_in[L_MARK] = first, second, mark
                lead_in[L_SEG] = seg
                bi, bf = st.bi[st.used :], st.bf[st.used :]
                st.stop, mate, nb, npush, closed = lane_fold(
                    st.slots, st.ts, st.values, st.lo, st.hi, lane.ints, lane.floats,
                    sizes[st.family], lateness, silence_lane, horizon, now_ns, span,
                    lane.part_of(part), now, base, idle, lead_in, mate,
                    bool(self._queue) or bool(self._blocks), bi, bf, st.pd, st.pi,
                )  # fmt: skip
                st.used += nb
                self._lane_out(bi, bf, nb, st.pd, st.pi, npush, closed, part, out)
                lslot = int(lead_in[L_SLOT])
                if lslot >= 0:
                    lkey = lane.keys[lslot]
                first, second = int(lead_in[L_FIRST]), int(lead_in[L_SECOND])
                mark, seg = int(lead_in[L_MARK]), int(lead_in[L_SEG])
                continue
            else:  # a Beat: the next readings come from its partition
                assert kind is Beat
                if seg:
                    if mate:  # the lead's progress in this segment is the mates' too: once
                        mark, mate = first, False
                    clock.event(lead_time(first, second, mark, lateness) / 1e9)
                lead.key, lead.first, lead.second, lead.mark = lkey, first, second, mark
                part = self._part(reading.part)
                clock, lead = part.clock, part.lead
                lkey, first, second, mark = lead.key, lead.first, lead.second, lead.mark
                clock.beat(reading.wall, reading.since, now, beat_grace)
                base, seg = clock.at(now, beat_grace), 0
                continue
            if win.max_ts >= win.next_close:
                self._score(key, sensor, win.close_due(size, lateness), out)
            # The lead, inline (once per reading): see ``Lead``.
            if last > now_ns:
                last = now_ns
            if key == lkey:
                step = last - first
                if step > 0:
                    if step > span:
                        # Its clock jumped before these readings (a run's own span is time
                        # passing): the jump is not how far the input moved.
                        begin = stamps[0] if kind is Run else last
                        jump = (begin if begin < last else last) - first
                        if jump > span:
                            mark += jump
                    first = last
                elif step < -span:  # its clock stepped back: go on from there
                    mark += step
                    first = last
            elif last > first:  # another sensor ahead of the lead: it leads from here
                if seg >= first >= 0:  # the lead it passes was read in this segment: a mate
                    mate = True
                if first > second:
                    second = first
                # Its step past the lead may be a clock set ahead: not counted. A run's own
                # span past the lead is time passing.
                mark = last
                if kind is Run:
                    begin = stamps[0]
                    if begin < mark:
                        mark = begin if begin > first else first
                first = last
                lkey = key
            elif last >= second:  # a mate heard, not behind the others
                second, mate = last, True
            # Heard at the segment's latest reading so far (its own included), as a sensor
            # read then: one ahead of input time (the lead) has its windows closed by its own
            # clock, never before it, and a gateway's bundle split by a poll is heard as one.
            if last > seg:
                seg = last
            heard = seg / 1e9
            if heard < base:
                heard = base
            if sensor.batch != now:
                # Once per sensor per batch: its usual gap between hearings, and its place in
                # the silence queues (which read its latest ``heard`` when it comes up).
                gap = heard - sensor.heard if sensor.batch >= 0 else 0.0
                if gap < 0.0:  # input times of another partition, or a clock set back
                    gap = 0.0
                if sensor.gap == 0.0:
                    sensor.gap = gap
                else:
                    cap = GAP_CLIP * sensor.gap
                    if gap > cap:
                        gap = cap
                    if gap > sensor.gap and gap > BUNDLE_READINGS * sensor.cadence:
                        sensor.gap = gap  # a longer bundle: the next may be as long (_close_wait)
                    else:
                        sensor.gap += GAP_WEIGHT * (gap - sensor.gap)
                sensor.batch = now
                self._touch(key, sensor, part, heard)
            sensor.heard = heard
            if win.next_close != before and win.open:  # once per window, not per reading
                due = heard + _close_wait(sensor, idle) + (win.next_close - win.max_ts) / 1e9
                part.closes.push(due, key, win.next_close)
        if seg:
            if mate:
                mark = first
            clock.event(lead_time(first, second, mark, lateness) / 1e9)
        lead.key, lead.first, lead.second, lead.mark = lkey, first, second, mark
        self._drain()
        self._machine_out(out)
        self._adopt()
        return out

    def _lane_on(self) -> bool:
        """Whether the lane is used: scoring in batches, and every duration of the settings
        within what its loops' 64-bit integers hold with room (the settings have no upper
        bound; a sum of a time and a duration must not overflow)."""
        if not (LANE and BATCH):
            return False
        cfg = self.config
        if cfg is not self._lane_config:
            roomy = 1 << 60
            self._lane_config = cfg
            self._lane_fits = (
                cfg.lateness_ns < roomy
                and cfg.idle_timeout_ns < roomy
                and cfg.max_future_ns < roomy
                and cfg.stale_s * 1e9 < roomy
                and all(size < roomy for size in cfg.window_ns.values())
            )
        return self._lane_fits

    def _lane_rows(self, rows: Rows, slots: NDArray[np.int64]) -> Iterator[Any]:
        """A ``Rows``'s rows for ``ingest``: stretches the lane folds (``Stretch``), and one by
        one, as tuples, the rows of sensors not in it and each row a stretch stopped at."""
        family, ids, stamps, values, sources = rows
        st = Stretch(family, slots, stamps, values)
        laned = np.flatnonzero(slots >= 0).tolist()
        i, n, k = 0, len(slots), 0
        while i < n:
            while k < len(laned) and laned[k] < i:
                k += 1
            upto = laned[k] if k < len(laned) else n
            if upto > i:  # rows of sensors not in the lane, as ``Rows.rows`` gives them
                yield from zip(
                    repeat(family), ids[i:upto], stamps[i:upto], values[i:upto], sources[i:upto]
                )
                i = upto
                continue
            st.lo = i
            yield st
            i = st.stop
            if i < n:  # the row it stopped at
                yield (family, ids[i], stamps[i], values[i], sources[i])
                i += 1

    def _lane_out(
        self,
        bi: NDArray[np.int64],
        bf: NDArray[np.float64],
        nb: int,
        pd: NDArray[np.float64],
        pi: NDArray[np.int64],
        npush: int,
        closed: int,
        part: _Part,
        out: list[Result],
    ) -> None:
        """What a lane loop did: its block of closed windows queued behind the shard's queue,
        its closes queued on the partition's input time, in its order, and its count."""
        if nb:
            self._blocks.append((len(self._queue), Block(bi, bf, nb, out, len(out))))
        if npush:
            part.closes.push_all(
                pd[:npush].tolist(), pi[:npush, 0].tolist(), pi[:npush, 1].tolist(), self._lane.keys
            )
        self.counts.windows += closed

    def _adopt(self) -> None:
        """Take into the lane the sensors read from a ``Rows`` that closed a window on the
        object path and may now be there (``_laneable``): the queue is drained, so no block
        names a slot given anew."""
        rowed = self._rowed
        if not rowed:
            return
        self._rowed = []
        if not self._lane_on():
            return
        sensors = self._sensors
        taken: list[tuple[tuple[str, str], _Sensor]] = []
        for key in rowed:
            sensor = sensors.get(key)
            if sensor is not None and self._laneable(key, sensor):
                sensor.lane = 0  # taken (a key read twice is taken once)
                taken.append((key, sensor))
        self._lane.adopt(taken, _W_NEVER)

    def _laneable(self, key: tuple[str, str], sensor: _Sensor) -> bool:
        """Whether a sensor may go into the lane: nothing about it that only the object path
        does (``dataflow.lane``)."""
        if sensor.lane >= 0 or sensor.cols is None or sensor._scorer is not None:
            return False
        if sensor.alerts.alert_id is not None or sensor.part is None:
            return False
        if sensor.jumps is not None or sensor.late_from is not None or sensor.machine is not None:
            return False
        win = sensor.windows
        if len(win.open) > 2 or not win.closed_any() or win.max_ts < 0:
            return False
        if sensor.streaks is not None and any(sensor.streaks):
            return False
        rules = self._lane.rules.setdefault(key[0], sensor.rules)
        return rules is sensor.rules and self.config.families[key[0]].machine is None

    def _items(self, horizon: int) -> Callable[[Reading | Run | Rows | Beat], Iterable[Any]]:
        """What ``ingest`` reads of each item, asked as it comes to the item (``chain`` takes
        the next item's rows only once the last one's are read): a ``Rows``'s rows; a ``Run``
        whole if it can fold whole, else its readings one by one, exactly as single readings.

        A run folds whole when its readings are in order, none from the future, the first not
        before ``closed_until``, and its window not due by the sensor's clock already (the
        window's end, not the reading, plus the lateness, ahead of ``max_ts``): then none of
        them can be late, whatever closes between them. A window already due closes at its
        first reading, and the run's next readings in it are late, as single readings would
        find them. A run with a silence of the stale time or more between two of its readings
        is read one by one too, so the reading after it is checked for a stale alert
        (``_back``): one poll's backlog across the silence gives the alerts of live reading.
        """
        sensors, sizes, lateness = self._sensors, self.config.window_ns, self.config.lateness_ns
        stale = self.config.stale_s
        # Once per batch: a sensor comes into the lane only after its batch (``_adopt``).
        lane = self._lane
        laned = self._lane_on() and bool(lane.index)  # not len(): a Python call
        silence_ns = round(stale * 1e9) if stale > 0 else _NEVER

        def items(item: Reading | Run | Rows | Beat) -> Iterable[Any]:
            kind = type(item)
            if kind is Rows:
                rows = cast("Rows", item)
                if laned:
                    slots = lane.slots_of(rows.family, rows.sensor_ids)
                    if slots is not None:
                        return self._lane_rows(rows, slots)
                return rows.rows()
            if kind is Run:
                run = cast("Run", item)
                family, sensor_id, stamps, _, _ = run
                if stamps[-1] > horizon or not all(map(le, stamps, islice(stamps, 1, None))):
                    return run.readings()
                if (
                    stamps[-1] - stamps[0] >= silence_ns
                    and max(map(sub, islice(stamps, 1, None), stamps)) >= silence_ns
                ):
                    return run.readings()  # a silence inside it: ``_back`` at its end
                sensor = sensors.get((family, sensor_id))
                if sensor is not None and sensor.lane >= 0:  # its windows are read here
                    lane.evict(sensor, _W_NEVER)
                if sensor is not None:  # (a new sensor's windows are empty)
                    win, head, size = sensor.windows, stamps[0], sizes[family]
                    if (
                        head < win.closed_until
                        or head - head % size + size + lateness <= win.max_ts
                        or (sensor.jumps is not None and head < sensor.jumps.skip_to)
                    ):
                        return run.readings()
            return (item,)

        return items

    def _back(
        self, key: tuple[str, str], sensor: _Sensor, ts: int, size: int, out: list[Result]
    ) -> None:
        """A sensor back at ``ts`` after a silence of at least the stale time by its own
        readings' times, handled as the live timers would have, in their order by its clock:
        each window's close at its due (it may open or resolve the alert, and sets the cadence
        the limit reads) and, while its alert is open, the stale resolution at its limit past
        its last reading, whichever comes first (a close at a tie, as ``expire`` does); a
        stale resolution closes the windows left open as ``_resolve_stale`` does. Then its
        machine's alert, when every channel is that silent. Read from a backlog no timer ran
        in the silence (and one read live may come before its partition's timer did), so
        without this the alerts differed with how the readings were read: a restart's replay
        left one open and resolved another twice."""
        win = sensor.windows
        if (
            win.max_ts == -_W_NEVER
            and not win.open
            and sensor.alerts.alert_id is None
            and sensor.machine is None
        ):
            return  # a new sensor: nothing closes, nothing goes stale, no machine to look at
        cfg = self.config
        lateness = cfg.lateness_ns
        self._drain()  # windows closed earlier in this batch: the alert and cadence they set
        silent = (ts - win.max_ts) / 1e9
        while True:
            # (A close's wait for the sensor's usual gap, ``_close_wait``, is not known from
            # a backlog: none.)
            close = win.next_close  # (past every reading while no window is open)
            stale_at = win.max_ts + round(_limit_of(sensor, cfg.stale_s) * 1e9)
            if sensor.alerts.alert_id is not None and stale_at <= ts and stale_at < close:
                self._silent_close(key, sensor, out)
                self._stale(key, sensor, silent, out)
                break
            if close > ts:
                break
            closed = win.close_at(close, size, lateness)
            if not closed:
                break
            self._score(key, sensor, closed, out)
            self._drain()
        if silent < _limit_of(sensor, cfg.stale_s):
            return
        if sensor.machine is not None and self.machines:
            self._back_machine(sensor.machine[0], ts, out)

    def _back_machine(self, mkey: tuple[str, str], ts: int, out: list[Result]) -> None:
        """A machine's channel back at ``ts`` (``_back``): if every channel has been silent past
        its limit by its own readings' times, the machine's open alert resolves as stale, as
        ``_stale_machines`` resolves it live, after the channels' windows due by ``ts`` close
        (as the live timers closed them: the machine windows they complete are scored whole)
        and the machine windows due are scored (an alert they open goes stale too)."""
        mw = self.machines.get(mkey)
        if mw is None:
            return
        # (Its alert is looked at once the windows below are scored: those filed in this batch,
        # a poll of a backlog across the silence, and those its channels close now may open it,
        # as live scored them before its stale timer fired.)
        silence = self._machine_silence(mkey, mw, lambda c: (ts - c.windows.max_ts) / 1e9)
        if silence is None:
            return
        silent, channels = silence
        size, lateness = self.config.window_ns[mkey[0]], self.config.lateness_ns
        for ckey, channel in channels:
            if channel.windows.open:
                self._score(ckey, channel, channel.windows.close_at(ts, size, lateness), out)
        self._drain()
        self._machine_out(out, mkey)
        if mw.alerts.alert_id is not None:
            self._close_machine(mkey, mw, silent, out)

    def _one(
        self, key: tuple[str, str], sensor: _Sensor, reading: Reading, size: int, out: list[Result]
    ) -> bool:
        """A reading late, or so far behind its sensor's clock that its window closes at once.

        Late, unless the sensor's readings have all been that far behind for a whole window of
        their own time, and ``RESTART_READINGS`` of them: its clock stepped forward and came
        back (an NTP correction, a gateway's clock set back), so it starts again from this
        reading. True: taken.
        """
        ts = reading.ts
        lateness = self.config.lateness_ns
        win = sensor.windows
        start = sensor.late_from
        if start is None or ts < start:
            sensor.late_from, sensor.late_n = ts, 1
        elif (
            sensor.late_n + 1 >= RESTART_READINGS
            and ts - start >= size
            and (skip := restart_skip(win, sensor.jumps, ts, size)) is not None
        ):
            sensor.late_from = None
            self._score(key, sensor, win.close_all(size, lateness), out)
            sensor.jumps = rebase(win, sensor.jumps, ts, size, skip)
        else:
            sensor.late_n += 1
        jumps = sensor.jumps
        if (jumps is None or not jumps.skips(ts)) and win.add(ts, reading.value, size, lateness):
            return True  # behind, but its window was not closed yet
        out.append(LateReading(reading))
        self.counts.late += 1
        return False

    # -- silence ----------------------------------------------------------------------------

    def _limit(self, floor: float) -> Callable[[tuple[str, str]], float]:
        """A sensor's silence limit: the floor, or longer by its own cadence."""
        sensors = self._sensors

        def limit_of(key: tuple[str, str]) -> float:
            sensor = sensors.get(key)
            return floor if sensor is None else _limit_of(sensor, floor)

        return limit_of

    def _heard_of(self, part: _Part) -> Callable[[tuple[str, str]], float | None]:
        sensors = self._sensors

        def heard_of(key: tuple[str, str]) -> float | None:
            sensor = sensors.get(key)
            return None if sensor is None or sensor.part is not part else sensor.heard

        return heard_of

    def expire(self, now: float) -> list[Result]:
        """Act on silence at wall time ``now``: close windows, resolve stale alerts, forget."""
        out: list[Result] = self.pending
        self.pending = []
        cfg = self.config
        beat_grace, stale = cfg.grace_s, cfg.stale_s
        self._retired(now)
        lane_on = self._lane_on()
        for part in list(self.parts.values()):
            at = part.clock.at(now, beat_grace)
            closes = part.closes
            while (group := closes.take(at)) is not None:
                if lane_on and self._lane.index:
                    self._lane_closes(part, at, group, out)
                else:
                    for key, next_close in group:
                        self._close_by_time(part, at, key, next_close, out)
            heard_of = self._heard_of(part)
            if stale > 0:
                self._drain()  # the windows closed may open or resolve alerts, and set cadences
                for key in part.stale.due(at, stale, self._limit(stale), heard_of):
                    self._resolve_stale(key, at, out)
        self._drain()
        if now >= self.next_sweep:
            self._sweep(now, out)
        self._machine_out(out)
        if cfg.stale_s > 0 and self.machines:
            self._stale_machines(now, out)
        return out

    def _close_by_time(
        self, part: _Part, at: float, key: tuple[str, str], next_close: int, out: list[Result]
    ) -> None:
        """A close queued on the partition's input time, now at ``at``: the sensor's window
        closes if its clock, run on by input time, has reached it (or, silent past its stale
        time first, its alert resolves stale)."""
        sensor = self._sensors.get(key)
        if sensor is None or sensor.part is not part:
            return  # forgotten, or moved, since
        if sensor.lane >= 0:  # one the lane left to the object path
            self._lane.evict(sensor, _W_NEVER)
        win = sensor.windows
        if win.next_close != next_close:
            return  # its own readings closed that window first
        cfg = self.config
        stale = cfg.stale_s
        # The sensor's clock, run on by its partition's input time, less its wait.
        wait = _close_wait(sensor, cfg.idle_timeout_s)
        due = sensor.heard + wait + (next_close - win.max_ts) / 1e9
        if at < due:  # heard again since the entry was made
            part.closes.push(due, key, next_close)
            return
        if stale > 0 and sensor.heard + stale < due:
            # Silent past the stale time before this close: if its alert is open and its limit
            # came first, the stale timer fired first (as it would have had input time moved in
            # smaller steps).
            self._drain()
            limit = _limit_of(sensor, stale)
            if sensor.alerts.alert_id is not None and sensor.heard + limit < due:
                self._resolve_stale(key, sensor.heard + limit, out)
                return
        # At least its earliest window (rounding must not leave it open at its due).
        clock = max(win.max_ts + round((at - sensor.heard - wait) * 1e9), next_close)
        self._score(key, sensor, win.close_at(clock, cfg.window_ns[key[0]], cfg.lateness_ns), out)
        if win.open:
            self._arm(key, sensor, wait)

    def _lane_closes(
        self, part: _Part, at: float, group: list[tuple[tuple[str, str], int]], out: list[Result]
    ) -> None:
        """A group of closes due at once, in order: stretches of the lane's sensors by its loop,
        the rest (and each close a stretch stopped at) by ``_close_by_time``."""
        lane, cfg = self._lane, self.config
        keys, nexts = zip(*group, strict=True)
        slots = lane.slots_of_keys(keys)
        n = len(slots)
        closes = np.array(nexts, dtype=np.int64)
        sizes = np.array([cfg.window_ns.get(f, 1) for f in lane.families], dtype=np.int64)
        bi, bf = block_arrays(WINDOWS * n)  # a close closes every window its clock makes due
        pd, pi = np.empty(n), np.empty((n, 2), dtype=np.int64)
        used = i = 0
        while i < n:
            if slots[i] >= 0:
                i, nb, npush, closed = lane_expire(
                    slots, closes, i, n, lane.ints, lane.floats, sizes, cfg.lateness_ns,
                    lane.part_of(part), at, cfg.stale_s, cfg.idle_timeout_s,
                    bi[used:], bf[used:], pd, pi,
                )  # fmt: skip
                self._lane_out(bi[used:], bf[used:], nb, pd, pi, npush, closed, part, out)
                used += nb
                if i >= n:
                    break
            self._close_by_time(part, at, keys[i], nexts[i], out)
            i += 1

    def _retired(self, now: float) -> None:
        """Run on the input time of partitions of topics no family reads any more (a family
        moved to another topic): with the wall clock while every partition the flow does read
        is caught up, so a sensor that never turns up on its new topic goes stale and is
        forgotten as any silent sensor, and one still waiting in the new topic's backlog
        does not."""
        topics = {setup.family.topic for setup in self.config.families.values()}
        retired = [p for p in self.parts.values() if p.topic and p.topic not in topics]
        if not retired:
            return  # the usual case: no family moved
        live = [p.clock.counted for p in self.parts.values() if p.topic in topics]
        if not live:
            return  # no word yet from what is read (or partitions not named by topic)
        # Caught up now: each one's last word said so, and recent (past BEAT_GRACE_S: a stall
        # or a frozen process, said only by its next beat). It follows the wall clock up to
        # their last word, and runs on past it by the shard's grace (``PartClock.at``), no
        # further than they do: following the wall clock itself, it ran BEAT_GRACE_S past the
        # word, more than the lateness, and closed a retired sensor's window that its first
        # readings on the new topic, made after the word and unread while it was missing,
        # belonged to.
        if any(c is None or now - c > BEAT_GRACE_S for c in live):
            for part in retired:
                part.clock.pause(now)
            return
        word = min(cast("list[float]", live))
        for part in retired:
            part.clock.follow(now if now < word else word)

    def _silence(self, sensor: _Sensor, now: float) -> float:
        part = sensor.part
        return 0.0 if part is None else part.clock.at(now, self.config.grace_s) - sensor.heard

    def _resolve_stale(self, key: tuple[str, str], at: float, out: list[Result]) -> None:
        """Close a silent sensor's windows, which may resolve its alert cleanly; if they do not,
        resolve it as stale."""
        sensor = self._sensors[key]
        self._silent_close(key, sensor, out)
        self._stale(key, sensor, at - sensor.heard, out)

    def _silent_close(self, key: tuple[str, str], sensor: _Sensor, out: list[Result]) -> None:
        """Close and score every open window of a sensor silent past its limit: they may
        resolve its alert cleanly before it goes stale."""
        if sensor.windows.open:
            self._close_sensor(key, out)
            # Closed as they were: a reading that still belongs to one is not late.
            sensor.windows.reopen_after(sensor.windows.max_ts)
        self._drain()

    def _stale(
        self, key: tuple[str, str], sensor: _Sensor, silent: float, out: list[Result]
    ) -> None:
        """Resolve the sensor's open alert, if any, as stale after ``silent`` seconds."""
        event = sensor.alerts.stale()
        if event is not None:
            self.counts.alerts_resolved += 1
            self.open_alerts -= 1
            if sensor.part is not None:
                sensor.part.stale.drop(key)
            out.append(SensorEvent(key[0], key[1], event.event, silent, event, self._unit(key[0])))

    def _sweep(self, now: float, out: list[Result]) -> None:
        """Forget the sensors silent for ``state_ttl_s`` (or longer, by their cadence)."""
        cfg = self.config
        ttl, grace_s = cfg.state_ttl_s, cfg.grace_s
        # Each partition's input time once, not once per sensor (``_silence``'s, per sensor).
        at = {part: part.clock.at(now, grace_s) for part in self.parts.values()}
        laned = self._lane.silent([at.get(p, -_NEVER) for p in self._lane.parts], ttl)
        gone = [
            k
            for k, sensor in self._sensors.items()
            if (
                sensor.lane in laned
                if sensor.lane >= 0
                else sensor.part is not None
                and at[sensor.part] - sensor.heard >= _limit_of(sensor, ttl)
            )
        ]
        for key in gone:
            self._forget(key, now, out)
        self.next_sweep = now + cfg.sweep_s if self._sensors else _NEVER

    def _forget(self, key: tuple[str, str], now: float, out: list[Result]) -> None:
        """Close what a sensor left open, resolve its alert as stale, and drop its state."""
        sensor = self._sensors[key]
        if sensor.lane >= 0:
            self._lane.evict(sensor, _W_NEVER)
        silent = self._silence(sensor, now)
        self._resolve_stale(key, sensor.heard + silent, out)
        if sensor.part is not None:
            sensor.part.stale.drop(key)
        del self._sensors[key]
        cols = sensor.cols
        if cols is not None:  # its windows were scored (_resolve_stale drained them)
            cols.free(sensor.slot)
            sensor.cols, sensor.slot = None, -1
            setup = self.config.families.get(key[0])
            if not cols.in_use and (setup is None or cols.params != setup.model):
                # Its last sensor from before a change of settings that restored models keep:
                # no new sensor takes its slots, and its arrays would stay in every snapshot.
                self.columns[key[0]].remove(cols)
        self.counts.forgotten += 1
        out.append(SensorEvent(key[0], key[1], FORGOTTEN, silent, unit=self._unit(key[0])))
        if key[1].rpartition("/")[0] and self.machines:
            self._forget_machine(key, silent, out)

    def _forget_machine(self, key: tuple[str, str], silent: float, out: list[Result]) -> None:
        """A machine whose last channel is forgotten: its pending windows are scored, its alert
        resolved as stale, and it is forgotten too."""
        family, sensor_id = key
        machine_id = sensor_id.rpartition("/")[0]
        mkey = (family, machine_id)
        mw = self.machines.get(mkey)
        if mw is None:
            return
        prefix = machine_id + "/"
        sensors = self._sensors  # a lookup per channel: a scan of the shard was quadratic
        if any((family, prefix + name) in sensors for name in mw.names):
            return
        self._close_machine(mkey, mw, silent, out)
        del self.machines[mkey]

    def _close_machine(
        self, mkey: tuple[str, str], mw: MachineWindows, silent: float, out: list[Result]
    ) -> None:
        """Score a silent machine's pending windows, then resolve its alert (if still open) as
        stale."""
        for start in mw.due_all():
            self._machine_window(mkey, mw, start, out)
        event = mw.alerts.stale()
        if event is not None:
            self.counts.alerts_resolved += 1
            self.open_alerts -= 1
            out.append(SensorEvent(mkey[0], mkey[1], event.event, silent, event))

    def flush(self) -> list[Result]:
        """Close every open window: the input has ended."""
        out: list[Result] = self.pending
        self.pending = []
        self._lane.evict_all(_W_NEVER)
        for key, sensor in list(self._sensors.items()):
            if sensor.windows.open:
                self._close_sensor(key, out)
        self._drain()
        self._touched.clear()
        self._machines_flush(out)
        for part in self.parts.values():
            part.closes.clear()
        self.next_sweep = _NEVER  # the input has ended: nothing will fall silent any more
        return out

    def next_deadline(self) -> float | None:
        """Wall time at which ``expire`` next has work, or None (the input will say)."""
        cfg = self.config
        if self.pending:
            return 0.0
        times = []
        for part in self.parts.values():
            dues = []
            due = part.closes.first()
            if due is not None:
                dues.append(due)
            if cfg.stale_s > 0:
                stale = part.stale.next_due(cfg.stale_s)
                if stale is not None:
                    dues.append(stale)
            if dues:
                wall = part.clock.wall_of(min(dues), cfg.grace_s)
                if wall is not None:
                    times.append(wall)
        if self.next_sweep != _NEVER:
            times.append(self.next_sweep)
        return min(times) if times else None

    def _close_sensor(self, key: tuple[str, str], out: list[Result]) -> None:
        """Close and score all of a sensor's open windows."""
        sensor = self._sensors[key]
        closed = sensor.windows.close_all(self.config.window_ns[key[0]], self.config.lateness_ns)
        self._score(key, sensor, closed, out)

    def _unit(self, family: str) -> str | None:
        setup = self.config.families.get(family)
        return None if setup is None else setup.family.unit

    # -- a restore --------------------------------------------------------------------------

    def reconfigure(self, config: ShardConfig, now: float = 0.0) -> list[str]:
        """Take the current configuration after a restore from a snapshot, which holds the one
        it was made under; return one line per difference, for the log.

        A removed family's sensors are closed and forgotten; a family whose window length
        changed has its open windows closed as they are, and the new length applies from its
        next reading; a new lateness applies to open windows; changed rules apply to every
        sensor; model settings apply to restored models where ``SensorScorer.retune`` says
        that is sound (else to new sensors only), machine settings to restored machines; a
        family whose window length changed starts its sensors' and machines' models anew.
        Nothing is silent yet: every partition waits for its source to say it is caught up.
        Changing the shard count is refused by the caller (``dataflow.flow.restore``): it would
        move sensors between shards.
        """
        self._lane.evict_all(_W_NEVER)
        self._lanes()  # the lane's rules and indexes are of the configuration before
        old = self.config
        lines: list[str] = []
        out = self.pending
        pending: list[tuple[tuple[str, str], _Sensor]] = []  # open windows to queue anew
        for part in self.parts.values():
            part.clock.pause(now)
        gone = [name for name in old.families if name not in config.families]
        for name in gone:
            for key in [k for k in self._sensors if k[0] == name]:
                self._forget(key, 0.0, out)
            self.columns.pop(name, None)
            lines.append(f"family {name!r} is no longer configured: its sensors were forgotten")
        for name, setup in config.families.items():
            before = old.families.get(name)
            if before is None:
                continue
            if before.family.topic != setup.family.topic:
                self._retire(name, before.family.topic)
                lines.append(
                    f"family {name!r}: topic {before.family.topic!r} -> "
                    f"{setup.family.topic!r}: its sensors go on from the new topic's readings"
                )
            if before.window_ns != setup.window_ns:
                # Means of another length are another signal (a 5 s mean scatters more than a
                # minute's): a model kept from the old length pages on the new noise, or misses
                # what its wider spread hides. The models start anew; open alerts stay open and
                # resolve by their windows, as after any pause.
                for key, sensor in self._sensors.items():
                    if key[0] == name and sensor.windows.open:
                        self._close_sensor(key, out)
                        sensor.windows.reopen_after(sensor.windows.max_ts)
                self._drain()  # scored by the models and settings they closed under
                for key, sensor in self._sensors.items():
                    if key[0] == name:  # its model anew, at its next window: no slot, no scorer
                        if sensor.cols is not None:
                            sensor.cols.free(sensor.slot)
                            sensor.cols, sensor.slot = None, -1
                        sensor._scorer = None
                self.columns.pop(name, None)  # of the old length, every slot freed
                lines.append(
                    f"family {name!r}: window {before.window_ns / 1e9:g} s -> "
                    f"{setup.window_ns / 1e9:g} s: open windows were closed at the old length, "
                    "the new one applies from each sensor's next reading; its sensors' and "
                    "machines' models start anew (what they learned was of the old length)"
                )
                continue
            if before.machine != setup.machine and setup.machine is not None:
                for mkey, mw in self.machines.items():
                    if mkey[0] == name:
                        mw.model.retune(setup.machine)
                lines.append(
                    f"family {name!r}: machine model settings changed: applied to restored machines"
                )
            changed = [
                f.name
                for f in fields(ModelParams)
                if f.name != "window_ns"
                and getattr(before.model, f.name) != getattr(setup.model, f.name)
            ]
            if changed:
                for key, sensor in self._sensors.items():
                    if key[0] == name and sensor._scorer is not None:
                        sensor._scorer.retune(setup.model)
                for cols in self.columns.get(name, ()):
                    cols.retune(setup.model)  # or it keeps its own, as a per-sensor scorer
                fixed = [c for c in changed if c in STRUCTURAL]
                lines.append(
                    f"family {name!r}: model settings changed ({', '.join(changed)}): "
                    + (
                        f"restored models keep theirs, as {', '.join(fixed)} shape what they "
                        "learned; new sensors take the new ones"
                        if fixed
                        else "applied to restored models"
                    )
                )
        dropped = set()
        for mkey, mw in list(self.machines.items()):
            fam = config.families.get(mkey[0])
            was = old.families.get(mkey[0])
            if (
                fam is None
                or fam.family.channel_names != mw.names
                or (was is not None and was.window_ns != fam.window_ns)
            ):
                # Its family, or its channels, changed: it starts anew. What it had pending is
                # scored by the model it has, and its alert resolved (it would stay open).
                self._close_machine(mkey, mw, 0.0, out)
                del self.machines[mkey]
                dropped.add(mkey)
        if dropped:
            for sensor in self._sensors.values():
                if sensor.machine is not None and sensor.machine[0] in dropped:
                    sensor.machine = None  # its channel's place is found again
            for name in sorted({family for family, _ in dropped}):
                was, now_fam = old.families.get(name), config.families.get(name)
                if was is not None and now_fam is not None and was.window_ns != now_fam.window_ns:
                    continue  # said with the window length's line
                lines.append(
                    f"family {name!r}: its machines' channels changed: their models start anew"
                    " (open machine alerts resolved)"
                )
        relate = old.lateness_ns != config.lateness_ns
        # A queued close's due holds the lateness and a wait of up to the idle timeout
        # (``_close_wait``), and ``expire`` moves one only when it comes up early: under a new
        # lateness or a shorter timeout, every open window's close is queued anew.
        if relate or old.idle_timeout_s != config.idle_timeout_s:
            for key, sensor in self._sensors.items():
                size = config.window_ns.get(key[0])
                if size is not None and sensor.windows.open:
                    if relate:
                        sensor.windows.relate(size, config.lateness_ns)
                    pending.append((key, sensor))
        if relate:
            lines.append(
                f"allowed lateness {old.lateness_ns / 1e9:g} s -> {config.lateness_ns / 1e9:g} s:"
                " applied to open windows"
            )
        for name in _PLAIN_SETTINGS:
            if getattr(old, name) != getattr(config, name):
                line = f"{name} {getattr(old, name)} -> {getattr(config, name)}: applied"
                held = len(self._sensors)
                if name == "max_sensors" and held > config.max_sensors:
                    # Nothing learned is dropped to meet a cap: the sensors kept go on, and
                    # new ones are refused until forgotten ones bring the shard under it.
                    line += (
                        f" to new sensors only: this shard keeps the {held} it has, and refuses"
                        " new ones (sensor_limit) until idle ones are forgotten below it"
                    )
                lines.append(line)
        self._drain()  # nothing is queued across a change of configuration
        self.config = config
        for (family, sensor_id), sensor in self._sensors.items():
            sensor.set_rules(config.families[family].family.rules_for(sensor_id))
        for key, sensor in pending:  # their queued closes were for the old close times
            self._arm(key, sensor)
        if old.stale_s != config.stale_s:  # the sensors waiting past it, by their own limits
            for part in self.parts.values():
                part.stale.relimit(config.stale_s, self._limit(config.stale_s))
        return lines

    def _retire(self, family: str, topic: str) -> None:
        """The family moved off ``topic``: its sensors still on a partition of it go to a
        partition of their own (``family@topic/N``, named after no topic), retired as a topic no
        family reads (``_retired``) even when another family still reads ``topic``. Else that
        family's input time judged them, running on while the new topic's backlog, where they
        may be, was still read. Same input time, so their hearings stand."""
        self._lane.evict_all(_W_NEVER)
        moving = sorted(
            (
                (sensor.heard, key, sensor)
                for key, sensor in self._sensors.items()
                if key[0] == family and sensor.part is not None and sensor.part.topic == topic
            ),
            key=lambda row: row[0],  # the silence queues keep the order of hearings
        )
        for _, key, sensor in moving:
            old = sensor.part
            assert old is not None
            name = f"{family}@{old.clock.name}"
            part = self.parts.get(name)
            if part is None:
                part = self._part(name)
                part.clock.input = old.clock.input
            elif part.clock.input < old.clock.input:
                # Left by an earlier move off this topic (the family came back to it, and
                # leaves again): its input time stood while the topic was read anew. Its own
                # sensors were not heard there either, so it takes the topic's input time.
                part.clock.input = old.clock.input
            self._rehome(key, sensor, old, part)  # same input time: its hearing stands

    # -- scoring ----------------------------------------------------------------------------

    def _score(
        self,
        key: tuple[str, str],
        sensor: _Sensor,
        closed: list[WindowStats],
        out: list[Result],
    ) -> None:
        """Queue the sensor's closed windows, to be scored in a batch (``_drain``): what each
        would have written goes in its place in ``out``, so the output's order is that of
        scoring each window as it closed."""
        if not closed:
            return
        if closed[0].start == sensor.closed_end and sensor.jumps is None and len(closed) == 1:
            sensor.closed_end = closed[0].end  # the next window in order: most often
        else:
            _note_closes(sensor, closed)
        if sensor.cols is None and sensor._scorer is None:
            self._model(key[0], sensor)
        if sensor.rowed and sensor._scorer is None:  # it may come into the lane now
            self._rowed.append(key)
        self.counts.windows += len(closed)
        heard, pos = sensor.heard, len(out)
        if len(closed) == 1:  # most often, at a fleet's scale
            self._queue.append((key, sensor, closed[0], out, pos, heard))
        else:
            self._queue.extend([(key, sensor, stats, out, pos, heard) for stats in closed])
        if not BATCH:
            self._drain()

    def _model(self, family: str, sensor: _Sensor) -> None:
        """A new sensor's model: a slot of its family's ColumnScorer for the current settings,
        or a scorer of its own where the ColumnScorer cannot score them."""
        params = self.config.families[family].model
        if BATCH and not (params.hst_novelty or params.pattern):
            scorers = self.columns.setdefault(family, [])
            # By identity first: the configuration's own instance, unless a restore retuned.
            cols = next((c for c in scorers if c.params is params), None)
            if cols is None:
                cols = next((c for c in scorers if c.params == params), None)
            if cols is None:
                cols = ColumnScorer(params, capacity=64)
                scorers.append(cols)
            sensor.cols, sensor.slot = cols, cols.alloc()
        else:
            sensor._scorer = SensorScorer(params)

    def _touch(self, key: tuple[str, str], sensor: _Sensor, part: _Part, heard: float) -> None:
        """Put a sensor with an open alert at the back of its partition's silence queue; behind
        the windows still queued, if any (they may open or resolve its alert)."""
        if self._queue or self._blocks:
            self._queue.append((key, sensor, None, part, 0, heard))
        elif sensor.alerts.alert_id is not None:
            part.stale.touch(key, heard)

    def _drain(self) -> None:
        """Score the queued windows, one ``score_batch`` per ColumnScorer, then act on each in
        queue order exactly as on a window scored as it closed (``_window``); what they write
        goes in their places in the output. The lane's blocks are read in their places in the
        queue: its calm windows get their bookkeeping by its loop (``lane.quiet``), the rest
        hand their sensor back and go as the queue's do."""
        queue, blocks = self._queue, self._blocks
        if not queue and not blocks:
            return
        self._queue = []
        self._blocks = []
        # Per ColumnScorer: its rows' places in the queue.
        groups: dict[int, tuple[ColumnScorer, list[int]]] = {}
        last: ColumnScorer | None = None  # the last row's (a shard's rows are mostly one's)
        last_rows: list[int] = []
        for i, (_, sensor, stats, _, _, _) in enumerate(queue):
            cols = sensor.cols
            if cols is not None and stats is not None:
                if cols is not last:
                    group = groups.get(id(cols))
                    if group is None:
                        group = groups[id(cols)] = (cols, [])
                    last, last_rows = cols, group[1]
                last_rows.append(i)
        laned = self._laned_rows(blocks, groups) if blocks else {}
        scored: list[_Scored | None] = [None] * len(queue)
        # Rows the model called clean and no rule condition holds for, computed over the batch:
        # if the sensor has no alert open when its row comes up, nothing but its clean-window
        # bookkeeping follows (``_quiet``), as ``_window`` would find window by window. Such a
        # row's place holds its batch and its row there, and its scores are read only if it
        # needs them (``_scored_rows``): most rows of a fleet are quiet, and their scores were
        # converted to Python values and tupled for nothing.
        calm_at: list[tuple[Batch, int] | None] = [None] * len(queue)
        for gid, (cols, rows) in groups.items():
            self._score_group(cols, queue, _segments(rows, laned.get(gid, [])), scored, calm_at)
        moved: dict[int, tuple[list[Result], list[tuple[int, Result]]]] = {}
        written: list[Result] = []
        at = 0  # the next block
        for i, (key, sensor, stats, out, pos, heard) in enumerate(queue):
            while at < len(blocks) and blocks[at][0] <= i:
                self._act_block(blocks[at][1], written, moved)
                at += 1
            if stats is None:  # a touch queued behind windows
                if sensor.alerts.alert_id is not None:
                    out.stale.touch(key, heard)
                continue
            lazy = calm_at[i]
            if lazy is None:
                self._window(key, sensor, stats, scored[i], heard, written)
            elif sensor.alerts.alert_id is None:
                self._quiet(key, sensor, stats, lazy[0], lazy[1], written)
            else:
                row = _scored_rows(lazy[0], np.array([lazy[1]], dtype=np.intp))[0]
                self._window(key, sensor, stats, row, heard, written)
            if written:
                _place(moved, out, pos, written)
        for _, block in blocks[at:]:
            self._act_block(block, written, moved)
        for out, items in moved.values():  # in queue order: their places never go back
            merged: list[Result] = []
            at = 0
            for pos, r in items:
                merged.extend(out[at:pos])
                merged.append(r)
                at = pos
            merged.extend(out[at:])
            out[:] = merged

    def _laned_rows(
        self, blocks: list[tuple[int, Block]], groups: dict[int, tuple[ColumnScorer, list[int]]]
    ) -> dict[int, list[tuple[int, Block, NDArray[np.int64]]]]:
        """Per ColumnScorer (its group made where it has none on the queue), the lane's windows
        to score: each block's place in the queue, the block and its rows of that scorer."""
        lane = self._lane
        laned: dict[int, list[tuple[int, Block, NDArray[np.int64]]]] = {}
        for place, block in blocks:
            bi = block.bi[: block.n]
            rows = np.flatnonzero(bi[:, B_KIND] == WINDOW)
            if not len(rows):
                continue
            which = lane.ints[bi[rows, B_SLOT], SCORER]
            first = int(which[0])
            if (which == first).all():
                parts = [(first, rows)]
            else:
                parts = [(u, rows[which == u]) for u in np.unique(which).tolist()]
            for u, mine in parts:
                cols = lane.scorers[u]
                if id(cols) not in groups:
                    groups[id(cols)] = (cols, [])
                laned.setdefault(id(cols), []).append((place, block, mine))
        return laned

    def _score_group(
        self,
        cols: ColumnScorer,
        queue: list[_Row],
        segments: list[list[int] | tuple[Block, NDArray[np.int64]]],
        scored: list[_Scored | None],
        calm_at: list[tuple[Batch, int] | None],
    ) -> None:
        """One ColumnScorer's windows (``segments``: the queue's rows and the lane's, in queue
        order) scored by one ``score_batch``; what each row needs of it put in its place."""
        lane = self._lane
        size = sum(len(seg) if isinstance(seg, list) else len(seg[1]) for seg in segments)
        if size < COLUMN_ROWS:  # per sensor, the slots taken out
            for seg in segments:
                if isinstance(seg, list):
                    sensors = [queue[i][1] for i in seg]
                else:
                    sensors = [lane.sensors[s] for s in seg[0].bi[seg[1], B_SLOT].tolist()]
                for sensor in sensors:
                    if sensor.lane >= 0:
                        lane.evict(sensor, _W_NEVER)
                    if sensor._scorer is None:
                        sensor._scorer = cols.to_scorer(sensor.slot)
            return
        slots: list[Any] = []
        starts: list[Any] = []
        means: list[NDArray[np.float64]] = []
        scatters: list[NDArray[np.float64]] = []
        for seg in segments:
            if isinstance(seg, list):
                sensors = [queue[i][1] for i in seg]
                for sensor in sensors:  # in a batch: the slots taken out go back first
                    if sensor._scorer is not None:
                        cols._load(sensor.slot, sensor._scorer)
                        sensor._scorer = None
                # The stats as numbers (start and end too, lossy as floats: not read from
                # here), flattened in C: numpy's own list-of-tuples conversion inspects every
                # row's shape.
                closed = cast("list[WindowStats]", [queue[i][2] for i in seg])
                table = np.fromiter(chain.from_iterable(closed), np.float64, 6 * len(seg))
                table = table.reshape(len(seg), 6)
                slots.append(np.array([sensor.slot for sensor in sensors], dtype=np.int64))
                starts.append(np.array([stats.start for stats in closed], dtype=np.int64))
                means.append(table[:, 3])
                scatters.append(_scatters(table[:, 2], table[:, 4], table[:, 5]))
            else:
                block, rows = seg
                bi, bf = block.bi, block.bf
                slots.append(lane.ints[bi[rows, B_SLOT], CSLOT])
                starts.append(bi[rows, B_START])
                means.append(bf[rows, B_MEAN])
                count = bi[rows, B_COUNT].astype(np.float64)
                scatters.append(_scatters(count, bf[rows, B_MIN], bf[rows, B_MAX]))
        b = cols.score_batch(
            np.concatenate(slots),
            np.concatenate(starts),
            np.concatenate(means),
            np.concatenate(scatters),
        )
        off = 0
        families = self.config.families
        for seg, mean in zip(segments, means, strict=True):
            if isinstance(seg, list):
                n = len(seg)
                calm = None
                if families[queue[seg[0]][0][0]].machine is None:  # a machine's: its own way
                    calm = _calm([queue[i][1] for i in seg], mean, b.ml[off : off + n])
                if calm is None:
                    rows = np.arange(off, off + n, dtype=np.intp)
                    for i, row in zip(seg, _scored_rows(b, rows), strict=True):
                        scored[i] = row
                else:
                    for j in np.flatnonzero(calm).tolist():
                        calm_at[seg[j]] = (b, off + j)
                    hot = np.flatnonzero(~calm)
                    for j, row in zip(hot.tolist(), _scored_rows(b, hot + off), strict=True):
                        scored[seg[j]] = row
            else:
                block, rows = seg
                n = len(rows)
                first = lane.sensors[int(block.bi[rows[0], B_SLOT])]
                block.calm[rows] = _calm_by(first.rules, mean, b.ml[off : off + n])
                block.which[rows] = len(block.batches)
                block.batches.append(b)
                block.j[rows] = np.arange(off, off + n)
            off += n

    def _act_block(
        self,
        block: Block,
        written: list[Result],
        moved: dict[int, tuple[list[Result], list[tuple[int, Result]]]],
    ) -> None:
        """A block's rows in order (``_drain``): the calm windows of sensors still in the lane
        by its loop, the rest as the queue's rows, their sensor handed back first."""
        lane = self._lane
        bi, bf, n = block.bi, block.bf, block.n
        emit = self.config.emit_all
        r = 0
        while r < n:
            stop = lane_quiet(bi, bf, block.calm, r, n, lane.ints, lane.floats)
            if emit:
                for q in range(r, stop):
                    if bi[q, B_KIND] == WINDOW:
                        s = int(bi[q, B_SLOT])
                        b = block.batches[int(block.which[q])]
                        written.append(
                            self._quiet_result(
                                lane.keys[s], lane.sensors[s], _stats(bi, bf, q), b, int(block.j[q])
                            )
                        )
            r = stop
            if r >= n:
                break
            s = int(bi[r, B_SLOT])
            sensor, key = lane.sensors[s], lane.keys[s]
            if sensor.lane >= 0:
                lane.evict(sensor, _W_NEVER)
            heard = float(bf[r, B_HEARD])
            if bi[r, B_KIND] == TOUCH:
                if sensor.alerts.alert_id is not None:
                    lane.parts[int(lane.ints[s, PART])].stale.touch(key, heard)
            else:
                stats = _stats(bi, bf, r)
                which = int(block.which[r])
                if which < 0:
                    self._window(key, sensor, stats, None, heard, written)
                else:
                    b, j = block.batches[which], int(block.j[r])
                    if block.calm[r] and sensor.alerts.alert_id is None:
                        self._quiet(key, sensor, stats, b, j, written)
                    else:
                        row = _scored_rows(b, np.array([j], dtype=np.intp))[0]
                        self._window(key, sensor, stats, row, heard, written)
            r += 1
        if written:
            _place(moved, block.out, block.pos, written)

    def _quiet(
        self,
        key: tuple[str, str],
        sensor: _Sensor,
        stats: WindowStats,
        batch: Batch,
        row: int,
        out: list[Result],
    ) -> None:
        """``_window`` of a window scored in a batch that the model called clean, no rule's
        condition holds for and whose sensor has no alert open (``_calm``): its bookkeeping
        only. The same changes as ``_window``'s, which the equivalence test holds it to."""
        _follow_cadence(sensor, stats)
        streaks = sensor.streaks
        if streaks is not None:  # no condition holds: every streak ends
            for n in range(len(streaks)):
                streaks[n] = 0
        sensor.alerts.quiet(stats.mean)
        if self.config.emit_all:
            out.append(self._quiet_result(key, sensor, stats, batch, row))

    def _quiet_result(
        self, key: tuple[str, str], sensor: _Sensor, stats: WindowStats, batch: Batch, row: int
    ) -> WindowResult:
        """A quiet window's result, written under ``EMIT_ALL_WINDOWS``."""
        family, sensor_id = key
        return WindowResult(
            family,
            sensor_id,
            stats,
            batch.score[row].item(),
            batch.ready[row].item(),
            False,
            None,
            sensor.rules.first_level,
            (),
            None,
            self.config.families[family].family.unit,
        )

    def _window(
        self,
        key: tuple[str, str],
        sensor: _Sensor,
        stats: WindowStats,
        scored: _Scored | None,
        heard: float,
        out: list[Result],
    ) -> None:
        """One closed window, in order: its score (``scored``: from a batch, with its home;
        None: by the sensor's own scorer now), rules, alert and output. ``heard``: the
        sensor's last hearing when the window closed."""
        family, sensor_id = key
        cfg = self.config
        setup = cfg.families[family]
        rules = sensor.rules
        alerts = sensor.alerts
        _follow_cadence(sensor, stats)
        mean = stats.mean
        home: tuple[float, float] | None = None
        cut: float | None = None
        scorer = sensor._scorer
        if scored is None:
            assert scorer is not None
            score, ml, ready, cut, why = scorer.score_learn(
                stats.start, mean, window_scatter(stats.count, stats.min, stats.max)
            )
        else:
            score, ml, ready, why, level, reach = scored
            home = (level, reach)
        fired = rules.fired(mean, sensor.streaks) if rules else ()
        machine = setup.machine  # a machine's channel: its model pages through the machine
        paged = ml if machine is None else False
        if machine is not None:
            self._to_machine(key, sensor, setup, stats)
        counts = self.counts
        if fired or paged:
            counts.anomalies += 1
            reasons = [*fired, ML] if paged else list(fired)
            severity = rules.severity(reasons)
        elif alerts.alert_id is None:
            # Clean, and no alert to resolve: the tracker only moves its baseline. Most
            # windows of a fleet end here, so this skips the result object.
            alerts.quiet(mean)
            if cfg.emit_all:
                out.append(
                    WindowResult(
                        family,
                        sensor_id,
                        stats,
                        score,
                        ready,
                        ml,
                        cut,
                        rules.first_level,
                        (),
                        None,
                        setup.family.unit,
                    )
                )
            return
        else:
            reasons, severity = [], None
        if home is None:
            assert scorer is not None
            home = scorer.home()
        event = alerts.observe(
            f"{family}/{sensor_id}",
            stats.start,
            mean,
            score,
            reasons,
            cfg.update_every,
            cfg.resolve_after,
            cfg.cooldown,
            severity,
            home,
            cfg.adapt_after,
            cfg.refresh_ns,
        )
        if event is not None:
            part = sensor.part
            if event.event == "open":
                counts.alerts_opened += 1
                self.open_alerts += 1
                if part is not None:
                    part.stale.touch(key, heard)
            elif event.event == "resolved":
                counts.alerts_resolved += 1
                self.open_alerts -= 1
                if part is not None:
                    part.stale.drop(key)
        elif not cfg.emit_all:
            return
        out.append(
            WindowResult(
                family,
                sensor_id,
                stats,
                score,
                ready,
                ml,
                cut,
                rules.first_level,
                fired,
                severity,
                setup.family.unit,
                event,
                why,
            )
        )

    # -- machines ---------------------------------------------------------------------------

    def _to_machine(
        self, key: tuple[str, str], sensor: _Sensor, setup: FamilySetup, stats: WindowStats
    ) -> None:
        """File a machine channel's closed window; the machine windows it completes are scored
        once the batch is folded (``_machine_out``)."""
        link = sensor.machine
        mw = None if link is None else self.machines.get(link[0])
        if link is None or mw is None:
            family, sensor_id = key
            machine_id, _, channel = sensor_id.rpartition("/")
            mkey = (family, machine_id)
            mw = self.machines.get(mkey)
            if mw is None:
                assert setup.machine is not None
                mw = MachineWindows(setup.family.channel_names, setup.machine)
                self.machines[mkey] = mw
            index = mw.index.get(channel)
            if index is None:
                return  # not one of its machine's channels: its own model only
            link = sensor.machine = (mkey, index)
        mkey = link[0]
        if not mw.file(link[1], stats.start, stats.end, stats.mean):
            self.counts.left_out += 1
        self._touched.add(mkey)

    def _machine_out(self, out: list[Result], only: tuple[str, str] | None = None) -> None:
        """Score the machine windows the folded batch completed (see ``MachineWindows.due``);
        ``only``: of that machine alone (its channel back from a silence, ``_back_machine``)."""
        touched = self._touched
        if not touched:
            return
        if only is not None:
            if only not in touched:
                return
            touched.discard(only)
            mkeys = [only]
        else:
            mkeys = sorted(touched)
            touched.clear()
        families = self.config.families
        for mkey in mkeys:
            mw = self.machines.get(mkey)
            setup = families.get(mkey[0])
            if mw is not None and setup is not None:
                for start in mw.due(setup.window_ns):
                    self._machine_window(mkey, mw, start, out)

    def _machine_window(
        self, mkey: tuple[str, str], mw: MachineWindows, start: int, out: list[Result]
    ) -> None:
        """Score one machine window once, move its alert, and write it (as a sensor's window is
        written: alert events, or every window with ``emit_all``)."""
        cfg = self.config
        family, machine_id = mkey
        setup = cfg.families.get(family)
        if setup is None:
            return
        res = mw.score(
            f"{family}/{machine_id}",
            start,
            cfg.update_every,
            cfg.resolve_after,
            cfg.cooldown,
            setup.family.ml_severity,
            cfg.refresh_ns,
        )
        counts = self.counts
        if res.anomaly:
            counts.anomalies += 1
        event = res.alert
        if event is not None:
            if event.event == "open":
                counts.alerts_opened += 1
                self.open_alerts += 1
            elif event.event == "resolved":
                counts.alerts_resolved += 1
                self.open_alerts -= 1
        elif not cfg.emit_all:
            return
        s = res.score
        out.append(
            WindowResult(
                family,
                machine_id,
                WindowStats(res.start, res.end, res.channels, s, s, s),
                s,
                res.ready,
                res.anomaly,
                None,
                None,
                (),
                setup.family.ml_severity if res.anomaly else None,
                None,
                event,
                None,
                res.drivers,
            )
        )

    def _stale_machines(self, now: float, out: list[Result]) -> None:
        """Resolve the open alert of a machine whose every channel has been silent for its stale
        time (``stale_s``, or longer by its cadence), as a sensor's: its pending windows are
        scored first, which may resolve it cleanly. Only machines with an open alert are looked
        at (a few)."""
        for mkey, mw in list(self.machines.items()):
            if mw.alerts.alert_id is None:
                continue
            silence = self._machine_silence(mkey, mw, lambda c: self._silence(c, now))
            if silence is not None:
                self._close_machine(mkey, mw, silence[0], out)

    def _machine_silence(
        self, mkey: tuple[str, str], mw: MachineWindows, quiet_of: Callable[[_Sensor], float]
    ) -> tuple[float, list[tuple[tuple[str, str], _Sensor]]] | None:
        """How long a machine has been silent (its least silent channel's ``quiet_of``: by input
        time live, by a reading's time from a backlog) and its known channels, if every one of
        them is silent past its own limit; else None."""
        family, machine_id = mkey
        stale = self.config.stale_s
        silent = _NEVER
        channels = []
        for name in mw.names:
            ckey = (family, f"{machine_id}/{name}")
            channel = self._sensors.get(ckey)
            if channel is None:
                continue
            quiet = quiet_of(channel)
            if quiet < _limit_of(channel, stale):
                return None
            silent = min(silent, quiet)
            channels.append((ckey, channel))
        return (silent, channels) if channels else None

    def _machines_flush(self, out: list[Result], family: str | None = None) -> None:
        """Score every pending machine window (of one family, or all): the input ended."""
        for mkey, mw in list(self.machines.items()):
            if family is None or mkey[0] == family:
                for start in mw.due_all():
                    self._machine_window(mkey, mw, start, out)
