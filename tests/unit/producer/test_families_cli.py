"""``python -m producer`` with SENSORS_CONFIG and ``--replay``: settings, errors, ``--help``, and
the messages sent (Kafka faked; each one parsed back with the dataflow's parser)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, ClassVar

import pytest

from dataflow.families import load_families
from dataflow.readings import format_of, parse
from producer import sending, shapes
from producer.__main__ import main
from producer.settings import parse_settings
from producer.simulate import generate_families

START = "2024-03-19T13:57:06Z"
START_NS = 1_710_856_626_000_000_000

CONFIG = """\
families:
  humidity:
    topic: humidity-readings
    value: reading.rh
    timestamp: ts
    timestamp_format: iso
    unit: "%RH"
    valid_range: [0, 100]
  temp:
    topic: machines
    sensor_id: id
    value: temp
    timestamp: ts
    timestamp_format: ms
    valid_range: [-50, 200]
    limits: [40, 100]
  vibration:
    topic: machines
    sensor_id: id
    value: vibration
    timestamp: ts
    timestamp_format: ms
    valid_range: [0, 10]
  pressure:
    topic: pressure
    sensor_id: device.id
    value: bar
    valid_range: [0, 20]
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "sensors.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


class Sent:
    def __init__(self, topic: str, key: bytes, value: bytes, timestamp_ms: int | None) -> None:
        self.topic, self.key, self.value, self.timestamp_ms = topic, key, value, timestamp_ms


class FakeFuture:
    def add_callback(self, fn: Any, *args: Any) -> FakeFuture:
        self.callback = (fn, args)
        return self

    def add_errback(self, fn: Any, *args: Any) -> FakeFuture:
        return self


class FakeProducer:
    instances: ClassVar[list[FakeProducer]] = []

    def __init__(self, **config: Any) -> None:
        self.sent: list[Sent] = []
        self.futures: list[FakeFuture] = []
        FakeProducer.instances.append(self)

    def send(
        self, topic: str, value: bytes, key: bytes, timestamp_ms: int | None = None
    ) -> FakeFuture:
        self.sent.append(Sent(topic, key, value, timestamp_ms))
        future = FakeFuture()
        self.futures.append(future)
        return future

    def flush(self, timeout: float | None = None) -> None:
        class Meta:
            partition, offset = 0, 0

        for future in self.futures:
            fn, args = future.callback
            fn(*args, Meta())
        self.futures.clear()

    def close(self, timeout: float | None = None) -> None:
        pass


@pytest.fixture
def fake_kafka(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    import kafka

    created: list[list[str]] = []
    FakeProducer.instances = []
    monkeypatch.setattr(kafka, "KafkaProducer", FakeProducer)
    monkeypatch.setattr(
        sending,
        "ensure_topics",
        lambda brokers, topics, partitions, security=None, stop=None: created.append(list(topics)),
    )
    return created


# --- settings ------------------------------------------------------------------------------------


def test_help_documents_the_new_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for text in (
        "--sensors-config",
        "SENSORS_CONFIG",
        "--replay",
        "--family",
        "--speed",
        "--sensor-id",
        "--timestamp-column",
        "--value-column",
        "--time-format",
        "--skip-value",
        "PRODUCER_REPLAY",
        "%d/%m/%Y %H:%M:%S",
        "timestamp_format",
        "valid_range",
    ):
        assert text in out, text


def test_config_from_env_or_flag_selects_all_its_families(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_flag = parse_settings(["--sensors-config", str(config)], environ={})
    monkeypatch.setenv("SENSORS_CONFIG", str(config))
    by_env = parse_settings([])
    for settings in (by_flag, by_env):
        assert settings.sensors_config == str(config)
        assert [g.names for g in settings.groups] == ["humidity", "temp+vibration", "pressure"]
        assert settings.topics() == ["humidity-readings", "machines", "pressure"]
        assert settings.replay is None


def test_families_picks_from_the_file_and_warns_about_the_others_on_its_topic(config: Path) -> None:
    settings = parse_settings(
        ["--families", "vibration,humidity"], environ={"SENSORS_CONFIG": str(config)}
    )
    assert [g.names for g in settings.groups] == ["humidity", "vibration"]
    (note,) = settings.notes
    assert "machines is also read by temp" in note and "missing_field" in note


@pytest.mark.parametrize(
    ("argv", "env", "what"),
    [
        (["--families", "humidity,air_quality"], {}, "unknown family 'air_quality'"),
        (["--families", ","], {}, "no family given"),
        (["--temperature-topic", "x"], {}, "has no effect with SENSORS_CONFIG"),
        ([], {"AIR_QUALITY_TOPIC": "x"}, "--air-quality-topic (env AIR_QUALITY_TOPIC) has no"),
        (["--scenario", "overheat"], {}, "overheat needs the built-in temperature"),
        (["--family", "temp"], {}, "--family (env PRODUCER_REPLAY_FAMILY) names the family"),
        (["--replay", "x.csv"], {}, "--replay needs --family"),
        (["--replay", "x.csv", "--family", "nope"], {}, "unknown family (choose from humidity"),
        (["--replay", "x.csv", "--family", "temp", "--realtime"], {}, "--speed"),
        (["--replay", "x.csv", "--family", "temp", "--speed", "-1"], {}, "--speed"),
    ],
)
def test_bad_combinations_exit_2(
    config: Path,
    argv: list[str],
    env: dict[str, str],
    what: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SENSORS_CONFIG", str(config))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert what in capsys.readouterr().err


def test_a_bad_sensors_file_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("families:\n  h:\n    topic: t\n    value: v\n    valid_range: [5, 1]\n")
    with pytest.raises(SystemExit) as exc:
        main(["--sensors-config", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"{path}: families.h.valid_range: lo must be below hi" in err


def test_a_sensors_file_that_is_not_text_exits_2_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sensors.yaml"
    path.write_bytes("families:\n  h: ré\n".encode("utf-16"))
    with pytest.raises(SystemExit) as exc:
        main(["--sensors-config", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"{path}: line 1: not UTF-8 text" in err and "Traceback" not in err


def test_families_that_cannot_share_a_message_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "clash.yaml"
    path.write_text(
        CONFIG.replace(
            "timestamp_format: ms\n    valid_range: [0, 10]",
            "timestamp_format: iso\n    valid_range: [0, 10]",
        )
    )
    with pytest.raises(SystemExit) as exc:
        main(["--sensors-config", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "temp and vibration cannot share one message" in err and "separate runs" in err


def test_replay_settings(config: Path) -> None:
    settings = parse_settings(
        [
            "--replay",
            "h.csv",
            "--family",
            "humidity",
            "--speed",
            "60",
            "--sensor-id",
            "lab-1",
            "--timestamp-column",
            "Date,Time",
            "--value-column",
            "RH",
            "--time-format",
            "%d/%m/%Y %H:%M:%S",
            "--skip-value=-200,-999",
            "--sensors-config",
            str(config),
        ],
        environ={},
    )
    replay = settings.replay
    assert replay is not None and replay.family.name == "humidity" and replay.speed == 60
    assert replay.layout.timestamp == ("Date", "Time") and replay.layout.value == "RH"
    assert replay.layout.default_sensor_id == "lab-1"
    assert replay.layout.skip_values == (-200.0, -999.0)
    assert replay.layout.valid_range == (0.0, 100.0)
    assert settings.topics() == ["humidity-readings"]


def test_replay_into_a_tutorial_family_without_a_config() -> None:
    settings = parse_settings(
        [
            "--replay",
            "t.csv",
            "--family",
            "temperature",
            "--temperature-topic",
            "temps",
            "--skip-value",
            "-200",
        ],
        environ={},
    )
    assert settings.replay is not None and settings.replay.family.topic == "temps"
    assert settings.replay.layout.skip_values == (-200.0,)
    assert settings.replay.speed == 0


# --- what is sent --------------------------------------------------------------------------------


def test_simulating_configured_families_sends_their_shapes(
    config: Path, fake_kafka: list[list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_path = tmp_path / "sent.jsonl"
    argv = [
        "--sensors-config",
        str(config),
        "--sensors",
        "2",
        "--duration",
        "3",
        "--start",
        START,
        "--log-sent",
        str(log_path),
    ]
    assert main(argv) == 0
    assert fake_kafka == [["humidity-readings", "machines", "pressure"]]
    (producer,) = FakeProducer.instances
    assert len(producer.sent) == 3 * 2 * 3  # groups x sensors x ticks
    assert "sent 18 messages (0 failed)" in capsys.readouterr().err
    families = {f.name: f for f in load_families(config)}
    settings = parse_settings(argv, environ={})
    expected = list(generate_families(settings.family_simulation(START_NS)))
    for sent, reading in zip(producer.sent, expected, strict=True):
        group = settings.groups[reading.group]
        assert sent.topic == group.topic
        for fam, value in zip(group.families, reading.values, strict=True):
            got = parse(format_of(families[fam.name]), sent.key, sent.value, sent.timestamp_ms)
            assert (got.family, got.sensor_id, got.ts, got.value) == (
                fam.name,
                reading.sensor_id,
                reading.ts,
                value,
            )
    pressure = [s for s in producer.sent if s.topic == "pressure"]
    assert all(s.timestamp_ms is not None for s in pressure)  # no field: the Kafka time
    assert all(s.timestamp_ms is None for s in producer.sent if s.topic != "pressure")
    first = json.loads(producer.sent[2].value)
    assert set(first) == {"id", "temp", "vibration", "ts"}
    assert len(log_path.read_text().splitlines()) == 18


def test_replay_sends_every_row_in_the_familys_shape(
    config: Path,
    fake_kafka: list[list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="producer")
    path = tmp_path / "p.csv"
    path.write_text(
        "timestamp,sensor_id,value\n2024-01-01T00:00:00Z,d1,1.5\n"
        "2024-01-01T00:00:01Z,d2,-200\n1704067202,d1,19.25\n"
    )
    argv = [
        "--sensors-config",
        str(config),
        "--replay",
        str(path),
        "--family",
        "pressure",
        "--skip-value",
        "-200",
    ]
    assert main(argv) == 0
    (producer,) = FakeProducer.instances
    fam = next(f for f in load_families(config) if f.name == "pressure")
    got = [parse(format_of(fam), s.key, s.value, s.timestamp_ms) for s in producer.sent]
    assert [(r.sensor_id, r.ts, r.value) for r in got] == [
        ("d1", 1_704_067_200_000_000_000, 1.5),
        ("d1", 1_704_067_202_000_000_000, 19.25),
    ]
    assert {s.topic for s in producer.sent} == {"pressure"}
    assert json.loads(producer.sent[0].value) == {"device": {"id": "d1"}, "bar": 1.5}
    assert "sent 2 messages (0 failed)" in capsys.readouterr().err
    assert "2 rows of 1 sensor(s) to send, 1 skipped" in caplog.text
    assert "retention" in caplog.text  # old history as Kafka timestamps: warned


def test_replay_count_limits_rows(
    config: Path, fake_kafka: list[list[str]], tmp_path: Path
) -> None:
    path = tmp_path / "h.csv"
    path.write_text("timestamp,value\n" + "".join(f"{1704067200 + i},{i}\n" for i in range(10)))
    assert (
        main(
            [
                "--sensors-config",
                str(config),
                "--replay",
                str(path),
                "--family",
                "humidity",
                "--count",
                "4",
            ]
        )
        == 0
    )
    (producer,) = FakeProducer.instances
    assert [json.loads(s.value)["reading"]["rh"] for s in producer.sent] == [0, 1, 2, 3]
    assert {s.key for s in producer.sent} == {b"replay"}


def test_a_bad_row_fails_before_connecting(
    config: Path,
    fake_kafka: list[list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "h.csv"
    path.write_text("timestamp,value\n1704067200,5\n1704067201,500\n")
    assert (
        main(["--sensors-config", str(config), "--replay", str(path), "--family", "humidity"]) == 2
    )
    assert FakeProducer.instances == [] and fake_kafka == []
    assert "sent 0 messages (0 failed)" in capsys.readouterr().err
    assert f"{path}: line 3: value 500 is outside the family's valid range 0..100" in caplog.text


def test_replay_without_config_is_the_tutorial_shape(
    fake_kafka: list[list[str]], tmp_path: Path
) -> None:
    path = tmp_path / "t.csv"
    path.write_text("timestamp,value\n2013-07-04 00:00:00,69.88083514\n")
    assert main(["--replay", str(path), "--family", "temperature"]) == 0
    (producer,) = FakeProducer.instances
    (sent,) = producer.sent
    assert sent.topic == "temperature_readings" and sent.key == b"replay"
    assert json.loads(sent.value) == {
        "Temperature_C": 69.88083514,
        "Timestamp": 1_372_896_000_000_000_000,
    }
    assert sent.timestamp_ms is None
    assert shapes.is_tutorial(
        parse_settings(["--replay", "x", "--family", "temperature"], environ={}).replay.family
    )  # type: ignore[union-attr]
