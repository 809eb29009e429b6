"""The state of one shard: many sensors' open windows, models and idle clocks.

A fleet has 100k sensors; Bytewax's per-key window operators slow down as keys grow. So a sensor
is not a Bytewax key: sensors are hashed into a fixed number of shards, and one ``ShardState`` per
shard, held by ``op.stateful_batch``, folds a whole batch of readings in one loop. Pure: no Kafka,
no Bytewax; wall-clock time is passed in, so tests control it.

Two wall-clock rules keep a fleet's state honest as devices come and go:

- an open alert of a sensor silent for ``stale_s`` is resolved as ``stale`` (only clean windows
  resolve an alert otherwise, and a machine that overheated and went offline would stay "open"
  until it came back);
- a sensor silent for ``state_ttl_s`` is forgotten, its windows closed first: a fleet that
  replaces devices and ids would otherwise keep every id it ever saw. Its next reading starts a
  fresh model, with a warm-up. Sensors are swept for this every ``sweep_s``, a scan of the
  shard's sensors that costs little next to the readings between two sweeps.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from operator import le
from typing import NamedTuple

from dataflow.alerts import AlertEvent, AlertTracker
from dataflow.families import ML, Family
from dataflow.readings import Reading, Run
from dataflow.rules import RuleSet
from dataflow.scoring import ModelParams, SensorScorer
from dataflow.windows import SensorWindows, WindowStats

_NEVER = float("inf")


@dataclass(frozen=True)
class FamilySetup:
    """One family as a shard sees it: its declaration (rules, unit) and its model's parameters,
    which hold its window length."""

    family: Family
    model: ModelParams

    @property
    def window_ns(self) -> int:
        return self.model.window_ns


@dataclass(frozen=True)
class ShardConfig:
    """What a shard needs to know; built once from ``Settings``."""

    lateness_ns: int
    idle_timeout_s: float
    families: dict[str, FamilySetup]
    emit_all: bool = False
    live_skew_s: float = 0.0  # see ShardState; 0: windows close by event time only
    update_every: int = 12  # windows between two events of one alert, at least
    resolve_after: int = 3  # clean windows that resolve an alert
    cooldown: int = 48  # clean windows after an alert before the model alone opens another
    stale_s: float = 300.0  # wall-clock silence that resolves an open alert as stale (0: never)
    state_ttl_s: float = 7 * 86_400.0  # wall-clock silence after which a sensor is forgotten

    # family -> window length in ns, looked up per reading
    window_ns: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "window_ns", {name: setup.window_ns for name, setup in self.families.items()}
        )

    @property
    def sweep_s(self) -> float:
        """How often the shard looks for sensors to forget: a tenth of the TTL, at most 60 s."""
        return min(self.state_ttl_s / 10, 60.0)


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
    ``silent_s`` is the wall-clock time since the sensor was last heard.
    """

    family: str
    sensor_id: str
    event: str
    silent_s: float
    alert: AlertEvent | None = None
    unit: str | None = None


FORGOTTEN = "forgotten"


class LateReading(NamedTuple):
    """A reading that arrived after its window had closed: routed, never silently dropped."""

    reading: Reading


Result = WindowResult | SensorEvent | LateReading  # what a shard hands on


class _Sensor:
    __slots__ = ("alerts", "heard", "rules", "scorer", "seen_at", "streaks", "windows")

    def __init__(self, now: float, rules: RuleSet) -> None:
        self.windows = SensorWindows()
        self.scorer: SensorScorer | None = None  # built at the first closed window
        self.alerts = AlertTracker()
        self.heard = -1.0  # wall time of the batch it was last heard in (its ``idle`` entry)
        self.seen_at = now  # the same, kept when the idle timeout resets ``heard``
        self.rules = rules  # its family's, with its override; shared with its like
        self.streaks = rules.streaks()  # consecutive windows each rule has held, if it counts

    def set_rules(self, rules: RuleSet) -> None:
        """New rules (the configuration changed across a restart): streaks start again."""
        if rules != self.rules:
            self.rules, self.streaks = rules, rules.streaks()


class ShardCounts:
    """Counters a shard keeps; the flow sums them for status and metrics."""

    __slots__ = ("alerts_opened", "alerts_resolved", "anomalies", "forgotten", "late", "windows")

    def __init__(self) -> None:
        self.alerts_opened = self.alerts_resolved = self.anomalies = 0
        self.forgotten = self.late = self.windows = 0

    def take(self) -> dict[str, int]:
        """The counts since the last call, which start again from zero."""
        out = {
            "alerts_opened": self.alerts_opened,
            "alerts_resolved": self.alerts_resolved,
            "anomalies": self.anomalies,
            "forgotten": self.forgotten,
            "late": self.late,
            "windows": self.windows,
        }
        self.alerts_opened = self.alerts_resolved = self.anomalies = 0
        self.forgotten = self.late = self.windows = 0
        return out


class ShardState:
    """All sensors of one shard. Picklable, so Bytewax recovery can snapshot it."""

    def __init__(self, config: ShardConfig) -> None:
        self.config = config
        self.sensors: dict[tuple[str, str], _Sensor] = {}
        # Sensors with open windows, least recently heard from first. Wall time only grows, so
        # this is ordered by idle deadline and expiry never scans sensors that are not due.
        self.idle: OrderedDict[tuple[str, str], float] = OrderedDict()
        # Live sensors' close deadlines: (wall time, sensor, the next_close it was set for).
        # Entries go stale when the sensor's own readings close the window first; skipped then.
        self.deadlines: list[tuple[float, tuple[str, str], int]] = []
        # Sensors with an open alert, least recently heard from first: the stale rule's queue.
        self.stale: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.next_sweep = _NEVER  # wall time of the next look for sensors to forget
        self.counts = ShardCounts()

    @property
    def open_alerts(self) -> int:
        """Sensors of this shard with an open alert: the stale rule's queue holds each one."""
        return len(self.stale)

    def reconfigure(self, config: ShardConfig) -> None:
        """Take the current configuration after a restore from a snapshot, which holds the one
        it was taken with: changed rules apply to every sensor, and a sensor of a family no
        longer configured keeps its state until the TTL forgets it."""
        self.config = config
        for (family, sensor_id), sensor in self.sensors.items():
            setup = config.families.get(family)
            if setup is not None:
                sensor.set_rules(setup.family.rules_for(sensor_id))

    def _new_sensor(self, key: tuple[str, str], now: float) -> _Sensor:
        family, sensor_id = key
        sensor = self.sensors[key] = _Sensor(
            now, self.config.families[family].family.rules_for(sensor_id)
        )
        return sensor

    def ingest(self, readings: Iterable[Reading | Run], now: float) -> list[Result]:
        """Fold a batch of readings (single or runs) at wall time ``now``; return closed windows
        and late readings."""
        cfg = self.config
        sizes, lateness = cfg.window_ns, cfg.lateness_ns
        sensors, idle, stale = self.sensors, self.idle, self.stale
        live = cfg.live_skew_s > 0
        if self.next_sweep == _NEVER:
            self.next_sweep = now + cfg.sweep_s
        out: list[Result] = []
        late = 0
        for reading in readings:
            # One test of the class (``Run`` and ``Reading`` are final), then each kind is
            # unpacked as itself: unpacking beats four attribute reads. The sensor's lookup is
            # written in both branches: a call per reading, or a slice of the reading hoisted
            # above the branch, measured slower (bench/RESULTS.md, "A rejected change").
            if type(reading) is not Run:
                family, sensor_id, ts, value, _ = reading
                key = (family, sensor_id)
                sensor = sensors.get(key)
                if sensor is None:
                    sensor = self._new_sensor(key, now)
                size = sizes[family]
                win = sensor.windows
                before = win.next_close
                if not win.add(ts, value, size, lateness):
                    out.append(LateReading(reading))
                    late += 1
                    continue
            else:
                family, sensor_id, stamps, values, _ = reading
                key = (family, sensor_id)
                sensor = sensors.get(key)
                if sensor is None:
                    sensor = self._new_sensor(key, now)
                size = sizes[family]
                win = sensor.windows
                before = win.next_close
                if stamps[0] >= win.closed_until and all(map(le, stamps, islice(stamps, 1, None))):
                    win.add_sorted(stamps, values, size, lateness)  # in order: none can be late
                else:  # out of order: one by one, as single readings (which close as they go)
                    singles = reading.readings()
                    taken = self._ingest_each(key, sensor, singles, out)
                    late += len(singles) - taken
                    if not taken:
                        continue
            if win.max_ts >= win.next_close:
                self._score(key, sensor, win.close_due(size, lateness), out)
            if live and win.next_close != before:  # once per window, not per reading
                self._arm(key, win, now)
            if sensor.heard != now:
                # Once per sensor per batch: a sensor sends many readings per poll.
                sensor.heard = sensor.seen_at = now
                idle[key] = now
                idle.move_to_end(key)
                if sensor.alerts.alert_id is not None:
                    stale[key] = now
                    stale.move_to_end(key)
        self.counts.late += late
        return out

    def _ingest_each(
        self, key: tuple[str, str], sensor: _Sensor, readings: list[Reading], out: list[Result]
    ) -> int:
        """A run's readings one by one, as ``ingest`` takes single ones; returns how many were
        taken (not late)."""
        size, lateness = self.config.window_ns[key[0]], self.config.lateness_ns
        win = sensor.windows
        taken = 0
        for reading in readings:
            if not win.add(reading.ts, reading.value, size, lateness):
                out.append(LateReading(reading))
                continue
            taken += 1
            if win.max_ts >= win.next_close:
                self._score(key, sensor, win.close_due(size, lateness), out)
        return taken

    def expire(self, now: float) -> list[Result]:
        """Close the windows of sensors not heard from for ``idle_timeout_s`` of wall time."""
        out: list[Result] = []
        cutoff = now - self.config.idle_timeout_s
        idle = self.idle
        while idle:
            key, last = next(iter(idle.items()))
            if last > cutoff:
                break
            self._close_sensor(key, out)
        deadlines = self.deadlines
        sizes, lateness = self.config.window_ns, self.config.lateness_ns
        while deadlines and deadlines[0][0] <= now:
            due, key, next_close = heapq.heappop(deadlines)
            sensor = self.sensors.get(key)
            if sensor is None:
                continue  # forgotten since
            win = sensor.windows
            if win.next_close != next_close:
                continue  # its own readings (or the idle timeout) closed that window first
            # The sensor's clock, run on by the wall clock since it was at next_close.
            clock = next_close + round((now - due) * 1e9)
            self._score(key, sensor, win.close_at(clock, sizes[key[0]], lateness), out)
            if win.open:
                heapq.heappush(
                    deadlines, (due + (win.next_close - next_close) / 1e9, key, win.next_close)
                )
        if self.config.stale_s > 0:
            self._expire_stale(now, out)
        if now >= self.next_sweep:
            self._sweep(now, out)
        return out

    def _expire_stale(self, now: float, out: list[Result]) -> None:
        """Resolve, as ``stale``, the open alerts of sensors silent for ``stale_s``."""
        stale = self.stale
        cutoff = now - self.config.stale_s
        while stale:
            key, last = next(iter(stale.items()))
            if last > cutoff:
                break
            del stale[key]
            self._resolve_stale(key, now, out)

    def _resolve_stale(self, key: tuple[str, str], now: float, out: list[Result]) -> None:
        """Close a silent sensor's windows, which may resolve its alert cleanly; if they do not,
        resolve it as stale."""
        sensor = self.sensors[key]
        if sensor.windows.open:
            self._close_sensor(key, out)
            self.stale.pop(key, None)  # a clean resolution just now
        event = sensor.alerts.stale()
        if event is not None:
            self.counts.alerts_resolved += 1
            out.append(
                SensorEvent(
                    key[0], key[1], event.event, now - sensor.seen_at, event, self._unit(key[0])
                )
            )

    def _sweep(self, now: float, out: list[Result]) -> None:
        """Forget the sensors silent for ``state_ttl_s``, after closing what they left open."""
        cfg = self.config
        cutoff = now - cfg.state_ttl_s
        for key in [k for k, sensor in self.sensors.items() if sensor.seen_at <= cutoff]:
            self._resolve_stale(key, now, out)
            self.stale.pop(key, None)
            self.idle.pop(key, None)  # a TTL shorter than the idle timeout leaves it there
            sensor = self.sensors.pop(key)
            self.counts.forgotten += 1
            out.append(
                SensorEvent(
                    key[0], key[1], FORGOTTEN, now - sensor.seen_at, unit=self._unit(key[0])
                )
            )
        self.next_sweep = now + cfg.sweep_s if self.sensors else _NEVER

    def _arm(self, key: tuple[str, str], win: SensorWindows, now: float) -> None:
        """Give a live sensor a wall-clock deadline for its earliest open window.

        Live: its event clock is within ``live_skew_s`` of the wall clock, so it can be run on
        by the wall clock between readings, as Bytewax's ``EventClock`` does. Without this a
        window closes only when the sensor's next reading passes its end plus the lateness, up
        to one sampling interval late (0.5 s at 2 Hz). Replays and backlogs (old event times)
        are not live, so they close by event time only and stay deterministic.
        """
        if not win.open or abs(win.max_ts / 1e9 - now) > self.config.live_skew_s:
            return
        heapq.heappush(
            self.deadlines, (now + (win.next_close - win.max_ts) / 1e9, key, win.next_close)
        )

    def flush(self) -> list[Result]:
        """Close every open window: the input has ended."""
        out: list[Result] = []
        for key in list(self.idle):
            self._close_sensor(key, out)
        self.deadlines.clear()
        self.next_sweep = _NEVER  # the input has ended: nothing will fall silent any more
        return out

    def next_deadline(self) -> float | None:
        """Wall time at which ``expire`` next has work, or None."""
        cfg = self.config
        times = []
        if self.idle:
            times.append(next(iter(self.idle.values())) + cfg.idle_timeout_s)
        if self.deadlines:
            times.append(self.deadlines[0][0])
        if self.stale and cfg.stale_s > 0:
            times.append(next(iter(self.stale.values())) + cfg.stale_s)
        if self.next_sweep != _NEVER:
            times.append(self.next_sweep)
        return min(times) if times else None

    def _close_sensor(self, key: tuple[str, str], out: list[Result]) -> None:
        """Close and score all of a sensor's open windows; it leaves the idle queue."""
        self.idle.pop(key, None)
        sensor = self.sensors[key]
        sensor.heard = -1.0
        closed = sensor.windows.close_all(self.config.window_ns[key[0]], self.config.lateness_ns)
        self._score(key, sensor, closed, out)

    def _unit(self, family: str) -> str | None:
        setup = self.config.families.get(family)
        return None if setup is None else setup.family.unit

    def _score(
        self,
        key: tuple[str, str],
        sensor: _Sensor,
        closed: list[WindowStats],
        out: list[Result],
    ) -> None:
        family, sensor_id = key
        cfg = self.config
        setup = cfg.families[family]
        scorer = sensor.scorer
        if scorer is None:
            scorer = sensor.scorer = SensorScorer(setup.model)
        rules, streaks = sensor.rules, sensor.streaks
        threshold, unit = rules.first_level, setup.family.unit
        counts = self.counts
        alerts = sensor.alerts
        emit_all = cfg.emit_all
        counts.windows += len(closed)
        for stats in closed:
            mean = stats.mean
            score, ml, ready, cut = scorer.score_learn(stats.start, mean)
            fired = rules.fired(mean, streaks) if rules else ()
            if fired or ml:
                counts.anomalies += 1
                reasons = [*fired, ML] if ml else list(fired)
                severity = rules.severity(reasons)
            elif alerts.alert_id is None:
                # Clean, and no alert to resolve: the tracker only moves its baseline. Most
                # windows of a fleet end here, so this skips the result object.
                alerts.quiet(mean)
                if emit_all:
                    out.append(
                        WindowResult(
                            family,
                            sensor_id,
                            stats,
                            score,
                            ready,
                            False,
                            cut,
                            threshold,
                            (),
                            None,
                            unit,
                        )
                    )
                continue
            else:
                reasons, severity = [], None
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
            )
            if event is not None:
                if event.event == "open":
                    counts.alerts_opened += 1
                    self.stale[key] = sensor.seen_at
                elif event.event == "resolved":
                    counts.alerts_resolved += 1
                    self.stale.pop(key, None)
            elif not emit_all:
                continue
            out.append(
                WindowResult(
                    family,
                    sensor_id,
                    stats,
                    score,
                    ready,
                    ml,
                    cut,
                    threshold,
                    fired,
                    severity,
                    unit,
                    event,
                )
            )
