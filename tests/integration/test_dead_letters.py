"""10,000+ malformed messages mixed into good ones: every bad one reaches the dead-letter topic,
with its bytes and reason, and the anomaly output equals a clean run of the good ones alone."""

from __future__ import annotations

import random
import time
from collections import Counter

import orjson
import pytest
from confluent_kafka import Producer

from dataflow.families import TEMPERATURE
from dataflow.readings import BadMessage, parse
from tests.factories import T0, S, fmt
from tests.integration.conftest import BROKERS, consume_all, python_env, run_module


def good_messages() -> list[tuple[bytes, bytes]]:
    """20 machines, 60 s at 1 Hz; machine 3 overheats from 20 s to 40 s."""
    out = []
    rng = random.Random(5)
    for sec in range(60):
        for m in range(20):
            temp = 97.0 if m == 3 and 20 <= sec < 40 else 65.0 + rng.uniform(-2, 2)
            out.append(
                (
                    str(m).encode(),
                    orjson.dumps({"Temperature_C": round(temp, 2), "Timestamp": T0 + sec * S}),
                )
            )
    return out


def malformed(rng: random.Random) -> tuple[bytes | None, bytes | None]:
    """One message that must be rejected; every rejection reason is drawn."""
    key: bytes | None = str(rng.randrange(20)).encode()
    ts = T0 + rng.randrange(60) * S
    kind = rng.randrange(13)
    if kind == 0:  # not JSON at all
        value = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        value = b"\x00" + value  # never valid JSON
    elif kind == 1:  # truncated object
        value = orjson.dumps({"Temperature_C": 65.0, "Timestamp": ts})[: rng.randrange(1, 20)]
    elif kind == 2:  # JSON, but not an object (incl. the double-encoded tutorial bug)
        value = rng.choice(
            [
                b"[1, 2]",
                b"65",
                b"null",
                b"true",
                orjson.dumps(orjson.dumps({"Temperature_C": 65}).decode()),
            ]
        )
    elif kind == 3:  # missing value field (a missing timestamp is not an error: the Kafka
        # record's timestamp stands in for it)
        value = orjson.dumps(rng.choice([{"Timestamp": ts}, {"temperature": 65.0}, {}]))
    elif kind == 4:  # wrong type
        value = orjson.dumps(
            {"Temperature_C": rng.choice(["65", None, True, [65], {}]), "Timestamp": ts}
        )
    elif kind == 5:  # NaN / infinity written as JavaScript does
        value = b'{"Temperature_C": %s, "Timestamp": %d}' % (
            rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999"]),
            ts,
        )
    elif kind == 6:  # unparseable timestamp
        value = orjson.dumps(
            {"Temperature_C": 65.0, "Timestamp": rng.choice(["soon", "2024-13-45", [ts], {}, True])}
        )
    elif kind == 7:  # timestamp out of range
        value = orjson.dumps(
            {
                "Temperature_C": 65.0,
                "Timestamp": rng.choice([-1, -ts, "2150-01-01T00:00:00", 10**19]),
            }
        )
    elif kind == 8:  # empty key
        key, value = b"", orjson.dumps({"Temperature_C": 65.0, "Timestamp": ts})
    elif kind == 9:  # no key
        key, value = None, orjson.dumps({"Temperature_C": 65.0, "Timestamp": ts})
    elif kind == 10:  # key that is not UTF-8
        key, value = (
            b"\xff\xfe" + bytes([rng.randrange(128, 256)]),
            orjson.dumps({"Temperature_C": 65.0, "Timestamp": ts}),
        )
    elif kind == 11:  # a finite number no thermometer reads
        value = orjson.dumps(
            {"Temperature_C": rng.choice([1.7e308, -1e5, 10_001, -273.2]), "Timestamp": ts}
        )
    else:  # oversized value
        value = orjson.dumps(
            {"Temperature_C": 65.0, "Timestamp": ts, "pad": "x" * (70_000 + rng.randrange(1000))}
        )
    return key, value


@pytest.fixture
def topic_sets(topic_factory) -> tuple[dict[str, str], dict[str, str]]:
    def one() -> dict[str, str]:
        return {
            "AIR_QUALITY_TOPIC": topic_factory("aq"),
            "TEMPERATURE_TOPIC": topic_factory("t"),
            "ANOMALIES_TOPIC": topic_factory("anomalies"),
            "DLQ_TOPIC": topic_factory("dlq"),
        }

    return one(), one()


def produce(topic: str, msgs: list[tuple[bytes | None, bytes | None]]) -> None:
    # Idempotence keeps each partition's order even when the broker makes the producer retry
    # (the oversized values fill batches); the test needs every sensor's readings in order.
    producer = Producer({"bootstrap.servers": BROKERS, "linger.ms": 20, "enable.idempotence": True})
    for key, value in msgs:
        producer.produce(topic, key=key, value=value)
        producer.poll(0)
    assert producer.flush(60) == 0


def run_flow(topics: dict[str, str]) -> None:
    proc = run_module(
        ["bytewax.run", "dataflow.main:flow"],
        python_env(
            KAFKA_TAIL="false",
            EMIT_ALL_WINDOWS="true",
            STATUS_INTERVAL_SECONDS="0",
            LOG_LEVEL="ERROR",
            **topics,
        ),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_fuzzed_bad_input_is_dead_lettered_and_changes_nothing(topic_sets) -> None:
    mixed_topics, clean_topics = topic_sets
    good = good_messages()
    rng = random.Random(2024)
    bad = [malformed(rng) for _ in range(10_000)]
    expected_reasons = Counter()
    for key, value in bad:  # the generator itself must only make unusable messages
        with pytest.raises(BadMessage) as err:
            parse(fmt(TEMPERATURE), key, value, kafka_ts_ms=int(time.time() * 1000))
        expected_reasons[err.value.reason] += 1
    # NaN and infinities are not JSON, so orjson refuses them: they count as invalid_json.
    assert set(expected_reasons) == {
        "invalid_json",
        "not_an_object",
        "missing_field",
        "bad_value_type",
        "out_of_range",
        "bad_timestamp",
        "timestamp_out_of_range",
        "bad_key",
        "oversized",
    }

    mixed = good + bad
    rng.shuffle(mixed)
    # Shuffling reorders one sensor's good readings too; keep them in time order.
    good_iter = iter(good)
    bad_ids = {id(m) for m in bad}
    mixed = [m if id(m) in bad_ids else next(good_iter) for m in mixed]
    produce(mixed_topics["TEMPERATURE_TOPIC"], mixed)
    produce(clean_topics["TEMPERATURE_TOPIC"], good)
    run_flow(mixed_topics)
    run_flow(clean_topics)

    dead = consume_all(mixed_topics["DLQ_TOPIC"])
    assert Counter((m.key(), m.value()) for m in dead) == Counter(bad)
    assert Counter(dict(m.headers())["reason"].decode() for m in dead) == expected_reasons
    assert all(
        dict(m.headers())["source_topic"] == mixed_topics["TEMPERATURE_TOPIC"].encode()
        for m in dead
    )

    def anomalies(topics: dict[str, str]) -> list[bytes]:
        return sorted(m.value() for m in consume_all(topics["ANOMALIES_TOPIC"]))

    out = anomalies(mixed_topics)
    assert out == anomalies(clean_topics)
    events = [orjson.loads(v) for v in out]
    assert len(events) == 20 * 12  # every window of every machine, once
    assert [e["sensor_id"] for e in events if e["event"] == "open"] == ["3"]
    assert consume_all(clean_topics["DLQ_TOPIC"]) == []
