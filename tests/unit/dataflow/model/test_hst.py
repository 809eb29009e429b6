"""The compact, shared-structure HalfSpaceTrees must score exactly as River's own."""

import pickle
import random

import pytest
from river import anomaly

from dataflow.model.hst import CompactHST, Forest


@pytest.mark.parametrize(
    ("n_trees", "height", "window", "seed"), [(5, 3, 50, 42), (10, 8, 250, 1), (3, 1, 7, 9)]
)
def test_scores_equal_rivers(n_trees: int, height: int, window: int, seed: int) -> None:
    river = anomaly.HalfSpaceTrees(
        n_trees=n_trees, height=height, window_size=window, limits={"mean": (0.0, 120.0)}, seed=seed
    )
    ours = CompactHST(Forest.from_river(river.clone()))
    rng = random.Random(seed)
    for i in range(3 * window + 17):
        v = rng.gauss(65, 4) if i % 37 else rng.uniform(0, 120)
        assert ours.score_one((v,)) == pytest.approx(river.score_one({"mean": v}), abs=1e-12)
        river.learn_one({"mean": v})
        ours.learn_one((v,))


def test_scores_equal_rivers_on_split_points_and_outside_the_range() -> None:
    """Values exactly on a split (River sends them right) and beyond the limits."""
    river = anomaly.HalfSpaceTrees(
        n_trees=5, height=3, window_size=20, limits={"mean": (0.0, 120.0)}, seed=42
    )
    ours = CompactHST(Forest.from_river(river.clone()))
    rng = random.Random(5)
    values = [*ours.forest.points, -1e9, 1e9, 0.0, 120.0]
    for i in range(200):
        v = rng.choice(values) if i % 3 else rng.uniform(-10, 130)
        assert ours.score_one((v,)) == pytest.approx(river.score_one({"mean": v}), abs=1e-12)
        river.learn_one({"mean": v})
        ours.learn_one((v,))


def test_scores_equal_rivers_with_two_features() -> None:
    river = anomaly.HalfSpaceTrees(
        n_trees=5, height=4, window_size=30, limits={"a": (0.0, 10.0), "b": (-1.0, 1.0)}, seed=11
    )
    ours = CompactHST(Forest.from_river(river.clone()))
    assert not ours.forest.points  # the general path, not the one-feature intervals
    rng = random.Random(11)
    for _ in range(150):
        a, b = rng.gauss(5, 2), rng.uniform(-1.2, 1.2)
        assert ours.score_one((a, b)) == pytest.approx(river.score_one({"a": a, "b": b}), abs=1e-12)
        river.learn_one({"a": a, "b": b})
        ours.learn_one((a, b))


def test_sensors_share_splits_but_not_masses() -> None:
    forest = Forest.from_river(
        anomaly.HalfSpaceTrees(
            n_trees=5, height=3, window_size=4, limits={"mean": (0.0, 1.0)}, seed=3
        )
    )
    a, b = CompactHST(forest), CompactHST(forest)
    for _ in range(4):
        a.learn_one((0.1,))
    assert a.r_mass and b.r_mass == []  # b learned nothing: no reference window of its own


def test_a_sensor_model_is_small() -> None:
    forest = Forest.from_river(
        anomaly.HalfSpaceTrees(
            n_trees=5, height=3, window_size=50, limits={"mean": (0.0, 120.0)}, seed=42
        )
    )
    models = [CompactHST(forest) for _ in range(100)]
    for m in models:
        for v in range(60):
            m.learn_one((float(v),))
    per_model = len(pickle.dumps(models)) / 100
    assert per_model < 1500, per_model  # River's own model pickles to ~6 KB
