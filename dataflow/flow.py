"""The dataflow's steps, with sources and sinks passed in so tests can swap them.

No Kafka import here: ``main.py`` supplies the Kafka source, sinks and message type; tests supply
``TestingSource`` and ``TestingSink``.
"""

from __future__ import annotations

import logging
import pickle
import time
import zlib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeGuard, cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from dataflow.config import Settings
from dataflow.encoding import Headers, encode_dead_letter, encode_late, encode_window
from dataflow.model.machine import MachineParams
from dataflow.model.scoring import ModelParams
from dataflow.progress import Beat
from dataflow.readings import Reading, Rows, Run, formats_by_topic
from dataflow.routing import DeadLetter, KeyCache, route
from dataflow.shard import (
    FamilySetup,
    LateReading,
    Result,
    SensorEvent,
    ShardConfig,
    ShardState,
    WindowResult,
)
from dataflow.status import Status
from dataflow.upgrade import STEPS, migrate

log = logging.getLogger("dataflow")

MessageFactory = Callable[[bytes | None, bytes | None, Headers], Any]
Clock = Callable[[], float]


def never() -> bool:
    return False


def as_tuple(key: bytes | None, value: bytes | None, headers: Headers) -> Any:
    """Default sink message: a plain ``(key, value, headers)`` tuple."""
    return key, value, headers


def shard_config(settings: Settings) -> ShardConfig:
    """What every shard needs, from the validated settings."""
    families = {
        family.name: FamilySetup(
            family,
            ModelParams(
                limits=family.model_limits,
                window_ns=round(family.window_seconds * 1e9),
                n_trees=settings.hst_trees,
                height=settings.hst_height,
                window_size=settings.hst_window_size,
                warmup=settings.warmup_windows,
                seed=settings.model_seed,
                level_windows=settings.level_windows,
                novelty_margin=settings.ml_novelty_margin,
                novelty_floor=settings.ml_novelty_floor,
                novelty_half_life=settings.ml_novelty_half_life,
                hst_novelty=settings.ml_hst_novelty,
                pattern=settings.ml_pattern,
                drift_slack=settings.ml_drift_slack,
                drift_limit=settings.ml_drift_limit,
                drift_clip=settings.ml_drift_clip,
                seasonality=settings.ml_seasonality,
            ),
            # A machine's joint model: its memory and warm-up are the sensors' own settings.
            MachineParams(
                memory=settings.level_windows,
                warmup=settings.hst_window_size + settings.warmup_windows,
            )
            if family.channels
            else None,
        )
        for family in settings.families
    }
    return ShardConfig(
        lateness_ns=round(settings.lateness_seconds * 1e9),
        idle_timeout_s=settings.idle_timeout_seconds,
        families=families,
        emit_all=settings.emit_all,
        update_every=settings.alert_update_windows,
        resolve_after=settings.alert_resolve_windows,
        cooldown=settings.alert_cooldown_windows,
        adapt_after=settings.alert_adapt_windows,
        stale_s=settings.alert_stale_seconds,
        refresh_s=settings.alert_refresh_seconds,
        state_ttl_s=settings.sensor_state_ttl_seconds,
        max_future_ns=round(settings.max_future_seconds * 1e9),
        max_sensors=settings.max_sensors_per_shard,
        shards=settings.shards,
    )


Out = list[Result]

# Bump when ShardState's pickled shape changes, with a step in dataflow.upgrade that migrates
# the previous format; an older one fails with a clear message instead of an AttributeError
# deep in the scorer.
SNAPSHOT_VERSION = 14

RESET_HOW = (
    "reset the recovery directory (delete it and run `python -m bytewax.recovery DIR N` again); "
    "the flow then starts from the beginning of its input topics"
)


# A snapshot is SEAL, the CRC-32 of its pickle (4 bytes, big-endian), then the pickle. Why: a
# damaged pickle mostly still loads, with wrong numbers in it, or crashes the flow later in
# unrelated code, in a loop; checked, it is refused with the reset line. Snapshots from before
# the seal (a pickle alone) are read as they are.
SEAL = b"SENSNAP\x01"


def seal(body: bytes) -> bytes:
    """A pickled snapshot with its seal and checksum (what ``restore`` checks)."""
    return SEAL + zlib.crc32(body).to_bytes(4, "big") + body


class SnapshotVersionError(RuntimeError):
    """A recovery snapshot written by an incompatible version of this flow."""


class SnapshotSettingsError(RuntimeError):
    """A recovery snapshot made under settings that cannot change across a restore."""


def restore(resume: bytes, config: ShardConfig | None = None) -> ShardState:
    """Unpickle a shard snapshot, refusing one of another format version, or one made with
    another shard count (``SHARDS``) than ``config``'s: its sensors would hash to other shards,
    and each would start again while its old state lingered."""
    if resume[: len(SEAL)] == SEAL:
        head = len(SEAL) + 4
        body = memoryview(resume)[head:]
        if len(resume) < head or zlib.crc32(body) != int.from_bytes(resume[len(SEAL) : head]):
            raise SnapshotVersionError(
                "recovery snapshot is damaged (its checksum does not match its bytes), this "
                f"flow reads v{SNAPSHOT_VERSION}: " + RESET_HOW
            )
        resume = body  # type: ignore[assignment]
    try:
        obj = pickle.loads(resume)
    except (ModuleNotFoundError, AttributeError) as exc:
        # Written by a version whose classes lived elsewhere (the model moved to
        # dataflow.model): unreadable before its version can even be read.
        raise SnapshotVersionError(
            f"recovery snapshot is of an older format ({exc}), this flow reads "
            f"v{SNAPSHOT_VERSION}: " + RESET_HOW
        ) from None
    except Exception as exc:  # pickle raises many kinds of error on damaged bytes
        raise SnapshotVersionError(
            f"recovery snapshot is unreadable ({type(exc).__name__}: {exc}), this flow reads "
            f"v{SNAPSHOT_VERSION}: " + RESET_HOW
        ) from None
    # (version, state) since v2; v1 pickled the state alone. Anything else: not ours (v0).
    pair = isinstance(obj, tuple) and len(obj) == 2
    version = (obj[0] if type(obj[0]) is int else 0) if pair else 1
    state: object = obj[1] if pair else None
    if version != SNAPSHOT_VERSION:
        oldest = min(STEPS)
        if oldest <= version < SNAPSHOT_VERSION:
            try:
                state = migrate(version, state, SNAPSHOT_VERSION)
            except Exception as exc:  # a step meets state that is not what its format holds
                raise SnapshotVersionError(
                    f"recovery snapshot of format v{version} could not be migrated "
                    f"({type(exc).__name__}: {exc}), this flow reads v{SNAPSHOT_VERSION}: "
                    + RESET_HOW
                ) from None
        else:
            state = None
        if state is None:
            raise SnapshotVersionError(
                f"recovery snapshot has format v{version}, this flow reads v{SNAPSHOT_VERSION} "
                f"and migrates v{oldest} to v{SNAPSHOT_VERSION - 1}: " + RESET_HOW
            )
        log.warning(
            "recovery snapshot of format v%d migrated to v%d: every sensor keeps what its model "
            "learned",
            version,
            SNAPSHOT_VERSION,
        )
    if not isinstance(state, ShardState):
        raise SnapshotVersionError(
            f"recovery snapshot holds no shard state ({type(state).__name__}), this flow reads "
            f"v{SNAPSHOT_VERSION}: " + RESET_HOW
        )
    if config is not None and state.config.shards != config.shards:
        raise SnapshotSettingsError(
            f"SHARDS={config.shards}, but the recovery snapshot was made with "
            f"SHARDS={state.config.shards}, and a sensor's shard comes from it: set "
            f"SHARDS={state.config.shards} again, or, to change it, {RESET_HOW}"
        )
    return state


class ShardLogic(StatefulBatchLogic[list[Reading | Run | Rows | Beat], Result, bytes | None]):
    """Adapts ``ShardState`` to Bytewax: batches in, closed windows out, pickled snapshots (or
    none, without recovery)."""

    def __init__(
        self,
        state: ShardState,
        clock: Clock,
        status: Status,
        snapshots: bool = True,
        stopping: Callable[[], bool] = never,
    ) -> None:
        self.state = state
        self.clock = clock
        self.status = status
        self.snapshots = snapshots
        self.stopping = stopping
        self.tracked = -1  # sensors the status was last told this shard keeps
        self.open_alerts = -1  # and alerts it has open

    def _report(self, out: Out) -> Out:
        state = self.state
        if state.notes:
            for note in state.notes:
                log.warning("%s", note)
            state.notes.clear()
        if state.tracked() != self.tracked:
            self.tracked = state.tracked()
            self.status.set_tracked(id(self), self.tracked)
        if state.open_alerts != self.open_alerts:
            self.open_alerts = state.open_alerts
            self.status.set_open_alerts(id(self), self.open_alerts)
        pending = state.counts
        if not (pending.windows or out):  # nothing counted: anomalies, alerts and refused
            return out  # readings come with results
        counts = pending.take()
        dead = {
            "late": counts.pop("late"),
            "future": counts.pop("future"),
            "sensor_limit": counts.pop("limited"),
        }
        moved, left_out = counts.pop("moved"), counts.pop("left_out")
        self.status.add(**counts)
        if moved:
            self.status.add_moved(moved)
        if left_out:
            self.status.add_left_out(left_out)
        if any(dead.values()):
            self.status.add_dead({reason: n for reason, n in dead.items() if n})
        return out

    def on_batch(self, values: list[list[Reading | Run | Rows | Beat]]) -> tuple[Out, bool]:
        now = self.clock()
        out: Out = []
        for readings in values:
            out.extend(self.state.ingest(readings, now))
        out.extend(self.state.expire(now))
        return self._report(out), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[Out, bool]:
        return self._report(self.state.expire(self.clock())), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Out, bool]:
        # Stopped by a signal (dataflow.stopping), the input has not ended: closing every open
        # window now would emit partial windows, and a resume from the snapshot would miss them.
        if self.stopping():
            return self._report([]), StatefulBatchLogic.RETAIN
        return self._report(self.state.flush()), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        deadline = self.state.next_deadline()
        return None if deadline is None else datetime.fromtimestamp(deadline, UTC)

    def snapshot(self) -> bytes | None:
        # Bytewax 0.21 asks every touched key for a snapshot at each epoch even without a
        # recovery store, and pickling a large fleet's state at every epoch is a large share of
        # a drain (bench/RESULTS.md). Without recovery there is nobody to resume from it.
        if not self.snapshots:
            return None
        # Bytes are immutable, so the runtime may hold them while the state moves on.
        return seal(pickle.dumps((SNAPSHOT_VERSION, self.state), protocol=pickle.HIGHEST_PROTOCOL))


def _is_late(result: Result) -> TypeGuard[LateReading]:
    return isinstance(result, LateReading)


def build_flow(
    settings: Settings,
    source: Source[Any],
    anomaly_sink: Sink[Any],
    dlq_sink: Sink[Any],
    make_message: MessageFactory = as_tuple,
    clock: Clock = time.time,
    status: Status | None = None,
    snapshots: bool = True,
    stopping: Callable[[], bool] = never,
) -> Dataflow:
    """Wire source -> route -> per-shard windows and scores -> anomalies / dead letters.

    ``stopping()`` true when the input ends means the sources were stopped (a signal), not that
    the topics ended: open windows then stay open instead of being closed and written.
    """
    status = status or Status(settings.status_interval_seconds)
    status.register_families(f.name for f in settings.families)
    config = shard_config(settings)
    topics = formats_by_topic(settings.families)
    shards = settings.shards
    width = len(str(shards - 1))

    flow = Dataflow("sensor_anomalies")
    polls = op.input("inp", flow, source)  # [Message]: one item per partition poll

    shard_cache: dict[str, KeyCache] = {}  # family -> key -> (sensor id, shard)

    def route_batch(batches: list[list[Any]]) -> list[Any]:
        by_shard, dead, by_family = route(batches, topics, shards, shard_cache)
        status.add_readings(by_family)
        if dead:
            reasons = Counter(d.reason for d in dead)
            log.warning(
                "rejected %d message(s) %s; first: %s", len(dead), dict(reasons), dead[0].detail
            )
            status.add_dead(reasons)
        items: list[Any] = [(f"{s:0{width}d}", rs) for s, rs in by_shard.items()]
        items.extend(dead)
        return items

    routed = op.flat_map_batch("route", polls, route_batch)
    split = op.branch("split_dead", routed, lambda x: isinstance(x, DeadLetter))
    # (shard key, [Reading]) -- one item per shard per input batch

    restored_lines: set[str] = set()

    def build(resume: bytes | None) -> ShardLogic:
        if resume is None:
            state = ShardState(config)
        else:
            state = restore(resume, config)
            for line in state.reconfigure(config, clock()):
                if line not in restored_lines:  # once per process, not once per shard
                    restored_lines.add(line)
                    log.info("restored with changed settings: %s", line)
        return ShardLogic(state, clock, status, snapshots, stopping)

    detected = op.stateful_batch("detect", split.falses, build)
    # (shard key, WindowResult | SensorEvent | LateReading)
    results = op.map("unkey", detected, lambda kv: kv[1])
    late_split = op.branch("split_late", results, _is_late)
    # The predicate's TypeGuard types the trues only: the falses are the results not late.
    windows = cast("Stream[WindowResult | SensorEvent]", late_split.falses)

    def window_msg(res: WindowResult | SensorEvent) -> Any:
        return make_message(*encode_window(res))

    def dead_msg(dl: DeadLetter) -> Any:
        return make_message(*encode_dead_letter(dl))

    def late_msg(late: LateReading) -> Any:
        return make_message(*encode_late(late))

    op.output("out", op.map("encode", windows, window_msg), anomaly_sink)
    dead = op.merge(
        "dead_letters",
        op.map("encode_dead", split.trues, dead_msg),
        op.map("encode_late", late_split.trues, late_msg),
    )
    op.output("dlq", dead, dlq_sink)
    return flow
