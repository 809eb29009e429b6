"""Entry point: ``python -m bytewax.run dataflow.main:flow``.

Only wiring: read the settings (failing fast, naming the bad variable), make sure the topics
exist, and hand the Kafka source (``dataflow.source``) and Bytewax's Kafka sinks to
``build_flow``. Every Kafka client logs through ``dataflow.kafkalog``; SIGINT and SIGTERM stop
the flow cleanly (``dataflow.stopping``).
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import sys
import time
from typing import Any

from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from dataflow.config import ConfigError, Settings, recovery_requested
from dataflow.flow import build_flow
from dataflow.kafkalog import client_logger
from dataflow.source import KafkaPollSource
from dataflow.status import Status
from dataflow.stopping import GracefulStop

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


def admin_config(settings: Settings) -> dict[str, Any]:
    """Bootstrap and security settings, which every client gets, and the shared log limiter."""
    return {"bootstrap.servers": ",".join(settings.brokers), **settings.security.librdkafka(),
            "logger": client_logger()}


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
    client_logger(debug="debug" in settings.consumer_config or "debug" in settings.producer_config)
    log.info("Kafka at %s (%s)", ",".join(settings.brokers), settings.security.redacted())
    try:
        ensure_topics(settings)
    except StartupError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None
    except KeyboardInterrupt:  # Ctrl-C while waiting for the broker: nothing to flush yet
        log.info("stopped by SIGINT before the flow started")
        raise SystemExit(0) from None
    gc.set_threshold(*GC_THRESHOLDS)
    stop = GracefulStop()
    stop.install()
    status = Status(settings.status_interval_seconds)
    atexit.register(report_stop, stop, status)
    base = admin_config(settings)
    source = KafkaPollSource(
        list(settings.topics),
        admin_config=base,
        consumer_config={**base, **CONSUMER_DEFAULTS, **settings.consumer_config,
                         **settings.security.librdkafka()},
        tail=settings.tail,
        batch_size=settings.batch_size,
        stop=stop.event,
    )
    producer_config = {**PRODUCER_DEFAULTS, **settings.producer_config,
                       **settings.security.librdkafka(), "logger": client_logger()}
    brokers = list(settings.brokers)
    return build_flow(
        settings,
        source,
        KafkaSink(brokers, settings.anomalies_topic, add_config=producer_config),
        KafkaSink(brokers, settings.dlq_topic, add_config=producer_config),
        make_message=lambda k, v, h: KafkaSinkMessage(k, v, headers=h),
        status=status,
        snapshots=recovery_requested(sys.argv, dict(os.environ)),
        stopping=stop.requested,
    )


def report_stop(stop: GracefulStop, status: Status) -> None:
    """At exit after a signal's clean stop: its one line, with what the flow did."""
    if stop.requested():
        log.info("stopped by %s; %s", stop.name, status.line())


flow = make_flow()
