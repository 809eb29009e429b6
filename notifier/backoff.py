"""Exponential backoff with jitter, for retrying Alertmanager and Kafka. Pure.

Doubling waits keep a down Alertmanager from being hammered (and the log from filling) while it
restarts, and bring the notifier back within ``maximum`` seconds of its return. The jitter
spreads the retries of several clients so they do not arrive in step.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Waits of ``initial * factor**n``, at most ``maximum``, each scaled by a random factor in
    ``[1 - jitter, 1]`` (so never above ``maximum``)."""

    initial: float
    maximum: float
    factor: float = 2.0
    jitter: float = 0.2
    rng: Callable[[], float] = field(default=random.random, repr=False)
    attempts: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("need 0 < initial <= maximum")
        if self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError("need factor >= 1 and 0 <= jitter < 1")

    def next_delay(self) -> float:
        """The wait before the next attempt; counts the attempt."""
        base = self.maximum
        # Capped exponent: no float overflow however long the outage lasts.
        if self.attempts < 64:
            base = min(self.maximum, self.initial * self.factor**self.attempts)
        self.attempts += 1
        return base * (1.0 - self.jitter * self.rng())

    def reset(self) -> None:
        """After a success: the next failure waits ``initial`` again."""
        self.attempts = 0
