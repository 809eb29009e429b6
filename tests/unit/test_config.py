"""Every knob has a default, and a bad value fails at start-up naming its variable."""

from pathlib import Path

import pytest

from dataflow.config import ENV_DOCS, ConfigError, Settings
from dataflow.readings import AIR_QUALITY, TEMPERATURE

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.brokers == ("127.0.0.1:9092",)
    assert s.topics == {"air-quality": AIR_QUALITY, "temperature_readings": TEMPERATURE}
    assert (s.anomalies_topic, s.dlq_topic) == ("anomalies", "dead-letters")
    assert s.tail and not s.emit_all
    assert (s.window_seconds, s.lateness_seconds) == (5.0, 2.0)
    assert s.thresholds == {TEMPERATURE: 90.0}


def test_overrides() -> None:
    s = Settings.from_env({"KAFKA_BROKERS": "a:1, b:2", "KAFKA_TAIL": "false",
                           "AIR_QUALITY_THRESHOLD": "150", "TEMPERATURE_LIMITS": "-10,200",
                           "KAFKA_CONSUMER_CONFIG": "fetch.wait.max.ms=10"})
    assert s.brokers == ("a:1", "b:2") and not s.tail
    assert s.thresholds[AIR_QUALITY] == 150.0
    assert s.limits[TEMPERATURE] == (-10.0, 200.0)
    assert s.consumer_config == {"fetch.wait.max.ms": "10"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KAFKA_BROKERS", " , "),
        ("WINDOW_SECONDS", "-5"),
        ("WINDOW_SECONDS", "five"),
        ("WINDOW_SECONDS", "nan"),
        ("ALLOWED_LATENESS_SECONDS", "-1"),
        ("IDLE_TIMEOUT_SECONDS", "0"),
        ("SHARDS", "0"),
        ("SHARDS", "1.5"),
        ("KAFKA_TAIL", "maybe"),
        ("EMIT_ALL_WINDOWS", "2"),
        ("TEMPERATURE_THRESHOLD_C", "hot"),
        ("TEMPERATURE_LIMITS", "100,0"),
        ("AIR_QUALITY_LIMITS", "5"),
        ("ML_QUANTILE", "1"),
        ("HST_TREES", "0"),
        ("KAFKA_BATCH_SIZE", "0"),
        ("KAFKA_CONSUMER_CONFIG", "novalue"),
        ("LOG_LEVEL", "LOUD"),
        ("TEMPERATURE_TOPIC", "air-quality"),
        ("ANOMALIES_TOPIC", "air-quality"),
        ("TOPIC_PARTITIONS", "0"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{name}="):
        Settings.from_env({name: value})


def test_readme_documents_every_variable_with_its_default() -> None:
    if not README.exists():
        pytest.fail("README.md is missing")
    text = README.read_text()
    for name, (default, _help) in ENV_DOCS.items():
        row = next((line for line in text.splitlines() if line.startswith(f"| `{name}`")), None)
        assert row is not None, f"{name} is not in the README's configuration table"
        assert f"`{default}`" in row or (default == "" and "(unset)" in row), row
