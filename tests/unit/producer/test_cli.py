"""Unit tests for ``python -m producer``'s entry (``producer.__main__.main``): ``--help``, exit
status 2 on bad settings before anything connects, and the password masked in every log line."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from dataflow.security import SECURITY_OPTIONS
from producer import sending
from producer.__main__ import main
from producer.settings import Settings
from tests.unit.producer.logins import PASSWORD, SCRAM_ENV


def test_help_exits_0_and_documents_env_vars_and_shapes(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in [
        "KAFKA_BROKERS",
        "PRODUCER_FAMILIES",
        "PRODUCER_SENSORS",
        "PRODUCER_RATE",
        "PRODUCER_REALTIME",
        "PRODUCER_INTERVAL_SECONDS",
        "PRODUCER_START",
        "PRODUCER_COUNT",
        "PRODUCER_DURATION_SECONDS",
        "PRODUCER_PARTITIONS",
        "PRODUCER_SEED",
        "PRODUCER_SCENARIO",
        "OVERHEAT_SENSOR",
        "OVERHEAT_AFTER_SECONDS",
        "AIR_QUALITY_TOPIC",
        "TEMPERATURE_TOPIC",
        "PRODUCER_LOG_SENT",
        "LOG_LEVEL",
    ]:
        assert name in out, name
    assert '"Temperature_C"' in out and '"Timestamp"' in out
    assert '"timestamp"' in out and "%Y-%m-%d %H:%M:%S.%f" in out


def test_help_lists_the_security_variables_from_their_declarations(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    lines = capsys.readouterr().out.splitlines()
    for option in SECURITY_OPTIONS:
        row = f"  {option.env} (default: {option.shown_default}): "
        assert any(line.startswith(row) for line in lines), f"{option.env} is not in --help"


@pytest.mark.parametrize(
    ("env", "value", "flag"),
    [
        ("PRODUCER_RATE", "-1", "--rate"),
        ("PRODUCER_RATE", "fast", "--rate"),
        ("PRODUCER_FAMILIES", "air_quality,humidity", "--families"),
        ("PRODUCER_FAMILIES", ",", "--families"),
        ("PRODUCER_SCENARIO", "meltdown", "--scenario"),
        ("PRODUCER_START", "yesterday", "--start"),
        ("PRODUCER_START", "2024-13-45", "--start"),
        ("PRODUCER_SENSORS", "0", "--sensors"),
        ("PRODUCER_SENSORS", "three", "--sensors"),
        ("PRODUCER_INTERVAL_SECONDS", "0", "--interval"),
        ("PRODUCER_COUNT", "-5", "--count"),
        ("PRODUCER_DURATION_SECONDS", "-1", "--duration"),
        ("PRODUCER_PARTITIONS", "0", "--partitions"),
        ("PRODUCER_SEED", "x", "--seed"),
        ("PRODUCER_REALTIME", "maybe", "--realtime"),
        ("OVERHEAT_AFTER_SECONDS", "-3", "--overheat-after"),
        ("PRODUCER_SCENARIO", "normal,shift", "--scenario"),
        ("SHIFT_AFTER_SECONDS", "-3", "--shift-after"),
        ("PRODUCER_HISTORY_SECONDS", "-1", "--history"),
        ("KAFKA_BROKERS", " , ", "--brokers"),
        ("LOG_LEVEL", "LOUD", "--log-level"),
    ],
)
@pytest.mark.parametrize("via", ["env", "flag"])
def test_bad_values_exit_2_naming_the_setting(
    via: str,
    env: str,
    value: str,
    flag: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv: list[str] = []
    if via == "env":
        monkeypatch.setenv(env, value)
    else:
        argv = [f"{flag}={value}"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert env in err and flag in err
    assert repr(value) in err


def test_overheat_sensor_out_of_range_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PRODUCER_SCENARIO", "overheat")
    monkeypatch.setenv("PRODUCER_SENSORS", "2")  # ids 0..1, default overheat sensor is "2"
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "OVERHEAT_SENSOR" in err and "--overheat-sensor" in err


def test_bad_values_fail_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> int:
        raise AssertionError("must not try to connect")

    monkeypatch.setattr(sending, "run", boom)
    monkeypatch.setenv("PRODUCER_RATE", "-1")
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({**SCRAM_ENV, "KAFKA_SASL_PASSWORD": ""}, "KAFKA_SASL_PASSWORD"),
        ({**SCRAM_ENV, "KAFKA_SASL_USERNAME": ""}, "KAFKA_SASL_USERNAME"),
        ({**SCRAM_ENV, "KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
        ({**SCRAM_ENV, "KAFKA_SECURITY_PROTOCOL": "SASL"}, "KAFKA_SECURITY_PROTOCOL"),
        ({**SCRAM_ENV, "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}, "KAFKA_SECURITY_PROTOCOL"),
    ],
)
def test_bad_security_settings_exit_2_naming_the_variable_without_the_password(
    env: dict[str, str],
    named: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def boom(*args: Any, **kwargs: Any) -> int:
        raise AssertionError("must not try to connect")

    monkeypatch.setattr(sending, "run", boom)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert named in err
    assert PASSWORD not in err


def test_a_password_logged_by_a_library_is_masked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    library = logging.getLogger("some.library")

    def leaky_run(settings: Settings, stop: threading.Event) -> int:
        library.debug("config %s", {"sasl_plain_password": PASSWORD})
        try:
            raise RuntimeError(f"bad login with {PASSWORD}")
        except RuntimeError:
            library.exception("failed")
        return 0

    monkeypatch.setattr(sending, "run", leaky_run)
    for name, value in SCRAM_ENV.items():
        monkeypatch.setenv(name, value)
    assert main([]) == 0
    assert "'sasl_plain_password': '***'" in caplog.text
    assert "bad login with ***" in caplog.text
    assert PASSWORD not in caplog.text
    assert caplog.handler.filters == []  # removed again when main returns


@pytest.mark.parametrize(
    ("argv", "what"),
    [
        (["--scenario", "shift", "--sensors", "2", "--shift-sensor", "Sensor3"], "SHIFT_SENSOR"),
        (["--history-skip", "2"], "PRODUCER_HISTORY_SECONDS"),
        (["--history", "60", "--history-skip", "7"], "PRODUCER_HISTORY_SKIP"),
        (
            ["--history", "60", "--families", "temperature", "--history-skip", "Sensor1"],
            "'Sensor1'",
        ),
        (["--history", "60", "--replay", "x.csv", "--family", "temperature"], "a replay sends"),
    ],
)
def test_history_and_shift_settings_that_would_do_nothing_exit_2(
    argv: list[str], what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert what in capsys.readouterr().err
