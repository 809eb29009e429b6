"""Entry point: ``python -m bytewax.run dataflow.main:flow``.

Only wiring: read the settings (failing fast, naming the bad variable), make sure the topics
exist (``dataflow.admin``), and hand the Kafka source (``dataflow.source``) and sinks
(``dataflow.sink``: an undelivered message fails the epoch) to ``build_flow``. Every Kafka
client logs through ``dataflow.kafkalog``; SIGINT and SIGTERM stop the flow cleanly
(``dataflow.stopping``); the GC is tuned by ``dataflow.runtime``.

Importing this module does nothing: ``flow`` is built, once, when first asked for (a module
``__getattr__``), which is what ``bytewax.run``'s ``getattr(module, "flow")`` does.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import NoReturn

from bytewax.connectors.kafka import KafkaSinkMessage
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from dataflow.admin import ClientConfig, StartupError, client_config, ensure_flow_topics
from dataflow.cluster import check_input_partitions, check_shards, cluster_shape
from dataflow.config import ConfigError, Settings, recovery_requested
from dataflow.flow import build_flow
from dataflow.kafkalog import client_logger
from dataflow.lane import warm as warm_lane
from dataflow.model.columns import warm
from dataflow.runtime import tune_gc
from dataflow.sink import DeliveringKafkaSink
from dataflow.source import SOURCE_SETTINGS, KafkaPollSource
from dataflow.status import Status
from dataflow.stopping import GracefulStop

log = logging.getLogger("dataflow")

# Throughput-minded librdkafka defaults; KAFKA_CONSUMER_CONFIG / KAFKA_PRODUCER_CONFIG override.
# Each partition has its own consumer, so its prefetch is paid once per partition: a few polls'
# worth (PREFETCH_POLLS x KAFKA_BATCH_SIZE) keeps the flow fed, while bench/floor.py's 8 MiB
# fetches and 200,000-message queues held several hundred MB of a backlog in memory for no speed
# (bench/RESULTS.md, "Consumer prefetch"). The queue's bound is only checked before a fetch, and
# a fetch's size is compressed bytes: 1 MiB of small JSON readings, decompressed, is over a
# hundred thousand messages a partition whatever queued.min.messages says, held by librdkafka
# while the flow works through them. So fetches are a quarter of that (a producer's batch larger
# than that is still fetched whole: it is not a limit on a message's size). A queue that
# small is full after a fetch or two, and librdkafka then puts off the partition's next fetch
# by fetch.queue.backoff.ms, 1 s by default: with one partition the flow sat idle most of each
# second. The backoff is kept well under the time the flow takes to work through the queue.
# Not fetch.min.bytes, which would hold back fetches on a quiet topic.
CONSUMER_DEFAULTS = {
    "fetch.wait.max.ms": "100",
    "fetch.message.max.bytes": "262144",
    "fetch.max.bytes": "67108864",
    "fetch.queue.backoff.ms": "20",
}
PREFETCH_POLLS = 4  # queued.min.messages, in polls of KAFKA_BATCH_SIZE
PRODUCER_DEFAULTS = {"linger.ms": "5", "compression.type": "lz4"}


def make_flow() -> object:
    """Build the production flow from the environment."""
    try:
        settings = Settings.from_env()
        shape = cluster_shape(sys.argv, os.environ)
        check_shards(settings.shards, shape)
        check_client_config(settings)
    except ConfigError as exc:
        config_error(exc)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    client_logger(debug="debug" in settings.consumer_config or "debug" in settings.producer_config)
    log.info("Kafka at %s (%s)", ",".join(settings.brokers), settings.security.redacted())
    try:
        partitions = ensure_flow_topics(settings)
        check_input_partitions({t: partitions[t] for t in settings.topics}, shape)
    except ConfigError as exc:
        config_error(exc)
    except StartupError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None
    except KeyboardInterrupt:  # Ctrl-C while waiting for the broker: nothing to flush yet
        log.info("stopped by SIGINT before the flow started")
        raise SystemExit(0) from None
    tune_gc()
    warm()  # the scorer's compiled loop loaded now, not in the first batch
    warm_lane()  # and the shard's lane's (``dataflow.lane``)
    stop = GracefulStop()
    stop.install()
    status = Status(settings.status_interval_seconds)
    atexit.register(report_stop, stop, status)
    base = client_config(settings.brokers, settings.security)
    source = KafkaPollSource(
        list(settings.topics),
        admin_config=base,
        consumer_config={
            **base,
            **consumer_settings(settings),
            **settings.security.librdkafka(),
        },
        tail=settings.tail,
        batch_size=settings.batch_size,
        stop=stop.event,
    )
    # librdkafka takes the logger object beside the str settings.
    producer_config: ClientConfig = {
        **PRODUCER_DEFAULTS,
        **settings.producer_config,
        **settings.security.librdkafka(),
        "logger": client_logger(),
    }
    brokers = list(settings.brokers)
    return build_flow(
        settings,
        source,
        DeliveringKafkaSink(brokers, settings.anomalies_topic, add_config=producer_config),
        DeliveringKafkaSink(brokers, settings.dlq_topic, add_config=producer_config),
        make_message=lambda k, v, h: KafkaSinkMessage(k, v, headers=h),
        status=status,
        snapshots=recovery_requested(sys.argv, dict(os.environ)),
        stopping=stop.requested,
    )


def consumer_settings(settings: Settings) -> dict[str, str]:
    """The consumers' librdkafka settings of this project: its defaults, KAFKA_CONSUMER_CONFIG
    over them (the connection and security settings are added beside)."""
    return {
        **CONSUMER_DEFAULTS,
        "queued.min.messages": str(PREFETCH_POLLS * settings.batch_size),
        **settings.consumer_config,
    }


def check_consumer_config(settings: Settings) -> None:
    """librdkafka's word on the consumers' settings (its defaults here, KAFKA_CONSUMER_CONFIG
    over them) before the flow starts, as a configuration error: a value it refuses, or one at
    odds with a default here (``message.max.bytes`` over ``fetch.max.bytes``), stopped the flow
    at its first partition's consumer with a traceback. No broker is asked (none is named)."""
    owned = sorted(set(settings.consumer_config) & set(SOURCE_SETTINGS))
    if owned:
        raise ConfigError(
            f"KAFKA_CONSUMER_CONFIG: sets {', '.join(owned)}, which the source sets itself: "
            "offsets are kept in Bytewax's recovery, not a consumer group, and KAFKA_TAIL says "
            "whether a replay ends; remove it"
        )
    config = {**consumer_settings(settings), "group.id": "BYTEWAX_IGNORED", "log_level": "0"}
    try:
        Consumer(config).close()
    except KafkaException as exc:
        raise ConfigError(
            f"KAFKA_CONSUMER_CONFIG: librdkafka refuses the consumer's settings "
            f"(with the defaults: {_listed(CONSUMER_DEFAULTS)}): {_reason(exc)}"
        ) from None


def check_producer_config(settings: Settings) -> None:
    """librdkafka's word on the sinks' producer settings (``PRODUCER_DEFAULTS``, then
    KAFKA_PRODUCER_CONFIG), as a configuration error: a value it refuses got past the start-up
    checks and the topics' creation, and stopped the flow when Bytewax built a sink, with
    librdkafka's words alone. No broker is asked (none is named)."""
    try:
        Producer({**PRODUCER_DEFAULTS, **settings.producer_config, "log_level": "0"}).flush(0)
    except KafkaException as exc:
        raise ConfigError(
            f"KAFKA_PRODUCER_CONFIG: librdkafka refuses the producer's settings "
            f"(with the defaults: {_listed(PRODUCER_DEFAULTS)}): {_reason(exc)}"
        ) from None


def check_client_config(settings: Settings) -> None:
    """Both Kafka clients' settings, checked as the flow starts and by ``--check-config``."""
    check_consumer_config(settings)
    check_producer_config(settings)


def _listed(defaults: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in defaults.items())


def _reason(exc: KafkaException) -> str:
    reason = exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else exc
    return str(reason).strip()


def config_error(exc: ConfigError) -> NoReturn:
    print(f"configuration error: {exc}", file=sys.stderr)
    raise SystemExit(2) from None


def report_stop(stop: GracefulStop, status: Status) -> None:
    """At exit after a signal's clean stop: its one line, with what the flow did."""
    if stop.requested():
        log.info("stopped by %s; %s", stop.name, status.line())


def __getattr__(name: str) -> object:
    """``flow``: the production flow, built (reading the environment, creating the topics) on
    first access and then kept as an ordinary attribute; nothing happens at import."""
    if name == "flow":
        flow = make_flow()
        globals()["flow"] = flow
        return flow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
