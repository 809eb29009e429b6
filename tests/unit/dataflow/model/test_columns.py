"""The column-wise scorer decides exactly as the per-window reference, on random fleets."""

from __future__ import annotations

import math
import pickle
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from dataflow.model.columns import Batch, ColumnScorer
from dataflow.model.scoring import ModelParams, Score, SensorScorer

HALF_HOUR = 1800 * 10**9
TWENTY_MINUTES = 1200 * 10**9  # a day is 72 windows, some starting mid-slot
THREE_HOURS = 6 * HALF_HOUR  # a week is 56 windows: the weekly baseline engages too
DAY = 86_400 * 10**9
BASE = ModelParams(
    limits=(0.0, 200.0),
    window_ns=TWENTY_MINUTES,
    window_size=16,
    warmup=16,
    level_windows=60,
    novelty_half_life=150.0,
)
WEEKLY = ModelParams(limits=(0.0, 200.0), window_ns=THREE_HOURS, window_size=8, warmup=4)


@dataclass
class Sensor:
    """One simulated sensor: its kind, the next window index, and its own random stream."""

    kind: str
    rng: random.Random
    window_ns: int
    index: int = 0
    base: float = field(default=0.0)
    t0: int = 0

    def next_window(self) -> tuple[int, float, float]:
        i = self.index
        self.index += 1
        rng = self.rng
        t = self.t0 + i * self.window_ns
        day = math.sin(2 * math.pi * (t % DAY) / DAY)
        weekend = (t // DAY) % 7 in (2, 3)  # the epoch's Saturday and Sunday
        if self.kind in ("daily", "weekly"):
            week = 0.0 if weekend or self.kind == "daily" else 15.0
            mean = self.base + 20 * day + week + rng.gauss(0, 1)
            if t > 3 * DAY and rng.random() < 0.05:  # a flattened cycle, a seasonal anomaly
                mean = self.base + rng.gauss(0, 1)
        elif self.kind == "flat":
            mean = self.base if rng.random() < 0.9 else self.base + rng.choice([0.0, 1e-12, 1.0])
        elif self.kind == "steps":
            mean = self.base + (25.0 if (i // 40) % 2 else 0.0) + rng.gauss(0, 0.5)
        else:
            mean = self.base + rng.gauss(0, 2)
        u = rng.random()
        if u < 0.03:
            mean += rng.choice([30.0, -30.0, 80.0])  # spikes
        elif u < 0.045:
            mean += rng.choice([1e6, -1e6]) * 3.0  # absurd: about a million spreads off
        elif u < 0.05:
            mean = rng.choice([math.nan, math.inf, -math.inf])
        scatter = 0.0 if self.kind == "flat" or rng.random() < 0.3 else rng.uniform(0.0, 2.0)
        if rng.random() < 0.001:  # a broken readings' range: the running scatter is lost
            scatter = rng.choice([math.nan, math.inf])
        return t, mean, scatter


def new_sensor(rng: random.Random, window_ns: int) -> Sensor:
    kind = rng.choice(["noise", "daily", "weekly", "flat", "steps"])
    t0 = rng.randrange(10**5) * window_ns
    return Sensor(
        kind, random.Random(rng.random()), window_ns, base=rng.uniform(20.0, 150.0), t0=t0
    )


def same(a: float | None, b: float) -> bool:
    if a is None:
        return math.isnan(b)
    return a == b or (math.isnan(a) and math.isnan(b))


def all_same(a: Iterable[Any], b: Iterable[Any]) -> bool:
    """Equal number by number, nan equal to nan (a lost scatter stays nan in both)."""
    xs, ys = list(a), list(b)
    return len(xs) == len(ys) and all(same(float(x), float(y)) for x, y in zip(xs, ys, strict=True))


def same_evidence(a: object, b: object) -> bool:
    assert isinstance(a, tuple) and isinstance(b, tuple)
    return len(a) == len(b) and all(
        type(x) is type(y) and same(x, y) if isinstance(x, float) else x == y
        for x, y in zip(a, b, strict=True)
    )


def check(ref: list[Score], got: Batch, homes: list[tuple[float, float]] | None = None) -> None:
    for i, home in enumerate(homes or ()):
        # Where the sensor was right after this row's window, not after the batch.
        assert all_same(home, (got.level[i], got.reach[i])), (i, home)
    for i, want in enumerate(ref):
        assert same(want.score, float(got.score[i])), (i, want, got.score[i])
        assert want.ml_anomaly == bool(got.ml[i]), (i, want)
        assert want.model_ready == bool(got.ready[i]), (i, want)
        assert same(want.cut, float(got.cut[i])), (i, want)
        if want.why is None:
            assert i not in got.why, (i, want)
        else:
            assert same_evidence(want.why, got.why[i]), (i, want.why, got.why.get(i))


@dataclass
class Fleet:
    """The same random fleet scored by both scorers, slot by slot."""

    params: ModelParams
    seed: int
    cols: ColumnScorer = field(init=False)
    refs: dict[int, SensorScorer] = field(default_factory=dict)
    sensors: dict[int, Sensor] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.cols = ColumnScorer(self.params, capacity=8)  # small: it must grow

    def add(self) -> None:
        slot = self.cols.alloc()
        if slot in self.refs:
            self.stats["reused"] = self.stats.get("reused", 0) + 1
        self.refs[slot] = SensorScorer(self.params)
        self.sensors[slot] = new_sensor(self.rng, self.params.window_ns)

    def forget(self, slot: int) -> None:
        self.cols.free(slot)
        del self.sensors[slot]

    def batch(self, with_cols: bool = True, backlog: int = 0) -> None:
        """One batch: two thirds of the sensors with 1 to 4 windows each, and ``backlog`` of
        them with a long run (a sensor read back after a gap)."""
        rng = self.rng
        live = sorted(self.sensors)
        chosen = rng.sample(live, k=max(1, len(live) * 2 // 3))
        order = [s for s in chosen for _ in range(rng.randint(1, 4))]
        order += [s for s in rng.sample(live, k=backlog) for _ in range(rng.randint(10, 60))]
        rng.shuffle(order)  # sensors interleaved; each sensor's windows stay in time order
        rows = [(slot, *self.sensors[slot].next_window()) for slot in order]
        ref, homes = [], []
        for slot, t, m, sc in rows:
            ref.append(self.refs[slot].score_learn(t, m, sc))
            homes.append(self.refs[slot].home())
        st = self.stats
        st["rows"] = st.get("rows", 0) + len(rows)
        st["ml"] = st.get("ml", 0) + sum(r.ml_anomaly for r in ref)
        st["seasonal"] = st.get("seasonal", 0) + sum(bool(r.why and r.why.seasonal) for r in ref)
        if not with_cols:
            return
        slots, starts, means, scatters = zip(*rows, strict=True)
        check(ref, self.cols.score_batch(slots, starts, means, scatters), homes)

    def run(self, batches: int, backlog: int = 0, homes: bool = False) -> None:
        """``batches`` batches, a twentieth of the sensors replaced after every tenth (and, with
        ``homes``, every sensor's home compared with the reference's then)."""
        for b in range(batches):
            self.batch(backlog=backlog)
            if b % 10 == 9:
                self.churn()
                if homes:
                    self.homes()

    def churn(self) -> None:
        rng = self.rng
        live = np.asarray(sorted(self.sensors))
        daily, weekly = self.cols.cols["pool0"][live] >= 0, self.cols.cols["pool1"][live] >= 0
        self.stats["young"] = self.stats.get("young", 0) + int((daily & ~weekly).sum())
        self.stats["weekly"] = self.stats.get("weekly", 0) + int(weekly.sum())
        for slot in rng.sample(sorted(self.sensors), k=len(self.sensors) // 20):
            self.forget(slot)
        for _ in range(len(self.refs) - len(self.sensors)):
            self.add()

    def homes(self) -> None:
        """Where each sensor is, and its seasonal baselines, as the reference has them."""
        cols = self.cols
        for slot in self.sensors:
            ref = self.refs[slot]
            assert all_same(cols.home(slot), ref.home()), slot
            c = {name: arr[slot] for name, arr in cols.cols.items()}
            want = (ref.seen, ref.absurd, ref.scatter, ref.change.scale, ref.change.seen)
            assert all_same((c["seen"], c["absurd"], c["scatter"], c["c_scale"], c["c_seen"]), want)
            res = ref.residual
            got = (c["r_level"], c["r_spread"], c["r_seen"])
            assert all_same(got, (res.level, res.spread, res.seen)), slot
            assert all_same(c["peak"], [e.peak for e in ref.envelopes]), slot
            assert all_same(c["top"], [e.top for e in ref.envelopes]), slot
            assert all_same(c["calm"], ref.calm or (math.nan,) * 3), slot
            assert all_same((c["up"], c["down"]), (ref.drift.up, ref.drift.down)), slot
            baselines = () if ref.season is None else ref.season.baselines
            for k, pool in enumerate(cols.pools):
                row = int(cols.cols[f"pool{k}"][slot])
                if k >= len(baselines):
                    assert row < 0, slot
                    continue
                b, a = baselines[k], pool.a
                assert row >= 0 or b.first < 0, slot
                if row >= 0:
                    assert list(a["means"][row]) == list(b.means), slot
                    assert list(a["counts"][row]) == list(b.counts), slot
                    assert (a["eres"][row], a["eraw"][row]) == (b.eres, b.eraw), slot


@pytest.mark.parametrize(
    "params",
    [
        BASE,
        WEEKLY,
        BASE.__class__(**{**BASE.__dict__, "seasonality": False, "drift_limit": 6.0}),
    ],
    ids=["daily", "weekly", "no-seasons"],
)
def test_column_scorer_decides_as_the_reference(
    params: ModelParams, monkeypatch: pytest.MonkeyPatch
) -> None:
    anchored = []  # the reference's accepted changes of level (the steps sensors')
    anchor = SensorScorer._anchor

    def counted(self: SensorScorer, moved: float, floor: float) -> None:
        anchored.append(moved)
        anchor(self, moved, floor)

    monkeypatch.setattr(SensorScorer, "_anchor", counted)
    fleet = Fleet(params, seed=hash(params) % 1000)
    for _ in range(200):
        fleet.add()
    fleet.run(90, homes=True)
    fleet.homes()
    st = fleet.stats
    # The streams reached what the comparison is for (not expected figures: coverage).
    assert st["ml"] > 20 and st["reused"] > 10, st
    assert params.seasonality or len(anchored) > 5, len(anchored)  # the short drift limit's
    if params.seasonality:
        assert st["seasonal"] > 0 and st["young"] > 0 and st["weekly"] > 0, st


def test_a_pickled_column_scorer_is_arrays_and_continues_identically() -> None:
    fleet = Fleet(BASE, seed=5)
    for _ in range(150):
        fleet.add()
    fleet.run(50)
    blob = pickle.dumps(fleet.cols, protocol=pickle.HIGHEST_PROTOCOL)
    assert b"SensorScorer" not in blob and b"Envelope" not in blob
    state = fleet.cols.__getstate__()
    assert all(isinstance(a, np.ndarray) for a in state["mats"].values())
    assert all(isinstance(a, np.ndarray) for p in state["pools"] for a in p.a.values())
    fleet.cols = pickle.loads(blob)
    fleet.run(50)
    fleet.homes()
    assert fleet.stats["ml"] > 0 and fleet.stats["seasonal"] > 0, fleet.stats


def test_scorers_converted_from_an_old_snapshot_continue_identically() -> None:
    fleet = Fleet(BASE, seed=11)
    for _ in range(150):
        fleet.add()
    for _ in range(60):  # the reference alone, as a fleet before the change
        fleet.batch(with_cols=False)
    slots = sorted(fleet.sensors)
    old = [fleet.refs[s] for s in slots]
    fleet.cols = ColumnScorer.from_scorers(pickle.loads(pickle.dumps(old)))
    fleet.refs = dict(enumerate(old))
    fleet.sensors = {i: fleet.sensors[s] for i, s in enumerate(slots)}
    fleet.homes()
    before = fleet.stats["ml"]
    fleet.run(40)
    fleet.homes()
    assert fleet.stats["ml"] > before and fleet.stats["seasonal"] > 0, fleet.stats


def test_features_it_cannot_score_are_refused() -> None:
    with pytest.raises(ValueError):
        ColumnScorer(ModelParams(limits=(0.0, 1.0), hst_novelty=True))
    with pytest.raises(ValueError):
        ColumnScorer(ModelParams(limits=(0.0, 1.0), pattern=True))
    cols = ColumnScorer(BASE)
    slot = cols.alloc()
    cols.free(slot)
    with pytest.raises(ValueError):
        cols.score_batch([slot], [0], [1.0])


@pytest.mark.parametrize("params", [BASE, WEEKLY], ids=["daily", "weekly"])
def test_long_runs_of_one_sensor_decide_as_the_reference(params: ModelParams) -> None:
    """A sensor's backlog in one batch, its windows among other sensors': the reference's
    decisions, window after window of the same slot."""
    fleet = Fleet(params, seed=23)
    for _ in range(60):
        fleet.add()
    fleet.run(40, backlog=3, homes=True)
    fleet.homes()
    assert fleet.stats["ml"] > 0 and fleet.stats["seasonal"] > 0, fleet.stats


def test_a_slot_as_a_per_window_scorer_and_back_is_the_same_state() -> None:
    fleet = Fleet(BASE, seed=29)
    for _ in range(80):
        fleet.add()
    for _ in range(40):
        fleet.batch()
    cols = fleet.cols
    before = {name: m.copy() for name, m in cols.mats.items()}
    pools = [{name: a.copy() for name, a in p.a.items()} for p in cols.pools]
    for slot in fleet.sensors:
        cols._load(slot, cols.to_scorer(slot))
    for name, m in cols.mats.items():
        assert np.array_equal(m, before[name], equal_nan=True), name
    for p, old in zip(cols.pools, pools, strict=True):
        for name, a in p.a.items():
            assert np.array_equal(a, old[name], equal_nan=True), name


def test_retuned_settings_apply_as_the_reference_retunes_them() -> None:
    """A restore with new settings: those a model can take apply to every slot as
    ``SensorScorer.retune`` applies them; a structural one is refused and changes nothing."""
    from dataclasses import replace

    fleet = Fleet(BASE, seed=17)
    for _ in range(120):
        fleet.add()
    for _ in range(30):
        fleet.batch()
    assert not fleet.cols.retune(replace(BASE, n_trees=BASE.n_trees + 1))
    assert fleet.cols.params == BASE
    new = replace(BASE, warmup=3, novelty_floor=4.0, novelty_margin=1.1, drift_limit=8.0)
    assert fleet.cols.retune(new)
    assert all(ref.retune(new) for ref in fleet.refs.values())
    fleet.params = new
    before = fleet.stats["ml"]
    fleet.run(30)
    fleet.homes()
    assert fleet.stats["ml"] > before, fleet.stats


def test_a_slot_taken_out_pickled_and_put_back_continues_identically() -> None:
    """The shard keeps a slot as a per-window scorer across calls where its batches are small,
    and a snapshot may hold it so: put back after a pickle, it scores on as the reference."""
    fleet = Fleet(BASE, seed=23)
    for _ in range(60):
        fleet.add()
    for _ in range(40):  # past the trees' first reference window
        fleet.batch()
    cols = fleet.cols
    assert cols.cols["hst_ready"][sorted(fleet.sensors)].all()
    for slot in sorted(fleet.sensors)[:20]:
        out = pickle.loads(pickle.dumps(cols.to_scorer(slot)))
        sensor, ref = fleet.sensors[slot], fleet.refs[slot]
        for _ in range(3):
            t, m, sc = sensor.next_window()
            want, got = ref.score_learn(t, m, sc), out.score_learn(t, m, sc)
            assert all_same(want[:3], got[:3]) and (want.why is None) == (got.why is None)
            assert want.why is None or same_evidence(want.why, got.why)
        cols._load(slot, out)
    for _ in range(20):
        fleet.batch()
    fleet.homes()


def test_a_feature_that_is_nan_leaves_the_peaks_as_the_reference_does() -> None:
    """Means beyond half the float range (outside every family's valid range, but floats the
    scorers take) make a step of inf, then a step scale of inf and a step z of nan: the
    reference's envelope learns nothing from a nan (``x > PEAK_MOST`` is false, so is every
    comparison after), and the columns must not clip it to ``PEAK_MOST`` instead."""
    params = BASE.__class__(**{**BASE.__dict__, "seasonality": False})
    rng = random.Random(3)
    means = [rng.gauss(0.0, 1.0) for _ in range(45)]
    means += [1.7e308, -1e300, -1.7e308, -1.7e308, -1.7e308, 1.7e308, -1.7e308, 1e300]
    means += [rng.gauss(0.0, 1.0) for _ in range(10)]
    sensor, cols = SensorScorer(params), ColumnScorer(params)
    slot = cols.alloc()
    for i, mean in enumerate(means):
        t = i * params.window_ns
        check([sensor.score_learn(t, mean)], cols.score_batch([slot], [t], [mean]))
        assert all_same(cols.cols["peak"][slot], [e.peak for e in sensor.envelopes]), i
