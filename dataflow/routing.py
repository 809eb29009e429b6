"""Routing: a batch of polls -> each shard's readings, and dead letters.

Pure. Input: batches of messages with the methods of confluent-kafka's ``Message`` (see
``SourceMessage``), duck-typed so tests need no Kafka. Each poll is decoded whole with its
family's format where it can be (``dataflow.readings``) and sent to the shard ``shard_of``
names: a poll of distinct keys (a large fleet's) as one ``Rows`` per shard, columns in poll
order; one with several readings per sensor (a dense fleet's) grouped into one ``Run`` per
sensor. A message that cannot be used becomes a ``DeadLetter`` with its original bytes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple, Protocol, cast

import numpy as np

from dataflow.progress import MARK, Beat, part_name
from dataflow.readings import (
    BadMessage,
    Columns,
    Format,
    NoTimestamp,
    Reading,
    Rows,
    Run,
    SourceRef,
    parse,
    parse_poll,
    sensor_id_of_raw,
)


def shard_of(family: str, sensor_id: str, shards: int) -> int:
    """Stable shard of a sensor: CRC-32 of ``family/sensor_id`` (Python's ``hash`` is salted).
    A machine family's sensors take their machine's: ``shard_of(family, machine_id, shards)``."""
    return zlib.crc32(f"{family}/{sensor_id}".encode()) % shards


class SourceMessage(Protocol):
    """What the flow reads of a Kafka message: confluent-kafka's ``Message`` methods."""

    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def timestamp(self) -> tuple[int, int]: ...


class DeadLetter(NamedTuple):
    """A message the flow cannot use, with its original bytes and where it came from."""

    reason: str
    detail: str
    key: bytes | None
    value: bytes | None
    topic: str | None
    partition: int | None
    offset: int | None
    family: str | None = None  # set when several families read the topic: which one refused it


SHARD_CACHE_MAX = 1 << 20


KeyCache = dict[Any, tuple[str, int]]  # one family's key bytes or id field -> (sensor id, shard)


_new = tuple.__new__


class ShardBatch(list[Reading | Run | Rows | Beat]):
    """One shard's readings from a batch of polls, single, as runs or as rows: the item
    ``route`` hands each shard.

    A plain list in the process that routed it. Bytewax pickles it only to send it to a worker in
    another process (``-i/-a``), and then it travels as rows of plain values, each source reduced
    to a ``SourceRef``, which pickles far faster than a librdkafka message.
    """

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, tuple[list[tuple[Any, ...]]]]:
        rows: list[tuple[Any, ...]] = []
        for item in self:
            if type(item) is Run:
                family, sensor_id, ts, value, src = item
                rows.append((family, sensor_id, ts, value, tuple(map(_ref, src))))
            elif type(item) is Reading:
                fam, sid, t, v, one = item
                rows.append((fam, sid, t, v, _ref(one)))
            elif type(item) is Rows:  # stays a Rows: its columns tell it from a Run's
                rows.append(_new(Rows, (*item[:4], list(map(_ref, item.sources)))))
            else:
                rows.append(item)  # a Beat: plain values
        return _unpack, (rows,)


def _ref(src: Any) -> Any:
    """A reading's source as a plain tuple, which pickles faster than a librdkafka message."""
    if src is None or type(src) is SourceRef:
        return src
    return (src.key(), src.value(), src.topic(), src.partition(), src.offset())


def _unref(src: Any) -> SourceRef | None:
    """The tuple back as a source with the message methods that late routing reads."""
    return None if src is None else _new(SourceRef, src)


def _unpack(rows: list[tuple[Any, ...]]) -> ShardBatch:
    return ShardBatch(map(_unrow, rows))


def _unrow(row: tuple[Any, ...]) -> Reading | Run | Rows | Beat:
    if type(row) is Beat:
        return row
    if type(row) is Rows:
        return row._replace(sources=list(map(_unref, row.sources)))
    family, sensor_id, ts, value, src = row
    if type(ts) is tuple:
        return _new(Run, (family, sensor_id, ts, value, tuple(map(_unref, src))))
    return _new(Reading, (family, sensor_id, ts, value, _unref(src)))


def route(
    batches: Iterable[Sequence[SourceMessage] | Beat],
    topics: Mapping[str, Sequence[Format]],
    shards: int,
    shard_cache: dict[str, KeyCache] | None = None,
) -> tuple[dict[int, ShardBatch], list[DeadLetter], dict[str, int]]:
    """Parse batches of messages and group the readings by shard: one item per shard downstream.

    A batch is one poll of one partition, so its messages share a topic: its families (one, or
    several that read the same messages for different values) and their shard caches are looked
    up once per batch. Also returns how many readings each family had, for the metrics.
    ``shard_cache`` keeps each sensor's id and shard between batches, per family by key bytes
    or id field (hashing every message to its shard anew is a noticeable share of the flow's
    time; one lookup for both, as a 100k-sensor fleet's dictionaries are bigger than the CPU's
    caches).
    """
    caches: dict[str, KeyCache] = {} if shard_cache is None else shard_cache
    buckets: list[list[Reading | Run | Rows | Beat]] = [[] for _ in range(shards)]
    dead: list[DeadLetter] = []
    by_family: dict[str, int] = {}
    for batch in batches:
        if isinstance(batch, Beat):  # the source's word on a partition, for every shard
            for bucket in buckets:
                bucket.append(batch)
            continue
        if not batch:
            continue
        topic = batch[0].topic()
        # Each shard's readings of this poll follow a mark of their partition (and the
        # source's word on it, when the poll came with one); shards that got none drop it.
        mark = getattr(batch, "beat", None) or Beat(
            part_name(topic, batch[0].partition()), MARK, None
        )
        formats = None if topic is None else topics.get(topic)
        if not formats:
            for msg in batch:
                dead.append(_dead(msg, "unknown_topic", f"no family is read from topic {topic!r}"))
            continue
        for bucket in buckets:
            bucket.append(mark)
        # A poll's messages are of one class: its unbound methods are the cheapest calls.
        kind = type(batch[0])
        values = list(map(kind.value, batch))
        keys = None
        shared = len(formats) > 1
        machines: dict[str, list[Format]] = {}
        for fmt in formats:
            if fmt.family.machine is not None:
                machines.setdefault(fmt.name, []).append(fmt)
        if machines:
            for family, channels in machines.items():
                good = _route_machine(
                    batch, values, channels, caches, shards, buckets, dead, shared
                )
                if good:
                    by_family[family] = by_family.get(family, 0) + good
            formats = [fmt for fmt in formats if fmt.family.machine is None]
        for fmt in formats:
            family = fmt.name
            cache = caches.get(fmt.cache_key)
            if cache is None:
                cache = caches[fmt.cache_key] = {}
            stamps = list(map(kind.timestamp, batch)) if fmt.ts_of is None else None
            cols = parse_poll(fmt, values, stamps)
            if cols is None:
                good = _route_each(batch, fmt, cache, shards, buckets, dead, shared)
            else:
                ids = cols.ids
                if ids is None:  # the message keys are the ids: read once per poll
                    if keys is None:
                        keys = list(map(kind.key, batch))
                    ids = keys
                good = _route_runs(batch, ids, fmt, cols, cache, shards, buckets, dead, shared)
            if good:
                by_family[family] = by_family.get(family, 0) + good
        for bucket in buckets:
            if bucket[-1] is mark:
                bucket.pop()
    # Wrapped at the end: appending to a list subclass is measurably slower per reading.
    return {s: ShardBatch(b) for s, b in enumerate(buckets) if b}, dead, by_family


def _route_runs(
    batch: Sequence[SourceMessage],
    ids: list[Any],
    fmt: Format,
    cols: Columns,
    cache: KeyCache,
    shards: int,
    buckets: list[list[Reading | Run | Rows | Beat]],
    dead: list[DeadLetter],
    shared: bool = False,
) -> int:
    """Group a decoded poll by sensor: a ``Run`` per sensor, or a ``Reading`` for a lone one;
    a poll of distinct ids as ``Rows`` (``_route_rows``).

    ``ids`` are the message keys, or the sensor id fields, as the family reads them; ``shared``
    as for ``_route_each``.
    """
    family = fmt.name
    ts_col, value_col = cols.ts, cols.values
    refused = fmt.name if shared else None
    if len(set(ids)) == len(ids):  # one reading per sensor (a large fleet's polls)
        return _route_rows(batch, ids, fmt, cols, cache, shards, buckets, dead, refused)
    groups: dict[Any, list[int]] = {}
    for i, key in enumerate(ids):
        idx = groups.get(key)
        if idx is None:
            groups[key] = [i]
        else:
            idx.append(i)
    good = 0
    for key, idx in groups.items():
        known = cache.get(key)
        if known is None:
            try:
                known = _learn_key(cache, key, fmt, shards)
            except BadMessage as exc:
                dead.extend(_dead(batch[i], exc.reason, exc.detail, refused) for i in idx)
                continue
        sensor_id, shard = known
        if len(idx) == 1:
            i = idx[0]
            buckets[shard].append(
                _new(Reading, (family, sensor_id, ts_col[i], value_col[i], batch[i]))
            )
        else:
            pick = itemgetter(*idx)
            buckets[shard].append(
                _new(Run, (family, sensor_id, pick(ts_col), pick(value_col), pick(batch)))
            )
        good += len(idx)
    return good


def _route_rows(
    batch: Sequence[SourceMessage],
    ids: list[Any],
    fmt: Format,
    cols: Columns,
    cache: KeyCache,
    shards: int,
    buckets: list[list[Reading | Run | Rows | Beat]],
    dead: list[DeadLetter],
    refused: str | None,
) -> int:
    """A decoded poll of distinct ids: each shard's rows as one ``Rows``, in poll order.

    Once every key is known (the steady state), every loop is in C but the two that split the
    cache's answers: the lookups by ``map``, the shards' order by one stable numpy sort, each
    column reordered by ``itemgetter``. A poll with a key not seen yet goes through the keys
    once in Python, to learn it or refuse it.
    """
    known: list[Any] = list(map(cache.get, ids))
    ts_col: Sequence[int] = cols.ts
    value_col: Sequence[float] = cols.values
    sources: Sequence[SourceMessage] = batch
    try:
        sensor_ids = [k[0] for k in known]
    except TypeError:  # a key not seen yet (None): checked and learned, or a dead letter
        bad = _learn_all(known, ids, batch, fmt, cache, shards, dead, refused)
        if len(bad) == len(ids):
            return 0
        if bad:
            keep = [i for i, k in enumerate(known) if k is not None]
            known = [known[i] for i in keep]
            ts_col = [ts_col[i] for i in keep]
            value_col = [value_col[i] for i in keep]
            sources = [batch[i] for i in keep]
        sensor_ids = [k[0] for k in known]
    _split_rows(
        fmt.name, sensor_ids, [k[1] for k in known], ts_col, value_col, sources, shards, buckets
    )
    return len(known)


def _split_rows(
    family: str,
    sensor_ids: Sequence[str],
    where: list[int],
    ts_col: Sequence[int],
    value_col: Sequence[float],
    sources: Sequence[Any],
    shards: int,
    buckets: list[list[Reading | Run | Rows | Beat]],
) -> None:
    """Rows to their shards (``where``: each row's), each shard's as one ``Rows`` in order."""
    n = len(where)
    first = where[0]
    if where.count(first) == n:  # one shard (a single-shard flow, or a small poll)
        if first >= shards:
            raise ValueError(f"routing cache names a shard beyond {shards}: cannot route")
        buckets[first].append(_new(Rows, (family, sensor_ids, ts_col, value_col, sources)))
        return
    shard_of_row = np.array(where, dtype=np.intp)
    order = np.argsort(shard_of_row, kind="stable")
    bounds = np.searchsorted(shard_of_row[order], np.arange(shards + 1)).tolist()
    if bounds[-1] != n:  # a cache filled for more shards than this flow has
        raise ValueError(f"routing cache names a shard beyond {shards}: cannot route")
    pick = itemgetter(*order.tolist())
    sids, stamps, values, msgs = (pick(col) for col in (sensor_ids, ts_col, value_col, sources))
    for shard in range(shards):
        a, b = bounds[shard], bounds[shard + 1]
        if a < b:
            buckets[shard].append(
                _new(Rows, (family, sids[a:b], stamps[a:b], values[a:b], msgs[a:b]))
            )


def _route_each(
    batch: Sequence[SourceMessage],
    fmt: Format,
    cache: KeyCache,
    shards: int,
    buckets: list[list[Reading | Run | Rows | Beat]],
    dead: list[DeadLetter],
    shared: bool = False,
) -> int:
    """Parse a poll message by message: the general rules, and a reason for each rejection.

    ``shared``: the topic has several families, so a dead letter says which one refused it.
    """
    return sum(_route_one(msg, fmt, cache, shards, buckets, dead, shared) for msg in batch)


def _route_one(
    msg: SourceMessage,
    fmt: Format,
    cache: KeyCache,
    shards: int,
    buckets: list[list[Reading | Run | Rows | Beat]],
    dead: list[DeadLetter],
    shared: bool,
) -> bool:
    """One message by the general rules (``_route_each``): routed (True) or a dead letter."""
    key = msg.key()
    try:
        try:
            reading = parse(fmt, key, msg.value(), None, msg)
        except NoTimestamp:
            ts = msg.timestamp()  # only now: one C call per message saved
            if not ts[0]:
                raise
            reading = parse(fmt, key, msg.value(), ts[1], msg)
    except BadMessage as exc:
        dead.append(_dead(msg, exc.reason, exc.detail, fmt.name if shared else None))
        return False
    if fmt.from_key:
        ident: Any = key
    elif fmt.suffix:
        # A channel's format: keyed by the machine id, as a poll decoded whole keys it (its
        # sensor id would be another machine's raw id: "p7/current" is p7's current channel,
        # and the machine "p7/current" may exist too).
        ident = reading.sensor_id[: -len(fmt.suffix)]
    else:
        ident = reading.sensor_id
    known = cache.get(ident)
    if known is None:
        if fmt.from_key:
            known = _learn_key(cache, ident, fmt, shards)
        else:  # the reading holds the id already (a machine's with its channel)
            if len(cache) >= SHARD_CACHE_MAX:
                cache.clear()
            sid = reading.sensor_id
            known = cache[ident] = (sid, shard_of(fmt.name, fmt.machine_of(sid), shards))
    buckets[known[1]].append(reading)
    return True


def _route_machine(
    batch: Sequence[SourceMessage],
    values: list[bytes | None],
    channels: list[Format],
    caches: dict[str, KeyCache],
    shards: int,
    buckets: list[list[Reading | Run | Rows | Beat]],
    dead: list[DeadLetter],
    shared: bool,
) -> int:
    """A poll of a machine family's messages (a format per channel, or per-channel messages):
    rows in the poll's order, each message's channels in turn, never a channel's run or rows
    ahead of its siblings'. The shard decides on a machine from its channels together (a
    channel back from a silence resolves its machine's alert when every channel was silent),
    which a channel's whole poll read before its sibling's read wrong: the sibling's readings
    of the same poll looked missing. Decoded column-wise where the poll allows, and then
    interleaved as one ``Rows`` per shard (repeating sensors, which a shard folds in order);
    a channel whose poll does not decode whole, or a key refused, and the poll goes as single
    readings, message by message, in the same order."""
    kind = type(batch[0])
    cols: list[tuple[list[Any], list[int], list[float]] | None] = []
    stamps = None
    keys: list[bytes | None] | None = None
    whole = True
    for fmt in channels:
        cache = caches.get(fmt.cache_key)
        if cache is None:
            cache = caches[fmt.cache_key] = {}
        if fmt.ts_of is None and stamps is None:
            stamps = list(map(kind.timestamp, batch))
        parsed = parse_poll(fmt, values, stamps if fmt.ts_of is None else None)
        if parsed is None:
            cols.append(None)
            whole = False
            continue
        if parsed.ids is not None:
            ids = parsed.ids
        else:  # the message keys are the ids: read once per poll
            if keys is None:
                keys = list(map(kind.key, batch))
            ids = keys
        known: list[Any] = list(map(cache.get, ids))
        if None in known and _learn_all(
            known, ids, batch, fmt, cache, shards, dead, fmt.name if shared else None
        ):
            whole = False
        cols.append((known, parsed.ts, parsed.values))
    if whole:  # the usual poll: every loop in C but the two that split the cache's answers
        done = cast("list[tuple[list[Any], list[int], list[float]]]", cols)
        _split_rows(
            channels[0].name,
            _interleave([[k[0] for k in c[0]] for c in done]),
            _interleave([[k[1] for k in c[0]] for c in done]),
            _interleave([c[1] for c in done]),
            _interleave([c[2] for c in done]),
            _interleave([batch] * len(done)),
            shards,
            buckets,
        )
        return len(batch) * len(done)
    good = 0
    for i, msg in enumerate(batch):
        for fmt, col in zip(channels, cols, strict=True):
            if col is None:
                good += _route_one(msg, fmt, caches[fmt.cache_key], shards, buckets, dead, shared)
                continue
            known = col[0][i]
            if known is None:
                continue
            sensor_id, shard = known
            if shard >= shards:
                raise ValueError(f"routing cache names a shard beyond {shards}: cannot route")
            buckets[shard].append(_new(Reading, (fmt.name, sensor_id, col[1][i], col[2][i], msg)))
            good += 1
    return good


def _interleave(columns: list[Any]) -> list[Any]:
    """One list of the columns' items taken in turn: the first of each, the second of each..."""
    return list(chain.from_iterable(zip(*columns, strict=True)))


def _learn_all(
    known: list[Any],
    ids: Sequence[Any],
    batch: Sequence[SourceMessage],
    fmt: Format,
    cache: KeyCache,
    shards: int,
    dead: list[DeadLetter],
    refused: str | None,
) -> list[int]:
    """Fill in ``known``'s gaps (ids not seen yet) by ``_learn_key``, in place; an id it refuses
    stays None and its message becomes a dead letter (``refused``: the family that says so, on a
    shared topic). Returns the refused rows."""
    bad: list[int] = []
    for i, k in enumerate(known):
        if k is None:
            try:
                known[i] = _learn_key(cache, ids[i], fmt, shards)
            except BadMessage as exc:
                dead.append(_dead(batch[i], exc.reason, exc.detail, refused))
                bad.append(i)
    return bad


def _learn_key(cache: KeyCache, key: Any, fmt: Format, shards: int) -> tuple[str, int]:
    """Check an id not seen yet (key bytes or id field), and remember its sensor id and shard
    (``BadMessage`` if bad)."""
    sensor_id = sensor_id_of_raw(fmt, key)
    if len(cache) >= SHARD_CACHE_MAX:
        cache.clear()
    # A machine's channels share its shard: its model sees them together, with no exchange.
    known = cache[key] = (sensor_id, shard_of(fmt.name, fmt.machine_of(sensor_id), shards))
    return known


def _dead(msg: SourceMessage, reason: str, detail: str, family: str | None = None) -> DeadLetter:
    return DeadLetter(
        reason, detail, msg.key(), msg.value(), msg.topic(), msg.partition(), msg.offset(), family
    )
