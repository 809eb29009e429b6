"""The user's rules in a shard: direction, duration, per-sensor overrides, severity, restarts."""

from __future__ import annotations

import pickle

import yaml

from dataflow.families import parse_families
from dataflow.readings import Reading
from dataflow.rules import Rule, RuleSet, highest
from dataflow.shard import ShardState, WindowResult
from tests.factories import LATER, T0, S, shard_config

SENSORS = """
families:
  humidity:
    topic: h
    value: rh
    unit: "%RH"
    valid_range: [0, 100]
    rules:
      - {name: too_humid, above: 80, severity: warning}
      - {name: too_dry, below: 20, for_windows: 3, severity: info}
    sensors:
      "lab-*":
        rules:
          - {name: too_humid, above: 60, severity: critical}
"""


def state(text: str = SENSORS) -> ShardState:
    return ShardState(
        shard_config(
            parse_families(yaml.safe_load(text), "t.yaml"), limits=(0.0, 100.0), emit_all=True
        )
    )


def hum(sensor: str, window: int, value: float) -> list[Reading]:
    """Two readings in the window ``window`` (5 s each) of one sensor; the second closes the
    window before (past its end plus the lateness)."""
    return [Reading("humidity", sensor, T0 + window * 5 * S + k * S, value) for k in (0, 3)]


def feed(
    st: ShardState, sensor: str, means: list[float], first: int = 0, close: bool = True
) -> list[WindowResult]:
    """One window per mean from window ``first`` on; the last is closed by a reading in the next
    window unless ``close`` is false."""
    out = []
    for i, mean in enumerate(means):
        out += st.ingest(hum(sensor, first + i, mean), now=LATER)
    if close:
        out += st.ingest(hum(sensor, first + len(means), 50.0), now=LATER)
    return [r for r in out if isinstance(r, WindowResult)]


def test_a_rule_compares_the_mean_inclusively_in_its_direction() -> None:
    rules = RuleSet((Rule("hi", "above", 80.0), Rule("lo", "below", 20.0)))
    assert [rules.fired(m, None) for m in (80.0, 79.9, 20.0, 20.1, 50.0)] == [
        ("hi",),
        (),
        ("lo",),
        (),
        (),
    ]


def test_a_rule_for_three_windows_needs_three_in_a_row() -> None:
    st = state()
    res = feed(st, "office", [10.0, 10.0, 50.0, 10.0, 10.0, 10.0, 10.0])
    assert [r.reasons for r in res] == [[], [], [], [], [], ["too_dry"], ["too_dry"]]
    third = res[5]
    assert third.severity == "info" and third.unit == "%RH" and third.threshold_alarm
    assert third.alert is not None and third.alert.event == "open"


def test_an_override_changes_the_rule_for_matching_sensors_only() -> None:
    st = state()
    lab, office = feed(st, "lab-3", [70.0]), feed(st, "office", [70.0])
    assert (lab[0].reasons, lab[0].severity) == (["too_humid"], "critical")
    assert (office[0].reasons, office[0].severity) == ([], None)
    assert lab[0].threshold == 60.0 and office[0].threshold == 80.0  # the first rule's level


def test_severity_is_the_highest_of_the_reasons_the_model_s_included() -> None:
    st = state(SENSORS + "    ml_severity: critical\n")
    rules = st.config.families["humidity"].family.rules_for("office")
    assert rules.severity(["too_dry", "too_humid"]) == "warning"
    assert rules.severity(["too_dry", "ml"]) == "critical"
    assert rules.severity([]) is None
    assert highest(["info", "critical", "warning"]) == "critical"


def test_the_alert_keeps_the_episode_s_highest_severity() -> None:
    st = ShardState(
        shard_config(
            parse_families(yaml.safe_load(SENSORS), "t.yaml"),
            limits=(0.0, 100.0),
            emit_all=True,
            update_every=1,
        )
    )
    res = feed(st, "office", [10.0, 10.0, 10.0, 85.0, 10.0])
    events = [(r.alert.event, r.alert.severity) for r in res if r.alert is not None]
    # too_dry (info) opens on the third window; too_humid (warning) raises it: an update.
    assert events == [("open", "info"), ("update", "warning")]


def test_a_restored_shard_keeps_streaks_of_unchanged_rules() -> None:
    st = state()
    feed(st, "office", [10.0, 10.0], close=False)  # windows 0 and 1: two of the three needed
    clone = pickle.loads(pickle.dumps(st))
    clone.reconfigure(state().config)
    assert [r.reasons for r in feed(clone, "office", [10.0], first=2)] == [[], ["too_dry"]]


def test_a_restored_shard_takes_changed_rules_and_starts_their_streaks_again() -> None:
    st = state()
    feed(st, "office", [10.0, 10.0], close=False)
    clone = pickle.loads(pickle.dumps(st))
    clone.reconfigure(state(SENSORS.replace("above: 80", "above: 40")).config)
    res = feed(clone, "office", [10.0, 45.0], first=2)
    assert [r.reasons for r in res] == [[], [], ["too_humid"]]  # too_dry: counting afresh
    assert res[2].threshold == 40.0
