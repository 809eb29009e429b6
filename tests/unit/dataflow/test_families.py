"""Sensor families from a file: every key, every mistake named by its path, globs, defaults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dataflow.config import ConfigError, Settings
from dataflow.families import (
    AIR_QUALITY,
    FAMILY_KEYS,
    RULE_KEYS,
    TEMPERATURE,
    Family,
    FamilyConfigError,
    builtin,
    describe,
    load_families,
    parse_families,
    topics_of,
)
from dataflow.rules import Rule
from tests.checkout import ROOT

FULL = """
families:
  humidity:                       # a comment, as users write them
    topic: humidity-readings
    sensor_id: device.id
    value: reading.rh
    timestamp: ts
    timestamp_format: iso
    unit: "%RH"
    valid_range: [0, 100]
    window_seconds: 10
    limits: [20, 90]
    ml_severity: info
    rules:
      - name: too_humid
        above: 80
        for_windows: 2
        severity: warning
      - {name: too_dry, below: 15, severity: critical}
    sensors:
      "lab-*":
        rules:
          - {name: too_humid, above: 60, severity: critical}
      "lab-7":
        rules:
          - {name: never_seen, above: 1}
      "basement-[0-9]":
        rules:
          - {name: flooded, above: 95, for_windows: 3, severity: critical}
  vibration:
    topic: humidity-readings
    value: vib
    valid_range: [0, 50]
"""


def load(text: str, window: float = 5.0) -> tuple[Family, ...]:
    return parse_families(yaml.safe_load(text), "sensors.yaml", window)


def test_every_key_of_a_family_is_read() -> None:
    hum = load(FULL)[0]
    assert hum == Family(
        name="humidity",
        topic="humidity-readings",
        value="reading.rh",
        valid_range=(0.0, 100.0),
        window_seconds=10.0,
        sensor_id="device.id",
        timestamp="ts",
        timestamp_format="iso",
        unit="%RH",
        limits=(20.0, 90.0),
        ml_severity="info",
        rules=(
            Rule("too_humid", "above", 80.0, 2, "warning"),
            Rule("too_dry", "below", 15.0, 1, "critical"),
        ),
        sensors=hum.sensors,
    )
    assert [o.pattern for o in hum.sensors] == ["lab-*", "lab-7", "basement-[0-9]"]
    assert hum.model_limits == (20.0, 90.0)


def test_defaults_fill_what_a_family_leaves_out() -> None:
    vib = load(FULL, window=7.5)[1]
    assert (vib.sensor_id, vib.timestamp, vib.unit, vib.rules, vib.sensors) == (
        "key",
        None,
        None,
        (),
        (),
    )
    assert vib.window_seconds == 7.5  # WINDOW_SECONDS
    assert vib.model_limits == vib.valid_range == (0.0, 50.0)
    assert vib.ml_severity == "warning"


def test_two_families_may_read_one_topic() -> None:
    fams = load(FULL)
    assert {t: [f.name for f in fs] for t, fs in topics_of(fams).items()} == {
        "humidity-readings": ["humidity", "vibration"]
    }


def test_overrides_first_match_wins_and_replace_rules_by_name() -> None:
    hum = load(FULL)[0]
    lab = hum.rules_for("lab-7")  # "lab-*" comes first: "lab-7" never applies
    assert lab.rules == (
        Rule("too_humid", "above", 60.0, 1, "critical"),
        Rule("too_dry", "below", 15.0, 1, "critical"),
    )
    assert hum.rules_for("basement-3").rules == (
        *hum.rules,
        Rule("flooded", "above", 95.0, 3, "critical"),
    )
    assert hum.rules_for("basement-33").rules == hum.rules  # the glob is one character
    assert hum.rules_for("office").rules == hum.rules
    assert hum.rules_for("lab-1") is hum.rules_for("lab-2")  # one RuleSet shared


def test_an_exact_id_is_matched_even_with_glob_characters() -> None:
    fam = load("""
families:
  f:
    topic: t
    value: v
    valid_range: [0, 1]
    rules: [{name: r, above: 0.5}]
    sensors:
      "m[1]": {rules: [{name: r, above: 0.9}]}
""")[0]
    assert fam.rules_for("m[1]").rules[0].level == 0.9
    assert fam.rules_for("m1").rules[0].level == 0.9  # and as a glob
    assert fam.rules_for("m2").rules[0].level == 0.5


def test_the_builtin_families_are_the_tutorials() -> None:
    aq, temp = builtin()
    assert (
        temp.name,
        temp.topic,
        temp.sensor_id,
        temp.value,
        temp.timestamp,
        temp.timestamp_format,
        temp.unit,
    ) == (TEMPERATURE, "temperature_readings", "key", "Temperature_C", "Timestamp", "auto", "°C")
    assert temp.rules == (Rule("threshold", "above", 90.0, 1, "critical"),)
    assert temp.model_limits == (0.0, 120.0) and temp.valid_range == (-273.15, 10_000.0)
    assert (aq.name, aq.topic, aq.value, aq.timestamp, aq.rules) == (
        AIR_QUALITY,
        "air-quality",
        "value",
        "timestamp",
        (),
    )
    assert aq.model_limits == (0.0, 500.0)


def test_described_families_read_back_the_same() -> None:
    for fams in (load(FULL), builtin(air_quality_threshold=150.0)):
        text = yaml.safe_dump(describe(fams), sort_keys=False)  # overrides: first match wins
        assert load(text) == fams


def write(tmp_path: Path, text: str, name: str = "sensors.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ('{"families": {"f": {"topic": "t", "value": "v", "valid_range": [0, 2e5]}}}', "s.json"),
        ("families:\n  f: {topic: t, value: v, valid_range: [-1E-3, 2.e5]}\n", "s.yaml"),
    ],
)
def test_a_number_in_exponent_form_is_a_number_in_json_and_yaml(
    tmp_path: Path, text: str, name: str
) -> None:
    """As JSON and YAML 1.2 read it: PyYAML's YAML 1.1 took ``2e5`` for a string, and a valid
    JSON file was refused with "expected a number, got a str"."""
    [family] = load_families(write(tmp_path, text, name))
    assert family.valid_range[1] == 200_000.0
    quoted = write(tmp_path, text.replace("2e5", '"2e5"').replace("2.e5", '"2.e5"'), name)
    with pytest.raises(FamilyConfigError, match="expected a number, got a str"):
        load_families(quoted)


BASE = {"topic": "t", "value": "v", "valid_range": [0, 100]}


def doc(**family: Any) -> dict[str, Any]:
    return {"families": {"f": {**BASE, **family}}}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "(top level): expected a mapping, got nothing"),
        ({"famlies": {}}, "famlies: unknown key"),
        ({}, "(top level): missing key 'families'"),
        ({"families": {}}, "families: declares no family"),
        ({"families": []}, "families: expected a mapping, got a list"),
        ({"families": {"Hum-1": BASE}}, "families['Hum-1']: family name 'Hum-1' must match"),
        (
            {"families": {"f": {"value": "v", "valid_range": [0, 1]}}},
            "families.f: missing key 'topic'",
        ),
        (
            {"families": {"f": {"topic": "t", "valid_range": [0, 1]}}},
            "families.f: missing key 'value'",
        ),
        (
            {"families": {"f": {"topic": "t", "value": "v"}}},
            "families.f: missing key 'valid_range'",
        ),
        (doc(topc="x"), "families.f.topc: unknown key (known: topic,"),
        (doc(topic=""), "families.f.topic: expected a non-empty string, got a str"),
        (doc(topic=7), "families.f.topic: expected a non-empty string, got a int"),
        (doc(value="a..b"), "families.f.value: 'a..b' is not a dotted path"),
        (doc(sensor_id="dev ice"), "families.f.sensor_id: 'dev ice' is not a dotted path"),
        (doc(timestamp="v.t"), "families.f.timestamp: 'v.t' overlaps value 'v'"),
        (doc(sensor_id="v"), "families.f.sensor_id: 'v' overlaps value 'v'"),
        (
            doc(timestamp="ts", timestamp_format="seconds"),
            "families.f.timestamp_format: expected one of auto, iso, s, ms, us, ns, got 'seconds'",
        ),
        (doc(timestamp_format="ms"), "families.f.timestamp_format: set without 'timestamp'"),
        (doc(unit=""), "families.f.unit: expected a non-empty string"),
        (doc(valid_range=[1]), "families.f.valid_range: expected [lo, hi], got [1]"),
        (doc(valid_range=[5, 1]), "families.f.valid_range: lo must be below hi, got [5, 1]"),
        (doc(valid_range=[0, "x"]), "families.f.valid_range[1]: expected a number, got a str"),
        (doc(valid_range=[0, 1e301]), "families.f.valid_range[1]: must be finite, within +-1e+300"),
        (doc(valid_range=[0, float("inf")]), "families.f.valid_range[1]: must be finite"),
        (doc(limits=[0, True]), "families.f.limits[1]: expected a number, got a bool"),
        (doc(window_seconds=0), "families.f.window_seconds: must be > 0"),
        (doc(window_seconds=1e-10), "families.f.window_seconds: must be > 0 and a whole number"),
        (
            doc(ml_severity="page"),
            "families.f.ml_severity: expected one of info, warning, critical",
        ),
        (doc(rules={"name": "x"}), "families.f.rules: expected a list of rules, got a dict"),
        (doc(rules=["x"]), "families.f.rules[0]: expected a mapping, got a str"),
        (doc(rules=[{"above": 1}]), "families.f.rules[0]: missing key 'name'"),
        (doc(rules=[{"name": "Hot", "above": 1}]), "families.f.rules[0].name: 'Hot' must match"),
        (doc(rules=[{"name": "ml", "above": 1}]), "families.f.rules[0].name: 'ml' must match"),
        (
            doc(rules=[{"name": "a", "above": 1}, {"name": "a", "below": 0}]),
            "families.f.rules[1].name: 'a' is already a rule of this list",
        ),
        (doc(rules=[{"name": "a"}]), "families.f.rules[0]: give exactly one of 'above' or 'below'"),
        (
            doc(rules=[{"name": "a", "above": 1, "below": 0}]),
            "families.f.rules[0]: give exactly one of 'above' or 'below'",
        ),
        (
            doc(rules=[{"name": "a", "above": "hot"}]),
            "families.f.rules[0].above: expected a number, got a str",
        ),
        (
            doc(rules=[{"name": "a", "below": None}]),
            "families.f.rules[0].below: expected a number, got nothing",
        ),
        (
            doc(rules=[{"name": "a", "above": 1, "for_windows": 0}]),
            "families.f.rules[0].for_windows: expected a whole number >= 1, got 0",
        ),
        (
            doc(rules=[{"name": "a", "above": 1, "for_windows": 1.5}]),
            "families.f.rules[0].for_windows: expected a whole number >= 1, got 1.5",
        ),
        (
            doc(rules=[{"name": "a", "above": 1, "severity": "high"}]),
            "families.f.rules[0].severity: expected one of info, warning, critical, got 'high'",
        ),
        (
            doc(rules=[{"name": "a", "above": 1, "when": "now"}]),
            "families.f.rules[0].when: unknown key",
        ),
        (doc(sensors=["lab-*"]), "families.f.sensors: expected a mapping, got a list"),
        (
            doc(sensors={" ": {"rules": []}}),
            "families.f.sensors[' ']: a sensor pattern must not be",
        ),
        (doc(sensors={"lab-*": {"unit": "x"}}), "families.f.sensors['lab-*'].unit: unknown key"),
        (
            doc(sensors={"lab-*": {"rules": [{"name": "a", "abve": 1}]}}),
            "families.f.sensors['lab-*'].rules[0].abve: unknown key",
        ),
    ],
)
def test_every_mistake_names_the_file_and_the_path(raw: Any, message: str) -> None:
    with pytest.raises(FamilyConfigError) as err:
        parse_families(raw, "sensors.yaml")
    text = str(err.value)
    assert text.startswith(f"sensors.yaml: {message}"), text
    assert "\n" not in text


def test_a_file_that_is_not_yaml_or_cannot_be_read_says_where(tmp_path: Path) -> None:
    path = write(tmp_path, "families:\n  f: [unclosed\n")
    with pytest.raises(FamilyConfigError, match=rf"^{path}: line 3, column 1: not valid YAML"):
        load_families(path)
    with pytest.raises(FamilyConfigError, match=r"nope.yaml: cannot read: No such file"):
        load_families(tmp_path / "nope.yaml")


NOT_TEXT = [
    # (file contents, what the one line says after the path)
    ("families:\n  f: ré\n".encode("utf-16"), "line 1: not UTF-8 text (byte 0xff at offset 0)"),
    ("families:\n  f: café\n".encode("latin-1"), "line 2: not UTF-8 text (byte 0xe9 at offset"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00\xb7\x00", "line 1: not UTF-8 text (byte 0xb7"),
    (b"families:\n  f: a\x00b\n", "line 2, column 7: not text: character #x0000"),
]


@pytest.mark.parametrize(("data", "said"), NOT_TEXT, ids=["utf-16", "latin-1", "binary", "nul"])
def test_a_file_that_is_not_utf8_text_is_one_line_naming_it(
    tmp_path: Path, data: bytes, said: str
) -> None:
    """Not a UnicodeDecodeError traceback (nor PyYAML's two-line reader error): the one line
    every other mistake in the file gets, at start-up and from --check-config."""
    path = tmp_path / "sensors.yaml"
    path.write_bytes(data)
    with pytest.raises(FamilyConfigError) as err:
        load_families(path)
    assert str(err.value).startswith(f"{path}: {said}"), str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=rf"^SENSORS_CONFIG: {path}: "):
        Settings.from_env({"SENSORS_CONFIG": str(path)})
    checked = run_check(str(path))
    assert checked.returncode == 2 and checked.stdout == ""
    assert checked.stderr.startswith(f"configuration error: SENSORS_CONFIG: {path}: {said}")
    assert checked.stderr.count("\n") == 1, checked.stderr


def test_settings_read_the_file_and_refuse_family_variables_beside_it(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    s = Settings.from_env({"SENSORS_CONFIG": path, "WINDOW_SECONDS": "2"})
    assert [f.name for f in s.families] == ["humidity", "vibration"]
    assert s.families[1].window_seconds == 2.0 and s.sensors_config == path
    assert list(s.topics) == ["humidity-readings"]
    # At its default (as compose sets it), a family variable is harmless; changed, it is refused.
    Settings.from_env({"SENSORS_CONFIG": path, "TEMPERATURE_TOPIC": "temperature_readings"})
    with pytest.raises(
        ConfigError,
        match=r"^TEMPERATURE_THRESHOLD_C='80' has no effect with "
        rf"SENSORS_CONFIG={path}",
    ):
        Settings.from_env({"SENSORS_CONFIG": path, "TEMPERATURE_THRESHOLD_C": "80"})
    with pytest.raises(ConfigError, match=r"^SENSORS_CONFIG: .*families.f.valid_range"):
        Settings.from_env(
            {"SENSORS_CONFIG": write(tmp_path, yaml.safe_dump(doc(valid_range=[1, 0])), "bad.yaml")}
        )
    with pytest.raises(
        ConfigError,
        match=r"^DLQ_TOPIC='humidity-readings': must be different "
        r"from the input topics",
    ):
        Settings.from_env({"SENSORS_CONFIG": path, "DLQ_TOPIC": "humidity-readings"})


def run_check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dataflow", "--check-config", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


def test_check_config_prints_the_resolved_families_and_fails_in_one_line(tmp_path: Path) -> None:
    good = run_check(write(tmp_path, FULL))
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith(f"# families: {tmp_path / 'sensors.yaml'}\n")
    printed = yaml.safe_load(good.stdout)
    assert printed["families"]["vibration"]["window_seconds"] == 5.0  # a default, filled in
    assert parse_families(printed, "printed") == load(FULL)
    builtin_run = run_check()
    assert builtin_run.returncode == 0 and "built in" in builtin_run.stdout.splitlines()[0]
    bad = run_check(write(tmp_path, yaml.safe_dump(doc(rules=[{"name": "a", "above": "x"}]))))
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == (
        f"configuration error: SENSORS_CONFIG: {tmp_path / 'sensors.yaml'}: "
        "families.f.rules[0].above: expected a number, got a str\n"
    )


def test_the_documented_example_is_valid_and_its_tables_list_every_key() -> None:
    section = (ROOT / "docs" / "sensor-families.md").read_text()
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    hum, vib = parse_families(yaml.safe_load(example), "docs/sensor-families.md")
    assert hum.rules_for("lab-1").rules[0] == Rule("too_humid", "above", 60.0, 1, "critical")
    assert (vib.topic, vib.value) == (hum.topic, "reading.vib")
    for key in (*FAMILY_KEYS, *RULE_KEYS):
        assert f"| `{key}` |" in section, f"{key} is not in docs/sensor-families.md's table of keys"


@pytest.mark.parametrize(("seconds", "ok"), [(1.005, True), (0.001, True), (0.0005, False)])
def test_a_window_is_a_whole_number_of_milliseconds(
    tmp_path: Path, seconds: float, ok: bool
) -> None:
    """The output's window times are in milliseconds: a 0.5 ms window was written with its start
    equal to its end, two of them with one start. 1.005 s, not a whole number of nanoseconds as
    a binary float, was refused."""
    text = (
        f"families:\n  f: {{topic: t, value: v, valid_range: [0, 1], window_seconds: {seconds}}}\n"
    )
    path = write(tmp_path, text)
    if ok:
        [family] = load_families(path)
        assert round(family.window_seconds * 1e9) == round(seconds * 1e3) * 10**6
    else:
        with pytest.raises(FamilyConfigError, match="whole number of milliseconds"):
            load_families(path)
