"""Snapshots of the previous format, brought up to this one. Pure.

An upgrade must not throw away what every sensor's model has learned: a refused snapshot means
deleting the recovery store, replaying the retained input from its start and a second warm-up
for the whole fleet. So each format change that only *adds* state comes with a step here that
fills the new state in as a fresh sensor would have it, keeping everything else. Only the
previous format is migrated; older ones are refused (``dataflow.flow.restore``), so each step is
written once, against the code of the release before it.

v9 -> v10 (machine families, ``dataflow.machines``):

- ``ShardState.machines`` and ``_touched``: empty (no family of a v9 flow had machines);
- ``_Sensor.machine``: None (a channel finds its machine at its next window).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _fill(obj: Any, name: str, value: object) -> None:
    """Set a slot the pickle did not carry; leave one it did."""
    try:
        getattr(obj, name)
    except AttributeError:
        setattr(obj, name, value)


def _v9_to_v10(state: Any) -> Any:
    if not hasattr(state, "machines"):
        state.machines = {}
    if not hasattr(state, "_touched"):
        state._touched = set()
    for sensor in state.sensors.values():
        _fill(sensor, "machine", None)
    return state


# From-version -> the step that makes it the next version.
STEPS: dict[int, Callable[[Any], Any]] = {9: _v9_to_v10}


def migrate(version: int, state: Any, to: int) -> Any | None:
    """``state`` of format ``version`` as format ``to``; None where no step leads there."""
    while version < to:
        step = STEPS.get(version)
        if step is None:
            return None
        state = step(state)
        version += 1
    return state if version == to else None
