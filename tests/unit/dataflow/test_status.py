"""The process-wide counters: the status line, the Prometheus metrics, the report interval.

The Prometheus metrics live in the process's default registry, shared with every other test,
so each check reads a metric before and after and compares the difference.
"""

from __future__ import annotations

import logging
import threading

import pytest
from prometheus_client import REGISTRY

from dataflow.status import FIELDS, Status


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_new_status_counts_nothing_and_says_so_in_a_stable_line() -> None:
    status = Status(0)
    assert status.snapshot() == {**dict.fromkeys(FIELDS, 0), "tracked": 0}
    assert status.line() == (
        "status readings=0 rejected=0 late=0 windows=0 anomalies=0 "
        "alerts_opened=0 alerts_resolved=0 forgotten=0 tracked=0"
    )


def test_counts_add_up_in_the_snapshot_and_in_prometheus() -> None:
    status = Status(0)
    before = {
        name: metric(f"sensor_{name}_total")
        for name in (
            "windows_scored",
            "anomalous_windows",
            "alerts_opened",
            "alerts_resolved",
            "forgotten",
        )
    }
    temps = metric("sensor_readings_total", family="temperature")
    status.add(windows=3, anomalies=1, alerts_opened=1)
    status.add(windows=2, alerts_resolved=1, forgotten=4)
    status.add_readings({"temperature": 7, "air_quality": 2})
    status.add_readings({"temperature": 1})
    counts = status.snapshot()
    assert (counts["readings"], counts["windows"], counts["anomalies"]) == (10, 5, 1)
    assert (counts["alerts_opened"], counts["alerts_resolved"], counts["forgotten"]) == (1, 1, 4)
    assert metric("sensor_readings_total", family="temperature") - temps == 8
    after = {name: metric(f"sensor_{name}_total") - value for name, value in before.items()}
    assert after == {
        "windows_scored": 5,
        "anomalous_windows": 1,
        "alerts_opened": 1,
        "alerts_resolved": 1,
        "forgotten": 4,
    }


def test_an_unknown_counter_is_an_error_not_a_new_field() -> None:
    with pytest.raises(KeyError):
        Status(0).add(widnows=1)


def test_dead_letters_count_late_apart_from_rejected() -> None:
    status = Status(0)
    late = metric("sensor_late_readings_total")
    bad_json = metric("sensor_dead_letters_total", reason="bad_json")
    dead_late = metric("sensor_dead_letters_total", reason="late")
    status.add_dead({"bad_json": 2, "late": 3, "out_of_range": 1})
    status.add_dead({"bad_json": 1})
    counts = status.snapshot()
    assert (counts["rejected"], counts["late"]) == (4, 3)
    assert metric("sensor_late_readings_total") - late == 3
    assert metric("sensor_dead_letters_total", reason="bad_json") - bad_json == 3
    assert metric("sensor_dead_letters_total", reason="late") - dead_late == 3  # both
    assert status.line().startswith("status readings=0 rejected=4 late=3 ")


def test_tracked_sensors_are_the_sum_over_shards_each_replaced_not_added() -> None:
    status = Status(0)
    status.set_tracked(1, 5)
    status.set_tracked(2, 3)
    assert status.snapshot()["tracked"] == 8
    assert metric("sensor_tracked_sensors") == 8
    status.set_tracked(1, 2)  # shard 1 forgot three
    assert status.snapshot()["tracked"] == 5
    assert metric("sensor_tracked_sensors") == 5
    assert status.line().endswith(" tracked=5")


def test_the_status_line_is_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    status = Status(10, clock=clock)
    with caplog.at_level(logging.INFO, logger="dataflow.status"):
        status.add(windows=1)  # 0 s after start: not yet
        clock.now += 9.9
        status.add_readings({"temperature": 1})
        assert caplog.messages == []
        clock.now += 0.1  # 10 s: the line, with everything counted so far
        status.add_dead({"late": 1})
        assert caplog.messages == [status.line()]
        assert "readings=1 rejected=0 late=1 windows=1" in caplog.messages[0]
        clock.now += 5  # the interval restarts at the last line
        status.add(windows=1)
        assert len(caplog.messages) == 1
        clock.now += 5
        status.add(windows=1)
        assert len(caplog.messages) == 2 and "windows=3" in caplog.messages[1]


def test_interval_zero_never_logs(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    status = Status(0, clock=clock)
    with caplog.at_level(logging.INFO, logger="dataflow.status"):
        for _ in range(3):
            clock.now += 3600
            status.add(windows=1)
            status.maybe_report()
    assert caplog.messages == []
    assert status.snapshot()["windows"] == 3


def test_counts_from_many_threads_are_not_lost() -> None:
    """Bytewax workers are threads of one process, each adding to the same counters."""
    status = Status(0)

    def work() -> None:
        for _ in range(2000):
            status.add(windows=1)
            status.add_readings({"temperature": 2})

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = status.snapshot()
    assert (counts["windows"], counts["readings"]) == (8000, 16000)


def test_the_flow_start_sets_every_silence_clock_to_now() -> None:
    """Before anything arrives, silence counts from the start: a family that never sends is
    silent since then, not since 1970."""
    wall = Clock()
    status = Status(0, wall=wall)
    status.register_families(["temperature", "humidity_x"])
    assert metric("sensor_last_batch_timestamp_seconds") == wall.now
    for family in ("temperature", "humidity_x"):
        assert metric("sensor_family_last_reading_timestamp_seconds", family=family) == wall.now
        assert metric("sensor_family_reading_interval_seconds", family=family) == 0


def test_a_batch_moves_the_clocks_of_the_families_it_had_readings_of() -> None:
    wall = Clock()
    status = Status(0, wall=wall)
    status.register_families(["temperature", "air_quality"])
    start = wall.now
    wall.now += 300
    status.add_readings({"temperature": 5, "air_quality": 0})  # air quality all rejected
    assert metric("sensor_last_batch_timestamp_seconds") == wall.now
    assert metric("sensor_family_last_reading_timestamp_seconds", family="temperature") == (
        wall.now
    )
    assert metric("sensor_family_last_reading_timestamp_seconds", family="air_quality") == start
    wall.now += 300
    status.add_readings({})  # a batch of dead letters only: the flow is alive
    assert metric("sensor_last_batch_timestamp_seconds") == wall.now
    assert metric("sensor_family_last_reading_timestamp_seconds", family="temperature") == (
        wall.now - 300
    )


def test_a_family_s_interval_is_the_gap_between_its_arrivals() -> None:
    wall = Clock()
    status = Status(0, wall=wall)
    status.register_families(["temperature", "air_quality"])
    for _ in range(4):
        status.add_readings({"temperature": 1})
        status.add_readings({"air_quality": 1})
        wall.now += 300
    assert metric("sensor_family_reading_interval_seconds", family="temperature") == 300
    assert metric("sensor_family_reading_interval_seconds", family="air_quality") == 300
    status.register_families(["temperature"])  # a new flow in this process starts afresh
    assert metric("sensor_family_reading_interval_seconds", family="temperature") == 0
