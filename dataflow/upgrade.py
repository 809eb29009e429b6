"""Snapshots of the previous format, brought up to this one. Pure.

An upgrade must not throw away what every sensor's model has learned: a refused snapshot means
deleting the recovery store, replaying the retained input from its start and a second warm-up
for the whole fleet. So each format change that only *adds* state comes with a step here that
fills the new state in as a fresh sensor would have it, keeping everything else. Only the
previous formats that have a step are migrated, one step after the other; older ones are refused
(``dataflow.flow.restore``). Each step is written once, against the code of the release before
it, and proven by a snapshot that release wrote (``tests/fixtures``).

v8 -> v9 (the detection changes to the features and the alert lifecycle; machine families):

- ``SensorScorer.scatter``: how far a mean moves by its readings' scatter; starts at 0 (no
  floor) and learns from the next windows.
- ``Envelope.peak``: kept as it is. v9 remembers a softened distance, uncapped; a v8 peak is at
  most v8's hard cap of 50 spreads, below the knee, where the softened distance is the distance,
  so it means the same to v9.
- ``AlertTracker.home`` and ``reach``: where an open alert's sensor was when it opened. An alert
  open across the upgrade has none (0: it resolves ``clean`` as before).
- ``ShardConfig.adapt_after``: its default; the configured value replaces it on resume, as any
  setting does.
- ``SensorScorer.pattern`` and ``pattern_envelope``: None (the pattern detector, ``ML_PATTERN``,
  is allocated only where it is on; v8 had none, and a restored model keeps its structure).
- ``ShardState.machines`` and ``_touched``: empty (no family of a v8 flow had machines);
  ``_Sensor.machine``: None (a channel finds its machine at its next window).

v9 -> v10 (an adapted alert counts its clean windows in all, and remembers where it came from):

- ``AlertTracker.lasted`` (sensors' and machines' trackers): windows since the alert opened.
  For an alert open across the upgrade, its anomalous windows and its current run of clean
  ones (v9 kept no more): its clean windows in all may be undercounted, so it may stay open a
  little longer, never shorter.
- ``AlertTracker.origin`` and ``origin_reach``: none (0), as for a sensor that never had an
  adapted alert.
- ``MachineModel.glitch``: 0 (no glitch in a row being held back); ``related``: its windows
  learned, every one of which v9 taught the correlations; ``counts`` (windows each channel was
  present in): that same number for every channel, the count v9 weighed them all with.

v10 -> v11 (closed windows scored in batches, column-wise: issue 28):

- ``_Sensor.cols`` and ``slot``: each family's restored per-sensor scorers of one
  ``ModelParams`` become the slots of one ``ColumnScorer`` (``from_scorers``), in the same
  state, so they score on as they would have. Those it cannot take (settings it does not score,
  ``hst_novelty`` or ``pattern``) keep their own scorer, as a new sensor of such a family does.
- ``ShardState.columns``: those ColumnScorers, by family; ``_queue``: empty (a snapshot is taken
  between two calls, with nothing queued).
- ``MachineModel.related`` and ``counts``, where a v10 snapshot lacks them: as v9 -> v10 fills
  them. They came in v10's code after its first release (``0b69e88``, ``7918e8f``) without a new
  format, so a v10 snapshot from before them (``86ec06c``) has neither.

v11 -> v12 (a spike that recurs keeps its size in memory: issue 26):

- ``Envelope.top`` (every envelope of a per-sensor scorer) and a ``ColumnScorer``'s ``top``
  columns: the envelope's peak. A v11 envelope kept no larger value than its peak, so the
  peak is the most it can know; the top is renewed by the next larger window. (The columns'
  matrices are widened when they are read: ``ColumnScorer._allocate``.) The v10 -> v11 step
  builds its columns with today's ``ColumnScorer``, which reads the tops: it fills them first.

v12 -> v13 (a change of level accepted: issue 26):

- ``SensorScorer.calm`` (the envelopes' peaks before the current drift episode): None, and a
  ``ColumnScorer``'s ``calm`` columns: nan, the same (the matrices are widened when they are
  read, the new columns filled with nan: ``ColumnScorer._allocate``). A sensor in a drift
  episode when the snapshot was taken keeps the peaks it has if that episode is accepted as a
  change of level; the next episode keeps its own. The v10 -> v11 step's ``ColumnScorer``
  reads it: it is filled first there too.

v13 -> v14 (one sensor ahead no longer moves its partition's input time: ``progress.Lead``):

- ``_Part.lead``: from the partition's sensors, each at its latest event time read
  (``Lead.of``), as the readings that made the snapshot would have left it. A fresh lead would
  follow the first sensor read after the restore, even one whose clock runs ahead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from dataflow.progress import Lead


def _fill(obj: Any, name: str, value: object) -> None:
    """Set a slot the pickle did not carry; leave one it did."""
    try:
        getattr(obj, name)
    except AttributeError:
        setattr(obj, name, value)


def _v8_to_v9(state: Any) -> Any:
    config = state.config
    if not hasattr(config, "adapt_after"):
        default = next(f.default for f in dataclasses.fields(config) if f.name == "adapt_after")
        object.__setattr__(config, "adapt_after", default)
    if not hasattr(state, "machines"):
        state.machines = {}
    if not hasattr(state, "_touched"):
        state._touched = set()
    for sensor in state.sensors.values():
        _fill(sensor, "machine", None)
        _fill(sensor.alerts, "home", 0.0)
        _fill(sensor.alerts, "reach", 0.0)
        scorer = sensor.scorer
        if scorer is None:
            continue
        _fill(scorer, "scatter", 0.0)
        # The pattern detector (ML_PATTERN): none, as for a family that has it off; a restored
        # model keeps its own structure (``retune``), so it stays off for this sensor.
        _fill(scorer, "pattern", None)
        _fill(scorer, "pattern_envelope", None)
    return state


def _v9_to_v10(state: Any) -> Any:
    trackers = [sensor.alerts for sensor in state.sensors.values()]
    trackers += [machine.alerts for machine in state.machines.values()]  # machines came in v9
    for machine in state.machines.values():
        _fill(machine.model, "glitch", 0)
        # v9 offered the correlations every window learned (missing channels at z 0).
        _fill(machine.model, "related", machine.model.seen)
        # v9 learned every channel's level and spread with the count of all windows.
        _fill(machine.model, "counts", np.full(machine.model.channels, float(machine.model.seen)))
    for alerts in trackers:
        _fill(alerts, "lasted", alerts.anomalous + alerts.clean if alerts.alert_id else 0)
        _fill(alerts, "origin", 0.0)
        _fill(alerts, "origin_reach", 0.0)
    return state


def _tops(scorer: Any) -> None:
    """Each envelope of a per-sensor scorer from before v12: its top is its peak."""
    envelopes = [*scorer.envelopes, scorer.hst_envelope, scorer.pattern_envelope]
    for envelope in envelopes:
        if envelope is not None:
            _fill(envelope, "top", envelope.peak)


def _calm(scorer: Any) -> None:
    """A per-sensor scorer from before v13: no peaks kept from before a drift episode."""
    _fill(scorer, "calm", None)


def _v10_to_v11(state: Any) -> Any:
    from dataflow.model.columns import ColumnScorer

    # A v10 written before 0b69e88 and 7918e8f (86ec06c's, say) has machine models without
    # ``related`` and ``counts``, which came without a new format: what v9 -> v10 gives them.
    for machine in state.machines.values():
        model = machine.model
        _fill(model, "related", model.seen)
        _fill(model, "counts", np.full(model.channels, float(model.seen)))
    state._queue = []
    state.columns = {}
    groups: dict[tuple[str, Any], list[Any]] = {}
    for (family, _), sensor in state.sensors.items():
        _fill(sensor, "_scorer", None)  # v10 had no scorer yet for a sensor with no window
        _fill(sensor, "cols", None)
        _fill(sensor, "slot", -1)
        scorer = sensor._scorer
        if scorer is not None:
            _tops(scorer)  # today's from_scorers reads them (see v11 -> v12)
            _calm(scorer)  # and this (see v12 -> v13)
            groups.setdefault((family, scorer.params), []).append(sensor)
    for (family, _), sensors in groups.items():
        try:
            cols = ColumnScorer.from_scorers([sensor._scorer for sensor in sensors])
        except ValueError:  # settings it does not score: they keep their own scorers
            continue
        for slot, sensor in enumerate(sensors):  # from_scorers puts scorer i in slot i
            sensor.cols, sensor.slot, sensor._scorer = cols, slot, None
        state.columns.setdefault(family, []).append(cols)
    return state


def _v11_to_v12(state: Any) -> Any:
    for sensor in state.sensors.values():
        if sensor._scorer is not None:
            _tops(sensor._scorer)
    for family_columns in state.columns.values():
        for cols in family_columns:
            n = cols.next_slot
            cols.cols["top"][:n] = cols.cols["peak"][:n]
    return state


def _v12_to_v13(state: Any) -> Any:
    for sensor in state.sensors.values():
        if sensor._scorer is not None:
            _calm(sensor._scorer)
    return state  # the columns' calm: nan from _allocate, as the reading widened them


def _v13_to_v14(state: Any) -> Any:
    for part in state.parts.values():
        part.lead = Lead.of(
            (key, sensor.windows.max_ts)
            for key, sensor in state.sensors.items()
            if sensor.part is part
        )
    return state


# From-version -> the step that makes it the next version.
STEPS: dict[int, Callable[[Any], Any]] = {
    8: _v8_to_v9,
    9: _v9_to_v10,
    10: _v10_to_v11,
    11: _v11_to_v12,
    12: _v12_to_v13,
    13: _v13_to_v14,
}


def migrate(version: int, state: Any, to: int) -> Any | None:
    """``state`` of format ``version`` as format ``to``; None where no step leads there."""
    while version < to:
        step = STEPS.get(version)
        if step is None:
            return None
        state = step(state)
        version += 1
    return state if version == to else None
