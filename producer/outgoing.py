"""The messages to send, in order: the tutorials' simulation, the configured families', or a
replayed CSV file, each reading made into its family's message by :mod:`producer.shapes`.

No Kafka: :mod:`producer.sending` paces and sends what ``outgoing`` yields. ``check_replay``
reads a replay file whole before anything is sent, so a bad row stops the run first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import NamedTuple

from dataflow.readings import Reading
from dataflow.timestamps import NS_PER_S
from producer.replay import Summary, read_rows, scan
from producer.settings import Replay, Settings
from producer.shapes import build_message, encode
from producer.simulate import GroupReading, generate, generate_families

log = logging.getLogger("producer")


class Outgoing(NamedTuple):
    """One message to send, and the event time it stands for (for pacing)."""

    topic: str
    key: bytes
    value: bytes
    timestamp_ms: int | None
    event_time_ns: int


def outgoing(settings: Settings, start_ns: int) -> Iterator[Outgoing]:
    """What to send, in order: the tutorials' simulation, the configured families', or a replay
    (``ReplayError`` if the file went bad since it was checked)."""
    reading: GroupReading | Reading  # the loops below each bind their own kind
    if settings.replay is not None:
        replay = settings.replay
        rows = read_rows(replay.path, replay.layout)
        if settings.count is not None:
            rows = islice(rows, settings.count)
        for row in rows:
            one = row.values if replay.family.channels else row.value
            msg = build_message((replay.family,), row.sensor_id, row.ts, (one,))
            yield Outgoing(replay.family.topic, *msg, row.ts)
    elif settings.groups:
        for reading in generate_families(settings.family_simulation(start_ns)):
            group = settings.groups[reading.group]
            msg = build_message(group.families, reading.sensor_id, reading.ts, reading.values)
            yield Outgoing(group.topic, *msg, reading.ts)
    else:
        for reading in generate(settings.simulation(start_ns)):
            key, value = encode(reading)
            yield Outgoing(settings.topic_for(reading.family), key, value, None, reading.ts)


def check_replay(replay: Replay) -> Summary:
    """Read the whole file before sending (``ReplayError`` at its first bad row) and say what
    will be sent; warn where the dataflow will not take the history as it is."""
    summary = scan(replay.path, replay.layout)
    span = ""
    if summary.first_ns is not None and summary.last_ns is not None:
        first, last = (
            datetime.fromtimestamp(t / NS_PER_S, UTC).isoformat(timespec="seconds")
            for t in (summary.first_ns, summary.last_ns)
        )
        span = f", {first} .. {last}"
    log.info(
        "%s: %d rows of %d sensor(s) to send, %d skipped%s",
        replay.path,
        summary.rows,
        len(summary.sensors),
        summary.skipped,
        span,
    )
    if summary.out_of_order:
        log.warning(
            "%s: %d rows are older than their sensor's row before: the dataflow takes "
            "them as late if their window has closed",
            replay.path,
            summary.out_of_order,
        )
    week_ago = time.time_ns() - 7 * 86_400 * NS_PER_S
    if replay.family.timestamp is None and (summary.first_ns or week_ago) < week_ago:
        log.warning(
            "%s has no timestamp field, so these messages carry the history's times "
            "as Kafka timestamps: a topic with time-based retention (7 days by "
            "default) may delete them within minutes; set retention.ms=-1 on %s for "
            "a backfill",
            replay.family.name,
            replay.family.topic,
        )
    return summary
