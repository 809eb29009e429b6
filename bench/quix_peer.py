"""The peer: the classic Quix Streams tutorial on the same topics, for a same-run comparison.

Runs in the bench-only venv (``.venv-bench``, from ``bench/requirements-bench.txt``):

    .venv-bench/bin/python bench/quix_peer.py --aq AQ_TOPIC --temp TEMP_TOPIC --out OUT_TOPIC

What it does, as the tutorial does, for both input families:

- ``Application(auto_offset_reset="earliest")`` with a unique consumer group and state
  directory per run (RocksDB state, changelog topics on: Quix Streams' defaults);
- JSON values, string keys; event time from the payload by a ``timestamp_extractor``
  (air quality: the ``timestamp`` string, naive = UTC; temperature: ``Timestamp`` in ns);
- per key, a 5 s tumbling window ``mean()`` of the value, ``.final()`` results only;
- temperature: ``filter(mean >= 90)`` and ``to_topic(OUT)``; air quality has no threshold
  (as in the dataflow), so its window means are computed and dropped.

How it stops: before starting, it reads the end offset of every input partition; the
``on_message_processed`` callback stops the application once every partition has processed its
last offset (on empty topics: once every partition is assigned, which is how the harness
measures start-up). It then prints one JSON line: messages, windows emitted, alerts written,
and the seconds from the first to the last message processed. Quix Streams does not flush
open windows when it stops, so the last window of each key is not emitted (the dataflow
closes them at the end of input): its window count is a little lower on the same data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime

# offsets: a sibling module (this file runs as a script, so bench/ is on the path) that, unlike
# workloads.py, needs nothing this venv lacks: the project is not installed here.
from confluent_kafka import Consumer
from offsets import end_offsets
from quixstreams import Application

PROCESS_START = time.perf_counter()


def aq_timestamp(value: dict, headers: object, timestamp: int, timestamp_type: object) -> int:
    """``{"timestamp": "2024-03-19 13:57:05.100000"}`` (naive = UTC) -> epoch ms."""
    dt = datetime.fromisoformat(value["timestamp"])
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def temp_timestamp(value: dict, headers: object, timestamp: int, timestamp_type: object) -> int:
    """``{"Timestamp": 1710856626905833677}`` (ns) -> epoch ms."""
    return value["Timestamp"] // 1_000_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", default=os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092"))
    parser.add_argument("--aq", required=True, help="air-quality input topic")
    parser.add_argument("--temp", required=True, help="temperature input topic")
    parser.add_argument("--out", required=True, help="output (alerts) topic")
    parser.add_argument("--group", default=None, help="consumer group (default: unique)")
    parser.add_argument("--grace-ms", type=int, default=0, help="window grace (tutorial: 0)")
    parser.add_argument(
        "--no-changelog",
        action="store_true",
        help="use_changelog_topics=False (not the tutorial's default)",
    )
    args = parser.parse_args(argv)

    group = args.group or f"bench-quix-{uuid.uuid4().hex[:8]}"
    state_dir = tempfile.mkdtemp(prefix="quix-state-")
    # Last offset (high watermark - 1) of every non-empty partition: done when all are read.
    ends = end_offsets(args.brokers, [args.aq, args.temp])
    remaining = {part: hi - 1 for part, hi in ends.items() if hi > 0}
    stats = {
        "group": group,
        "messages": 0,
        "windows": 0,
        "alerts": 0,
        "first_at": None,
        "last_at": None,
        "startup_s": None,
    }

    app: Application

    def processed(topic: str, partition: int, offset: int) -> None:
        stats["messages"] += 1
        if stats["first_at"] is None:
            stats["first_at"] = time.perf_counter()
        last = remaining.get((topic, partition))
        if last is not None and offset >= last:
            del remaining[(topic, partition)]
            if not remaining:
                stats["last_at"] = time.perf_counter()
                app.stop()

    app = Application(
        broker_address=args.brokers,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        loglevel="WARNING",
        use_changelog_topics=not args.no_changelog,
        on_message_processed=processed,
    )
    aq = app.topic(
        args.aq, key_deserializer="str", value_deserializer="json", timestamp_extractor=aq_timestamp
    )
    temp = app.topic(
        args.temp,
        key_deserializer="str",
        value_deserializer="json",
        timestamp_extractor=temp_timestamp,
    )
    out = app.topic(args.out, value_serializer="json")

    def count_window(_window: dict) -> None:
        stats["windows"] += 1

    def count_alert(_window: dict) -> None:
        stats["alerts"] += 1

    sdf_temp = app.dataframe(temp)
    sdf_temp = sdf_temp.apply(lambda value: value["Temperature_C"])
    sdf_temp = sdf_temp.tumbling_window(duration_ms=5000, grace_ms=args.grace_ms).mean().final()
    sdf_temp = sdf_temp.update(count_window)
    sdf_temp = sdf_temp.filter(lambda window: window["value"] >= 90)
    sdf_temp = sdf_temp.update(count_alert)
    sdf_temp.to_topic(out)

    sdf_aq = app.dataframe(aq)
    sdf_aq = sdf_aq.apply(lambda value: value["value"])
    sdf_aq = sdf_aq.tumbling_window(duration_ms=5000, grace_ms=args.grace_ms).mean().final()
    sdf_aq.update(count_window)

    if not remaining:
        # Empty topics (start-up measurement): stop once every input partition is assigned.
        def watch() -> None:
            wanted = 0
            consumer = Consumer({"bootstrap.servers": args.brokers, "group.id": "quix-peer-md"})
            meta = consumer.list_topics(timeout=30).topics
            consumer.close()
            wanted = sum(len(meta[t].partitions) for t in (args.aq, args.temp))
            while True:
                time.sleep(0.01)
                try:
                    assigned = app._consumer.assignment()  # private: bench only
                except Exception:  # not created yet
                    continue
                if len([tp for tp in assigned if tp.topic in (args.aq, args.temp)]) >= wanted:
                    stats["startup_s"] = time.perf_counter() - PROCESS_START
                    app.stop()
                    return

        threading.Thread(target=watch, daemon=True).start()

    try:
        app.run()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    if stats["first_at"] is not None and stats["last_at"] is not None:
        stats["process_s"] = stats["last_at"] - stats["first_at"]
        stats["first_message_after_s"] = stats["first_at"] - PROCESS_START
    stats.pop("first_at")
    stats.pop("last_at")
    stats["undrained_partitions"] = len(remaining)
    print(json.dumps(stats), flush=True)
    return 0 if not remaining else 1


if __name__ == "__main__":
    sys.exit(main())
