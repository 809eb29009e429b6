"""A snapshot restored under changed settings: each change handled, logged, and nothing crashes.

Before: a changed lateness or window length raised ``KeyError`` in ``windows.close_due`` on the
first reading of any sensor with an open window, a removed family at the first idle expiry, model
settings never reached restored sensors, and a changed ``SHARDS`` re-hashed sensors silently.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import replace

import pytest

from dataflow.families import AIR_QUALITY, TEMPERATURE
from dataflow.flow import ShardLogic, SnapshotSettingsError, restore, shard_config
from dataflow.progress import Beat
from dataflow.readings import Reading
from dataflow.shard import LateReading, SensorEvent, ShardConfig, ShardState, WindowResult
from dataflow.status import Status
from tests.factories import T0, S, flow_settings
from tests.on_source import on_source

WALL0 = T0 / S
PART = "temperature_readings/0"
FLEET = ["hot", "back", *(f"s{i}" for i in range(8))]


def config(**env: str) -> ShardConfig:
    return shard_config(flow_settings(EMIT_ALL_WINDOWS="true", **env))


def temp(sensor: str, sec: float, value: float = 60.0) -> Reading:
    return Reading(TEMPERATURE, sensor, T0 + int(sec * S), value)


def snapshot_with_open_window(cfg: ShardConfig, batch: bool = True) -> bytes:
    """Sensor "a": 19 windows scored; [95, 100) open, waiting for its lateness, and
    [100, 105) open after 2 of its readings. ``batch`` False: scored as before v11, by a
    scorer of its own (the shape of an older release's snapshot)."""
    from dataflow import shard

    state = ShardState(cfg)
    was, shard.BATCH = shard.BATCH, batch
    try:
        for sec in range(102):
            state.ingest([Beat(PART, WALL0 + sec, WALL0), temp("a", sec)], WALL0 + sec)
    finally:
        shard.BATCH = was
    blob = ShardLogic(state, lambda: 0.0, Status(0)).snapshot()
    assert blob is not None
    return blob


def resume(blob: bytes, cfg: ShardConfig) -> tuple[ShardState, list[str], list]:
    state = restore(blob, cfg)
    lines = state.reconfigure(cfg)
    wall = WALL0 + 200  # restored later; the replayed readings follow
    out = state.expire(wall)
    for sec in range(102, 120):
        out += state.ingest([Beat(PART, wall, None), temp("a", sec)], wall)
    return state, lines, out


def windows(out: list) -> list[tuple[int, int]]:
    return [((o.stats.start - T0) // S, o.stats.count) for o in out if isinstance(o, WindowResult)]


def on_new_topic(state: ShardState, wall: float) -> tuple[ShardState, list[str]]:
    """``state`` snapshotted, restored with the temperature family moved to another topic at
    wall time ``wall``; and what the reconfiguration said."""
    blob = ShardLogic(state, lambda: 0.0, Status(0)).snapshot()
    assert blob is not None
    moved = config(TEMPERATURE_TOPIC="plant.temperature")
    back = restore(blob, moved)
    return back, back.reconfigure(moved, wall)


def reconfigured(state: ShardState, cfg: ShardConfig, now: float) -> ShardState:
    """``state`` pickled and restored, as a recovery snapshot is, under ``cfg`` at wall time
    ``now``."""
    state = pickle.loads(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    state.reconfigure(cfg, now)
    return state


@pytest.mark.parametrize("lateness", ["0", "7"])
def test_a_changed_lateness_applies_to_open_windows(lateness: str) -> None:
    blob = snapshot_with_open_window(config())
    state, lines, out = resume(blob, config(ALLOWED_LATENESS_SECONDS=lateness))
    assert lines == [f"allowed lateness 2 s -> {lateness} s: applied to open windows"]
    assert windows(out)[:2] == [(95, 5), (100, 5)] and state.counts.late == 0  # whole


def test_a_changed_window_closes_the_old_length_then_takes_the_new_one() -> None:
    blob = snapshot_with_open_window(config())
    state, lines, out = resume(blob, config(WINDOW_SECONDS="10"))
    assert any(line.startswith("family 'temperature': window 5 s -> 10 s") for line in lines)
    got = windows(out)
    assert got[:2] == [(95, 5), (100, 2)]  # written as they were, at the old length
    # The new length from the next reading on: [95, 105) holds 102..104, none of them late.
    assert got[2:4] == [(95, 3), (105, 10)]
    assert state.counts.late == 0


def test_an_alert_opened_by_a_window_the_restore_closed_is_written_before_its_end() -> None:
    """A window length changed with a hot window open: the restore closes it at the old length,
    which opens an alert. The flow's first call after a restore is a batch (``ingest``), then
    the expiry: the restore's results waited for the expiry, so the batch's windows, the
    alert's "resolved" among them, were written before the window and "open" they follow."""
    state = ShardState(config())
    for sec in range(23):  # clean windows, then [20, 25) hot and open at the snapshot
        now = WALL0 + sec + 1
        state.ingest([Beat(PART, now, WALL0), temp("a", sec, 95.0 if sec >= 20 else 60.0)], now)
    state = reconfigured(state, config(WINDOW_SECONDS="3"), WALL0 + 24)
    now = WALL0 + 60
    out = state.ingest([Beat(PART, now, WALL0 + 59), *(temp("a", s) for s in range(23, 40))], now)
    out += state.expire(now)
    starts = [(o.stats.start - T0) // S for o in out if isinstance(o, WindowResult)]
    assert starts == sorted(starts) and starts[0] == 20
    events = [o.alert.event for o in out if isinstance(o, WindowResult) and o.alert is not None]
    assert events == ["open", "resolved"]


def test_a_shorter_idle_timeout_applies_to_the_closes_already_queued() -> None:
    """A gateway's bundles (40 readings, one a second, every 40 s) wait for the next bundle up
    to the idle timeout. Restored with 10 s instead of 60 s, its last window closed 44 s after
    the restore, as under the old timeout (its queued close kept the old due): now as a flow
    that always had 10 s (15 s, within a second or two: the restore pauses input time)."""
    state = ShardState(config(IDLE_TIMEOUT_SECONDS="60"))
    now = WALL0
    for b in range(6):
        now = WALL0 + 40 * (b + 1) + 0.5
        state.ingest([Beat(PART, now, WALL0), *(temp("g", 40 * b + i) for i in range(40))], now)
        state.expire(now)
    state = reconfigured(state, config(IDLE_TIMEOUT_SECONDS="10"), now)
    for k in range(1, 60):
        out = state.ingest([Beat(PART, now + k, now)], now + k) + state.expire(now + k)
        if any(isinstance(o, WindowResult) for o in out):
            break
    assert k <= 20, k


def test_a_longer_stale_time_applies_to_the_sensors_already_waiting() -> None:
    """A slow sensor (a reading every 200 s: silent for three of its gaps, 600 s, before it is
    stale) waits in its partition's silence heap with a due worked out under the old stale
    time. Restored with 900 s instead of 300 s, it went stale 600 s after its last reading: now
    900 s, as a flow that always had 900 s."""
    state = ShardState(config(ALERT_STALE_SECONDS="300"))
    since = WALL0
    for sec in range(0, 3600, 5):
        now = WALL0 + sec + 0.5
        if sec == 2800:  # its alert open, its last reading 400 s ago: in the heap since 300 s
            state = reconfigured(state, config(ALERT_STALE_SECONDS="900"), now)
            since = now
        hot = 95.0 if sec >= 2000 else 60.0
        batch = [temp("slow", sec, hot)] if sec % 200 == 0 and sec <= 2400 else []
        out = state.ingest([Beat(PART, now, since), *batch], now) + state.expire(now)
        if any(isinstance(o, SensorEvent) for o in out):
            break
    assert state.open_alerts == 0 and 900 <= sec - 2400 <= 910, sec - 2400


def test_a_removed_family_s_sensors_are_forgotten_with_their_event() -> None:
    sensors = "families:\n  t:\n    topic: temperature_readings\n    value: Temperature_C\n"
    sensors += "    timestamp: Timestamp\n    valid_range: [-50, 200]\n"
    state = ShardState(config())
    air = Reading(AIR_QUALITY, "s", T0, 20.0)
    state.ingest([Beat(PART, WALL0, WALL0), air, temp("a", 0)], WALL0)
    blob = ShardLogic(state, lambda: 0.0, Status(0)).snapshot()
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as fh:
        fh.write(sensors.replace("t:", "temperature:"))
        fh.flush()
        new = config(SENSORS_CONFIG=fh.name)
    back = restore(blob, new)
    lines = back.reconfigure(new)
    assert "family 'air_quality' is no longer configured" in " ".join(lines)
    out = back.expire(WALL0 + 1)
    forgotten = [o for o in out if getattr(o, "event", None) == "forgotten"]
    assert [(o.family, o.sensor_id) for o in forgotten] == [(AIR_QUALITY, "s")]
    assert windows(out) == [(0, 1)] and (AIR_QUALITY, "s") not in back.sensors
    # Expiry later finds nothing of it (before: KeyError at the first idle expiry).
    back.ingest([Beat(PART, WALL0 + 100, WALL0), temp("a", 100)], WALL0 + 100)
    back.expire(WALL0 + 200)


def test_model_settings_reach_restored_models_where_they_can() -> None:
    blob = snapshot_with_open_window(config())
    state, lines, _ = resume(blob, config(ML_NOVELTY_FLOOR="9", WARMUP_WINDOWS="5"))
    scorer = state.sensors[(TEMPERATURE, "a")].scorer
    assert scorer is not None and scorer.params.novelty_floor == 9.0
    assert scorer.params.warmup == 5 and all(e.floor == 9.0 for e in scorer.envelopes)
    assert "applied to restored models" in lines[0]
    state, lines, _ = resume(blob, config(HST_TREES="7"))
    scorer = state.sensors[(TEMPERATURE, "a")].scorer
    assert scorer is not None and scorer.params.n_trees == 5  # keeps its trees
    assert "restored models keep theirs" in lines[0] and "n_trees" in lines[0]


def test_the_columns_of_settings_no_longer_configured_go_with_their_last_sensor() -> None:
    """Restored under a structural change (the trees), sensor "a" keeps its old model in the
    old settings' columns and a new sensor gets new ones. Once "a" is forgotten (the default
    TTL), nothing will use the old columns again: they were kept, in memory and in every
    snapshot, sized to every slot they ever handed out."""
    blob = snapshot_with_open_window(config())
    cfg = config(HST_TREES="7")
    state, _, _ = resume(blob, cfg)
    for n in range(40):  # their models: columns of the new settings
        state.ingest([Beat(PART, WALL0 + 210, WALL0 + 200), temp(f"new{n}", 130)], WALL0 + 210)
        state.ingest([Beat(PART, WALL0 + 211, WALL0 + 200), temp(f"new{n}", 140)], WALL0 + 211)
    old, new = state.columns[TEMPERATURE]
    assert old.params.n_trees == 5 and new.params.n_trees == 7 and old.in_use == 1
    later = WALL0 + 211 + cfg.state_ttl_s + 120
    state.ingest([Beat(PART, later, WALL0 + 200)], later)
    state.expire(later)
    assert (TEMPERATURE, "a") not in state.sensors
    assert state.columns[TEMPERATURE] == [new]  # its sensors were forgotten too: of the settings
    blob = ShardLogic(state, lambda: 0.0, Status(0)).snapshot()
    assert blob is not None
    assert [c.params.n_trees for c in restore(blob, cfg).columns[TEMPERATURE]] == [7]


def test_a_changed_shard_count_is_refused_with_the_way_to_change_it() -> None:
    blob = snapshot_with_open_window(config(SHARDS="32"))
    with pytest.raises(SnapshotSettingsError, match=r"SHARDS=8.*SHARDS=32.*reset the recovery"):
        restore(blob, config(SHARDS="8"))


@pytest.mark.parametrize(("cap", "over"), [(3, True), (8, False)])
def test_a_lowered_sensor_cap_keeps_every_sensor_and_says_so_when_over_it(
    cap: int, over: bool
) -> None:
    """Five sensors kept, restored under a lower ``MAX_SENSORS_PER_SHARD``: none is dropped (a
    model learned is not thrown away to meet a cap), and the log line says when the shard is
    left over it, refusing new sensors, rather than a bare "applied"."""
    state = ShardState(config())
    for sec in range(12):
        fleet = [temp(f"s{i}", sec) for i in range(5)]
        state.ingest([Beat(PART, WALL0 + sec, WALL0), *fleet], WALL0 + sec)
    lowered = config(MAX_SENSORS_PER_SHARD=str(cap))
    restored = pickle.loads(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    (line,) = restored.reconfigure(lowered, WALL0 + 12)
    assert line.startswith(f"max_sensors 40000 -> {cap}: applied")
    assert ("keeps the 5 it has" in line) is over and ("refuses new ones" in line) is over
    assert len(restored.sensors) == 5
    live = [Beat(PART, WALL0 + 12, WALL0), temp("s0", 12), temp("new", 12)]
    refused = [o for o in restored.ingest(live, WALL0 + 12) if isinstance(o, LateReading)]
    assert [(o.reading.sensor_id, o.reason) for o in refused] == (
        [("new", "sensor_limit")] if over else []
    )
    assert restored.counts.limited == int(over) and ("s0" in {k[1] for k in restored.sensors})


def test_an_unchanged_restore_says_nothing_and_loses_nothing() -> None:
    cfg = config()
    blob = snapshot_with_open_window(cfg)
    state, lines, out = resume(blob, cfg)
    assert lines == [] and windows(out)[:2] == [(95, 5), (100, 5)] and state.counts.late == 0
    assert restore(blob).config == replace(cfg)


def test_a_snapshot_naming_classes_that_moved_is_refused_with_the_reset_line() -> None:
    """A snapshot of an older release names dataflow.scoring, which moved to dataflow.model:
    the clear one-line refusal, not a ModuleNotFoundError from deep inside pickle."""
    import sys
    import types

    from dataflow.flow import SnapshotVersionError
    from dataflow.model import scoring

    fake = types.ModuleType("dataflow.scoring")
    fake.SensorScorer = scoring.SensorScorer  # type: ignore[attr-defined]
    sys.modules["dataflow.scoring"] = fake
    scoring.SensorScorer.__module__ = "dataflow.scoring"
    try:
        old = snapshot_with_open_window(config(), batch=False)  # names it, as before v11
    finally:
        scoring.SensorScorer.__module__ = "dataflow.model.scoring"
        del sys.modules["dataflow.scoring"]
    assert b"dataflow.scoring" in old
    with pytest.raises(SnapshotVersionError, match=r"older format.*reset the recovery"):
        restore(old, config())


# What each format added, as (object, slot): absent from a snapshot of the format before.
ADDED = {
    14: (),  # each partition's lead: see as_older_format
    13: (("scorer", "calm"),),
    12: (),  # each envelope's top: see as_older_format
    11: (),  # a sensor's scorer became a slot of its family's ColumnScorer: see as_older_format
    10: (("alerts", "lasted"), ("alerts", "origin"), ("alerts", "origin_reach")),
    9: (("alerts", "home"), ("alerts", "reach"), ("scorer", "scatter")),
}


def as_older_format(blob: bytes, version: int) -> tuple[bytes, int]:
    """The snapshot as the release of format ``version`` wrote it: the state later formats
    added is absent (and, before v9, an envelope peak as v8 had it). Returns it and
    the number of windows its sensor's model had learned."""
    from dataflow.flow import SNAPSHOT_VERSION

    state = restore(blob, config())
    sensor = state.sensors[(TEMPERATURE, "a")]
    assert sensor.scorer is not None
    if version < 11:  # a scorer per sensor (the blob was made so), no columns, nothing queued
        assert sensor.cols is None and sensor._scorer is not None
        delattr(sensor, "cols")
        delattr(sensor, "slot")
        del state.columns, state._queue
    if version < 12:  # no envelope kept a top
        for envelope in sensor.scorer.envelopes:
            delattr(envelope, "top")
    if version < 14:  # no partition kept a lead
        for part in state.parts.values():
            delattr(part, "lead")
    for added in range(version + 1, SNAPSHOT_VERSION + 1):
        for owner, name in ADDED[added]:
            delattr(getattr(sensor, owner), name)
    if version < 9:
        delattr(sensor, "machine")
        del state.machines, state._touched
        sensor.scorer.envelopes[0].peak = 40.0  # a v8 peak: at most v8's cap of 50 spreads
        object.__delattr__(state.config, "adapt_after")
    seen = sensor.scorer.seen
    return pickle.dumps((version, state)), seen


def as_previous_format(blob: bytes) -> tuple[bytes, int]:
    from dataflow.flow import SNAPSHOT_VERSION

    return as_older_format(blob, SNAPSHOT_VERSION - 1)


# Older formats are made by deleting what later ones added, which a native class (the
# compiled shard) does not allow; real older releases' snapshots (test_upgrade.py) run on both.
@on_source
def test_a_snapshot_of_the_previous_format_is_migrated_and_keeps_every_model() -> None:
    old, seen = as_previous_format(snapshot_with_open_window(config(), batch=False))
    state, _, out = resume(old, config())
    sensor = state.sensors[(TEMPERATURE, "a")]
    assert sensor.scorer is not None
    assert sensor.scorer.seen == seen + len(windows(out))  # learned on: no second warm-up
    assert sensor.machine is None and state.machines == {} and state._touched == set()
    assert (sensor.alerts.lasted, sensor.alerts.origin, sensor.alerts.origin_reach) == (0, 0, 0)
    assert state.config.adapt_after == config().adapt_after
    assert all(e.top == e.peak for e in sensor.scorer.envelopes)  # its tops: its peaks
    assert sensor.scorer.calm is None or sensor.scorer.drift.up or sensor.scorer.drift.down
    # The resumed windows are those a snapshot of the current format resumes to, and each
    # partition's lead is where that one's is (rebuilt from its sensors).
    now, _, fresh = resume(snapshot_with_open_window(config()), config())
    assert windows(out) == windows(fresh) and windows(out)
    leads = [
        {name: (p.lead.key, p.lead.first, p.lead.second) for name, p in s.parts.items()}
        for s in (state, now)
    ]
    assert leads[0] == leads[1] and leads[0]


@on_source
def test_a_snapshot_two_formats_back_is_migrated_step_by_step() -> None:
    old, seen = as_older_format(snapshot_with_open_window(config(), batch=False), 8)
    state, _, out = resume(old, config())
    sensor = state.sensors[(TEMPERATURE, "a")]
    assert sensor.scorer is not None and sensor.scorer.seen == seen + len(windows(out))
    assert (sensor.alerts.lasted, sensor.alerts.origin_reach) == (0, 0.0)
    assert (sensor.alerts.home, sensor.alerts.reach) == (0.0, 0.0)
    assert sensor.scorer.envelopes[0].peak > 0.0  # the v8 peak, kept (then decayed, learned)
    _, _, fresh = resume(snapshot_with_open_window(config()), config())
    assert windows(out) == windows(fresh) and windows(out)


def test_a_snapshot_older_than_every_step_is_refused_with_the_reset_line() -> None:
    from dataflow.flow import SNAPSHOT_VERSION, SnapshotVersionError
    from dataflow.upgrade import STEPS

    state = restore(snapshot_with_open_window(config()), config())
    older = pickle.dumps((min(STEPS) - 1, state))
    with pytest.raises(SnapshotVersionError, match=r"migrates v\d+ to v\d+.*reset the recovery"):
        restore(older, config())
    newer = pickle.dumps((SNAPSHOT_VERSION + 1, state))
    with pytest.raises(SnapshotVersionError, match=r"reset the recovery"):
        restore(newer, config())


def _not_ours() -> list[object]:
    from dataflow.flow import SNAPSHOT_VERSION

    v = SNAPSHOT_VERSION
    return [(v, None), (str(v), None), (v - 1, None), (v - 1, "state"), (True, None), (v,), 7, []]


@pytest.mark.parametrize("obj", _not_ours())
def test_a_pickle_that_is_not_a_shard_snapshot_is_refused_with_the_reset_line(obj: object) -> None:
    """A valid pickle of something else (a wrong file, a hand-made one): the one line, not a
    TypeError or AttributeError from deep inside a migration."""
    from dataflow.flow import SnapshotVersionError

    with pytest.raises(SnapshotVersionError, match=r"reset the recovery"):
        restore(pickle.dumps(obj), config())


@pytest.mark.parametrize("damage", [b"", b"not a pickle", b"\x80\x05\x95garbage"])
def test_a_damaged_snapshot_is_refused_with_the_reset_line(damage: bytes) -> None:
    from dataflow.flow import SnapshotVersionError

    with pytest.raises(SnapshotVersionError, match=r"unreadable.*reset the recovery"):
        restore(damage, config())
    whole = snapshot_with_open_window(config())
    with pytest.raises(SnapshotVersionError, match=r"reset the recovery"):
        restore(whole[: len(whole) // 2], config())


def test_a_snapshot_with_any_byte_changed_is_refused_by_its_checksum() -> None:
    """A damaged pickle mostly still loads, with wrong numbers in it, or crashes later in
    unrelated code (a reviewer's fuzz: 1,808 of 3,000 byte flips accepted, 24 of them crashed
    at the first batch); the seal's checksum refuses each with the reset line."""
    from dataflow.flow import SEAL, SnapshotVersionError

    whole = snapshot_with_open_window(config())
    assert whole.startswith(SEAL)
    rng = random.Random(5)
    for at in [*range(len(SEAL), len(SEAL) + 8), *rng.sample(range(len(whole)), 200)]:
        damaged = bytearray(whole)
        damaged[at] ^= 1 << rng.randrange(8)
        with pytest.raises(SnapshotVersionError, match=r"reset the recovery"):
            restore(bytes(damaged), config())
    restore(whole, config())  # the same bytes undamaged: read


def test_a_snapshot_from_before_the_seal_is_read_as_it_is() -> None:
    from dataflow.flow import SEAL, SNAPSHOT_VERSION

    sealed = snapshot_with_open_window(config())
    body = sealed[len(SEAL) + 4 :]
    state = restore(body, config())  # a plain pickle of (version, state), as before
    assert pickle.loads(body)[0] == SNAPSHOT_VERSION
    assert (TEMPERATURE, "a") in state.sensors


def test_machine_settings_reach_restored_machines() -> None:
    """LEVEL_WINDOWS and WARMUP_WINDOWS shape the machines' models too: the log said they were
    applied to restored models while every restored machine kept its old settings."""
    from pathlib import Path

    from dataflow.model.machine import MachineParams
    from dataflow.shard import FamilySetup
    from tests.fixtures import snapshots as fx

    blob = (Path(__file__).parents[2] / "fixtures" / "snapshot-v9-machine.bin").read_bytes()
    old = fx.machine_config()
    setup = old.families["pump"]
    params = MachineParams(memory=600, warmup=320)
    model = replace(setup.model, level_windows=600, warmup=300)
    new = replace(old, families={"pump": FamilySetup(setup.family, model, params)})
    state = restore(blob, new)
    lines = state.reconfigure(new, 0.0)
    (machine,) = state.machines.values()
    assert machine.model.params == params
    assert any("machine model settings changed: applied to restored machines" in x for x in lines)


def test_a_changed_window_length_starts_the_family_s_models_anew() -> None:
    """Minute means scatter less than 5 s means: kept across a change to 5 s windows, the
    models' spreads were of the old length and the fleet paged (19 of 20 sensors within an
    hour in a reviewer's run); a fresh model warms up on the new length and pages on nothing."""
    sensors = [f"s{i}" for i in range(4)]
    minute = shard_config(flow_settings(WINDOW_SECONDS="60"))
    state = ShardState(minute)
    rng = random.Random(2)
    for sec in range(0, 60 * 320, 5):  # 320 minute windows: past the warm-up, 12 readings each
        now = WALL0 + sec + 1
        batch = [temp(s, sec, 60.0 + rng.gauss(0, 1.0)) for s in sensors]
        state.ingest([Beat(PART, now, WALL0), *batch], now)
    for s in sensors:
        scorer = state.sensors[(TEMPERATURE, s)].scorer
        assert scorer is not None and scorer.seen >= 300
    blob = ShardLogic(state, lambda: 0.0, Status(0)).snapshot()
    assert blob is not None
    five = shard_config(flow_settings(WINDOW_SECONDS="5"))
    back = restore(blob, five)
    lines = back.reconfigure(five, WALL0 + 60 * 320)
    assert any("models start anew" in line for line in lines)
    opened = []
    for sec in range(60 * 320, 60 * 380, 5):  # an hour of 5 s windows, one reading each
        now = WALL0 + sec + 6
        batch = [temp(s, sec, 60.0 + rng.gauss(0, 1.0)) for s in sensors]
        out = back.ingest([Beat(PART, now, WALL0), *batch], now) + back.expire(now)
        opened += [o.sensor_id for o in out if isinstance(o, WindowResult) and o.alert]
    assert opened == []
    for s in sensors:
        scorer = back.sensors[(TEMPERATURE, s)].scorer
        assert scorer is not None and scorer.params.window_ns == 5 * S and scorer.seen < 800


def test_a_family_moved_to_another_topic_is_said_once_not_as_each_sensor_s_keying_error() -> None:
    """Every sensor's next reading comes from the new topic's partition: it was counted and
    warned about as a sensor "moved to a second partition" (key every message by its id), for
    the whole fleet, and the partition-moves alert fired, though every message was keyed."""
    cfg = config()
    state = ShardState(cfg)
    for sec in range(30):
        now = WALL0 + sec + 1
        batch = [temp(f"s{i}", sec) for i in range(20)]
        state.ingest([Beat(PART, now, WALL0), *batch], now)
    back, lines = on_new_topic(state, WALL0 + 31)
    assert lines == [
        "family 'temperature': topic 'temperature_readings' -> 'plant.temperature': its sensors "
        "go on from the new topic's readings"
    ]
    now = WALL0 + 32
    out = back.ingest(
        [Beat("plant.temperature/0", now, WALL0 + 31), *(temp(f"s{i}", 31) for i in range(20))],
        now,
    )
    assert back.counts.moved == 0 and back.notes == []
    assert [o for o in out if not isinstance(o, WindowResult)] == []  # none refused as late
    # A sensor that then turns up on a second partition of the same topic is still warned of.
    back.ingest([Beat("plant.temperature/1", now, WALL0), temp("s0", 32)], now)
    assert back.counts.moved == 1 and len(back.notes) == 1


def test_a_sensor_never_seen_on_its_family_s_new_topic_goes_stale_once_that_topic_is_read() -> None:
    """The old topic is no longer read, so its input time stood still: an open alert of a
    sensor that never turned up on the new topic stayed open for good (neither the stale rule
    nor the TTL ran). Now the old topic's input time runs on while the topics the flow does read
    are caught up: not while the new topic's backlog is read (the sensor may be in it), then
    ``ALERT_STALE_SECONDS`` (default) after, as for any silent sensor."""
    cfg = config()
    state = ShardState(cfg)
    for sec in range(30):  # "hot" and "back" open threshold alerts, the others run cool
        now = WALL0 + sec + 1
        batch = [temp(s, sec, 95.0 if s in ("hot", "back") else 60.0) for s in FLEET]
        state.ingest([Beat(PART, now, WALL0), *batch], now)
    assert state.open_alerts == 2
    back, _ = on_new_topic(state, WALL0 + 31)
    new, stale = "plant.temperature/0", []

    def step(now: float, since: float | None, sec: float, who: list[str]) -> None:
        batch = [temp(s, sec, 95.0 if s in ("hot", "back") else 60.0) for s in who]
        out = back.ingest([Beat(new, now, since), *batch], now) + back.expire(now)
        stale.extend(o.sensor_id for o in out if isinstance(o, SensorEvent) and o.alert)

    cool = [s for s in FLEET if s not in ("hot", "back")]
    # Twenty minutes reading the new topic's backlog (no word yet that it is caught up): a
    # minute of readings, "back" among them only at its end, "hot" never.
    for i in range(1200):
        step(WALL0 + 32 + i, None, 31 + i * 0.05, cool + (["back"] if i >= 1100 else []))
    assert stale == []
    # Caught up: "back" goes on, still hot; "hot" never turns up.
    caught = WALL0 + 1232
    for i in range(400):
        step(caught + i, caught, 92 + i, ["back", *cool])
        if stale:
            break
    assert stale == ["hot"]
    assert 295 <= i <= 305  # ALERT_STALE_SECONDS of silence, nearly all after the backlog
    assert back.sensors[(TEMPERATURE, "back")].alerts.alert_id is not None


def test_a_frozen_process_gives_a_retired_partition_no_silence_for_its_freeze() -> None:
    """As the topics read get no input time for a freeze (0f90738), the old topic's must not
    either: on waking, the first call is the overdue expiry, before any beat says the source
    stalled, and the old topic ran on with the whole freeze because the new one's last word,
    from before it, was "caught up". Both alerts resolved stale at once, although the readings
    made on the new topic during the freeze (of "back", say) were not read yet."""
    cfg = config()
    state = ShardState(cfg)
    for sec in range(30):
        now = WALL0 + sec + 1
        batch = [temp(s, sec, 95.0 if s in ("hot", "back") else 60.0) for s in FLEET]
        state.ingest([Beat(PART, now, WALL0), *batch], now)
    back, _ = on_new_topic(state, WALL0 + 31)
    new, cool, out = "plant.temperature/0", [s for s in FLEET if s not in ("hot", "back")], []
    caught = WALL0 + 40
    for i in range(60):  # a minute caught up on the new topic
        now = caught + i
        out += back.ingest([Beat(new, now, caught), *(temp(s, 40 + i, 60.0) for s in cool)], now)
        out += back.expire(now)
    woke = caught + 60 + 600  # frozen for ten minutes
    out += back.expire(woke)
    out += back.ingest([Beat(new, woke, None)], woke) + back.expire(woke)  # "stalled"
    assert [o.sensor_id for o in out if isinstance(o, SensorEvent) and o.alert] == []
    # Caught up again: the old topic runs on from here, "hot" goes stale after its silence.
    for i in range(300):
        now = woke + 1 + i
        out += back.ingest([Beat(new, now, woke + 1), *(temp(s, 700 + i, 60.0) for s in cool)], now)
        out += back.expire(now)
    assert sorted(o.sensor_id for o in out if isinstance(o, SensorEvent) and o.alert) == [
        "back",
        "hot",
    ]


@pytest.mark.parametrize("moves", [1, 3])
def test_a_family_moved_off_a_topic_again_keeps_its_sensors_hearings(moves: int) -> None:
    """Moved off the topic, back to it (a rollback, read from a backlog), and off it again:
    the second move put its sensors on the partition left by the first, whose input time stood
    while the topic's backlog was read, so a sensor never seen on the new topic went stale
    that much later than ``ALERT_STALE_SECONDS`` after its last hearing. One move: the same."""
    a, b = config(), config(TEMPERATURE_TOPIC="plant.temperature")
    new = "plant.temperature/0"

    def feed(
        state: ShardState, now: float, sec: float, part: str, since: float | None, who: str
    ) -> list:
        batch = [temp(s, sec, 95.0 if s == "hot" else 60.0) for s in who.split()]
        return state.ingest([Beat(part, now, since), *batch], now) + state.expire(now)

    state = ShardState(a)
    for sec in range(30):  # on the old topic, live: "hot" opens an alert
        feed(state, WALL0 + sec + 1, sec, PART, WALL0, "hot cool")
    if moves == 3:  # off it, both on the new topic for a while, then rolled back after 1000 s
        state = reconfigured(state, b, WALL0 + 31)
        for sec in range(31, 45):
            feed(state, WALL0 + sec + 1, sec, new, WALL0 + 31, "hot cool")
    state = reconfigured(state, a, WALL0 + 1045)
    for i in range(100):  # the old topic's 1000 s of backlog, then caught up for a minute
        feed(state, WALL0 + 1045 + i, 45 + i * 10, PART, None, "hot cool")
    for i in range(60):
        feed(state, WALL0 + 1145 + i, 1145 + i, PART, WALL0 + 1145, "hot cool")
    assert state.open_alerts == 1
    state = reconfigured(state, b, WALL0 + 1205)  # off it (again): "hot" never turns up
    hot = state.sensors[(TEMPERATURE, "hot")]
    assert hot.part is not None and hot.part.clock.input >= hot.heard
    for i in range(400):
        out = feed(state, WALL0 + 1206 + i, 1205 + i, new, WALL0 + 1206, "cool")
        if any(isinstance(o, SensorEvent) and o.sensor_id == "hot" for o in out):
            break
    assert 295 <= i <= 305, i  # ALERT_STALE_SECONDS after its last hearing


def _sharing(cfg: ShardConfig) -> ShardConfig:
    """``cfg`` with the air-quality family read from the temperature topic too (families of a
    sensors file may share one)."""
    air = cfg.families[AIR_QUALITY]
    shared = replace(air, family=replace(air.family, topic="temperature_readings"))
    return replace(cfg, families={**cfg.families, AIR_QUALITY: shared})


def test_a_family_moved_off_a_topic_another_family_still_reads_waits_for_its_new_topic() -> None:
    """Two families on one topic, one moved to another: the old topic is still read (the
    other family's), so its input time ran on as soon as it was caught up, and a sensor of the
    moved family still in the new topic's backlog was resolved stale before it was read (the
    old topic, retired, would have waited). Its sensors are judged as on a retired topic."""
    state = ShardState(_sharing(config()))
    for sec in range(30):
        now = WALL0 + sec + 1
        batch = [temp(s, sec, 95.0 if s in ("hot", "back") else 60.0) for s in FLEET]
        air = Reading(AIR_QUALITY, "q", T0 + sec * S, 10.0)
        state.ingest([Beat(PART, now, WALL0), air, *batch], now)
    blob = ShardLogic(state, lambda: 0.0, Status(0)).snapshot()
    assert blob is not None
    moved = _sharing(config(TEMPERATURE_TOPIC="plant.temperature"))
    back = restore(blob, moved)
    back.reconfigure(moved, WALL0 + 31)
    new, events = "plant.temperature/0", []
    # The old topic is caught up at once; the new one's backlog takes ten minutes to read,
    # "hot" in it only at its end, "back" not at all.
    for i in range(600):
        now = WALL0 + 32 + i
        who = [s for s in FLEET if s != "back" and (s != "hot" or i >= 590)]
        batch = [temp(s, 31 + i * 0.05, 95.0 if s in ("hot", "back") else 60.0) for s in who]
        air = Reading(AIR_QUALITY, "q", T0 + int((31 + i) * S), 10.0)
        out = back.ingest([Beat(PART, now, WALL0 + 32), air, Beat(new, now, None), *batch], now)
        out += back.expire(now)
        events += [o.sensor_id for o in out if isinstance(o, SensorEvent)]
    assert events == []
    assert back.sensors[(TEMPERATURE, "hot")].alerts.alert_id is not None
    # Both topics caught up: "back", never on the new one, goes stale, as on a retired topic.
    caught = WALL0 + 632
    for i in range(320):
        now = caught + i
        batch = [temp(s, 61 + i, 95.0 if s == "hot" else 60.0) for s in FLEET if s != "back"]
        air = Reading(AIR_QUALITY, "q", T0 + int((631 + i) * S), 10.0)
        out = back.ingest([Beat(PART, now, WALL0 + 32), air, Beat(new, now, caught), *batch], now)
        out += back.expire(now)
        events += [o.sensor_id for o in out if isinstance(o, SensorEvent)]
    assert events == ["back"]


def _churn(snap_every: int | None, seen: dict[str, int]) -> list[str]:
    """Sensors that come, shift level (a change of level accepted: ``SensorScorer._anchor``)
    and fall silent to be forgotten while new ones take their slots; with ``snap_every``, a
    snapshot restored every that many seconds (the source caught up anew from the restore)."""
    cfg = config(SENSOR_STATE_TTL_SECONDS="60", ALERT_STALE_SECONDS="30")
    rng = random.Random(4)
    life: dict[str, tuple[int, int, float]] = {}
    for i in range(36):  # long-lived ones that shift; short-lived ones; later ones, their slots
        first, span = [
            (rng.randrange(200), rng.randrange(1200, 1600)),
            (rng.randrange(300), rng.randrange(100, 300)),
            (rng.randrange(450, 600), rng.randrange(1150, 1300)),
        ][i % 3]
        life[f"s{i}"] = (first, first + span, rng.uniform(20.0, 60.0))
    state, out, since = ShardState(cfg), [], WALL0
    for sec in range(1800):
        wall = WALL0 + sec
        batch: list[Beat | Reading] = [Beat(PART, wall, since)]
        for sensor, (first, last, base) in life.items():
            if first <= sec < last:
                shift = 3.0 if sec - first > 1100 else 0.0
                if last - first < 400 and sec - first in range(150, 155):
                    shift = 30.0  # a spike the envelopes keep, in a slot reused later
                batch.append(temp(sensor, sec, base + rng.gauss(0.0, 0.3) + shift))
        out += state.ingest(batch, wall) + state.expire(wall)
        if snap_every and sec % snap_every == snap_every - 1:
            out_now = [s for s in state.sensors.values() if s.cols is not None and s._scorer]
            seen["out"] = seen.get("out", 0) + len(out_now)
            blob = ShardLogic(state, lambda: 0.0, Status(0)).snapshot()
            assert blob is not None
            state, since = restore(blob, cfg), wall
            assert not state.reconfigure(cfg, wall)
    out += state.flush()
    return [repr(o) for o in out if isinstance(o, WindowResult | SensorEvent)]


@pytest.mark.parametrize("column_rows", [None, 4])
def test_restores_across_forgotten_sensors_reused_slots_and_changes_of_level_lose_nothing(
    column_rows: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot holds slots taken out as per-sensor scorers (drains of fewer than
    ``COLUMN_ROWS`` windows) and slots freed by forgotten sensors; restored every 53 s, the
    shard writes exactly what scoring each window by a scorer of its sensor's own writes
    without a restart: no stale column row read back, no state of a forgotten sensor in the
    slot a new one takes, no change of level accepted otherwise."""
    from dataflow import shard
    from dataflow.model.columns import ColumnScorer
    from dataflow.model.scoring import SensorScorer

    seen: dict[str, int] = {}
    alloc = ColumnScorer.alloc

    def reusing(self: ColumnScorer) -> int:
        seen["reused"] = seen.get("reused", 0) + bool(self.free_slots)
        return alloc(self)

    monkeypatch.setattr(ColumnScorer, "alloc", reusing)
    if column_rows is not None:
        monkeypatch.setattr(shard, "COLUMN_ROWS", column_rows)
    anchored = []
    anchor = SensorScorer._anchor

    def counted(self: SensorScorer, moved: float, floor: float) -> None:
        anchored.append(moved)
        anchor(self, moved, floor)

    monkeypatch.setattr(SensorScorer, "_anchor", counted)
    with monkeypatch.context() as one_by_one:  # no slots: every sensor a scorer of its own
        one_by_one.setattr(shard, "BATCH", False)
        whole = _churn(None, {})
    seen.clear()
    assert _churn(53, seen) == whole
    # The workload reached what the comparison is for (coverage, not expected figures).
    assert seen.get("reused", 0) > 3 and seen.get("out", 0) > 10, seen
    assert sum("forgotten" in r for r in whole) > 5 and sum("ml_anomaly=True" in r for r in whole)
    assert len(anchored) > 5, anchored  # changes of level accepted (the long-lived sensors')


def test_a_retired_partition_runs_on_past_the_last_word_no_longer_than_the_lateness() -> None:
    """Sensor "x" reads every 3 s; its family moves to another topic across a restore, and x has not
    turned up on the new one when that topic's word stops (its reader stalled at 24.5) while
    the shard's timers run on. x's reading of 24.8, made after the last word, is read when the
    word comes back: it is not late and [20, 25) is whole. The old topic, retired, ran on with
    the wall clock for BEAT_GRACE_S (3 s) past the new topic's last word where the partitions
    read stop at the lateness (2 s): x's [20, 25) closed with one reading, 24.8 was late."""
    cfg = config()
    state = ShardState(cfg)
    for k in range(231):  # "a" at 1 Hz, "x" every 3 s (at 0.8, 3.8, ...), live, to 23.0
        t = k / 10
        batch = ([temp("a", t)] if k % 10 == 0 else []) + ([temp("x", t)] if k % 30 == 8 else [])
        if batch:
            now = WALL0 + t
            state.ingest([Beat(PART, now, WALL0), *batch], now)
            state.expire(now)
    back, _ = on_new_topic(state, WALL0 + 23.0)
    new, out = "plant.temperature/0", []
    for t in (23.1, 23.5, 24.0, 24.5):  # the new topic caught up: "a" is on it
        now = WALL0 + t
        batch = [temp("a", t)] if t == 24.0 else []
        out += back.ingest([Beat(new, now, WALL0 + 23.1), *batch], now) + back.expire(now)
    for k in range(1, 31):  # its word stops for 3 s; the timers run on
        out += back.expire(WALL0 + 24.5 + k / 10)
    now = WALL0 + 28.0
    out += back.ingest([Beat(new, now, None), temp("x", 24.8), temp("a", 25.0)], now)
    out += back.expire(now) + back.flush()
    assert [o for o in out if isinstance(o, LateReading)] == []
    x = [o.stats.count for o in out if isinstance(o, WindowResult) and o.sensor_id == "x"]
    assert x[0] == 2  # [20, 25): 21.8 and 24.8
