"""The shard's classes spell out what a snapshot keeps of them (``dataflow.pickled``): in the very
form Python's default pickling gives, so no snapshot changes, and every attribute is in it."""

from __future__ import annotations

import pickle

from dataflow.pickled import restore, state_of
from dataflow.shard import FamilySetup, ShardConfig, ShardCounts, ShardState, _Part, _Sensor
from dataflow.windows import SensorWindows
from tests.on_source import on_source
from tests.unit.dataflow.test_shard_batch import config, workload


def mid_stream() -> ShardState:
    """A shard half way through a seeded workload: open windows, queued closes, open alerts."""
    state = ShardState(config())
    for wall, readings in workload(3)[:30]:
        state.ingest(readings, wall)
        state.expire(wall + 0.5)
    return state


def _default(obj: object) -> object:
    """Python's default pickling of ``obj``, less what the shard's lane keeps apart (never
    pickled: a snapshot writes each sensor as the object path keeps it, ``dataflow.lane``)."""
    default = object.__getstate__(obj)
    if type(obj) is ShardState:
        assert isinstance(default, dict)
        lane = ("_lane", "_blocks", "_rowed", "_lane_config", "_lane_fits")
        kept = {k: v for k, v in default.items() if k not in lane}
        kept["sensors"] = kept.pop("_sensors")
        return kept
    if type(obj) is _Sensor:
        assert isinstance(default, tuple)
        return (None, {k: v for k, v in default[1].items() if k not in ("lane", "rowed")})
    return default


# Python's default pickling is what the source is held to (a native class has none).
@on_source
def test_each_class_keeps_what_python_s_default_pickling_keeps() -> None:
    state = mid_stream()
    assert state.open_alerts > 0 and any(len(p.closes) for p in state.parts.values())
    objects: list[object] = [state, state.counts, state.config, *state.config.families.values()]
    for sensor in state.sensors.values():
        objects += [sensor, sensor.windows]
    assert any(s.windows.open for s in state.sensors.values())
    for obj in objects:
        assert obj.__getstate__() == _default(obj), type(obj).__name__
    for part in state.parts.values():  # its closes as the list a snapshot of v14 holds
        default = object.__getstate__(part)
        assert isinstance(default, tuple)
        assert part.__getstate__() == (None, {**default[1], "closes": part.closes.entries()})
    kinds = {ShardState, ShardCounts, _Sensor, SensorWindows, ShardConfig, FamilySetup}
    assert {type(o) for o in objects} == kinds


def test_a_restored_shard_s_snapshot_is_the_one_it_came_from() -> None:
    """Every attribute comes back. (The first snapshot of a live shard differs in bytes from a
    restored one's: what the live objects share, and the closes rebuilt by due.)"""
    snapshot = pickle.dumps(pickle.loads(pickle.dumps(mid_stream(), protocol=5)), protocol=5)
    again = pickle.loads(snapshot)
    assert pickle.dumps(again, protocol=5) == snapshot
    assert again.sensors and again.counts.take()["windows"] > 0


@on_source  # a native class's attributes are never unset
def test_unset_attributes_are_left_out_and_both_forms_restore() -> None:
    part = _Part.__new__(_Part)
    part.clock = "c"  # type: ignore[assignment]
    assert state_of(part, ("clock", "lead")) == (None, {"clock": "c"})
    counts = ShardCounts.__new__(ShardCounts)
    restore(counts, (None, {"late": 2}))
    restore(counts, {"windows": 5})
    assert (counts.late, counts.windows) == (2, 5)
