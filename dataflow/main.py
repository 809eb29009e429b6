"""Entry point: ``python -m bytewax.run dataflow.main:flow``.

Only wiring: read the settings (failing fast, naming the bad variable), make sure the topics
exist, and hand Bytewax's own Kafka source and sinks to ``build_flow``.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time

from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource
from bytewax.inputs import StatefulSourcePartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from dataflow.config import ConfigError, Settings, recovery_requested
from dataflow.flow import build_flow

log = logging.getLogger("dataflow")

# Throughput-minded librdkafka defaults; KAFKA_CONSUMER_CONFIG / KAFKA_PRODUCER_CONFIG override.
# Fetch sizes as bench/floor.py's sweep chose (whole partitions in big requests: W1 0.34 -> 0.41
# of the floor); not its fetch.min.bytes, which would hold back fetches on a quiet topic.
CONSUMER_DEFAULTS = {
    "fetch.wait.max.ms": "100",
    "fetch.message.max.bytes": "8388608",
    "fetch.max.bytes": "67108864",
    "queued.min.messages": "200000",
}
PRODUCER_DEFAULTS = {"linger.ms": "5", "compression.type": "lz4"}


class _PollPartition(StatefulSourcePartition[list[Message], int]):
    """One Kafka partition's reader: each poll becomes ONE dataflow item, a list of messages.

    Bytewax's own partition reader wraps every message in a frozen ``KafkaSourceMessage`` and
    hands the dataflow one item per message; profiled at 1k sensors that was about a quarter of
    the flow's time, plus Bytewax's per-item overhead. The flow decodes a poll at a time anyway,
    so this reader keeps librdkafka's ``Message`` objects and the poll as one item: 1.5x the
    drain rate (bench/drain.py: 206k vs 138k msg/s at 1k sensors). Offsets, end-of-partition
    and errors behave as in Bytewax's reader: the snapshot is the next offset to read, EOF ends
    the partition when not tailing, and any other consumer error stops the flow.
    """

    def __init__(self, config: dict[str, str], topic: str, part: int, offset: int,
                 batch_size: int) -> None:
        self._consumer = Consumer(config)
        self._consumer.assign([TopicPartition(topic, part, offset)])
        self._offset = offset
        self._batch_size = batch_size
        self._eof = False

    def next_batch(self) -> list[list[Message]]:
        if self._eof:
            raise StopIteration
        msgs = self._consumer.consume(self._batch_size, 0.001)
        polled = msgs
        if any(map(Message.error, msgs)):  # only EOF or errors, at most a few per poll
            polled = []
            for msg in msgs:
                err = msg.error()
                if err is None:
                    polled.append(msg)
                elif err.code() == KafkaError._PARTITION_EOF:
                    self._eof = True  # after this poll's messages are out
                else:
                    raise RuntimeError(f"error consuming from Kafka topic {msg.topic()!r}: {err}")
        if not polled:
            return []
        self._offset = polled[-1].offset() + 1
        return [polled]

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._consumer.close()


class _KafkaSource(KafkaSource):
    """Bytewax's Kafka source (partitions, offsets, recovery), reading a poll per item.

    It also lists partitions with a plain admin client: the stock ``list_parts`` passes the
    consumer settings to an admin client, which warns about every consumer-only property.
    """

    def __init__(self, brokers: list[str], topics: list[str], admin_config: dict[str, str],
                 consumer_config: dict[str, str], tail: bool, batch_size: int) -> None:
        super().__init__(brokers, topics, tail=tail, batch_size=batch_size,
                         add_config=consumer_config)
        self._topics_list = list(topics)
        self._admin_config = admin_config
        self._poll_size = batch_size
        self._consumer_config = {
            # Offsets live in Bytewax's recovery, not in a consumer group.
            "group.id": "BYTEWAX_IGNORED",
            "enable.auto.commit": "false",
            "enable.partition.eof": str(not tail).lower(),
            "bootstrap.servers": ",".join(brokers),
            **consumer_config,
        }

    def list_parts(self) -> list[str]:
        admin = AdminClient(self._admin_config)
        topics = self._topics_list
        meta = admin.list_topics(timeout=30).topics
        missing = [t for t in topics if t not in meta]
        if missing:
            raise RuntimeError(f"input topics do not exist: {missing}")
        return [f"{p}-{t}" for t in topics for p in sorted(meta[t].partitions)]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None
                   ) -> _PollPartition:
        idx, topic = for_part.split("-", 1)
        offset = OFFSET_BEGINNING if resume_state is None else resume_state
        return _PollPartition(dict(self._consumer_config), topic, int(idx), offset,
                              self._poll_size)


def admin_config(settings: Settings) -> dict[str, str]:
    """Bootstrap and security settings, which every client gets."""
    return {"bootstrap.servers": ",".join(settings.brokers), **settings.security.librdkafka()}


class StartupError(RuntimeError):
    """The flow cannot start; the message says why, without a traceback or a password."""


def connect(settings: Settings, timeout_s: float = 30.0) -> tuple[AdminClient, set[str]]:
    """An admin client that has had a metadata answer, and the topics the cluster has.

    librdkafka reports a refused login only to an error callback and then just times out, so
    the callback is watched: a bad password fails in seconds with the broker's reason, and so
    does a certificate TLS refuses (``KafkaSecurity.tls_refusal``).
    """
    errors: list[KafkaError] = []
    admin = AdminClient({**admin_config(settings), "error_cb": errors.append})
    where = ",".join(settings.brokers)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return admin, set(admin.list_topics(timeout=2).topics)
        except KafkaException as exc:
            admin.poll(0)  # serves the error callback
            last = errors[-1].str() if errors else str(exc.args[0].str())
        refused = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
        if refused:
            raise StartupError(f"Kafka at {where} refused the login "
                               f"({settings.security.redacted()}): {refused[-1].str()}")
        tls = [(e.str(), hint) for e in errors if (hint := settings.security.tls_refusal(e.str()))]
        if tls:
            raise StartupError(f"TLS with Kafka at {where} failed "
                               f"({settings.security.redacted()}): {tls[-1][0]}; {tls[-1][1]}")
        if time.monotonic() > deadline:
            raise StartupError(f"no Kafka broker answered at {where} (KAFKA_BROKERS) within "
                               f"{timeout_s:g} s: {last}")


def ensure_topics(settings: Settings) -> None:
    """Create missing input and output topics, so a fresh broker works out of the box."""
    admin, existing = connect(settings)
    wanted = [*settings.topics, settings.anomalies_topic, settings.dlq_topic]
    new = [NewTopic(t, settings.topic_partitions, 1) for t in wanted if t not in existing]
    for topic, fut in admin.create_topics(new).items() if new else ():
        try:
            fut.result(timeout=30)
            log.info("created topic %s", topic)
        except KafkaException as exc:  # another creator won the race: fine
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


# CPython's cyclic GC runs a young collection every 700 container allocations and, as the
# long-lived heap grows, full ones that walk every object. A 100k-sensor state is millions of
# long-lived objects, and the per-message path allocates a few containers each, so the default
# made the cost per message grow with the fleet (measured: 2.7 vs 1.35 us per reading in the
# shard code, 100k vs 1k sensors; 2.0 vs 1.2 with these thresholds). The flow's garbage is
# acyclic and freed by reference counting; the collector only has to catch rare cycles. A young
# collection walks the containers still alive, mostly a poll's librdkafka messages, so fewer of
# them cost less: 500k instead of 50k took W1 from 0.60 to 0.67 of the floor (medians of 3).
GC_THRESHOLDS = (500_000, 20, 100)


def make_flow() -> object:
    """Build the production flow from the environment."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("Kafka at %s (%s)", ",".join(settings.brokers), settings.security.redacted())
    try:
        ensure_topics(settings)
    except StartupError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None
    gc.set_threshold(*GC_THRESHOLDS)
    brokers = list(settings.brokers)
    secure = settings.security.librdkafka()
    source = _KafkaSource(
        brokers,
        list(settings.topics),
        admin_config=admin_config(settings),
        consumer_config={**CONSUMER_DEFAULTS, **settings.consumer_config, **secure},
        tail=settings.tail,
        batch_size=settings.batch_size,
    )
    producer_config = {**PRODUCER_DEFAULTS, **settings.producer_config, **secure}
    return build_flow(
        settings,
        source,
        KafkaSink(brokers, settings.anomalies_topic, add_config=producer_config),
        KafkaSink(brokers, settings.dlq_topic, add_config=producer_config),
        make_message=lambda k, v, h: KafkaSinkMessage(k, v, headers=h),
        snapshots=recovery_requested(sys.argv, dict(os.environ)),
    )


flow = make_flow()
