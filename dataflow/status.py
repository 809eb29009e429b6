"""Process-wide counters and the periodic status line.

Updated once per batch (not per message), so the lock costs nothing measurable. The status line is
a stable ``key=value`` log line that the demo reads to draw its live status.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("dataflow.status")

FIELDS = ("readings", "rejected", "late", "windows", "anomalies", "alerts_opened",
          "alerts_resolved")


class Status:
    """Thread-safe counters (Bytewax workers are threads of one process)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(FIELDS, 0)
        self._last = time.monotonic()

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                self._counts[name] += delta
        self.maybe_report()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def line(self) -> str:
        return "status " + " ".join(f"{k}={v}" for k, v in self.snapshot().items())

    def maybe_report(self, force: bool = False) -> None:
        """Log the status line if ``interval_s`` has passed (never when it is 0)."""
        if self.interval_s <= 0 and not force:
            return
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last < self.interval_s:
                return
            self._last = now
        log.info(self.line())
