"""Polls decoded whole and folded as per-sensor runs give what message-by-message gives.

The batch paths (``parse_poll``, ``Run``, ``SensorWindows.add_sorted``) exist only for speed, so
every test here compares them with the per-message rules they replace, to the last bit.
"""

import pickle
import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflow.encoding import encode_late
from dataflow.families import AIR_QUALITY, TEMPERATURE
from dataflow.progress import Beat
from dataflow.readings import (
    VALID_RANGES,
    BadMessage,
    Reading,
    Rows,
    Run,
    SourceRef,
    _parse_general,
    parse,
    parse_poll,
)
from dataflow.routing import ShardBatch, route
from dataflow.shard import LateReading, ShardConfig, ShardState, WindowResult
from dataflow.windows import SensorWindows, _sum_in_order
from tests.factories import T0, S, fmt, readings_only, topics
from tests.factories import shard_config as make_shard_config
from tests.fakes import FakeMessage

SIZE, LATE = 5 * S, 2 * S
TOPICS = topics()
# The float tests below need values no sensor sends (1e16, to test the order of additions):
# they read with a range that lets any of them through.
WIDE = (-1e300, 1e300)

numbers = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e16, 1.0, -1e16, 0.1, 0.2, 0.3]),
)


def temperature(value: object, ts: object) -> bytes:
    return orjson.dumps({"Temperature_C": value, "Timestamp": ts})


def air(value: object, ts: str) -> bytes:
    return orjson.dumps({"timestamp": ts, "value": value})


def naive(ns: int, sep: str = " ") -> str:
    sec, frac = divmod(ns, S)
    from datetime import UTC, datetime

    head = datetime.fromtimestamp(sec, UTC).strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    return f"{head}.{frac // 1000:06d}"


def one_by_one(family: str, values: list[bytes]) -> list[tuple[int, float]] | None:
    out = []
    for value in values:
        try:
            r = parse(fmt(family, WIDE), b"k", value)
        except BadMessage:
            return None
        out.append((r.ts, r.value))
    return out


@settings(max_examples=200)
@given(
    st.lists(st.tuples(numbers, st.integers(0, 4_000_000_000 * S)), min_size=1, max_size=30),
    st.sampled_from([" ", "T"]),
)
def test_a_decoded_poll_reads_as_each_message_does(rows: list[tuple[float, int]], sep: str) -> None:
    for family, values in (
        (TEMPERATURE, [temperature(v, ts) for v, ts in rows]),
        (AIR_QUALITY, [air(v, naive(ts, sep)) for v, ts in rows]),
    ):
        cols = parse_poll(fmt(family, WIDE), values)
        expected = one_by_one(family, values)
        # The column path reads a poll exactly when every message reads, and as they read (an
        # integer time below 1e17 ns is another unit there too, converted message by message).
        assert (cols is None) == (expected is None)
        if cols is None:
            continue
        assert list(zip(cols.ts, cols.values, strict=True)) == expected
        assert all(type(v) is float for v in cols.values)


@pytest.mark.parametrize(
    "bad",
    [
        b'{"Temperature_C": "65", "Timestamp": 1710856626905833677}',  # a string value
        b'{"Temperature_C": true, "Timestamp": 1710856626905833677}',
        b'{"Temperature_C": 65, "Timestamp": 1710856626905.5}',  # a float time: the general rule
        b'{"Temperature_C": 65}',  # no timestamp: the Kafka time, per message
        b'{"Temperature_C": 65, "Timestamp": 1710856626905833677',  # truncated
        b"not json",
        None,
    ],
)
def test_one_odd_message_sends_the_whole_poll_to_the_per_message_rules(bad: bytes | None) -> None:
    good = [temperature(60.0 + i, T0 + i * S) for i in range(4)]
    whole = parse_poll(fmt(TEMPERATURE), good)
    assert whole is not None and whole.values == [60.0, 61.0, 62.0, 63.0]
    assert whole.ts == [T0 + i * S for i in range(4)]
    assert parse_poll(fmt(TEMPERATURE), [*good[:2], bad, *good[2:]]) is None


@pytest.mark.parametrize(
    "family,value",
    [
        (TEMPERATURE, 1.7e308),
        (TEMPERATURE, -273.16),
        (TEMPERATURE, 10_000.5),
        (AIR_QUALITY, -200),
        (AIR_QUALITY, 1e9),
    ],
)
def test_a_value_outside_the_valid_range_leaves_the_fast_path_and_is_refused(
    family: str, value: float
) -> None:
    """The decoder holds the value to the family's range, so a poll with one implausible value
    is read message by message, where that one is refused as ``out_of_range``."""
    make = temperature if family == TEMPERATURE else (lambda v, ts: air(v, naive(ts)))
    good = [make(20.0 + i, T0 + i * S) for i in range(3)]
    whole = parse_poll(fmt(family), good)
    assert whole is not None and whole.values == [20.0, 21.0, 22.0]
    bad = make(value, T0 + 5 * S)
    assert parse_poll(fmt(family), [*good, bad]) is None
    with pytest.raises(BadMessage) as err:
        parse(fmt(family), b"k", bad)
    assert err.value.reason == "out_of_range" and family in err.value.detail
    # Its own range: the same value is a reading for a family configured to take it.
    assert parse(fmt(family, (-abs(value), abs(value))), b"k", bad).value == value
    lo, hi = VALID_RANGES[family]
    edges = parse_poll(fmt(family), [make(lo, T0), make(hi, T0 + S)])
    assert edges is not None and edges.values == [lo, hi]  # inclusive


@pytest.mark.parametrize(
    "text",
    [
        "2024-02-30 00:00:00.000000",  # no such day
        "2024-03-19 24:00:00.000000",
        "2024-03-19 23:59:60.000000",
        "2024-13-19 23:59:59.000000",
        "1969-12-31 23:59:59.999999",  # before 1970
        "2100-01-01 00:00:00.000000",  # from 2100 on
        "2024-03-19 13:57:05.00000a",
        "2024-03-19 13:57:05.00000٣",  # an Arabic-Indic digit: isdigit() says yes
        "2024-03-19x13:57:05.000000",  # fromisoformat takes any separator; the fast path does not
        "2024-03-19 13:57:05.0000000",
        "2024-03-19 13:57:05+00:00",
        " 2024-03-19 13:57:05.00000",
    ],
)
def test_unusual_timestamps_leave_the_numpy_column_and_read_as_the_general_rule(text: str) -> None:
    """Such a poll is read by the per-message time rule (or not at all when one is refused),
    never by numpy's parser, and every path gives the general rule's reading."""
    values = [air(20.0, naive(T0)), air(21.0, text)]
    try:
        general: object = _parse_general(fmt(AIR_QUALITY), "k", values[1], None, None).ts
    except BadMessage as exc:
        general = exc.reason
    try:
        got: object = parse(fmt(AIR_QUALITY), b"k", values[1]).ts
    except BadMessage as exc:
        got = exc.reason
    assert got == general
    cols = parse_poll(fmt(AIR_QUALITY), values)
    if isinstance(general, str):
        assert cols is None
    else:
        assert cols is not None and cols.ts == [T0, general]


def test_every_one_character_change_of_a_timestamp_reads_as_the_general_rule() -> None:
    """The column path's result, whenever it gives one, is the per-message rule's: each position
    of the tutorial's timestamp, changed to every printable ASCII character and a few others."""
    from dataflow.readings import _naive_column, timestamp_to_ns

    base = "2024-03-19 13:57:05.123456"
    taken = 0
    for pos in range(len(base)):
        for char in [*map(chr, range(32, 127)), "٣", "é", "\x00"]:
            text = base[:pos] + char + base[pos + 1 :]
            got = _naive_column([naive(T0), text])
            if got is not None:
                taken += 1
                assert got[1] == timestamp_to_ns(text), text
    assert taken > 100  # digits changed to digits that keep the date valid and in range


@settings(max_examples=300)
@given(st.binary(max_size=80) | st.builds(temperature, numbers, st.integers(0, 2 * 10**18)))
def test_a_message_reads_the_same_through_the_fast_decoder_and_the_general_rules(
    value: bytes,
) -> None:
    """``parse`` tries the fast decoder first; whatever it accepts, the general rules must read
    the same way, so a message never depends on which path its poll took."""
    try:
        fast: object = parse(fmt(TEMPERATURE, WIDE), b"k", value, 1_700_000_000_000)
    except BadMessage:
        return  # rejections always come from the general rules, with their reason
    general = _parse_general(fmt(TEMPERATURE, WIDE), "k", value, 1_700_000_000_000, None)
    assert fast == general


def fold_each(win: SensorWindows, ts: list[int], values: list[float]) -> None:
    for t, v in zip(ts, values, strict=True):
        assert win.add(t, v, SIZE, LATE)


def state(win: SensorWindows) -> tuple:
    return ({k: list(v) for k, v in win.open.items()}, win.max_ts, win.next_close, win.closed_until)


@settings(max_examples=300)
@given(
    st.lists(st.integers(0, 30 * S), max_size=5),
    st.lists(st.integers(0, 30 * S), min_size=1, max_size=60),
    st.data(),
)
def test_a_sorted_run_folds_to_the_same_bits_as_one_reading_at_a_time(
    before: list[int], run: list[int], data: st.DataObject
) -> None:
    before.sort()
    run.sort()
    run = [t + (before[-1] if before else 0) for t in run]  # never earlier than what came before
    vals_before = data.draw(
        st.lists(numbers.map(float), min_size=len(before), max_size=len(before))
    )
    vals = data.draw(st.lists(numbers.map(float), min_size=len(run), max_size=len(run)))
    a, b = SensorWindows(), SensorWindows()
    for win in (a, b):
        fold_each(win, before, vals_before)
    fold_each(a, run, vals)
    b.add_sorted(tuple(run), tuple(vals), SIZE, LATE)
    # Sums bit for bit (and the sign of a zero), not approximately.
    assert repr(state(a)) == repr(state(b))


def test_float_sums_run_in_reading_order() -> None:
    """1e16 + 1.0 rounds back to 1e16, so the order of the additions shows in the result."""
    a, b = SensorWindows(), SensorWindows()
    fold_each(a, [T0, T0 + 1, T0 + 2], [1e16, 1.0, -1e16])
    b.add_sorted((T0, T0 + 1, T0 + 2), (1e16, 1.0, -1e16), SIZE, LATE)
    assert a.open[T0][1] == b.open[T0][1] == 0.0
    # The fallback for a Python whose sum() compensates (3.12+) adds in order too.
    assert _sum_in_order((1e16, 1.0, -1e16), -0.0) == 0.0


def test_equal_values_keep_the_first_as_one_at_a_time_does() -> None:
    """0.0 == -0.0: the minimum and maximum keep whichever came first, and that shows in JSON."""
    a, b = SensorWindows(), SensorWindows()
    for win in (a, b):
        fold_each(win, [T0], [0.0])
    fold_each(a, [T0 + 1, T0 + 2], [-0.0, -0.0])
    b.add_sorted((T0 + 1, T0 + 2), (-0.0, -0.0), SIZE, LATE)
    assert repr(state(a)) == repr(state(b))
    assert repr(b.open[T0][2:]) == "[0.0, 0.0]"


def shard_config() -> ShardConfig:
    return make_shard_config(window_ns=SIZE, lateness_ns=LATE, emit_all=True)


def compare_runs(seed: int, disorder: float) -> None:
    """Feed one random stream as runs and as single readings; assert the same output."""
    rng = random.Random(seed)
    singles, runs = ShardState(shard_config()), ShardState(shard_config())
    clock = {s: 0 for s in "abc"}
    for batch_no in range(12):
        items: list[Reading | Run] = []
        for sensor in rng.sample("abc", rng.randint(1, 3)):
            n = rng.randint(1, 12)
            behind = rng.randint(3 * S, 9 * S) if rng.random() < 0.5 else 0
            ts = []
            for _ in range(n):
                clock[sensor] += rng.randint(0, 2 * S)
                jitter = rng.randint(-4 * S, 0) if rng.random() < disorder else 0
                ts.append(T0 + max(0, clock[sensor] + jitter - behind))
            vals = tuple(rng.choice([rng.uniform(20, 100), 95.0, -0.0]) for _ in ts)
            srcs = tuple(SourceRef((sensor.encode(), b"v%d" % i, "t", 0, i)) for i in range(n))
            items.append(
                Run(TEMPERATURE, sensor, tuple(ts), vals, srcs)
                if n > 1
                else Reading(TEMPERATURE, sensor, ts[0], vals[0], srcs[0])
            )
        flat = [r for it in items for r in (it.readings() if type(it) is Run else [it])]
        now = T0 / S + 1000 + batch_no
        assert runs.ingest(items, now) == singles.ingest(flat, now)
        assert runs.counts.take() == singles.counts.take()
    assert runs.flush() == singles.flush()


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32), st.floats(0.0, 1.0))
def test_a_shard_gives_the_same_windows_and_late_readings_from_runs(
    seed: int, disorder: float
) -> None:
    """Runs in order, runs out of order (some readings late), runs in order but behind their
    sensor's clock (their first window maybe due already): the same output as singles."""
    compare_runs(seed, disorder)


def test_runs_in_order_behind_their_clock_over_many_seeds() -> None:
    """The same, every run in order, over fixed seeds: a run whose first window is already due
    is rare in any one stream (one stream in twenty here), so a sweep, not a sample, holds the
    fast path to it."""
    for seed in range(200):
        compare_runs(seed, 0.0)


def test_a_run_in_order_whose_first_window_is_already_due_reads_as_single_readings() -> None:
    """The sensor's clock (18 s) has passed [10, 15)'s end plus the lateness (17 s): a run from
    12.9 s, in order, its first reading not so far behind the clock that it alone is refused
    (12.9 + 5 + 2 > 18), opens [10, 15), which closes at once with that one reading; the run's
    next reading in it, 14 s, is late, as single readings find it. Found by
    ``test_shard_handoff``: the fast path took the whole run into the window."""
    base = T0 - T0 % SIZE  # a window's start
    wall = T0 / S + 60
    results = []
    for as_run in (True, False):
        shard_ = ShardState(shard_config())
        src = tuple(SourceRef((b"a", b"v%d" % i, "t", 0, i)) for i in range(3))
        shard_.ingest([Reading(TEMPERATURE, "a", base + 18 * S, 60.0, src[0])], wall)
        stamps, values = (base + 12_900_000_000, base + 14 * S), (61.0, 62.0)
        run = Run(TEMPERATURE, "a", stamps, values, src[1:])
        out = shard_.ingest([run] if as_run else run.readings(), wall)
        results.append((typed(out), typed(shard_.flush())))
    assert results[0] == results[1]
    (got, _), _ = results
    kinds = [kind for kind, _, _ in got]
    assert kinds == [WindowResult, LateReading]  # [10, 15) of 12.9 s alone, then 14 s late
    assert got[0][2].stats.count == 1


def test_a_run_of_only_late_readings_does_not_count_as_hearing_from_the_sensor() -> None:
    """As single late readings do not: the sensor's open window still closes when its
    partition's input time, run on from its last accepted reading, passes end + lateness."""
    wall0 = T0 / S
    live = Beat("temperature_readings/0", wall0 + 8, wall0)
    state_ = ShardState(shard_config())
    # Two hearings: one bringing both readings would be a bundle, whose windows wait longer.
    state_.ingest([live._replace(wall=wall0), Reading(TEMPERATURE, "a", T0, 60.0)], now=wall0)
    state_.ingest([live, Reading(TEMPERATURE, "a", T0 + 8 * S, 61.0)], now=wall0 + 8)
    late = Run(TEMPERATURE, "a", (T0 + 2 * S, T0 + 1 * S), (1.0, 2.0), (None, None))
    out = state_.ingest([live._replace(wall=wall0 + 9), late], now=wall0 + 9)
    assert [type(o) for o in out] == [LateReading, LateReading]
    # Heard at 8 s, so [5, 10) closes at 8 + (12 - 8) = 12 s; had the late run counted, 13 s.
    state_.ingest([live._replace(wall=wall0 + 12)], now=wall0 + 12)  # the source's word at 12
    assert [o.stats.start for o in state_.expire(now=wall0 + 12)] == [T0 + 5 * S]


def poll(n_sensors: int, per_sensor: int, bad: bytes | None = None) -> list[FakeMessage]:
    msgs = []
    for i in range(per_sensor):
        for s in range(n_sensors):
            ts = T0 + i * S // 2
            msgs.append(
                FakeMessage(
                    str(s).encode(),
                    temperature(60.0 + s + i / 7, ts),
                    "temperature_readings",
                    0,
                    len(msgs),
                )
            )
    if bad is not None:
        msgs.insert(3, FakeMessage(b"0", bad, "temperature_readings", 0, 999))
    return msgs


def flatten(by_shard: dict[int, ShardBatch]) -> dict[int, list[Reading]]:
    return {
        s: [r for it in b for r in (it.readings() if type(it) is Run else [it])]
        for s, b in by_shard.items()
    }


def per_sensor(by_shard: dict[int, ShardBatch]) -> dict[tuple[int, str], list[tuple]]:
    """Each sensor's readings in order, with its shard: what a shard's result depends on."""
    out: dict[tuple[int, str], list[tuple]] = {}
    for shard, readings in flatten(by_shard).items():
        for r in readings:
            out.setdefault((shard, r.sensor_id), []).append((*r[:4], r.source.offset()))
    return out


def test_route_groups_a_decoded_poll_into_runs_with_the_per_message_readings() -> None:
    msgs = poll(5, 6)
    fast, dead, counts = readings_only(route([msgs], TOPICS, 4))
    assert not dead and counts == {TEMPERATURE: 30}
    assert any(type(it) is Run for b in fast.values() for it in b)
    expected = per_sensor(
        readings_only(route([[m] for m in msgs], TOPICS, 4))[0]
    )  # one message a poll
    assert len(expected) == 5
    assert per_sensor(fast) == expected
    # A malformed message: the poll is read message by message, and only it is rejected.
    mixed, dead, counts = readings_only(route([poll(5, 6, bad=b"{oops")], TOPICS, 4))
    assert [(d.reason, d.offset) for d in dead] == [("invalid_json", 999)]
    assert counts == {TEMPERATURE: 30}
    assert per_sensor(mixed) == expected


@pytest.mark.parametrize("odd", [b', "x": 1e999}', b', "x": "\xff"}'])
def test_a_message_is_used_whichever_poll_it_comes_in(odd: bytes) -> None:
    """An ignored field orjson would refuse: used in a clean poll and in one read message by
    message because of another message, never used in one and refused in the other."""
    value = temperature(61.0, T0)[:-1] + odd
    odd_msg = FakeMessage(b"9", value, "temperature_readings", 0, 500)
    for bad in (None, b"{oops"):
        by_shard, dead, _ = readings_only(route([[*poll(2, 2, bad=bad), odd_msg]], TOPICS, 1))
        assert [d.offset for d in dead] == ([] if bad is None else [999])
        assert per_sensor(by_shard)[(0, "9")] == [(TEMPERATURE, "9", T0, 61.0, 500)]


@pytest.mark.parametrize("seed", range(8))
def test_a_shuffled_poll_of_uneven_runs_routes_as_one_message_a_poll(seed: int) -> None:
    """Sensors with one to a dozen readings in a poll, interleaved at random, and bad keys among
    them: each sensor's readings in poll order on its shard, as one message a poll gives; the
    runs in the order of each sensor's first reading; every bad key's messages dead, in order."""
    rng = random.Random(seed)
    rows = [
        (str(s).encode(), temperature(50.0 + rng.random(), T0 + i * S // 3))
        for s in range(rng.randint(2, 40))
        for i in range(rng.randint(1, 12))
    ]
    bad_keys = [b"", b"x" * 300]  # empty, too long
    rows += [(rng.choice(bad_keys), temperature(60.0, T0)) for _ in range(rng.randint(0, 5))]
    rng.shuffle(rows)
    msgs = [FakeMessage(k, v, "temperature_readings", 0, n) for n, (k, v) in enumerate(rows)]
    grouped, dead, counts = readings_only(route([msgs], TOPICS, 3))
    single, single_dead, single_counts = readings_only(route([[m] for m in msgs], TOPICS, 3))
    assert per_sensor(grouped) == per_sensor(single)
    assert counts == single_counts
    by_key: dict[bytes | None, list[int | None]] = {}
    for d in single_dead:
        by_key.setdefault(d.key, []).append(d.offset)
    assert [(d.key, d.offset) for d in dead] == [(k, o) for k, offs in by_key.items() for o in offs]
    firsts = {m.key(): m.offset() for m in reversed(msgs)}
    for shard, items in grouped.items():  # one item per sensor, in order of first reading
        ids = [it.sensor_id.encode() for it in items]
        assert len(ids) == len(set(ids))
        assert ids == sorted(ids, key=firsts.__getitem__), shard


def test_route_rejects_a_bad_key_of_a_decoded_poll_with_its_messages() -> None:
    msgs = poll(2, 3)
    msgs += [
        FakeMessage(b"", temperature(60.0, T0), "temperature_readings", 0, 50 + i) for i in range(2)
    ]
    _, dead, counts = readings_only(route([msgs], TOPICS, 2))
    assert [(d.reason, d.offset) for d in dead] == [("bad_key", 50), ("bad_key", 51)]
    assert counts == {TEMPERATURE: 6}


def test_a_poll_of_one_reading_per_sensor_gives_the_message_by_message_readings() -> None:
    """A large fleet's polls hold each sensor once: routed without grouping, each shard's
    readings and the dead letters are what the per-message path gives, in the poll's order."""
    msgs = poll(40, 1)
    random.Random(7).shuffle(msgs)
    msgs.insert(9, FakeMessage(b"", temperature(60.0, T0), "temperature_readings", 0, 77))
    fast, dead, counts = readings_only(route([msgs], TOPICS, 4))
    assert [(d.reason, d.offset) for d in dead] == [("bad_key", 77)]
    assert counts == {TEMPERATURE: 40}
    slow, slow_dead, _ = readings_only(
        route([[*msgs, FakeMessage(b"1", b"{", "temperature_readings", 0, 999)]], TOPICS, 4)
    )
    assert [(d.reason, d.offset) for d in slow_dead] == [("bad_key", 77), ("invalid_json", 999)]
    order = {s: [(*r[:4], r.source.offset()) for r in b] for s, b in flatten(fast).items()}
    assert order == {s: [(*r[:4], r.source.offset()) for r in b] for s, b in flatten(slow).items()}
    raw, _, _ = route([msgs], TOPICS, 4)  # each shard's share of the poll: one Rows
    assert [[type(it) for it in b] for b in raw.values()] == [[Beat, Rows]] * len(raw)


def test_a_batch_of_runs_crosses_processes_and_keeps_late_bytes() -> None:
    by_shard, _, _ = readings_only(route([poll(3, 4)], TOPICS, 1))
    batch = by_shard[0]
    assert all(type(it) is Run for it in batch)
    copy = pickle.loads(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
    assert isinstance(copy, ShardBatch) and [type(it) for it in copy] == [Run] * 3
    for before, after in zip(flatten(by_shard)[0], flatten({0: copy})[0], strict=True):
        assert after[:4] == before[:4]
        assert isinstance(after.source, SourceRef)
        assert encode_late(LateReading(after)) == encode_late(LateReading(before))


def typed(results: list) -> list[tuple]:
    """Results with their classes, and a refused reading's: a row of ``Rows`` equals the
    ``Reading`` it stands for as a tuple, but only a ``Reading`` has ``.source`` to encode."""
    return [(type(r), type(getattr(r, "reading", None)), r) for r in results]


def compare_rows(seed: int, disorder: float) -> dict[str, int]:
    """Feed one random stream to two shards, a poll of distinct sensors as ``Rows`` to one and
    as single readings to the other; assert the same results; return what was counted."""
    rng = random.Random(seed)
    config = make_shard_config(
        window_ns=SIZE, lateness_ns=LATE, emit_all=True, max_sensors=9, max_future_ns=30 * S
    )
    singles, rows = ShardState(config), ShardState(config)
    names = [f"s{i}" for i in range(12)]  # more than the limit: some refused
    clock = dict.fromkeys(names, 0)
    wall = T0 / S + 60
    totals: dict[str, int] = {}
    for batch_no in range(15):
        wall += rng.uniform(0.0, 4.0)
        by_rows: list[Reading | Run | Rows | Beat] = []
        flat: list[Reading | Run | Rows | Beat] = []
        for part in range(rng.randint(1, 2)):
            beat = Beat(f"temperature_readings/{part}", wall, wall - 1)
            sample = rng.sample(names, rng.randint(1, len(names)))
            stamps = []
            for sensor in sample:
                clock[sensor] += rng.randint(0, 3 * S)
                jitter = rng.randint(-6 * S, 0) if rng.random() < disorder else 0
                future = 200 * S if rng.random() < 0.05 else 0
                stamps.append(T0 + max(0, clock[sensor] + jitter) + future)
            values = [rng.choice([rng.uniform(20, 100), 95.0, -0.0]) for _ in sample]
            sources = [
                SourceRef((s.encode(), b"v%d" % batch_no, "t", part, i))
                for i, s in enumerate(sample)
            ]
            poll = Rows(TEMPERATURE, sample, stamps, values, sources)
            by_rows += [beat, poll]
            flat += [beat, *poll.readings()]
        assert typed(rows.ingest(by_rows, wall)) == typed(singles.ingest(flat, wall))
        assert typed(rows.expire(wall)) == typed(singles.expire(wall))
        counted = rows.counts.take()
        assert counted == singles.counts.take()
        for name, n in counted.items():
            totals[name] = totals.get(name, 0) + n
    assert rows.flush() == singles.flush()
    return totals


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32), st.floats(0.0, 1.0))
def test_a_shard_gives_the_same_results_from_rows(seed: int, disorder: float) -> None:
    """A poll of distinct sensors handed as ``Rows`` (a large fleet's polls) gives what the same
    readings one by one give: windows, late readings and those from the future or past the
    sensor limit with their sources, in the same order, on two partitions."""
    compare_rows(seed, disorder)


def test_the_rows_comparison_reaches_every_refusal() -> None:
    """The random streams above do reach the late, future and sensor-limit paths."""
    totals = compare_rows(3, 0.5)
    assert totals["late"] and totals["future"] and totals["limited"] and totals["windows"]
