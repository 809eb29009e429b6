"""Snapshots written by earlier releases' own code resume: nothing lost, nothing repeated, and
every model it knew stays ready (no second warm-up). One fixture per format a step migrates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dataflow.config import Settings
from dataflow.families import TEMPERATURE
from dataflow.flow import SEAL, restore, shard_config
from dataflow.progress import Beat
from dataflow.readings import Reading
from dataflow.shard import ShardState, WindowResult
from dataflow.upgrade import STEPS
from tests.fixtures import snapshots as fx

FIXTURES = Path(__file__).parents[2] / "fixtures"
FORMATS = tuple(sorted(STEPS, reverse=True))  # every format a step migrates, each from its fixture


def feed(state: ShardState, first_s: int, last_s: int, pause_s: float) -> list[WindowResult]:
    out = []
    for sec, sensor, ns, value in fx.readings(first_s, last_s):
        wall = fx.WALL0 + sec + pause_s
        since = fx.WALL0 + pause_s if pause_s else fx.WALL0
        out += state.ingest(
            [Beat(fx.PART, wall, since), Reading(TEMPERATURE, sensor, ns, value)], wall
        )
    return [o for o in out if isinstance(o, WindowResult)]


def key(w: WindowResult) -> tuple[str, int, int, float]:
    return (w.sensor_id, w.stats.start, w.stats.count, w.stats.mean)


def fixture_named(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture(version: int) -> bytes:
    return fixture_named(f"snapshot-v{version}.bin")


@pytest.mark.parametrize("version", FORMATS)
def test_each_fixture_is_of_its_format(version: int) -> None:
    assert fixture(version)[:40].find(bytes([0x4B, version])) > 0


# Each format's fixture, and v10 as main wrote it later (sealed, two-byte seasonal counts).
@pytest.mark.parametrize(
    "name", [*(f"snapshot-v{v}.bin" for v in FORMATS), "snapshot-v10-sealed.bin"]
)
def test_an_earlier_release_snapshot_resumes_without_loss_repeat_or_warm_up(name: str) -> None:
    config = shard_config(Settings.from_env(fx.ENV))
    state = restore(fixture_named(name), config)
    state.reconfigure(config)
    assert sorted(s for _, s in state.sensors) == sorted(fx.SENSORS)
    learned = {s: sensor.scorer.seen for (_, s), sensor in state.sensors.items() if sensor.scorer}
    assert set(learned) == set(fx.SENSORS)
    resumed = feed(state, fx.BEFORE_S, fx.BEFORE_S + fx.AFTER_S, pause_s=0.0)
    resumed += [o for o in state.flush() if isinstance(o, WindowResult)]

    # The same input, start to end, in one run of this release: the windows after the
    # snapshot's are exactly the resumed ones (none lost, none twice).
    whole = ShardState(config)
    everything = feed(whole, 0, fx.BEFORE_S + fx.AFTER_S, pause_s=0.0)
    everything += [o for o in whole.flush() if isinstance(o, WindowResult)]
    before = {key(w) for w in everything if w.stats.end <= fx.T0 + (fx.BEFORE_S - 3) * fx.S}
    after = [key(w) for w in everything if key(w) not in before]
    assert sorted(key(w) for w in resumed) == sorted(after) and after

    # Every model learned on from where it was, ready at once.
    assert all(w.model_ready for w in resumed)
    for (_, s), sensor in state.sensors.items():
        assert sensor.scorer is not None
        n = sum(1 for w in resumed if w.sensor_id == s)
        assert sensor.scorer.seen == learned[s] + n


def test_a_machine_with_its_alert_open_resumes_and_its_alert_goes_on() -> None:
    """v9 brought machines, with alert trackers of their own: the v9 -> v10 step must reach
    them too (it once did not, and the first machine window after the upgrade crashed)."""
    from dataflow.alerts import AlertEvent

    config = fx.machine_config()
    state = restore(fixture_named("snapshot-v9-machine.bin"), config)
    state.reconfigure(config)
    (mw,) = state.machines.values()
    opened = mw.alerts.alert_id
    assert opened is not None and mw.alerts.lasted >= 1
    out = fx.feed_machine(state, fx.MACHINE_WINDOWS, fx.MACHINE_WINDOWS + 40)
    events = [o.alert for o in out if getattr(o, "alert", None) is not None]
    assert all(isinstance(e, AlertEvent) for e in events)
    assert mw.alerts.alert_id in (None, opened)  # the same episode goes on, or ends
    assert state.open_alerts == (1 if mw.alerts.alert_id else 0)


@pytest.mark.parametrize(
    "name",
    [
        "snapshot-v10.bin",
        "snapshot-v10-machine.bin",
        "snapshot-v10-sealed.bin",
        "snapshot-v10-sealed-machine.bin",
    ],
)
def test_v10_models_become_slots_of_their_family_column_scorer(name: str) -> None:
    """v10 -> v11: every restored per-sensor scorer is moved, in its state, into a slot of one
    ColumnScorer per family and settings; none is left behind, none shares a slot."""
    import pickle

    config = shard_config(Settings.from_env(fx.ENV)) if "machine" not in name else None
    config = config or fx.machine_config()
    blob = fixture_named(name)
    sealed = blob.startswith(SEAL)
    assert sealed == ("sealed" in name)
    version, raw = pickle.loads(blob[len(SEAL) + 4 :] if sealed else blob)  # SEAL, CRC-32, body
    assert version == 10
    before = {k: s._scorer for k, s in raw.sensors.items() if s._scorer is not None}
    # v10 knew no columns (a compiled shard's are there, empty, as its __init__ makes them)
    assert before and not getattr(raw, "columns", None)
    state = restore(blob, config)
    state.reconfigure(config)
    assert set(state.sensors) == set(raw.sensors)
    for k, sensor in state.sensors.items():
        assert sensor._scorer is None and sensor.cols is not None
        assert sensor.cols in state.columns[k[0]]
        got, want = sensor.scorer, before[k]
        assert got is not None
        assert (got.seen, got.raw.level, got.raw.spread, got.scatter) == (
            want.seen,
            want.raw.level,
            want.raw.spread,
            want.scatter,
        )
    slots = [(id(s.cols), s.slot) for s in state.sensors.values()]
    assert len(set(slots)) == len(slots)
    if "machine" in name:  # the machine goes on after the upgrade, its channels column-wise
        fx.feed_machine(state, fx.MACHINE_WINDOWS, fx.MACHINE_WINDOWS + 40)
        for k, sensor in state.sensors.items():
            scorer = sensor.scorer
            assert scorer is not None and scorer.seen >= before[k].seen + 39, k


def _restored_widened(
    monkeypatch: pytest.MonkeyPatch, fixture: str
) -> tuple[Any, Any, dict[str, np.ndarray]]:
    """The fixture restored and reconfigured, its temperature ColumnScorer, and the matrices as
    the snapshot held them: each is checked to be kept in place in the widened ones."""
    from dataflow.model.columns import ColumnScorer

    pickled: dict[str, np.ndarray] = {}
    setstate = ColumnScorer.__setstate__

    def keep(self: ColumnScorer, state: dict[str, Any]) -> None:
        pickled.update({dtype: m.copy() for dtype, m in state["mats"].items()})
        setstate(self, state)

    monkeypatch.setattr(ColumnScorer, "__setstate__", keep)
    config = shard_config(Settings.from_env(fx.ENV))
    state = restore(fixture_named(fixture), config)
    state.reconfigure(config)
    (cols,) = state.columns[TEMPERATURE]
    for dtype, m in pickled.items():
        assert (cols.mats[dtype][: len(m), : m.shape[1]] == m).all(), dtype
    return state, cols, pickled


def test_v11_models_get_their_envelopes_tops_from_their_peaks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """v11 -> v12: every envelope's top is its peak (the most a v11 envelope knew), and a v11
    ColumnScorer's matrices, which have no ``top`` columns, are widened as they are read with
    every number they held kept in place."""
    state, cols, pickled = _restored_widened(monkeypatch, "snapshot-v11.bin")
    assert cols.mats["f8"].shape[1] == pickled["f8"].shape[1] + 6  # the tops, then v13's calm
    n = cols.next_slot
    assert (cols.cols["top"][:n] == cols.cols["peak"][:n]).all()
    for sensor in state.sensors.values():
        scorer = sensor.scorer
        assert scorer is not None
        assert all(e.top == e.peak for e in scorer.envelopes)
        assert scorer.envelopes[0].peak > 0.0  # a model that had learned peaks


def test_v12_models_keep_no_peaks_from_before_a_drift_episode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """v12 -> v13: no scorer holds peaks from before a drift episode (``calm``: None, nan in
    the columns), and a v12 ColumnScorer's matrices, which have no ``calm`` columns, are
    widened as they are read with every number they held kept in place."""
    state, cols, pickled = _restored_widened(monkeypatch, "snapshot-v12.bin")
    assert cols.mats["f8"].shape[1] == pickled["f8"].shape[1] + 3
    assert np.isnan(cols.cols["calm"][: cols.next_slot]).all()
    for sensor in state.sensors.values():
        scorer = sensor.scorer
        assert scorer is not None and scorer.calm is None
        assert scorer.envelopes[0].peak > 0.0  # a model that had learned peaks


def test_an_early_v10_machine_gets_the_fields_v10_gained_later() -> None:
    """A machine model of a v10 written before ``related`` and ``counts`` came (by 86ec06c,
    with no new format) gets them as v9 -> v10 gives them, and learns on with them."""
    import pickle

    config = fx.machine_config()
    blob = fixture_named("snapshot-v10-86ec06c-machine.bin")
    version, raw = pickle.loads(blob)
    (before,) = raw.machines.values()
    assert version == 10 and not hasattr(before.model, "counts")
    assert not hasattr(before.model, "related")
    state = restore(blob, config)
    state.reconfigure(config)
    (mw,) = state.machines.values()
    model = mw.model
    assert model.related == model.seen and list(model.counts) == [float(model.seen)] * 2
    model._learn(model.mean.copy(), np.zeros(2), np.zeros(2), model.seen)  # a window at its level
    assert model.related == model.seen and list(model.counts) == [float(model.seen)] * 2


def test_v13_partitions_get_the_lead_their_readings_would_have_left() -> None:
    """v13 -> v14: each partition's lead (``progress.Lead``) is rebuilt from its sensors, as the
    same readings leave it in one run of this release: a fresh one would follow whichever
    sensor is read first after the upgrade, even one whose clock runs ahead."""
    config = shard_config(Settings.from_env(fx.ENV))
    state = restore(fixture(13), config)
    state.reconfigure(config)
    whole = ShardState(config)
    feed(whole, 0, fx.BEFORE_S, pause_s=0.0)
    got, want = state.parts[fx.PART].lead, whole.parts[fx.PART].lead
    assert want.second >= 0  # three sensors: the lead is another's
    assert (got.key, got.first, got.second) == (want.key, want.first, want.second)
