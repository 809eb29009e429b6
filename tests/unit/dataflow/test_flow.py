"""The flow's wiring under ``bytewax.testing``: sources and sinks swapped, clock controlled."""

import itertools

import orjson
import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from dataflow.config import Settings
from dataflow.flow import build_flow
from dataflow.status import Status
from tests.factories import LATER, T0, S, flow_settings
from tests.fakes import FakeMessage


def temp_msg(sensor: str, sec: float, value: float, offset: int = 0) -> FakeMessage:
    payload = orjson.dumps({"Temperature_C": value, "Timestamp": T0 + int(sec * S)})
    return FakeMessage(sensor.encode(), payload, _offset=offset)


def aq_msg(sensor: str, stamp: str, value: float) -> FakeMessage:
    payload = orjson.dumps({"timestamp": stamp, "value": value})
    return FakeMessage(sensor.encode(), payload, "air-quality")


def run(msgs: list, env: dict | None = None, batch_size: int = 3, clock=None):
    settings = flow_settings(**(env or {}))
    out: list = []
    dlq: list = []
    status = Status(0)
    kwargs = {"clock": clock} if clock else {}
    polls = [msgs[i : i + batch_size] for i in range(0, len(msgs), batch_size)]  # as Kafka polls
    flow = build_flow(
        settings, TestingSource(polls), TestingSink(out), TestingSink(dlq), status=status, **kwargs
    )
    run_main(flow)
    return [(k, orjson.loads(v)) for k, v, _h in out], dlq, status.snapshot()


def test_overheating_machine_alarms_with_the_mean_of_every_reading() -> None:
    msgs = [temp_msg("2", s, 88.0 + s, offset=s) for s in range(12)]  # windows 0-5, 5-10, 10-12
    msgs += [temp_msg("1", s, 65.0, offset=s) for s in range(12)]
    out, dlq, counts = run(msgs, {"EMIT_ALL_WINDOWS": "true"})
    assert dlq == []
    alarms = [(k, o) for k, o in out if o["threshold_alarm"]]
    assert [(k, o["window_start"], o["count"], o["mean"]) for k, o in alarms] == [
        (b"2", "2024-03-19T13:57:05.000Z", 5, 90.0),  # (88+..+92)/5, not the last reading
        (b"2", "2024-03-19T13:57:10.000Z", 5, 95.0),
        (b"2", "2024-03-19T13:57:15.000Z", 2, 98.5),
    ]
    assert all(o["reasons"] == ["threshold"] for _k, o in alarms)
    assert [o["event"] for _k, o in alarms] == ["open", "window", "window"]  # one alert, no repeats
    assert not any(o["threshold_alarm"] for k, o in out if k == b"1")
    assert counts["readings"] == 24 and counts["windows"] == 6 and counts["anomalies"] == 3
    assert counts["alerts_opened"] == 1 and counts["alerts_resolved"] == 0


def test_an_episode_gives_one_open_and_one_resolved() -> None:
    """Default output: alert events only; a 25 s overheat is one alert, not five."""
    temps = [65.0] * 20 + [95.0, 97.0, 101.0, 96.0, 94.0] * 5 + [65.0] * 20  # 1 reading/s
    msgs = [temp_msg("2", s, t, offset=s) for s, t in enumerate(temps)]
    out, _dlq, counts = run(msgs, {"ALERT_RESOLVE_WINDOWS": "3"})
    assert [(k, o["event"], o["state"]) for k, o in out] == [
        (b"2", "open", "open"),
        (b"2", "resolved", "resolved"),
    ]
    opened, resolved = (o for _k, o in out)
    assert opened["alert_id"] == resolved["alert_id"]
    assert opened["window_start"] == "2024-03-19T13:57:25.000Z"  # the first hot window
    assert resolved["window_start"] == "2024-03-19T13:58:00.000Z"  # the third clean one
    assert resolved["alert"]["anomalous_windows"] == 5
    assert resolved["alert"]["peak_mean"] == pytest.approx(96.6)
    assert resolved["alert"]["reasons"] == ["threshold"]
    assert counts["alerts_opened"] == counts["alerts_resolved"] == 1


def test_window_of_k_readings_averages_all_k_through_the_flow() -> None:
    values = [61.0, 93.0, 70.0, 99.5]  # mean 80.875: only the mean of all four is below 90
    msgs = [temp_msg("5", s, v) for s, v in enumerate(values)]
    out, _dlq, _ = run(msgs, {"EMIT_ALL_WINDOWS": "true", "TEMPERATURE_THRESHOLD_C": "81"})
    [(_key, rec)] = out
    assert (rec["count"], rec["mean"], rec["min"], rec["max"]) == (4, 80.875, 61.0, 99.5)
    assert not rec["threshold_alarm"]  # 80.875 < 81, although two readings are above it


def test_both_tutorial_formats_and_every_value_is_encoded_once() -> None:
    msgs = [aq_msg("Sensor3", f"2022-07-15 11:34:3{i}.113400", 20.0 + i) for i in range(4)]
    msgs += [temp_msg("0", s, 60.0) for s in range(3)]
    out, _dlq, _ = run(msgs, {"EMIT_ALL_WINDOWS": "true"})
    assert sorted(k for k, _ in out) == [b"0", b"Sensor3"]
    for key, rec in out:
        assert isinstance(rec, dict) and rec["sensor_id"] == key.decode()
    [aq] = [rec for k, rec in out if k == b"Sensor3"]
    assert (aq["family"], aq["window_start"], aq["count"], aq["mean"]) == (
        "air_quality",
        "2022-07-15T11:34:30.000Z",
        4,
        21.5,
    )


def test_malformed_messages_go_to_dead_letters_and_the_flow_goes_on() -> None:
    msgs = [temp_msg("2", 0, 95.0), FakeMessage(b"2", b"{oops", _partition=2, _offset=7)]
    msgs += [FakeMessage(None, b"{}", _partition=2, _offset=8)]
    msgs += [temp_msg("2", s, 95.0) for s in range(1, 4)]
    out, dlq, counts = run(msgs)
    assert [(k, v) for k, v, _h in dlq] == [(b"2", b"{oops"), (None, b"{}")]
    assert [dict(h)["reason"] for _k, _v, h in dlq] == [b"invalid_json", b"bad_key"]
    assert [(o["event"], o["count"]) for _k, o in out] == [("open", 4)]
    assert counts["rejected"] == 2


def test_late_reading_is_routed_to_dead_letters() -> None:
    msgs = [temp_msg("2", 0, 60.0), temp_msg("2", 9, 60.0), temp_msg("2", 1, 60.0, offset=3)]
    _out, dlq, counts = run(msgs, batch_size=1)
    assert [(k, v, dict(h)["reason"], dict(h)["source_offset"]) for k, v, h in dlq] == [
        (b"2", msgs[2].value(), b"late", b"3")
    ]  # the original bytes
    assert counts["late"] == 1


@pytest.mark.parametrize("batch_size", [1, 7, 100])
def test_result_does_not_depend_on_batching(batch_size: int) -> None:
    msgs = [temp_msg(str(i % 5), i // 5 * 0.5, 80.0 + (i * 7) % 23) for i in range(300)]
    env = {"EMIT_ALL_WINDOWS": "true", "SHARDS": "3"}
    ref, _, _ = run(msgs, env, batch_size=1000)
    out, _, _ = run(msgs, env, batch_size=batch_size)
    assert sorted(map(repr, out)) == sorted(map(repr, ref))


def test_a_quiet_sensor_closes_as_its_partition_moves_on() -> None:
    """Sensor "q" sends one reading and goes quiet; its window closes before the input ends,
    as sensor "b" of the same partition keeps sending (same shard: SHARDS=1). The source says
    nothing about being caught up: its input time is b's."""
    ticks = itertools.count()
    msgs = [temp_msg("q", 0, 95.0)] + [temp_msg("b", s * 0.1, 60.0) for s in range(80)]
    out, _, _ = run(
        msgs,
        {"SHARDS": "1", "IDLE_TIMEOUT_SECONDS": "5", "EMIT_ALL_WINDOWS": "true"},
        batch_size=1,
        clock=lambda: LATER + next(ticks),
    )
    starts = [(k, rec["window_start"]) for k, rec in out]
    q = starts.index((b"q", "2024-03-19T13:57:05.000Z"))
    # Closed as b's readings moved the partition past its end and lateness, with b's own
    # window, ahead of b's later windows (the last of them flushed at the end of the input).
    assert q < starts.index((b"b", "2024-03-19T13:57:10.000Z"))
    assert [k for k, _ in starts].count(b"q") == 1


def test_a_batch_of_only_late_readings_is_counted_at_once() -> None:
    """Counters are reported per batch, skipped only when nothing was counted: a late reading
    shows in the status line without waiting for a window to close."""
    from dataflow.families import TEMPERATURE
    from dataflow.flow import ShardLogic, shard_config
    from dataflow.readings import Reading
    from dataflow.shard import ShardState

    status = Status(0)
    logic = ShardLogic(
        ShardState(shard_config(Settings.from_env({}))), lambda: LATER, status, snapshots=False
    )
    logic.on_batch(
        [[Reading(TEMPERATURE, "2", T0, 60.0), Reading(TEMPERATURE, "2", T0 + 9 * S, 60.0)]]
    )
    assert status.snapshot()["windows"] == 1
    logic.on_batch([[Reading(TEMPERATURE, "2", T0 + S, 60.0)]])
    assert status.snapshot()["late"] == 1


def test_a_silent_sensor_goes_stale_then_is_forgotten_while_others_send() -> None:
    """Machine "hot" overheats and falls silent while "b" keeps sending (same shard): its alert
    resolves as stale, then it is forgotten, both as b's readings move their partition on, and
    the status counts the sensors kept."""
    ticks = itertools.count()
    msgs = [temp_msg("hot", s, 97.0) for s in range(8)]
    msgs += [temp_msg("b", s * 0.5, 60.0) for s in range(200)]
    out, _, status = run(
        msgs,
        {"SHARDS": "1", "ALERT_STALE_SECONDS": "20", "SENSOR_STATE_TTL_SECONDS": "60"},
        batch_size=1,
        clock=lambda: LATER + next(ticks),
    )
    hot = [(rec["event"], rec["resolution"]) for k, rec in out if k == b"hot"]
    assert hot == [("open", None), ("resolved", "stale"), ("forgotten", None)]
    stale = next(rec for k, rec in out if k == b"hot" and rec["event"] == "resolved")
    assert 20 <= stale["silent_seconds"] < 30 and stale["alert"]["peak_mean"] == 97.0
    assert status["forgotten"] == 1 and status["tracked"] == 1  # b is still kept
    assert status["alerts_opened"] == status["alerts_resolved"] == 1


def test_a_reading_from_the_future_goes_to_dead_letters_and_blinds_nothing() -> None:
    """One reading dated about 2099 (a gateway's clock gone wrong): refused as ``future`` with
    its bytes; the machine's later overheat still opens an alert, no reading is late."""
    future = FakeMessage(
        b"2", orjson.dumps({"Temperature_C": 60.0, "Timestamp": T0 + 75 * 365 * 86_400 * S})
    )
    msgs = [temp_msg("2", 0, 60.0), future] + [temp_msg("2", s, 95.0) for s in range(1, 12)]
    out, dlq, counts = run(msgs, clock=lambda: T0 / S + 60)
    assert [(v, dict(h)["reason"]) for _k, v, h in dlq] == [(future.value(), b"future")]
    assert [o["event"] for _k, o in out] == ["open"]
    assert counts["late"] == 0 and counts["rejected"] == 1
