"""River's ``HalfSpaceTrees``, with the tree structure shared by every sensor of a family.

Why: a fleet has 100k sensors, each with its own model. River's ``HalfSpaceTrees`` builds its
random trees on every model's first ``learn_one`` and keeps them as a tree of node objects per
model, so a fleet's models take a lot of memory, and pickling them all would stall every
Bytewax snapshot. But all sensors of a family share the seed and limits, so their trees have
the same splits; only the masses differ. ``Forest`` takes the splits from a River model built
once, and ``CompactHST`` keeps one sensor's masses in flat lists of ints, learning and scoring
with River's own rules. A test checks that the scores equal River's, bit for bit; sizes and
times are measured in ``bench/RESULTS.md``.

Why it learns only leaf counts: a node's mass is the sum of the leaf counts below it, so the
internal masses are summed once per reference window (``window_size`` learns) instead of being
incremented on every learn. With one feature, a tree's leaf, and a reference window's score, only
depend on which of the forest's sorted split points a value falls between; a learn is then one
``bisect`` and ``n_trees`` increments, and a score one lookup, cached per interval until the next
pivot. Learning the trees was the largest single cost of a 100k-sensor fleet.

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

from bisect import bisect_right
from dataclasses import dataclass, field

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
    # One feature only: the sorted split points, and per interval between them a value inside
    # it and each tree's leaf there (as an index into a model's leaf counts).
    points: tuple[float, ...] = field(default=(), init=False)
    probes: tuple[float, ...] = field(default=(), init=False)
    interval_leaves: tuple[tuple[int, ...], ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        if len(self.features) != 1:
            return
        points = tuple(sorted(set(self.split_at[k] for k in self._internal())))
        # Interval i holds x with points[i-1] <= x < points[i]; points[i-1] itself is inside.
        probes = (-float("inf"), *points)
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "probes", probes)
        object.__setattr__(self, "interval_leaves", tuple(self.leaves_of((p,)) for p in probes))

    def _internal(self) -> list[int]:
        inner = 2**self.height - 1
        return [t * self.nodes + i for t in range(self.n_trees) for i in range(inner)]

    @property
    def nodes(self) -> int:
        nodes: int = 2 ** (self.height + 1) - 1  # typeshed: int ** int is Any (2 ** -1 is a float)
        return nodes

    @property
    def max_score(self) -> int:
        return self.n_trees * self.window_size * self.nodes

    def leaves_of(self, x: tuple[float, ...]) -> tuple[int, ...]:
        """Per tree, the leaf ``x`` falls in: tree t, leaf j -> t * 2**height + j."""
        feat, at = self.split_feature, self.split_at
        nodes, height, width = self.nodes, self.height, 2**self.height
        out = []
        for t in range(self.n_trees):
            base, i = t * nodes, 0
            for _ in range(height):
                k = base + i
                i = 2 * i + 1 if x[feat[k]] < at[k] else 2 * i + 2
            out.append(t * width + i - (width - 1))
        return tuple(out)

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
        return cls(features, probe.n_trees, probe.height, probe.window_size, tuple(feat), tuple(at))


class CompactHST:
    """One sensor's HalfSpaceTrees masses; the same learn / score rules as River 0.26.

    ``counts``: leaf counts of the window being learned. ``r_mass``: every node's mass in the
    reference window (empty before the first pivot). ``scores``: reference-window scores per
    interval of a one-feature forest, filled as values land in them.
    """

    __slots__ = ("counter", "counts", "forest", "r_mass", "scores")

    def __init__(self, forest: Forest) -> None:
        self.forest = forest
        self.counts = [0] * (forest.n_trees << forest.height)
        self.r_mass: list[int] = []
        self.scores: list[float | None] = []
        self.counter = 0

    def learn_one(self, x: tuple[float, ...]) -> None:
        f = self.forest
        counts = self.counts
        leaves = f.interval_leaves[bisect_right(f.points, x[0])] if f.points else f.leaves_of(x)
        for k in leaves:
            counts[k] += 1
        self.counter += 1
        if self.counter == f.window_size:
            # River's pivot: the latest window becomes the reference.
            self._pivot()

    def _pivot(self) -> None:
        f = self.forest
        nodes, width = f.nodes, 1 << f.height
        mass = [0] * (f.n_trees * nodes)
        for t in range(f.n_trees):
            base = t * nodes
            mass[base + width - 1 : base + nodes] = self.counts[t * width : (t + 1) * width]
            for i in range(width - 2, -1, -1):
                mass[base + i] = mass[base + 2 * i + 1] + mass[base + 2 * i + 2]
        self.r_mass = mass
        self.counts = [0] * len(self.counts)
        self.scores = [None] * len(f.probes)
        self.counter = 0

    def score_one(self, x: tuple[float, ...]) -> float:
        if not self.r_mass:
            return 0.0
        f = self.forest
        if not f.points:
            return self._score(x)
        i = bisect_right(f.points, x[0])
        score = self.scores[i]
        if score is None:
            score = self.scores[i] = self._score((f.probes[i],))
        return score

    def _score(self, x: tuple[float, ...]) -> float:
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
