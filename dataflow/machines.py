"""A machine's windows: its channels' closed windows gathered, scored once together, one alert.

Pure: no Kafka, no Bytewax. In a machine family (``machine`` and ``channels`` in the sensors
file, docs/machines.md) every channel is a sensor ``<machine>/<channel>`` with its own windows
and model, as any sensor; all of them live in the machine's shard. As each channel closes a
window (by its own clock, lateness or silence, as today), ``MachineWindows.channel_closed``
files its mean under the window's start. The machine's window for that start closes when every
channel has closed it, or when a channel has gone ``MAX_BEHIND`` windows past it while another
sent nothing for it (a dead channel must not hold its machine back): it is scored once by the
machine's joint model (``dataflow.model.machine``), with a missing channel taken at its level.

One alert per machine, with the usual lifecycle (``dataflow.alerts``), reason ``ml``, opened by
the joint model. **The machine alert wins over a channel's model**: in a machine family a
channel's own ML anomaly is in its window record (``ml_anomaly``) but opens no alert, so one
episode pages once, from the model that sees the channels together and can name which drove it
(a channel's own model sees a relation break not at all, and a single channel's jump shows in
the joint model's T² or Q with that channel as its driver; OR-ing every channel's model into the
machine alert multiplied false alarms with the channels on a fault-free plant run). A channel's
rules (``above``/``below``: what a person asked for by name) still open the channel's own alert,
as in any family.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from dataflow.alerts import AlertEvent, AlertTracker
from dataflow.families import ML
from dataflow.model.machine import MachineModel, MachineParams

MAX_BEHIND = 3  # windows a channel may run ahead of a window another channel never sent
# A channel's name, its deviation in its own spreads, and its movement against its usual where
# its chart drove it (0 otherwise; see MachineScore.drivers).
Driver = tuple[str, float, float]


class MachineWindow(NamedTuple):
    """A machine's window, scored: what the shard makes a record of."""

    start: int
    end: int
    channels: int  # channels that sent a reading in it
    score: float  # the joint model's: above 1 is anomalous
    ready: bool
    anomaly: bool
    drivers: tuple[Driver, ...]
    alert: AlertEvent | None


class MachineWindows:
    """One machine's pending windows, joint model and alert. Picklable."""

    __slots__ = ("alerts", "closed", "index", "model", "names", "pending", "scored")

    def __init__(self, names: tuple[str, ...], params: MachineParams) -> None:
        self.names = names
        self.index = {name: i for i, name in enumerate(names)}
        self.model = MachineModel(len(names), params)
        self.alerts = AlertTracker()
        self.closed = [-1] * len(names)  # each channel's latest closed window start, ns
        # window start -> [end, each channel's mean (nan: none yet), channels filed]
        self.pending: dict[int, list[Any]] = {}
        self.scored = -1  # the latest window start scored: a channel's window before it is late

    def channel_closed(self, channel: str, start: int, end: int, mean: float) -> bool:
        """File a channel's closed window (``due`` says which machine windows it completed);
        False when it is left out (``file``)."""
        i = self.index.get(channel)
        if i is None:  # not one of the machine's channels (the file changed)
            return True
        return self.file(i, start, end, mean)

    def file(self, i: int, start: int, end: int, mean: float) -> bool:
        """``channel_closed`` of the ``i``-th channel. False: left out, its machine window
        scored without it (the channel was that late), which the shard counts."""
        if start <= self.scored:
            return False
        entry = self.pending.get(start)
        if entry is None:
            entry = self.pending[start] = [end, [math.nan] * len(self.names), 0]
        values = entry[1]
        if values[i] != values[i]:
            entry[2] += 1
        values[i] = mean
        if start > self.closed[i]:
            self.closed[i] = start
        return True

    def due(self, window_ns: int) -> list[int]:
        """The machine windows to score now, oldest first: those every channel has closed, and
        those a channel has run ``MAX_BEHIND`` windows past. Asked once a batch is folded, so a
        batch's runs of one channel cannot leave its other channels behind."""
        pending = self.pending
        if not pending:
            return []
        closed = self.closed
        low = min(closed)
        horizon = max(closed) - MAX_BEHIND * window_ns
        if horizon > low:
            low = horizon
        if len(pending) == 1:
            (start,) = pending
            return [start] if start <= low else []
        return sorted(s for s in pending if s <= low)

    def due_all(self) -> list[int]:
        """Every pending window (the input ended, or the machine is forgotten)."""
        return sorted(self.pending)

    def score(
        self,
        alert_key: str,
        start: int,
        update_every: int,
        resolve_after: int,
        cooldown: int,
        severity: str,
        refresh: int = 0,
    ) -> MachineWindow:
        """Score a pending machine window once, and move the machine's alert (``refresh`` as
        ``AlertTracker.observe``'s)."""
        end, values, present = self.pending.pop(start)
        if start > self.scored:
            self.scored = start
        if not present:  # nothing at all in it: nothing to say
            return MachineWindow(start, end, 0, 0.0, False, False, (), None)
        out = self.model.score_learn(values)
        alerts = self.alerts
        if out.restarted:
            alerts.accept()
        if not out.anomaly and alerts.alert_id is None:
            alerts.quiet(out.score)  # the usual case, kept cheap
            return MachineWindow(start, end, present, out.score, out.ready, False, (), None)
        names = self.names
        drivers = tuple((names[i], z, moved) for i, z, moved in out.drivers)
        anomaly = out.anomaly
        event = alerts.observe(
            alert_key,
            start,
            out.score,
            out.score,
            [ML] if anomaly else [],
            update_every,
            resolve_after,
            cooldown,
            severity if anomaly else None,
            refresh=refresh,
        )
        return MachineWindow(start, end, present, out.score, out.ready, anomaly, drivers, event)
