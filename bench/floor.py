"""The floor: how fast one Python process can merely read and decode the input topics.

A confluent-kafka ``Consumer`` with tuned fetch settings, assigned to every partition of the
given topics from the beginning, ``consume(num_messages=10000)`` in a loop and ``orjson.loads``
of each value, until every partition has reached the end offset it had at start. No grouping,
no windows, no output: anything the dataflow does costs more than this. The rate is timed from
the first ``consume`` call to the last message (consumer creation and metadata excluded).

    python bench/floor.py --topics T1,T2            # one run, JSON on stdout
    python bench/floor.py --topics T1,T2 --sweep    # try fetch settings, fastest first
    python bench/floor.py --topics T1,T2 --default  # librdkafka's default fetch settings
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

# Chosen with --sweep on 2026-11-22 (see bench/RESULTS.md): fetch whole partitions in big
# requests and keep a deep local queue, so the consume loop never waits for the network.
TUNED = {
    "fetch.wait.max.ms": "100",
    "fetch.min.bytes": "1048576",
    "fetch.message.max.bytes": "8388608",
    "fetch.max.bytes": "67108864",
    "queued.min.messages": "1000000",
    "queued.max.messages.kbytes": "1048576",
}

SWEEP = {
    "fetch.wait.max.ms": ["10", "100", "500"],
    "fetch.min.bytes": ["1", "1048576"],
    "fetch.message.max.bytes": ["1048576", "8388608"],
    "queued.min.messages": ["100000", "1000000"],
}


def drain(
    brokers: str, topics: list[str], settings: dict[str, str], batch: int = 10_000
) -> dict[str, float]:
    """Read every message of ``topics`` once; count, seconds, msg/s."""
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"floor-{os.getpid()}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            **settings,
        }
    )
    try:
        meta = consumer.list_topics(timeout=30).topics
        parts = [
            TopicPartition(t, p, OFFSET_BEGINNING)
            for t in topics
            for p in sorted(meta[t].partitions)
        ]
        remaining: dict[tuple[str, int], int] = {}
        for tp in parts:
            _lo, hi = consumer.get_watermark_offsets(tp, timeout=30)
            if hi > 0:
                remaining[(tp.topic, tp.partition)] = hi - 1  # last offset to read
        consumer.assign(parts)
        loads = orjson.loads
        count = 0
        started = time.perf_counter()
        while remaining:
            msgs = consumer.consume(num_messages=batch, timeout=1.0)
            for msg in msgs:
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(msg.error())
                loads(msg.value())
            count += len(msgs)
            if msgs:
                # Offsets rise within a partition: the last message per partition suffices.
                seen: dict[tuple[str, int], int] = {}
                for msg in msgs:
                    seen[(msg.topic(), msg.partition())] = msg.offset()
                for tp, off in seen.items():
                    if tp in remaining and off >= remaining[tp]:
                        del remaining[tp]
        seconds = time.perf_counter() - started
    finally:
        consumer.close()
    return {"messages": count, "seconds": seconds, "msg_per_s": count / max(seconds, 1e-9)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", default=os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092"))
    parser.add_argument("--topics", required=True, help="comma-separated input topics")
    parser.add_argument("--batch", type=int, default=10_000, help="consume(num_messages=...)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--default", action="store_true", help="librdkafka's fetch defaults")
    group.add_argument("--sweep", action="store_true", help="try each combination of SWEEP")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="K=V",
        help="extra librdkafka setting (repeatable)",
    )
    args = parser.parse_args(argv)
    topics = args.topics.split(",")
    extra = dict(kv.split("=", 1) for kv in args.set)

    if args.sweep:
        results = []
        names = list(SWEEP)
        for combo in itertools.product(*(SWEEP[n] for n in names)):
            settings = dict(zip(names, combo, strict=True))
            res = drain(args.brokers, topics, {**settings, **extra}, args.batch)
            results.append((res["msg_per_s"], settings))
            print(f"{res['msg_per_s']:>10,.0f} msg/s  {settings}", file=sys.stderr, flush=True)
        for rate, settings in sorted(results, key=lambda r: -r[0]):
            print(json.dumps({"msg_per_s": round(rate), "settings": settings}))
        return 0
    settings = {} if args.default else dict(TUNED)
    settings.update(extra)
    res = drain(args.brokers, topics, settings, args.batch)
    print(json.dumps({**res, "settings": settings}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
