"""``--through-broker``: replay a file through Kafka and the real running dataflow.

The in-process replay (``detectors.ours``) calls the dataflow's code directly; this one checks that
nothing between Kafka and that code (parsing, routing, sharding, batching, the sinks) changes the
answer. Each file gets its own uniquely named topics, deleted afterwards. The rows are produced as
one air-quality sensor's messages, by the producer's own encoder; ``python -m bytewax.run
dataflow.main:flow`` drains them with ``KAFKA_TAIL=false`` and ``EMIT_ALL_WINDOWS=true``, and
the detections are read back from the anomalies topic: alert opens (``"event": "open"``), or
anomalous windows with ``--detections windows``.

Every client here, and the dataflow it starts, logs in with the SASL/TLS variables of
``dataflow/security.py`` (``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_*``, ``KAFKA_SSL_*``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from dataflow.admin import StartupError, connect, delete_topics, ensure_topics
from dataflow.families import AIR_QUALITY
from dataflow.readings import Reading
from dataflow.security import KafkaSecurity, SecurityConfigError
from eval.detectors import SENSOR_ID, OursConfig, base_env, fit
from eval.nab import Series, parse_time, rows_at
from producer.shapes import encode

ROOT = Path(__file__).resolve().parents[1]


def record_detections(series: Series, records: list[dict[str, Any]], mode: str) -> list[bool]:
    """Row detections from the anomalies topic's JSON records (see ``detectors.detections``)."""
    if mode == "alerts":
        picked = [r for r in records if r.get("event") == "open"]
    else:
        picked = [r for r in records if r.get("anomaly")]
    ends = [parse_time(r["window_end"].replace("Z", "")) - 1 for r in picked]
    return rows_at(series.timestamps, ends)


class BrokerReplay:
    """Callable ``(relative path, series) -> detections`` for ``runner.evaluate``."""

    def __init__(self, brokers: str, config: OursConfig, timeout_s: float = 600.0) -> None:
        self.brokers = brokers
        self.config = config
        self.timeout_s = timeout_s
        try:  # from the environment, which the dataflow subprocess inherits too
            security = KafkaSecurity.from_env(os.environ)
        except SecurityConfigError as exc:  # names the variable, never holds the password
            raise SystemExit(f"configuration error: {exc}") from None
        # Bootstrap and security settings, which every client gets.
        self.client_config: dict[str, Any] = {"bootstrap.servers": brokers, **security.librdkafka()}
        try:  # fail fast, with the broker's reason, if unreachable or refusing the login
            self.admin, _ = connect(brokers, security, timeout_s=10)
        except StartupError as exc:
            raise SystemExit(f"error: {exc}") from None

    def __call__(self, rel: str, series: Series) -> list[bool]:
        run = uuid.uuid4().hex[:10]
        topics = {
            "AIR_QUALITY_TOPIC": f"eval-aq-{run}",
            "TEMPERATURE_TOPIC": f"eval-temp-{run}",
            "ANOMALIES_TOPIC": f"eval-anomalies-{run}",
            "DLQ_TOPIC": f"eval-dlq-{run}",
        }
        names = list(topics.values())
        ensure_topics(self.admin, names, 1, existing=())
        try:
            self._produce(topics["AIR_QUALITY_TOPIC"], series)
            self._run_flow(rel, series, topics)
            records = [orjson.loads(v) for v in self._consume(topics["ANOMALIES_TOPIC"])]
            dead = self._consume(topics["DLQ_TOPIC"])
            if dead:
                raise RuntimeError(f"{rel}: {len(dead)} reading(s) went to the dead-letter topic")
        finally:
            delete_topics(self.admin, names)
        return record_detections(series, records, self.config.mode)

    def _produce(self, topic: str, series: Series) -> None:
        producer = Producer({**self.client_config, "linger.ms": 5, "enable.idempotence": True})
        for ts, value in zip(series.timestamps, series.values, strict=True):
            key, message = encode(Reading(AIR_QUALITY, SENSOR_ID, ts, value))
            producer.produce(topic, message, key)
            producer.poll(0)
        left = producer.flush(60)
        if left:
            raise RuntimeError(f"{left} message(s) not delivered to {topic}")

    def _run_flow(self, rel: str, series: Series, topics: dict[str, str]) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "KAFKA_BROKERS": self.brokers,
            "KAFKA_TAIL": "false",
            "IDLE_TIMEOUT_SECONDS": "86400",  # a replay is fast: never close a window on idling
            "STATUS_INTERVAL_SECONDS": "0",
            **topics,
            **base_env(fit(series), self.config.limit_pad),
            **self.config.env,
        }
        proc = subprocess.run(
            [sys.executable, "-m", "bytewax.run", "dataflow.main:flow"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=self.timeout_s,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{rel}: the dataflow failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
            )

    def _consume(self, topic: str) -> list[bytes]:
        """Every message value in ``topic`` (one partition), oldest first."""
        consumer = Consumer(
            {
                **self.client_config,
                "group.id": f"eval-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        try:
            part = TopicPartition(topic, 0, 0)
            end = consumer.get_watermark_offsets(part, timeout=30)[1]
            consumer.assign([part])
            out: list[bytes] = []
            while len(out) < end:
                msg = consumer.poll(30)
                if msg is None:
                    raise TimeoutError(f"{topic}: {len(out)} of {end} messages within 30 s")
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(str(err))
                out.append(msg.value() or b"")
            return out
        finally:
            consumer.close()
