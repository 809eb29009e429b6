"""The demo's simulation through the detector, at default settings, without Kafka.

``make demo`` runs the producer with ``scripts/demo.py``'s ``producer_args``: hours of history
for every sensor but machine 2, then live, where machine 2 overheats and an air-quality sensor's
level shifts inside every rule's limits. Here the same readings go through the shard the flow
uses (windows closed by event time, the scorer, the alert tracker), for every way the live start
can fall on the window grid. What the demo promises must hold for each:

- the history alone opens no alert (a clean history), and leaves every sensor it covers with a
  ready model, machine 2 without one;
- live, exactly two alerts open: machine 2's by its threshold rule alone, the shifted sensor's
  by the model alone (its level envelope, checked against the scorer), each soon after its
  event.
"""

from __future__ import annotations

import importlib.util
from itertools import takewhile
from types import ModuleType

import pytest

from dataflow.config import Settings
from dataflow.flow import shard_config
from dataflow.model.novelty import cut
from dataflow.model.scoring import SensorScorer, window_scatter
from dataflow.readings import Reading
from dataflow.shard import ShardState, WindowResult
from producer.settings import parse_settings
from producer.simulate import AIR_QUALITY, TEMPERATURE, generate
from tests.checkout import ROOT
from tests.factories import S

WINDOW = 5 * S
GRID = 1_710_856_625 * S  # a whole multiple of the window: the live start's phase is added
LIVE_S = 60  # how much of the live part the demo promises its alerts in


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo", ROOT / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DEMO = load_demo()


def run(live_ns: int) -> tuple[list[WindowResult], Settings]:
    """Every window of the demo's readings up to ``LIVE_S`` after the start, as the flow scores
    them at default settings (every window written, to look at each)."""
    settings = Settings.from_env({"EMIT_ALL_WINDOWS": "true"})
    state = ShardState(shard_config(settings))
    producer = parse_settings(DEMO.producer_args(5), environ={})
    end = live_ns + LIVE_S * S
    readings = takewhile(lambda r: r.ts < end, generate(producer.simulation(live_ns)))
    out: list[WindowResult] = []
    batch: list[Reading] = []
    now = end / S  # the wall clock: nothing is from the future
    for reading in readings:
        batch.append(reading)
        if len(batch) == 2000:
            out += [r for r in state.ingest(batch, now) if isinstance(r, WindowResult)]
            batch = []
    out += [r for r in state.ingest(batch, now) if isinstance(r, WindowResult)]
    return out, settings


@pytest.mark.parametrize("phase_s", range(5))
def test_the_demo_shows_a_threshold_alert_and_an_ml_alert_and_nothing_else(phase_s: int) -> None:
    live = GRID + phase_s * S
    windows, settings = run(live)
    history = [w for w in windows if w.stats.end <= live]
    assert history and not [w for w in history if w.anomaly or w.alert is not None]
    ready_at_live = {(w.family, w.sensor_id): w.model_ready for w in history}
    assert len(ready_at_live) == 9 and all(ready_at_live.values())
    assert (TEMPERATURE, DEMO.OVERHEAT_SENSOR) not in ready_at_live

    opened = [w for w in windows if w.alert is not None and w.alert.event == "open"]
    assert [(w.family, w.sensor_id) for w in opened] == [
        (TEMPERATURE, DEMO.OVERHEAT_SENSOR),
        (AIR_QUALITY, DEMO.SHIFT_SENSOR),
    ]
    hot, shifted = opened
    assert hot.fired == ("threshold",) and not hot.ml_anomaly and not hot.model_ready
    assert shifted.ml_anomaly and shifted.fired == ()
    # Each opens within the two windows after its event starts.
    assert hot.stats.end <= live + (DEMO.OVERHEAT_AFTER_SECONDS * S) + 3 * WINDOW
    shift_at = live + DEMO.SHIFT_AFTER_SECONDS * S
    assert shifted.stats.end <= shift_at + 2 * WINDOW
    # Nothing but the shifted sensor is an ML anomaly, live or before.
    assert {(w.family, w.sensor_id) for w in windows if w.ml_anomaly} == {
        (AIR_QUALITY, DEMO.SHIFT_SENSOR)
    }

    # The level envelope fires on the first window wholly after the shift (one that straddles
    # it may open the alert first, by its step): the window's distance from the sensor's
    # level, in its spreads, beats both the floor and the peak its history left.
    params = shard_config(settings).families[AIR_QUALITY].model
    scorer = SensorScorer(params)
    for w in windows:
        if (w.family, w.sensor_id) != (AIR_QUALITY, DEMO.SHIFT_SENSOR):
            continue
        st = w.stats
        if st.start >= shift_at:
            floor = max(scorer.raw.resolution(), scorer.scatter)
            level_z = abs(scorer.raw.z(st.mean, floor))
            envelope = scorer.envelopes[0]
            assert level_z > params.novelty_floor
            assert level_z > cut(params.novelty_margin, envelope.peak)
            assert envelope.novel(level_z)
            break
        scorer.score_learn(st.start, st.mean, window_scatter(st.count, st.min, st.max))
    else:
        raise AssertionError("the shifted window was not found")
