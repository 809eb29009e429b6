"""Unit tests for ``producer.settings``: defaults, flag > environment > default, and the
parsers of its values."""

from __future__ import annotations

import pytest

from producer.settings import parse_settings, parse_start
from producer.simulate import AIR_QUALITY, TEMPERATURE
from tests.unit.producer.logins import PASSWORD, SCRAM_ENV


def test_defaults() -> None:
    settings = parse_settings([], environ={})
    assert settings.brokers == ("127.0.0.1:9092",)
    assert settings.families == (AIR_QUALITY, TEMPERATURE)
    assert settings.sensors == 5
    assert settings.rate == 0
    assert settings.realtime is False
    assert settings.interval_s == 1.0
    assert settings.start_ns is None  # "now", resolved when sending starts
    assert settings.count is None and settings.duration_s is None
    assert settings.partitions == 3
    assert settings.seed == 42
    assert settings.scenario == "normal"
    assert settings.overheat_sensor == "2" and settings.overheat_after_s == 10
    assert settings.shift_sensor == "Sensor1" and settings.shift_after_s == 30
    assert settings.history_s == 0 and settings.history_skip == ()
    assert settings.air_quality_topic == "air-quality"
    assert settings.temperature_topic == "temperature_readings"
    assert settings.log_sent is None


def test_overheat_sensor_not_checked_without_temperature(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PRODUCER_SCENARIO", "overheat")
    monkeypatch.setenv("OVERHEAT_SENSOR", "99")
    settings = parse_settings(["--families", "air_quality"])
    assert settings.families == (AIR_QUALITY,)


def test_env_is_used_and_flag_overrides_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODUCER_SENSORS", "7")
    monkeypatch.setenv("PRODUCER_SEED", "1")
    monkeypatch.setenv("KAFKA_BROKERS", "a:1, b:2")
    monkeypatch.setenv("PRODUCER_REALTIME", "true")
    monkeypatch.setenv("TEMPERATURE_TOPIC", "temps-from-env")
    settings = parse_settings(["--seed", "9", "--realtime", "false"])
    assert settings.sensors == 7  # from env
    assert settings.brokers == ("a:1", "b:2")
    assert settings.temperature_topic == "temps-from-env"
    assert settings.seed == 9  # flag wins
    assert settings.realtime is False  # flag wins


def test_bare_realtime_flag_means_true() -> None:
    assert parse_settings(["--realtime"], environ={}).realtime is True


def test_bad_env_value_is_ignored_when_flag_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODUCER_RATE", "-1")
    assert parse_settings(["--rate", "50"]).rate == 50


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-19T13:57:06.905833", 1_710_856_626_905_833_000),
        ("2024-03-19 13:57:06.905833", 1_710_856_626_905_833_000),
        ("2024-03-19T13:57:06.905833Z", 1_710_856_626_905_833_000),
        ("2024-03-19T15:57:06.905833+02:00", 1_710_856_626_905_833_000),
        ("1970-01-01", 0),
        ("now", None),
        ("NOW", None),
    ],
)
def test_parse_start(text: str, expected: int | None) -> None:
    assert parse_start(text) == expected


def test_limits_zero_or_unlimited_mean_none() -> None:
    settings = parse_settings(["--count", "0", "--duration", "unlimited"], environ={})
    assert settings.count is None and settings.duration_s is None
    settings = parse_settings(["--count", "12", "--duration", "2.5"], environ={})
    assert settings.count == 12 and settings.duration_s == 2.5


def test_the_settings_repr_hides_the_password() -> None:
    """Settings reach logs and tracebacks; the SASL password must not come with them."""
    settings = parse_settings([], environ=SCRAM_ENV)
    assert settings.security.password == PASSWORD  # the client still gets it
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings)
    assert "password='***'" in repr(settings)


def test_the_demos_settings_reach_the_simulation() -> None:
    argv = [
        "--scenario", "shift,overheat", "--shift-sensor", "Sensor4", "--shift-after", "12",
        "--history", "3600", "--history-skip", "2, Sensor5", "--start", "2024-03-19T13:57:06",
    ]  # fmt: skip
    settings = parse_settings(argv, environ={})
    assert settings.scenario == "overheat,shift"
    sim = settings.simulation(settings.start_ns or 0)
    assert (sim.scenario, sim.shift_sensor, sim.shift_after_s) == ("overheat,shift", "Sensor4", 12)
    assert (sim.history_s, sim.history_skip, sim.history_ticks) == (3600, ("2", "Sensor5"), 3600)


@pytest.mark.parametrize(
    "argv",
    [
        ["--start", "0001-01-01"],  # written as year 1: not even a four-digit year
        ["--start", "1969-12-31T23:59:00"],
        ["--start", "2101-01-01"],
        ["--start", "2024-01-01", "--history", "3e9"],  # year 1929
        ["--start", "2099-12-31", "--duration", "100000"],
    ],
)
def test_event_times_the_dataflow_would_refuse_are_refused_at_start_up(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every message of such a run went to the dead-letter topic; it is one line naming the
    settings now, exit 2."""
    with pytest.raises(SystemExit) as exit_:
        parse_settings(argv, environ={})
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--start (env PRODUCER_START)" in err and "must lie in 1970..2100" in err


@pytest.mark.parametrize("flag", ["--history", "--interval", "--duration"])
def test_a_huge_span_is_a_bounded_setting_not_an_overflow(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """1e300 seconds overflowed into a traceback (float infinity to integer)."""
    with pytest.raises(SystemExit) as exit_:
        parse_settings([flag, "1e300"], environ={})
    assert exit_.value.code == 2
    assert f"invalid {flag} (env " in capsys.readouterr().err


def test_a_start_in_range_with_its_history_is_taken() -> None:
    settings = parse_settings(["--start", "2024-01-01", "--history", "3600"], environ={})
    assert settings.history_s == 3600
