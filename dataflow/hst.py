"""River's ``HalfSpaceTrees``, with the tree structure shared by every sensor of a family.

Why: a fleet has 100k sensors, each with its own model. River's ``HalfSpaceTrees`` builds its
random trees on the first ``learn_one`` (~300 µs), keeps ~21 KB of node objects per model at
(5 trees, height 3), and pickles 100k of them in ~40 s, which would stall every Bytewax snapshot.
But all sensors of a family share the seed and limits, so their trees have the same splits; only
the masses differ. ``Forest`` takes the splits from a River model built once, and
``CompactHST`` keeps one sensor's masses in two flat lists (~1 KB), learning and scoring with
River's own rules. A test checks that the scores equal River's, bit for bit.

>>> from river import anomaly
>>> forest = Forest.from_river(anomaly.HalfSpaceTrees(
...     n_trees=3, height=2, window_size=4, limits={"mean": (0.0, 10.0)}, seed=1))
>>> model = CompactHST(forest)
>>> for v in [5.0, 5.1, 4.9, 5.0, 5.2]:
...     model.learn_one((v,))
>>> model.score_one((5.0,)) < model.score_one((9.9,))
True
"""

from __future__ import annotations

from dataclasses import dataclass

from river import anomaly
from river.tree.padded import PaddedBranch


@dataclass(frozen=True)
class Forest:
    """The splits of ``n_trees`` complete trees in heap order (children of i: 2i+1, 2i+2)."""

    features: tuple[str, ...]  # names; a model's input is a tuple in this order
    n_trees: int
    height: int
    window_size: int
    split_feature: tuple[int, ...]  # per node of every tree, flattened: tree t, node i -> t*N + i
    split_at: tuple[float, ...]

    @property
    def nodes(self) -> int:
        return 2 ** (self.height + 1) - 1

    @property
    def max_score(self) -> int:
        return self.n_trees * self.window_size * self.nodes

    @classmethod
    def from_river(cls, model: anomaly.HalfSpaceTrees) -> Forest:
        """Let River build its trees (its rng, its padding), then keep only the splits."""
        features = tuple(sorted(model.limits))
        probe = model.clone()
        probe.learn_one({f: 0.0 for f in features})  # River builds the trees on first learn
        nodes = 2 ** (probe.height + 1) - 1
        feat = [0] * (probe.n_trees * nodes)
        at = [0.0] * (probe.n_trees * nodes)
        for t, root in enumerate(probe.trees):
            stack = [(root, 0)]
            while stack:
                node, i = stack.pop()
                if isinstance(node, PaddedBranch):
                    feat[t * nodes + i] = features.index(node.feature)
                    at[t * nodes + i] = node.threshold
                    stack.append((node.children[0], 2 * i + 1))
                    stack.append((node.children[1], 2 * i + 2))
        return cls(features, probe.n_trees, probe.height, probe.window_size, tuple(feat),
                   tuple(at))


class CompactHST:
    """One sensor's HalfSpaceTrees masses; the same learn / score rules as River 0.26."""

    __slots__ = ("counter", "first_window", "forest", "l_mass", "r_mass")

    def __init__(self, forest: Forest) -> None:
        self.forest = forest
        size = forest.n_trees * forest.nodes
        self.l_mass = [0] * size
        self.r_mass = [0] * size
        self.counter = 0
        self.first_window = True

    def learn_one(self, x: tuple[float, ...]) -> None:
        f = self.forest
        feat, at, mass = f.split_feature, f.split_at, self.l_mass
        nodes, height = f.nodes, f.height
        for base in range(0, f.n_trees * nodes, nodes):
            i = 0
            for _ in range(height):
                k = base + i
                mass[k] += 1
                i = 2 * i + 1 if x[feat[k]] < at[k] else 2 * i + 2
            mass[base + i] += 1
        self.counter += 1
        if self.counter == f.window_size:
            # River's pivot: the latest window becomes the reference.
            self.r_mass = self.l_mass
            self.l_mass = [0] * len(mass)
            self.first_window = False
            self.counter = 0

    def score_one(self, x: tuple[float, ...]) -> float:
        if self.first_window:
            return 0.0
        f = self.forest
        feat, at, mass = f.split_feature, f.split_at, self.r_mass
        nodes, height = f.nodes, f.height
        size_limit = 0.1 * f.window_size
        total = 0.0
        for base in range(0, f.n_trees * nodes, nodes):
            i = 0
            depth_pow = 1
            for _ in range(height):
                k = base + i
                r = mass[k]
                total += r * depth_pow
                if r < size_limit:
                    break
                i = 2 * i + 1 if x[feat[k]] < at[k] else 2 * i + 2
                depth_pow <<= 1
            else:
                total += mass[base + i] * depth_pow
        return 1 - total / f.max_score
