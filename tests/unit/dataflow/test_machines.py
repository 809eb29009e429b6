"""Machine families: the sensors file's ``machine`` and ``channels``, routing by machine, and a
shard that scores a machine's window once and keeps one alert per machine."""

import pickle
import random
from typing import Any

import orjson
import pytest

from dataflow.encoding import encode_window
from dataflow.families import FamilyConfigError, describe, parse_families
from dataflow.machines import MAX_BEHIND, MachineWindows
from dataflow.model.machine import MachineParams
from dataflow.model.scoring import ModelParams
from dataflow.progress import Beat
from dataflow.readings import Reading, Rows, Run, formats_by_topic, parse
from dataflow.routing import route, shard_of
from dataflow.shard import (
    FamilySetup,
    SensorEvent,
    ShardConfig,
    ShardCounts,
    ShardState,
    WindowResult,
)
from tests.factories import PUMP_WARM as WARM
from tests.factories import PUMPS, PUMPS_CHANNELS, T0, S, pump_config, readings_only
from tests.fakes import FakeMessage


def pumps(**changes: Any) -> dict:
    body = {**PUMPS["families"]["pump"], **changes}
    return {"families": {"pump": {k: v for k, v in body.items() if v is not None}}}


# -- the sensors file ------------------------------------------------------------------------


def test_a_machine_family_reads_its_channels() -> None:
    (fam,) = parse_families(PUMPS, "pumps.yaml")
    assert fam.machine == "asset"
    assert fam.channels == (("current", "amps"), ("flow", "m3h"))
    assert fam.channel_names == ("current", "flow")
    again = parse_families(describe((fam,)), "again")
    assert again == (fam,)


def test_a_family_without_machine_describes_as_before() -> None:
    (fam,) = parse_families(pumps(machine=None, channels=None, value="amps"), "f.yaml")
    assert fam.machine is None and fam.channels == ()
    assert "machine" not in describe((fam,))["families"]["pump"]


@pytest.mark.parametrize(
    ("changes", "where", "what"),
    [
        ({"machine": None}, "families.pump.channels", "without 'machine'"),
        ({"channels": None}, "families.pump", "missing key 'channels'"),
        ({"value": "amps"}, "families.pump.value", "beside 'channels'"),
        ({"channels": {}}, "families.pump.channels", "declares no channel"),
        ({"channels": {"a/b": "x"}}, "families.pump.channels['a/b']", "no '/'"),
        ({"channels": {"a": "x y"}}, "families.pump.channels.a", "not a dotted path"),
        ({"channels": ["amps"]}, "families.pump.channels", "needs 'channel'"),
        ({"channels": "amps"}, "families.pump.channels", "expected a mapping"),
        ({"sensor_id": "id"}, "families.pump.sensor_id", "beside 'machine'"),
        ({"machine": "ts"}, "families.pump.machine", "overlaps timestamp"),
        ({"channels": {"a": "ts.x"}}, "families.pump.channels.a", "overlaps timestamp"),
    ],
)
def test_config_errors_name_the_file_and_key(changes: dict, where: str, what: str) -> None:
    with pytest.raises(FamilyConfigError) as err:
        parse_families(pumps(**changes), "pumps.yaml")
    assert str(err.value).startswith(f"pumps.yaml: {where}: "), str(err.value)
    assert what in str(err.value)


# -- decoding and routing ---------------------------------------------------------------------


def message(asset: str, sec: float, amps: float, flow: float, offset: int = 0) -> FakeMessage:
    value = orjson.dumps({"asset": asset, "ts": T0 + int(sec * S), "amps": amps, "m3h": flow})
    return FakeMessage(asset.encode(), value, "pumps", 0, offset, 1_700_000_000_000)


def test_one_message_is_a_reading_per_channel_named_machine_slash_channel() -> None:
    (fam,) = parse_families(PUMPS, "p")
    fmts = formats_by_topic((fam,))["pumps"]
    m = message("p7", 1, 12.5, 40.0)
    got = [parse(f, m.key(), m.value()) for f in fmts]
    assert [(r.sensor_id, r.value) for r in got] == [("p7/current", 12.5), ("p7/flow", 40.0)]


@pytest.mark.parametrize("odd", [False, True])
def test_a_machines_channels_go_to_the_machines_shard(odd: bool) -> None:
    """Whole polls and polls read message by message (an odd message: a float timestamp) agree."""
    (fam,) = parse_families(PUMPS, "p")
    topics = formats_by_topic((fam,))
    batch = [message(f"p{i}", 1, 10.0 + i, 30.0 + i, offset=i) for i in range(20)]
    if odd:
        batch.append(
            FakeMessage(
                b"p0",
                orjson.dumps({"asset": "p0", "ts": (T0 + 2 * S) / 1e9, "amps": 1, "m3h": 2}),
                "pumps",
                0,
                20,
                1_700_000_000_000,
            )
        )
    by_shard, dead, _ = readings_only(route([batch], topics, 8))
    assert not dead
    seen: dict[str, int] = {}
    for shard, items in by_shard.items():
        for r in items:
            rs = r.readings() if hasattr(r, "readings") else [r]
            for one in rs:
                machine, _, channel = one.sensor_id.rpartition("/")
                assert channel in ("current", "flow")
                assert shard == shard_of("pump", machine, 8)
                seen[one.sensor_id] = seen.get(one.sensor_id, 0) + 1
    assert len(seen) == 40
    assert len({shard_of("pump", f"p{i}", 8) for i in range(20)}) > 1  # spread by machine


@pytest.mark.parametrize("odd", [False, True])
def test_a_machines_poll_reaches_its_shard_in_poll_order_each_messages_channels_in_turn(
    odd: bool,
) -> None:
    """Never a channel's run of the poll ahead of its sibling's: the shard decides on a machine
    from its channels together (``_back_machine``), and read a channel's whole poll first it
    took the sibling's readings of that poll for missing (a restart's replay resolved alerts
    live never did). Whole polls and polls read message by message (an odd message) alike."""
    (fam,) = parse_families(PUMPS, "p")
    batch = [message("p1", i, 10.0 + i, 30.0 + i, offset=i) for i in range(4)]
    if odd:  # one message with a float timestamp: that poll is read message by message
        body = {"asset": "p1", "ts": (T0 + 4 * S) / 1e9, "amps": 14.0, "m3h": 34.0}
        batch.append(FakeMessage(b"p1", orjson.dumps(body), "pumps", 0, 4, 1_700_000_000_000))
    by_shard, dead, counts = route([batch], formats_by_topic((fam,)), 4)
    assert not dead
    assert counts == {"pump": 2 * len(batch)}
    (items,) = by_shard.values()
    assert not [r for r in items if isinstance(r, Run)]
    got = [(r.sensor_id, r.value) for r in _flat(items)]
    want = [
        (f"p1/{ch}", base + i)
        for i in range(len(batch))
        for ch, base in (("current", 10.0), ("flow", 30.0))
    ]
    assert got == want


def _flat(items: list) -> list[Reading]:
    """A shard's items as readings, in order (a ``Rows``'s rows in turn)."""
    return [one for r in items if not isinstance(r, Beat) for one in _readings_of(r)]


def _readings_of(item: Reading | Run | Rows) -> list[Reading]:
    return [item] if isinstance(item, Reading) else item.readings()


def _where(by_shard: dict) -> dict[str, int]:
    return {r.sensor_id: s for s, items in by_shard.items() for r in _flat(items)}


def test_a_machine_named_like_another_machines_channel_is_its_own_machine() -> None:
    """A poll read message by message (one message without a value) cached p7's current
    channel under its sensor id "p7/current", which a poll decoded whole looks the machine
    "p7/current" up by: its readings were filed as p7's (a review found it). Both paths key a
    channel's cache by the machine id now."""
    (fam,) = parse_families(PUMPS, "p")
    topics, cache = formats_by_topic((fam,)), {}
    odd = FakeMessage(b"p7", None, "pumps", 0, 1)
    route([[message("p7", 0, 1.0, 2.0, offset=0), odd]], topics, 4, cache)
    by_shard, dead, _ = route([[message("p7/current", 1, 1.0, 2.0, offset=2)]], topics, 4, cache)
    assert not dead
    assert sorted(_where(by_shard)) == ["p7/current/current", "p7/current/flow"]


def test_a_machines_channels_share_its_shard_whichever_way_its_polls_are_read() -> None:
    """The other way round: the machine "p7/current" decoded whole, then p7 read message by
    message sent p7's current channel to the other machine's shard, its flow to its own: its
    model never saw them together."""
    (fam,) = parse_families(PUMPS, "p")
    topics, cache, shards = formats_by_topic((fam,)), {}, 8
    assert shard_of("pump", "p7", shards) != shard_of("pump", "p7/current", shards)
    route([[message("p7/current", 0, 1.0, 2.0, offset=0)]], topics, shards, cache)
    odd = FakeMessage(b"p7", None, "pumps", 0, 2)
    by_shard, _, _ = route([[message("p7", 1, 1.0, 2.0, offset=1), odd]], topics, shards, cache)
    where = _where(by_shard)
    assert where["p7/current"] == where["p7/flow"] == shard_of("pump", "p7", shards)


def test_a_routing_cache_of_more_shards_is_refused_for_a_machine_family_too() -> None:
    (fam,) = parse_families(PUMPS, "p")
    topics, cache = formats_by_topic((fam,)), {}
    batch = [message(f"p{i}", 0, 1.0, 2.0, offset=i) for i in range(40)]
    route([batch], topics, 16, cache)
    with pytest.raises(ValueError, match="beyond 2"):
        route([batch], topics, 2, cache)


def test_a_message_missing_a_channel_is_refused_for_that_channel_only() -> None:
    (fam,) = parse_families(PUMPS, "p")
    topics = formats_by_topic((fam,))
    bad = FakeMessage(
        b"p1",
        orjson.dumps({"asset": "p1", "ts": T0, "amps": 3.0}),
        "pumps",
        0,
        0,
        1_700_000_000_000,
    )
    by_shard, dead, _ = readings_only(route([[bad]], topics, 4))
    assert [d.reason for d in dead] == ["missing_field"]
    assert "m3h" in dead[0].detail
    assert [r.sensor_id for items in by_shard.values() for r in items] == ["p1/current"]


# -- the shard ---------------------------------------------------------------------------------


def shard(emit_all: bool = False, refresh_s: float = 3600.0, **config: Any) -> ShardState:
    """A shard of the pump family; ``config``: more of ``ShardConfig``'s fields."""
    return ShardState(pump_config(emit_all=emit_all, refresh_s=refresh_s, **config))


def pump_readings(machine: str, n: int, seed: int, break_at: int | None) -> list[list[Reading]]:
    """A reading per channel per 5 s window: current and flow follow one load; from
    ``break_at`` the flow falls against the current, each within its usual range."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        load = rng.gauss(0, 1)
        broken = break_at is not None and i >= break_at
        ts = T0 + i * 5 * S + S
        current = 20 + 2 * load + rng.gauss(0, 0.2)
        flow = 50 + 5 * load + rng.gauss(0, 0.5) - (4.0 if broken else 0.0)
        out.append(
            [
                Reading("pump", f"{machine}/current", ts, current),
                Reading("pump", f"{machine}/flow", ts, flow),
            ]
        )
    return out


def run(state: ShardState, batches: list[list[Reading]]) -> list:
    out: list = []
    for i, batch in enumerate(batches):
        now = (T0 + i * 5 * S + 5 * S) / S
        out += state.ingest([Beat("pumps/0", now, T0 / S), *batch], now)
        out += state.expire(now)
    return out + state.flush()


def machine_results(out: list) -> list[WindowResult]:
    return [o for o in out if isinstance(o, WindowResult) and o.drivers is not None]


def test_a_broken_relation_opens_one_machine_alert_naming_both_channels() -> None:
    state = shard()
    out = run(state, pump_readings("p1", 400, seed=1, break_at=300))
    events = [o for o in out if isinstance(o, WindowResult) and o.alert is not None]
    opened = [o for o in events if o.alert.event == "open"]
    assert len(opened) == 1, [(o.sensor_id, o.alert.event) for o in events]
    (alert,) = opened
    assert alert.sensor_id == "p1" and alert.drivers is not None
    assert (alert.stats.start - T0) // (5 * S) >= 300
    assert {c for c, *_ in alert.drivers[:2]} == {"current", "flow"}
    record = orjson.loads(encode_window(alert)[1])
    assert record["machine"] == "p1" and record["event"] == "open"
    assert {d["channel"] for d in record["drivers"]} >= {"current", "flow"}
    assert all(isinstance(d["z"], float) for d in record["drivers"])
    # It says why: the joint model, and the two channels that drove it, first.
    explain = record["explain"]
    assert explain["detector"] == "machine" and set(explain["drivers"][:2]) == {"current", "flow"}
    assert "current" in explain["text"] and "flow" in explain["text"]
    # No channel alert: the machine's pages for the episode.
    assert all(o.drivers is not None for o in events)


def test_an_open_machine_alert_says_so_at_least_once_per_refresh() -> None:
    """``ALERT_REFRESH_SECONDS`` reaches the machine's alert: while it is open, no stretch of
    its windows longer than the refresh passes without an event of it."""
    gaps = {}
    for refresh in (60.0, 0.0):
        out = run(shard(refresh_s=refresh), pump_readings("p1", 400, seed=1, break_at=300))
        events = [
            ((o.stats.start - T0) // S, o.alert.event)
            for o in machine_results(out)
            if o.alert is not None
        ]
        assert events[0][1] == "open" and all(e != "open" for _, e in events[1:])
        end = next((t for t, e in events if e == "resolved"), (400 - 1) * 5)
        times = [t for t, _ in events if t <= end]
        gaps[refresh] = max(b - a for a, b in zip(times, [*times[1:], end], strict=True))
    assert gaps[60.0] <= 60 < gaps[0.0], gaps


def test_a_normal_machine_stays_quiet_and_is_scored_once_per_window() -> None:
    state = shard(emit_all=True)
    out = run(state, pump_readings("p2", 300, seed=2, break_at=None))
    scored = machine_results(out)
    starts = [o.stats.start for o in scored]
    assert len(starts) == len(set(starts)) == 300
    assert all(o.stats.count == 2 for o in scored)
    assert not any(o.alert for o in out if isinstance(o, WindowResult))
    assert sum(o.anomaly for o in scored[WARM:]) <= 3


def test_a_silent_channel_does_not_hold_its_machine_back() -> None:
    state = shard(emit_all=True)
    batches = pump_readings("p3", 40, seed=3, break_at=None)
    for b in batches[20:]:
        del b[1]  # the flow channel falls silent
    out = run(state, batches)
    scored = machine_results(out)
    assert len(scored) == 40
    assert [o.stats.count for o in scored[20:]] == [1] * 20


def test_machine_windows_wait_for_every_channel_or_a_dead_one() -> None:
    mw = MachineWindows(("a", "b"), MachineParams())
    w = 5 * S
    mw.channel_closed("a", 0, w, 1.0)
    assert mw.due(w) == []
    mw.channel_closed("b", 0, w, 2.0)
    assert mw.due(w) == [0]
    mw.score("m", 0, 12, 3, 48, "warning")
    for k in range(1, MAX_BEHIND + 1):
        mw.channel_closed("a", k * w, (k + 1) * w, 1.0)
        assert mw.due(w) == []
    mw.channel_closed("a", (MAX_BEHIND + 1) * w, 0, 1.0)
    assert mw.due(w) == [w]
    mw.score("m", w, 12, 3, 48, "warning")
    mw.channel_closed("b", w, 2 * w, 2.0)  # too late: its machine window was scored
    assert w not in mw.pending
    mw.channel_closed("zzz", 9 * w, 10 * w, 1.0)  # not a channel of it
    assert 9 * w not in mw.pending


def test_a_batch_of_runs_scores_each_machine_window_once_with_every_channel() -> None:
    """A poll is folded a sensor at a time: one channel's run closes many windows before the
    other channel's run is read. The machine waits for the batch, not for a window."""
    state = shard(emit_all=True)
    batches = pump_readings("p5", 120, seed=5, break_at=None)
    readings = [r for batch in batches for r in batch]
    ordered = sorted(readings, key=lambda r: (r.sensor_id, r.ts))  # all current, then all flow
    now = (T0 + 200 * 5 * S) / S
    out = state.ingest([Beat("pumps/0", now, T0 / S), *ordered], now) + state.flush()
    scored = machine_results(out)
    assert len({o.stats.start for o in scored}) == len(scored) == 120
    assert all(o.stats.count == 2 for o in scored)


def test_a_forgotten_machine_resolves_its_alert_as_stale() -> None:
    state = shard()
    run(state, pump_readings("p4", 350, seed=4, break_at=300))
    assert state.open_alerts == 1
    out: list = []
    for key in list(state.sensors):
        state._forget(key, 0.0, out)
    stale = [o for o in out if isinstance(o, SensorEvent) and o.alert is not None]
    assert [(o.sensor_id, o.alert.resolution) for o in stale] == [("p4", "stale")]
    assert state.open_alerts == 0 and not state.machines


# -- per-channel messages: a machine path and a channel field ----------------------------------

PER_CHANNEL = {
    "families": {
        "pump": {
            "topic": "pumps",
            "machine": "asset",
            "channel": "sensor",
            "value": "reading",
            "channels": ["current", "flow"],
            "timestamp": "ts",
            "valid_range": [-1000, 1000],
            "window_seconds": 5,
        }
    }
}


def per_channel(asset: str, channel: str, sec: float, value: float, offset: int) -> FakeMessage:
    doc = {"asset": asset, "sensor": channel, "reading": value, "ts": T0 + int(sec * S)}
    return FakeMessage(asset.encode(), orjson.dumps(doc), "pumps", 0, offset, 1_700_000_000_000)


def test_per_channel_messages_read_as_machine_slash_channel() -> None:
    (fam,) = parse_families(PER_CHANNEL, "p")
    assert fam.channel == "sensor" and fam.channel_names == ("current", "flow")
    assert parse_families(describe((fam,)), "again") == (fam,)
    (fmt,) = formats_by_topic((fam,))["pumps"]
    m = per_channel("p3", "flow", 1, 41.5, 0)
    got = parse(fmt, m.key(), m.value())
    assert (got.sensor_id, got.value) == ("p3/flow", 41.5)


@pytest.mark.parametrize("odd", [False, True])
def test_per_channel_messages_go_to_their_machines_shard(odd: bool) -> None:
    (fam,) = parse_families(PER_CHANNEL, "p")
    topics = formats_by_topic((fam,))
    batch = [
        per_channel(f"p{i}", ch, 1 + (0.5 if odd and i == 0 else 0), 10.0 + i, 2 * i + k)
        for i in range(10)
        for k, ch in enumerate(("current", "flow"))
    ]
    if odd:  # a float timestamp: the poll is read message by message
        batch.append(
            FakeMessage(
                b"p0",
                orjson.dumps(
                    {"asset": "p0", "sensor": "flow", "reading": 1, "ts": (T0 + 2 * S) / 1e9}
                ),
                "pumps",
                0,
                99,
                1_700_000_000_000,
            )
        )
    by_shard, dead, _ = readings_only(route([batch], topics, 8))
    assert not dead
    ids = set()
    for shard, items in by_shard.items():
        for r in items:
            for one in r.readings() if hasattr(r, "readings") else [r]:
                assert shard == shard_of("pump", one.sensor_id.rpartition("/")[0], 8)
                ids.add(one.sensor_id)
    assert ids == {f"p{i}/{ch}" for i in range(10) for ch in ("current", "flow")}


def test_a_channel_field_with_a_slash_is_a_dead_letter() -> None:
    (fam,) = parse_families(PER_CHANNEL, "p")
    topics = formats_by_topic((fam,))
    _, dead, _ = readings_only(route([[per_channel("p1", "a/b", 1, 1.0, 0)]], topics, 4))
    assert [d.reason for d in dead] == ["bad_sensor_id"]


def test_per_channel_messages_make_one_machine_alert() -> None:
    (fam,) = parse_families(PER_CHANNEL, "p")
    setup = FamilySetup(
        fam,
        ModelParams(limits=(-1000.0, 1000.0), window_ns=5 * S, window_size=20, warmup=20),
        MachineParams(memory=100, warmup=WARM),
    )
    state = ShardState(ShardConfig(lateness_ns=0, idle_timeout_s=10.0, families={"pump": setup}))
    out = run(state, pump_readings("p9", 400, seed=1, break_at=300))
    opened = [o for o in out if isinstance(o, WindowResult) and o.alert and o.alert.event == "open"]
    assert [
        (o.sensor_id, {c for c, *_ in o.drivers or ()} >= {"current", "flow"}) for o in opened
    ] == [("p9", True)]


@pytest.mark.parametrize(
    ("changes", "where", "what"),
    [
        ({"channel": None}, "families.pump.channels", "needs 'channel'"),
        ({"value": None}, "families.pump", "missing key 'value'"),
        ({"machine": "key"}, "families.pump.machine", "dotted path with 'channel'"),
        ({"channels": ["a", "a"]}, "families.pump.channels", "twice"),
        ({"channel": "asset"}, "families.pump.channel", "overlaps machine"),
    ],
)
def test_per_channel_config_errors(changes: dict, where: str, what: str) -> None:
    body = {**PER_CHANNEL["families"]["pump"], **changes}
    raw = {"families": {"pump": {k: v for k, v in body.items() if v is not None}}}
    with pytest.raises(FamilyConfigError) as err:
        parse_families(raw, "pumps.yaml")
    assert str(err.value).startswith(f"pumps.yaml: {where}: "), str(err.value)
    assert what in str(err.value)


def test_a_channel_field_beside_a_mapping_of_channels_is_refused() -> None:
    with pytest.raises(FamilyConfigError, match=r"families\.pump\.channel: set beside a mapping"):
        parse_families(pumps(channel="sensor"), "pumps.yaml")


def test_a_silent_machine_resolves_its_alert_as_stale() -> None:
    state = shard(stale_s=60.0)
    batches = pump_readings("p6", 320, seed=6, break_at=300)
    out: list = []
    for i, batch in enumerate(batches):
        now = (T0 + i * 5 * S + 5 * S) / S
        out += state.ingest([Beat("pumps/0", now, T0 / S), *batch], now)
        out += state.expire(now)
    assert state.open_alerts == 1
    last = (T0 + 320 * 5 * S) / S
    quiet = state.expire(last + 30) + state.ingest([Beat("pumps/0", last + 30, T0 / S)], last + 30)
    assert not [o for o in quiet if isinstance(o, SensorEvent)]  # not yet silent for long
    later = last + 200
    out = state.ingest([Beat("pumps/0", later, T0 / S)], later) + state.expire(later)
    stale = [o for o in out if isinstance(o, SensorEvent) and o.alert is not None]
    assert [(o.sensor_id, o.alert.resolution) for o in stale] == [("p6", "stale")]
    assert state.open_alerts == 0


@pytest.mark.parametrize("lag", [1, 4])
def test_a_channel_s_windows_left_out_of_its_machine_s_are_counted(lag: int) -> None:
    """A channel that arrives ``lag`` windows after the other (a message per channel, sent
    apart): past ``MAX_BEHIND`` windows behind, it is taken for dead and the machine's windows
    are scored without it; its own windows, closed later, are left out. That was silent: a
    machine whose model never learned (a first level needs every channel) said nothing."""
    state = shard()
    batches = pump_readings("p3", 60, seed=3, break_at=None)
    out: list = []
    for i in range(len(batches) + lag):
        now = (T0 + i * 5 * S + 5 * S) / S
        current = batches[i][:1] if i < len(batches) else []
        flow = batches[i - lag][1:] if i >= lag else []
        out += state.ingest([Beat("pumps/0", now, T0 / S), *current, *flow], now)
        out += state.expire(now)
    out += state.flush()
    counts = state.counts.take()
    if lag <= MAX_BEHIND:
        assert counts["left_out"] == 0
    else:
        assert counts["left_out"] >= len(batches) - 2 * lag
    assert pickle.loads(pickle.dumps(state.counts)).take() == dict.fromkeys(counts, 0)


def test_the_flow_counts_them_in_its_metrics() -> None:
    from prometheus_client import REGISTRY

    from dataflow.flow import ShardLogic
    from dataflow.status import Status

    def left_out() -> float:
        return REGISTRY.get_sample_value("sensor_machine_channel_windows_left_out_total") or 0.0

    clock = [0.0]
    logic = ShardLogic(shard(), lambda: clock[0], Status(0), snapshots=False)
    before = left_out()
    batches = pump_readings("p4", 30, seed=4, break_at=None)
    for i in range(len(batches)):
        clock[0] = (T0 + i * 5 * S + 5 * S) / S
        flow = batches[i - 5][1:] if i >= 5 else []
        logic.on_batch([[Beat("pumps/0", clock[0], T0 / S), *batches[i][:1], *flow]])
    assert left_out() - before >= 15


def test_counts_pickled_before_a_counter_existed_start_it_at_zero() -> None:
    old = ShardCounts()
    old.late = 3
    state = old.__reduce_ex__(pickle.HIGHEST_PROTOCOL)[2]
    assert isinstance(state, tuple)
    del state[1]["left_out"]  # as a snapshot made before it was counted
    back = ShardCounts.__new__(ShardCounts)
    back.__setstate__(state)
    taken = back.take()
    assert taken["left_out"] == 0 and taken["late"] == 3


def restarted(state: ShardState, channels: dict[str, str]) -> tuple[ShardState, list[str]]:
    """Snapshot, restore under the pump family with these channels, reconfigure."""
    from dataflow.flow import ShardLogic, restore
    from dataflow.status import Status

    (fam,) = parse_families(pumps(channels=channels), "p")
    setup = FamilySetup(fam, state.config.families["pump"].model, MachineParams(100, WARM))
    cfg = ShardConfig(lateness_ns=0, idle_timeout_s=10.0, families={"pump": setup})
    blob = ShardLogic(state, lambda: 0.0, Status(0)).snapshot()
    assert blob is not None
    restored = restore(blob, cfg)
    return restored, restored.reconfigure(cfg)


def feed(state: ShardState, batches: list[list[Reading]], first: int) -> list:
    out: list = []
    for i, batch in enumerate(batches, first):
        now = (T0 + i * 5 * S + 5 * S) / S
        out += state.ingest([Beat("pumps/0", now, T0 / S), *batch], now)
        out += state.expire(now)
    return out


@pytest.mark.parametrize(
    "channels",
    [{"flow": "m3h", "current": "amps"}, {"current": "amps"}, {**PUMPS_CHANNELS, "rpm": "rpm"}],
    ids=["reordered", "one-dropped", "one-added"],
)
def test_channels_changed_across_a_restore_start_the_machine_anew(channels: dict) -> None:
    """Its open alert resolves (it stayed open for good), each channel finds its new place
    (a kept link pointed at the old order: two channels in one slot, a machine never scored,
    or an index past the end and a crash loop), and the log says so."""
    readings = pump_readings("p1", 700, seed=1, break_at=300)
    state = shard()
    feed(state, readings[:320], 0)
    assert state.open_alerts == 1
    state, lines = restarted(state, channels)
    assert any("channels changed" in line for line in lines)
    resolved = [o for o in state.pending if getattr(o, "alert", None) is not None]
    assert [o.alert.event for o in resolved] == ["resolved"] and state.open_alerts == 0
    later = pump_readings("p1", 700, seed=2, break_at=None)[320:]
    if "rpm" in channels:  # the new channel reports too
        later = [
            [*batch, Reading("pump", "p1/rpm", batch[0].ts, 1450.0 + i % 7)]
            for i, batch in enumerate(later)
        ]
    feed(state, later, 320)
    (mw,) = state.machines.values()
    assert mw.names == tuple(channels) and mw.model.seen > 0
    for (_, sensor_id), sensor in state.sensors.items():
        channel = sensor_id.rpartition("/")[2]
        if channel in channels:
            assert sensor.machine is not None and mw.names[sensor.machine[1]] == channel


def test_a_relation_broken_for_good_resolves_adapted_and_pages_no_more_than_before() -> None:
    """The pump's current/flow relation flips and is never repaired. After ``RELEARN`` memories
    the model takes it as the new normal: that alert resolves ``adapted`` (it resolved clean,
    "machine back", though it never came back), and the model starts anew on the new state
    instead of calling its ordinary windows anomalous and paging again after each cooldown."""
    rng = random.Random(3)
    mw = MachineWindows(("current", "flow"), MachineParams(memory=50, warmup=100))
    w = 10**9
    events: list[tuple[int, str, str | None]] = []
    anomalous = [0] * 8
    brk, n = 1000, 8000
    for i in range(n):
        load = rng.gauss(0, 1)
        mw.file(0, i * w, (i + 1) * w, 10 + load + rng.gauss(0, 0.1))
        mw.file(1, i * w, (i + 1) * w, (5 - load if i < brk else 3 + load) + rng.gauss(0, 0.1))
        for s in mw.due(w):
            r = mw.score("pump/p1", s, 12, 3, 48, "warning")
            anomalous[s // w // 1000] += r.anomaly
            if r.alert is not None and r.alert.event != "update":
                events.append((s // w, r.alert.event, r.alert.resolution))
    fault = [e for e in events if e[0] >= brk]
    assert fault[0][:2] == (brk, "open")
    assert fault[1][1:] == ("resolved", "adapted")
    assert all(how != "adapted" for _, _, how in fault[2:])  # later ones are ordinary
    before = anomalous[0]  # the false alarms of the first thousand windows (warm-up aside)
    after = anomalous[2:]  # from about the restart on (the old model's 2,000s held 29)
    assert max(after) <= max(3 * before, 20), (anomalous, fault[:6])


def _feed(state: ShardState, batches: list[list[Reading]], flow_ts: Any) -> list:
    """Both channels read each 5 s, the flow channel's stamp as ``flow_ts(i, ts)`` says."""
    out: list = []
    for i, (cur, flow) in enumerate(batches):
        now = (T0 + i * 5 * S + 5 * S) / S
        flow = Reading(flow.family, flow.sensor_id, flow_ts(i, flow.ts), flow.value)
        out += state.ingest([Beat("pumps/0", now, T0 / S), cur, flow], now)
        out += state.expire(now)
    return out


def test_a_channel_whose_clock_stopped_does_not_stall_its_machine() -> None:
    """The flow channel's clock stops (every reading the same stamp): its window stays open
    while it is heard. The machine goes on without it (taken for dead), its pending windows
    bounded, not one more per window with no alert ever (a change that waited for any channel
    with a window open did that)."""
    state = shard(emit_all=True)
    batches = pump_readings("p1", 400, seed=1, break_at=None)
    frozen = batches[100][1].ts
    out = _feed(state, batches, lambda i, ts: ts if i < 100 else frozen)
    assert len(machine_results(out)) >= 390
    assert len(state.machines[("pump", "p1")].pending) <= MAX_BEHIND + 1


def test_a_channel_whose_clock_lags_far_does_not_hold_its_machine_back() -> None:
    """The flow channel stamps its readings from 1970 (a clock reset): the machine's windows are
    scored without it, not held back by its open window for ever."""
    state = shard(emit_all=True)
    batches = pump_readings("p1", 400, seed=1, break_at=None)
    out = _feed(state, batches, lambda i, ts: ts - T0 + 1000 * S)
    assert len([o for o in machine_results(out) if o.stats.start >= T0]) >= 390
    assert len(state.machines[("pump", "p1")].pending) <= MAX_BEHIND + 1
