"""The notifier's Kafka clients (confluent-kafka), set up as the dataflow's are.

Same bootstrap and SASL/TLS settings (``KafkaSecurity.librdkafka``), the same log limiter
(``dataflow.kafkalog``), and the same start-up check and topic creation (``dataflow.admin``): a
refused login or certificate fails in seconds with the broker's reason instead of a timeout.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from dataflow import admin as kafka_admin
from dataflow.admin import StartupError, client_config, ensure_topics
from notifier.alerts import AmAlert, BadRecord, StateValue, state_value
from notifier.config import Settings

log = logging.getLogger("notifier")


def base_config(settings: Settings) -> dict[str, Any]:
    """Bootstrap and security settings, which every client gets, and the shared log limiter."""
    return client_config(settings.brokers, settings.security)


def connect(settings: Settings, timeout_s: float = 60.0) -> tuple[AdminClient, set[str]]:
    """An admin client that has had a metadata answer, and the topics the cluster has
    (``dataflow.admin.connect``: a refused login or certificate fails at once)."""
    return kafka_admin.connect(settings.brokers, settings.security, timeout_s)


def ensure_state_topic(admin: AdminClient, existing: set[str], topic: str) -> None:
    """Create the compacted state topic if missing (one partition: it holds only open alerts
    and the resolved ids), with the cluster's default replication factor. An existing one must
    have ``cleanup.policy`` exactly ``compact``, or ``StartupError``: with ``delete`` too,
    retention drops the record of an alert open longer than it (and of the resolved ids), and
    a restart would then forget them. Unreadable (no DescribeConfigs right): a warning."""
    if topic not in existing:
        if ensure_topics(
            admin,
            [topic],
            1,
            existing=existing,
            replication_factor=-1,
            config={"cleanup.policy": "compact"},
        ):
            log.info("created state topic %s (compacted)", topic)
        return
    resource = ConfigResource(ResourceType.TOPIC, topic)
    try:
        configs = admin.describe_configs([resource])[resource].result(timeout=30)
        policy = configs["cleanup.policy"].value
    except (KafkaException, KeyError) as exc:
        log.warning("could not read the cleanup.policy of %s: %s", topic, exc)
        return
    if str(policy).strip() != "compact":
        raise StartupError(
            f"state topic {topic} has cleanup.policy={policy}, not compact: retention would "
            "drop the record of an alert still open; set cleanup.policy=compact on it, or "
            "NOTIFIER_STATE_TOPIC to another topic"
        )


def load_state(
    settings: Settings, timeout_s: float | None = None
) -> list[tuple[str, StateValue | None]]:
    """Every record of the state topic, in order, up to its end now: (alert_id, open alert,
    ``Resolved``, ``Expired``, or None for a tombstone). Read without a group (assigned
    partitions, nothing committed). Gives up after ``timeout_s``
    (``NOTIFIER_STATE_LOAD_TIMEOUT_SECONDS``)."""
    if timeout_s is None:
        timeout_s = settings.state_load_timeout_seconds
    consumer = Consumer(
        {
            **base_config(settings),
            "group.id": f"notifier-load-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    topic = settings.state_topic
    out: list[tuple[str, StateValue | None]] = []
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s)
        parts = [TopicPartition(topic, p, 0) for p in meta.topics[topic].partitions]
        ends = {p.partition: consumer.get_watermark_offsets(p, timeout=timeout_s) for p in parts}
        pending = {p for p, (low, high) in ends.items() if high > low}
        consumer.assign([TopicPartition(topic, p.partition, ends[p.partition][0]) for p in parts])
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise StartupError(
                    f"state topic {topic}: not read to its end within {timeout_s:g} s "
                    "(NOTIFIER_STATE_LOAD_TIMEOUT_SECONDS)"
                )
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            error, part = msg.error(), msg.partition()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF and part is not None:
                    pending.discard(part)
                    continue
                raise StartupError(f"state topic {topic}: {error.str()}")
            offset = msg.offset()
            assert part is not None and offset is not None  # a consumed record has both
            key = (msg.key() or b"").decode("utf-8", "replace")
            value = msg.value()
            try:
                state = None if value is None else state_value(key, orjson.loads(value))
                kind, millis = msg.timestamp()
                if isinstance(state, AmAlert) and kind != TIMESTAMP_NOT_AVAILABLE:
                    # Written at the alert's last event: when the notifier last heard of it.
                    state = replace(state, seen_at=datetime.fromtimestamp(millis / 1000, UTC))
                out.append((key, state))
            except (BadRecord, orjson.JSONDecodeError) as exc:
                log.warning("state topic %s offset %s: passed over (%s)", topic, offset, exc)
            if offset + 1 >= ends[part][1]:
                pending.discard(part)
    finally:
        consumer.close()
    return out


def is_fatal(err: KafkaError) -> bool:
    """A client error that ends the consumer for good. confluent-kafka sets ``fatal()`` on the
    errors given to ``error_cb``, but never on a message's error: a fenced static member (a
    second notifier with the same ``group.instance.id``) comes back from ``consume`` as a
    message error with code ``_FATAL``."""
    return bool(err.fatal()) or err.code() == KafkaError._FATAL


def anomalies_consumer(
    settings: Settings, on_fatal: Callable[[KafkaError], None] | None = None
) -> Consumer:
    """The group's consumer: manual commits only, after Alertmanager accepted the events.

    A static member (``group.instance.id``, KIP-345): a notifier restarted after a crash takes
    its partitions back at once, instead of waiting out the dead one's session (45 s); and a
    second notifier started by mistake in the same group fences the first, which then stops,
    rather than both keeping open sets that drift apart: ``on_fatal`` is called with such an
    error (the caller stops), every other client error is logged as a warning.
    """

    def error_cb(err: KafkaError) -> None:
        if is_fatal(err) and on_fatal is not None:
            on_fatal(err)
        else:
            log.warning("Kafka: %s", err.str())

    consumer = Consumer(
        {
            **base_config(settings),
            "group.id": settings.group,
            "group.instance.id": f"{settings.group}-notifier",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": settings.offset_reset,
            # An end-of-partition event tells the notifier it has read the backlog.
            "enable.partition.eof": True,
            "error_cb": error_cb,
        }
    )
    consumer.subscribe([settings.anomalies_topic])
    return consumer


def state_producer(settings: Settings) -> Producer:
    """Writes the state topic: idempotent and acknowledged by all replicas, because a state
    record is the only memory of an open alert once its event's offset is committed."""
    return Producer(
        {**base_config(settings), "acks": "all", "enable.idempotence": True, "linger.ms": 0}
    )
