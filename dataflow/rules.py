"""The user's own rules on a window mean: direction, level, duration, severity.

Pure. A rule fires for a window when the window mean is at or above (``above``) or at or below
(``below``) its level for ``for_windows`` consecutive windows of the sensor, this one included;
it keeps firing while the condition holds. A one-window rule needs no state; longer ones keep
one streak counter each in the sensor's state (``RuleSet.streaks``).

>>> hot = Rule("hot", "above", 90.0, for_windows=2, severity="critical")
>>> rules = RuleSet((hot,))
>>> streaks = rules.streaks()
>>> [rules.fired(m, streaks) for m in (95.0, 96.0, 80.0, 91.0)]
[(), ('hot',), (), ()]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SEVERITIES = ("info", "warning", "critical")  # lowest first
RANK = {name: i for i, name in enumerate(SEVERITIES)}
Direction = Literal["above", "below"]


@dataclass(frozen=True)
class Rule:
    """One rule; ``direction`` is ``above`` or ``below``, both inclusive of ``level``."""

    name: str
    direction: Direction
    level: float
    for_windows: int = 1
    severity: str = "warning"

    def holds(self, mean: float) -> bool:
        return mean >= self.level if self.direction == "above" else mean <= self.level


@dataclass(frozen=True)
class RuleSet:
    """The rules of one sensor (its family's, with its override applied), evaluated together.

    Shared by every sensor with the same rules; a sensor keeps only its streaks.
    """

    rules: tuple[Rule, ...] = ()
    ml_severity: str = "warning"  # severity of the model's reason, ``ml``
    # Precomputed for the per-window path: (level, above?, for_windows, name) per rule.
    _plan: tuple[tuple[float, bool, int, str], ...] = field(init=False, repr=False, compare=False)
    severity_of: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plan = tuple((r.level, r.direction == "above", r.for_windows, r.name) for r in self.rules)
        object.__setattr__(self, "_plan", plan)
        object.__setattr__(
            self,
            "severity_of",
            {"ml": self.ml_severity, **{r.name: r.severity for r in self.rules}},
        )

    def __bool__(self) -> bool:
        return bool(self.rules)

    def severity(self, reasons: list[str]) -> str | None:
        """The highest severity of these reasons (rule names and ``ml``), None for none."""
        of = self.severity_of
        return highest([of[r] for r in reasons])

    def streaks(self) -> list[int] | None:
        """A sensor's fresh streak counters; None when every rule fires on one window."""
        return [0] * len(self.rules) if any(r.for_windows > 1 for r in self.rules) else None

    def fired(self, mean: float, streaks: list[int] | None) -> tuple[str, ...]:
        """Names of the rules that fire on this window mean, in declaration order.

        ``streaks`` (from ``streaks()``) is updated in place; None for one-window rules only.
        """
        if streaks is None:
            return tuple(
                name
                for level, above, _, name in self._plan
                if (mean >= level if above else mean <= level)
            )
        out = []
        for i, (level, above, need, name) in enumerate(self._plan):
            if mean >= level if above else mean <= level:
                streaks[i] += 1
                if streaks[i] >= need:
                    out.append(name)
            else:
                streaks[i] = 0
        return tuple(out)

    @property
    def first_level(self) -> float | None:
        """The first rule's level: the ``threshold`` field that consumers of the tutorial read."""
        return self.rules[0].level if self.rules else None


def highest(severities: list[str] | tuple[str, ...]) -> str | None:
    """The most severe of these severity names, or None for none."""
    return max(severities, key=RANK.__getitem__) if severities else None
