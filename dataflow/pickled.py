"""A class's pickled state spelled out by attribute names. Pure.

Python pickles a slotted class by reading its ``__slots__`` (``(None, {slot: value})``) and
any other by its ``__dict__``. A snapshot's format should not hang on how a class is built: a
class compiled to a native one (mypyc, bench/RESULTS.md) has neither, so the shard's classes
name their state once and pickle it through these two functions, in the same form Python's
default gives (``tests/unit/dataflow/test_pickled.py`` holds them to it).
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

State = tuple[None, dict[str, Any]]


def state_of(obj: object, names: tuple[str, ...]) -> State:
    """``obj``'s attributes named in ``names``, as Python pickles a slotted class: unset ones
    (a snapshot of an older format, not yet upgraded) are left out."""
    return None, {name: getattr(obj, name) for name in names if hasattr(obj, name)}


def restore(obj: object, state: State | dict[str, Any]) -> None:
    """Set what a pickle holds, in either form Python's default writes (a slotted class's
    ``(None, slots)`` or a plain class's ``__dict__``). ``object.__setattr__``, as a frozen
    dataclass's ``__init__`` does; a property (an older snapshot's name) still takes its value
    through its setter."""
    items = state if isinstance(state, dict) else state[1]
    for name, value in items.items():
        object.__setattr__(obj, name, value)


def fields_of(obj: object) -> dict[str, Any]:
    """A dataclass's fields, those ``__init__`` does not take included, in their order: its
    ``__dict__`` as Python pickles it."""
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}  # type: ignore[attr-defined]


def restore_fields(obj: object, state: dict[str, Any]) -> None:
    """A dataclass's ``__dict__`` as pickled, each field it lacks (an older snapshot's) at its
    default, as Python reads it from the class then; a native class (mypyc) has no such
    fallback."""
    defaults = {
        f.name: f.default
        for f in fields(obj)  # type: ignore[arg-type]
        if f.default is not MISSING and f.name not in state
    }
    restore(obj, {**defaults, **state})
