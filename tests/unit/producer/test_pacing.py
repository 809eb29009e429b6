"""Unit tests for ``producer.pacing``: ``--rate``, ``--realtime`` and a replay's ``--speed``,
on a clock the tests move."""

from __future__ import annotations

import threading

import pytest

from producer import pacing
from producer.pacing import Pacer
from producer.simulate import SimulationConfig, generate

H = 3_600_000_000_000


def test_pacer_rate_limits_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    stop = threading.Event()
    monkeypatch.setattr(stop, "wait", lambda delay: waits.append(delay) or False)
    clock = iter([100.0, 100.0, 100.0, 100.0])
    monkeypatch.setattr(pacing.time, "monotonic", lambda: next(clock))
    pacer = Pacer(rate=4.0, realtime=False, start_ns=0, stop=stop)
    reading = next(generate(SimulationConfig(start_ns=0)))
    assert pacer.wait(0, reading.ts)
    assert pacer.wait(2, reading.ts)
    assert waits == [pytest.approx(0.5)]


def test_pacer_realtime_follows_event_time(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    stop = threading.Event()
    monkeypatch.setattr(stop, "wait", lambda delay: waits.append(delay) or False)
    monkeypatch.setattr(pacing.time, "monotonic", lambda: 50.0)
    pacer = Pacer(rate=0, realtime=True, start_ns=0, stop=stop)
    readings = list(generate(SimulationConfig(start_ns=0, interval_s=2.0, duration_s=6)))
    for index, reading in enumerate(readings):
        assert pacer.wait(index, reading.ts)
    assert waits == [pytest.approx(2.0)] * 10 + [pytest.approx(4.0)] * 10


# --- A replay's --speed: an injected clock, a stop event that records waits instead of sleeping


class FakeStop:
    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.waits: list[float] = []

    def wait(self, delay: float) -> bool:
        self.waits.append(delay)
        self.clock[0] += delay  # time passes as if we slept
        return False

    def is_set(self) -> bool:
        return False


def test_speed_paces_by_the_rows_timestamps() -> None:
    now = [1000.0]
    stop = FakeStop(now)
    pacer = Pacer(
        0,
        True,
        start_ns=0,
        stop=stop,
        speed=60.0,  # type: ignore[arg-type]
        clock=lambda: now[0],
    )
    hours = [0, 1, 2, 2, 5]
    for index, hour in enumerate(hours):
        assert pacer.wait(index, hour * H)
    # An hour of history per minute: due at 60, 120, 120, 300 s after the first row.
    assert stop.waits == [pytest.approx(60.0), pytest.approx(60.0), pytest.approx(180.0)]
    assert now[0] == pytest.approx(1300.0)


def test_rows_older_than_the_first_go_at_once() -> None:
    now = [0.0]
    stop = FakeStop(now)
    pacer = Pacer(
        0,
        True,
        start_ns=10 * H,
        stop=stop,
        speed=3600.0,  # type: ignore[arg-type]
        clock=lambda: now[0],
    )
    assert pacer.wait(0, 10 * H) and pacer.wait(1, 2 * H)
    assert stop.waits == []


def test_unpaced_replay_never_waits_and_rate_still_caps() -> None:
    now = [0.0]
    stop = FakeStop(now)
    pacer = Pacer(2.0, False, start_ns=0, stop=stop, clock=lambda: now[0])  # type: ignore[arg-type]
    for index in range(3):
        assert pacer.wait(index, index * 1000 * H)
    assert stop.waits == [pytest.approx(0.5), pytest.approx(0.5)]


def test_stop_interrupts_a_paced_wait() -> None:
    stop = threading.Event()
    stop.set()
    pacer = Pacer(0, True, start_ns=0, stop=stop, speed=1.0, clock=lambda: 0.0)
    assert not pacer.wait(1, H)
