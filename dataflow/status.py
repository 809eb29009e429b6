"""Process-wide counters: the periodic status line and the Prometheus metrics.

Updated once per batch (not per message), so the lock costs nothing measurable. Beside the
counters, three wall-clock gauges let Prometheus see silence, which a counter only shows as the
absence of change: when the flow last routed a batch, and per family when its last reading
arrived and how far apart its readings usually are (``dataflow.cadence``). The status line
is a stable ``key=value`` log line that the demo reads. The Prometheus counters live in
``prometheus_client``'s default registry, which Bytewax serves beside its own metrics on
``/metrics`` when ``BYTEWAX_DATAFLOW_API_ENABLED=true`` (port ``BYTEWAX_DATAFLOW_API_PORT``,
default 3030).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import Counter, Gauge

from dataflow.cadence import Cadence

log = logging.getLogger("dataflow.status")

FIELDS = (
    "readings",
    "rejected",
    "late",
    "windows",
    "anomalies",
    "alerts_opened",
    "alerts_resolved",
    "forgotten",
)

READINGS = Counter("sensor_readings", "Readings accepted from the input topics.", ["family"])
DEAD_LETTERS = Counter("sensor_dead_letters", "Messages sent to the dead-letter topic.", ["reason"])
LATE = Counter("sensor_late_readings", "Readings whose window had already closed.")
WINDOWS = Counter("sensor_windows_scored", "Closed windows scored.")
ANOMALIES = Counter("sensor_anomalous_windows", "Scored windows flagged by a rule or the model.")
ALERTS_OPENED = Counter("sensor_alerts_opened", "Alerts opened (one per anomalous episode).")
ALERTS_RESOLVED = Counter(
    "sensor_alerts_resolved", "Alerts resolved, after clean windows or a silence (stale)."
)
FORGOTTEN = Counter(
    "sensor_forgotten", "Sensors forgotten after SENSOR_STATE_TTL_SECONDS of silence."
)
INPUT_SKIPPED = Counter(
    "sensor_input_skipped_messages",
    "Input messages deleted by retention before the flow read them, skipped on a resume.",
    ["topic", "partition"],
)
TRACKED = Gauge("sensor_tracked_sensors", "Sensors whose state (windows, model, alert) is kept.")
OPEN_ALERTS = Gauge(
    "sensor_open_alerts",
    "Alerts open now (one per anomalous episode), kept across a restart with recovery.",
)
MOVED = Counter(
    "sensor_partition_moves",
    "Sensors seen on a second input partition (counted once each): their messages are not "
    "keyed by sensor or machine id, and their readings may be late.",
)
LEFT_OUT = Counter(
    "sensor_machine_channel_windows_left_out",
    "Machine channels' windows closed after their machine's window was scored without them "
    "(a channel more than 3 windows behind its machine's others is taken for dead).",
)
LAST_BATCH = Gauge(
    "sensor_last_batch_timestamp_seconds",
    "Wall-clock time the flow last routed a batch of input messages (its start, before one).",
)
FAMILY_LAST_READING = Gauge(
    "sensor_family_last_reading_timestamp_seconds",
    "Wall-clock time the flow last read a reading of the family (its start, before one).",
    ["family"],
)
FAMILY_INTERVAL = Gauge(
    "sensor_family_reading_interval_seconds",
    "The family's usual gap between readings: the time-weighted median of its recent gaps "
    "(0 until one is known).",
    ["family"],
)
_PLAIN = {
    "windows": WINDOWS,
    "anomalies": ANOMALIES,
    "alerts_opened": ALERTS_OPENED,
    "alerts_resolved": ALERTS_RESOLVED,
    "forgotten": FORGOTTEN,
}


class Status:
    """Thread-safe counters (Bytewax workers are threads of one process)."""

    def __init__(
        self,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock  # paces the status line
        self._wall = wall  # the gauges' timestamps, and the gaps between a family's readings
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(FIELDS, 0)
        self._tracked: dict[int, int] = {}  # shard (by its logic's id) -> sensors it keeps
        self._open: dict[int, int] = {}  # shard -> its sensors with an open alert
        self._cadence: dict[str, Cadence] = {}  # family -> its arrivals
        self._last = clock()

    def add(self, **deltas: int) -> None:
        """Add to the plain counters: windows, anomalies, alerts_opened, alerts_resolved,
        forgotten."""
        with self._lock:
            for name, delta in deltas.items():
                self._counts[name] += delta
        for name, delta in deltas.items():
            if delta:
                _PLAIN[name].inc(delta)
        self.maybe_report()

    def register_families(self, families: Iterable[str]) -> None:
        """The flow starts: each family's readings counter at 0, so a family that never sends
        shows as a flat 0 (not a missing series) and its first readings count in ``rate()``;
        the last batch and each family's last reading at now, so silence is measured from the
        start until something arrives; no interval known yet."""
        now = self._wall()
        LAST_BATCH.set(now)
        with self._lock:
            self._cadence.clear()
        for family in families:
            READINGS.labels(family)
            FAMILY_LAST_READING.labels(family).set(now)
            FAMILY_INTERVAL.labels(family).set(0)

    def add_readings(self, by_family: Mapping[str, int]) -> None:
        """One routed batch of input: how many readings of each family it held (0 when all of
        a family's were rejected, which is not an arrival)."""
        now = self._wall()
        LAST_BATCH.set(now)
        arrived = [family for family, n in by_family.items() if n]
        with self._lock:
            self._counts["readings"] += sum(by_family.values())
            intervals = [self._cadence.setdefault(f, Cadence()).observe(now) for f in arrived]
        for family, n in by_family.items():
            READINGS.labels(family).inc(n)
        for family, interval in zip(arrived, intervals, strict=True):
            FAMILY_LAST_READING.labels(family).set(now)
            FAMILY_INTERVAL.labels(family).set(interval)
        self.maybe_report()

    def add_dead(self, by_reason: Mapping[str, int]) -> None:
        """Dead letters; reason ``late`` is also counted as late, the others as rejected."""
        late = by_reason.get("late", 0)
        with self._lock:
            self._counts["late"] += late
            self._counts["rejected"] += sum(by_reason.values()) - late
        if late:
            LATE.inc(late)
        for reason, n in by_reason.items():
            DEAD_LETTERS.labels(reason).inc(n)
        self.maybe_report()

    def add_moved(self, sensors: int) -> None:
        """Sensors newly seen on a second input partition."""
        MOVED.inc(sensors)

    def add_left_out(self, windows: int) -> None:
        """Machine channels' windows left out of their machine's (``MachineWindows.file``)."""
        LEFT_OUT.inc(windows)

    def set_tracked(self, shard: int, sensors: int) -> None:
        """How many sensors one shard keeps now; the gauge is the sum over shards."""
        with self._lock:
            self._tracked[shard] = sensors
            total = sum(self._tracked.values())
        TRACKED.set(total)

    def set_open_alerts(self, shard: int, alerts: int) -> None:
        """How many alerts one shard has open now; the gauge is the sum over shards."""
        with self._lock:
            self._open[shard] = alerts
            total = sum(self._open.values())
        OPEN_ALERTS.set(total)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {**self._counts, "tracked": sum(self._tracked.values())}

    def line(self) -> str:
        return "status " + " ".join(f"{k}={v}" for k, v in self.snapshot().items())

    def maybe_report(self) -> None:
        """Log the status line if ``interval_s`` has passed (never when it is 0)."""
        if self.interval_s <= 0:
            return
        now = self._clock()
        with self._lock:
            if now - self._last < self.interval_s:
                return
            self._last = now
        log.info(self.line())
