"""The state of one shard: many sensors' open windows, models and idle clocks.

A fleet has 100k sensors; Bytewax's per-key window operators slow down as keys grow. So a sensor
is not a Bytewax key: sensors are hashed into a fixed number of shards, and one ``ShardState`` per
shard, held by ``op.stateful_batch``, folds a whole batch of readings in one loop. Pure: no Kafka,
no Bytewax; wall-clock time is passed in, so tests control it.
"""

from __future__ import annotations

import heapq
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from operator import le
from typing import NamedTuple

from dataflow.alerts import AlertEvent, AlertTracker
from dataflow.readings import Reading, Run
from dataflow.scoring import ModelParams, SensorScorer, threshold_alarm
from dataflow.windows import SensorWindows, WindowStats


def shard_of(family: str, sensor_id: str, shards: int) -> int:
    """Stable shard of a sensor: CRC-32 of ``family/sensor_id`` (Python's ``hash`` is salted)."""
    return zlib.crc32(f"{family}/{sensor_id}".encode()) % shards


@dataclass(frozen=True)
class ShardConfig:
    """What a shard needs to know; built once from ``Settings``."""

    window_ns: int
    lateness_ns: int
    idle_timeout_s: float
    models: dict[str, ModelParams]  # family -> model parameters
    thresholds: dict[str, float]  # family -> alarm level of the mean
    emit_all: bool = False
    live_skew_s: float = 0.0  # see ShardState; 0: windows close by event time only
    update_every: int = 12  # windows between two events of one alert, at least
    resolve_after: int = 3  # clean windows that resolve an alert
    cooldown: int = 48  # clean windows after an alert before the model alone opens another


class WindowResult(NamedTuple):
    """A closed and scored window of one sensor, and the alert event it caused, if any."""

    family: str
    sensor_id: str
    stats: WindowStats
    score: float
    model_ready: bool
    ml_anomaly: bool
    ml_cut: float | None
    threshold: float | None
    threshold_alarm: bool
    alert: AlertEvent | None = None

    @property
    def anomaly(self) -> bool:
        return self.threshold_alarm or self.ml_anomaly

    @property
    def reasons(self) -> list[str]:
        return [r for r, on in (("threshold", self.threshold_alarm), ("ml", self.ml_anomaly)) if on]


class LateReading(NamedTuple):
    """A reading that arrived after its window had closed: routed, never silently dropped."""

    reading: Reading


class _Sensor:
    __slots__ = ("alerts", "heard", "scorer", "windows")

    def __init__(self) -> None:
        self.windows = SensorWindows()
        self.scorer: SensorScorer | None = None  # built at the first closed window
        self.alerts = AlertTracker()
        self.heard = -1.0  # wall time of the batch it was last heard in (its ``idle`` entry)


class ShardCounts:
    """Counters a shard keeps; the flow sums them for status and metrics."""

    __slots__ = ("alerts_opened", "alerts_resolved", "anomalies", "late", "windows")

    def __init__(self) -> None:
        self.take()

    def take(self) -> dict[str, int]:
        """The counts since the last call, which start again from zero."""
        out = {name: getattr(self, name, 0) for name in self.__slots__}
        for name in self.__slots__:
            setattr(self, name, 0)
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
        self.counts = ShardCounts()

    def ingest(
        self, readings: Iterable[Reading | Run], now: float
    ) -> list[WindowResult | LateReading]:
        """Fold a batch of readings (single or runs) at wall time ``now``; return closed windows
        and late readings."""
        cfg = self.config
        size, lateness = cfg.window_ns, cfg.lateness_ns
        sensors, idle = self.sensors, self.idle
        live = cfg.live_skew_s > 0
        out: list[WindowResult | LateReading] = []
        late = 0
        for reading in readings:
            family, sensor_id, ts, value, _ = reading  # unpacking beats four attribute reads
            key = (family, sensor_id)
            sensor = sensors.get(key)
            if sensor is None:
                sensor = sensors[key] = _Sensor()
            win = sensor.windows
            before = win.next_close
            if type(ts) is not tuple:
                if not win.add(ts, value, size, lateness):
                    out.append(LateReading(reading))
                    late += 1
                    continue
            elif ts[0] >= win.closed_until and all(map(le, ts, islice(ts, 1, None))):
                win.add_sorted(ts, value, size, lateness)  # in order: none can be late
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
                sensor.heard = now
                idle[key] = now
                idle.move_to_end(key)
        self.counts.late += late
        return out

    def _ingest_each(self, key: tuple[str, str], sensor: _Sensor, readings: list[Reading],
                     out: list[WindowResult | LateReading]) -> int:
        """A run's readings one by one, as ``ingest`` takes single ones; returns how many were
        taken (not late)."""
        size, lateness = self.config.window_ns, self.config.lateness_ns
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

    def expire(self, now: float) -> list[WindowResult | LateReading]:
        """Close the windows of sensors not heard from for ``idle_timeout_s`` of wall time."""
        out: list[WindowResult | LateReading] = []
        cutoff = now - self.config.idle_timeout_s
        idle = self.idle
        while idle:
            key, last = next(iter(idle.items()))
            if last > cutoff:
                break
            del idle[key]
            self.sensors[key].heard = -1.0
            self._close_sensor(key, out)
        deadlines = self.deadlines
        size, lateness = self.config.window_ns, self.config.lateness_ns
        while deadlines and deadlines[0][0] <= now:
            due, key, next_close = heapq.heappop(deadlines)
            sensor = self.sensors[key]
            win = sensor.windows
            if win.next_close != next_close:
                continue  # its own readings (or the idle timeout) closed that window first
            # The sensor's clock, run on by the wall clock since it was at next_close.
            clock = next_close + round((now - due) * 1e9)
            self._score(key, sensor, win.close_at(clock, size, lateness), out)
            if win.open:
                heapq.heappush(deadlines, (due + (win.next_close - next_close) / 1e9, key,
                                           win.next_close))
        return out

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
        heapq.heappush(self.deadlines, (now + (win.next_close - win.max_ts) / 1e9, key,
                                        win.next_close))

    def flush(self) -> list[WindowResult | LateReading]:
        """Close every open window: the input has ended."""
        out: list[WindowResult | LateReading] = []
        for key in list(self.idle):
            self.sensors[key].heard = -1.0
            self._close_sensor(key, out)
        self.idle.clear()
        self.deadlines.clear()
        return out

    def next_deadline(self) -> float | None:
        """Wall time at which ``expire`` next has work, or None."""
        idle = next(iter(self.idle.values())) + self.config.idle_timeout_s if self.idle else None
        if not self.deadlines:
            return idle
        live = self.deadlines[0][0]
        return live if idle is None else min(idle, live)

    def _close_sensor(self, key: tuple[str, str], out: list[WindowResult | LateReading]) -> None:
        sensor = self.sensors[key]
        closed = sensor.windows.close_all(self.config.window_ns, self.config.lateness_ns)
        self._score(key, sensor, closed, out)

    def _score(
        self,
        key: tuple[str, str],
        sensor: _Sensor,
        closed: list[WindowStats],
        out: list[WindowResult | LateReading],
    ) -> None:
        family, sensor_id = key
        cfg = self.config
        scorer = sensor.scorer
        if scorer is None:
            scorer = sensor.scorer = SensorScorer(cfg.models[family])
        threshold = cfg.thresholds.get(family)
        counts = self.counts
        alerts = sensor.alerts
        emit_all = cfg.emit_all
        counts.windows += len(closed)
        for stats in closed:
            mean = stats.mean
            score, ml, ready, cut = scorer.score_learn(stats.start, mean)
            alarm = threshold_alarm(mean, threshold)
            if alarm or ml:
                counts.anomalies += 1
                reasons = ["threshold", "ml"] if alarm and ml else (
                    ["threshold"] if alarm else ["ml"])
            elif alerts.alert_id is None:
                # Clean, and no alert to resolve: the tracker only moves its baseline. Most
                # windows of a fleet end here, so this skips the result object.
                alerts.quiet(mean)
                if emit_all:
                    out.append(WindowResult(family, sensor_id, stats, score, ready, False, cut,
                                            threshold, False))
                continue
            else:
                reasons = []
            event = alerts.observe(f"{family}/{sensor_id}", stats.start, mean, score,
                                   reasons, cfg.update_every, cfg.resolve_after, cfg.cooldown)
            if event is not None:
                if event.event == "open":
                    counts.alerts_opened += 1
                elif event.event == "resolved":
                    counts.alerts_resolved += 1
            elif not emit_all:
                continue
            out.append(WindowResult(family, sensor_id, stats, score, ready, ml, cut, threshold,
                                    alarm, event))
