"""End offsets of Kafka topics, with confluent-kafka alone.

Imported by programs of both bench venvs: the harness (``.venv``, the project installed) and the
Quix Streams peer (``.venv-bench``, only ``bench/requirements-bench.txt``: the project is not
installed there, and cannot be, since the two pin different confluent-kafka versions). So this
module imports the standard library and confluent-kafka, and nothing of the project;
``tests/unit/project/test_bench.py`` checks that for everything the peer imports.
"""

from __future__ import annotations

from confluent_kafka import Consumer, TopicPartition


def end_offsets(brokers: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """High watermark of every partition of ``topics``."""
    consumer = Consumer(
        {"bootstrap.servers": brokers, "group.id": "bench-offsets", "enable.auto.commit": False}
    )
    try:
        meta = consumer.list_topics(timeout=30).topics
        out = {}
        for topic in topics:
            for p in sorted(meta[topic].partitions):
                _lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                out[(topic, p)] = hi
        return out
    finally:
        consumer.close()
