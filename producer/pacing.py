"""Pacing of the sends: ``--rate`` (a wall-clock cap), ``--realtime`` and ``--speed`` (event
time against the wall clock).

No Kafka: :mod:`producer.sending` asks the ``Pacer`` before each message; the clock can be
injected, so tests drive it by hand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from dataflow.timestamps import NS_PER_S


class Pacer:
    """Delays sends for --rate, --realtime and --speed; waits on ``stop`` so SIGTERM is prompt.

    With ``realtime``, message ``index`` is due ``(event time - start_ns) / speed`` after the
    first: event time runs ``speed`` times faster than the wall clock (1 for the live demo, 60
    for an hour of history a minute). A message due in the past (a replay's row older than the
    one before) goes at once. ``clock`` is for tests (default ``time.monotonic``).
    """

    def __init__(
        self,
        rate: float,
        realtime: bool,
        start_ns: int,
        stop: threading.Event,
        speed: float = 1.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._rate = rate
        self._realtime = realtime
        self._start_ns = start_ns
        self._stop = stop
        self._ns_per_s = NS_PER_S * speed
        self._clock = clock if clock is not None else (lambda: time.monotonic())
        self._t0 = self._clock()

    def wait(self, index: int, event_time_ns: int) -> bool:
        """Sleep until message ``index``, of event time ``event_time_ns``, is due; False if asked
        to stop meanwhile."""
        due = self._t0
        if self._realtime:
            due = max(due, self._t0 + (event_time_ns - self._start_ns) / self._ns_per_s)
        if self._rate > 0:
            due = max(due, self._t0 + index / self._rate)
        delay = due - self._clock()
        if delay > 0:
            return not self._stop.wait(delay)
        return not self._stop.is_set()
