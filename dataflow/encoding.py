"""Encoding: what the flow writes, as ``(key, value, headers)`` bytes for the Kafka sinks.

Pure. A window's result or a sensor event becomes one JSON object, encoded exactly once, by
orjson, keyed by sensor id; a dead letter or a late reading keeps its original bytes, with why
and where from in headers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from dataflow.alerts import AlertEvent
from dataflow.model.explain import explain, explain_machine
from dataflow.routing import DeadLetter
from dataflow.shard import LateReading, SensorEvent, WindowResult

Headers = list[tuple[str, bytes]]


def iso_utc(ns: int) -> str:
    """ns since the epoch -> ``2024-03-19T13:57:05.000Z``."""
    dt = datetime.fromtimestamp(ns // 1_000_000 / 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def window_record(res: WindowResult) -> dict[str, Any]:
    """The JSON object written to the anomalies topic: an alert event, or a plain window."""
    st = res.stats
    ev = res.alert
    return {
        "event": "window" if ev is None else ev.event,
        "alert_id": None if ev is None else ev.alert_id,
        "state": None if ev is None else ("resolved" if ev.event == "resolved" else "open"),
        "resolution": None if ev is None else ev.resolution,
        "family": res.family,
        "sensor_id": res.sensor_id,
        "unit": res.unit,
        "window_start": iso_utc(st.start),
        "window_end": iso_utc(st.end),
        "count": st.count,
        "mean": st.mean,
        "min": st.min,
        "max": st.max,
        "score": res.score,
        "model_ready": res.model_ready,
        "ml_anomaly": res.ml_anomaly,
        "ml_cut": res.ml_cut,
        "explain": None if res.why is None else explain(res.why, res.unit),
        "threshold": res.threshold,
        "threshold_alarm": res.threshold_alarm,
        "anomaly": res.anomaly,
        "reasons": res.reasons,
        "severity": res.severity,
        "silent_seconds": None,
        "alert": _alert_record(ev),
    }


_NO_WINDOW = dict.fromkeys(
    (
        "window_start",
        "window_end",
        "count",
        "mean",
        "min",
        "max",
        "score",
        "model_ready",
        "ml_anomaly",
        "ml_cut",
        "explain",
        "threshold",
        "threshold_alarm",
    )
)


def event_record(res: SensorEvent) -> dict[str, Any]:
    """A stale resolution or a forgotten sensor: the same keys as a window's record, the window's
    own null, since no window caused it."""
    ev = res.alert
    return {
        "event": res.event,
        "alert_id": None if ev is None else ev.alert_id,
        "state": None if ev is None else "resolved",
        "resolution": None if ev is None else ev.resolution,
        "family": res.family,
        "sensor_id": res.sensor_id,
        "unit": res.unit,
        **_NO_WINDOW,
        "anomaly": False,
        "reasons": [],
        "severity": None,
        "silent_seconds": round(res.silent_s, 3),
        "alert": _alert_record(ev),
    }


def _alert_record(ev: AlertEvent | None) -> dict[str, Any] | None:
    if ev is None:
        return None
    return {
        "opened_at": iso_utc(ev.opened_at),
        "anomalous_windows": ev.anomalous_windows,
        "peak_mean": ev.peak_mean,
        "peak_at": iso_utc(ev.peak_at),
        "peak_score": ev.peak_score,
        "reasons": list(ev.reasons),
        "severity": ev.severity,
    }


def machine_record(res: WindowResult) -> dict[str, Any]:
    """A machine's window: a sensor window's keys (``sensor_id`` is the machine id; ``mean``,
    ``min``, ``max`` and ``score`` the joint model's score, above 1 anomalous; ``count`` the
    channels that sent readings), and ``machine`` and ``drivers``."""
    record = window_record(res)
    record["machine"] = res.sensor_id
    drivers = res.drivers or ()
    record["drivers"] = [
        {"channel": c, "z": z, "movement": moved or None} for c, z, moved in drivers
    ]
    if res.ml_anomaly:
        record["explain"] = explain_machine(drivers, res.score)
    return record


def encode_window(res: WindowResult | SensorEvent) -> tuple[bytes, bytes, Headers]:
    """Key = sensor id (a machine's: the machine id), value = one JSON object (encoded once)."""
    if isinstance(res, WindowResult):
        record = window_record(res) if res.drivers is None else machine_record(res)
    else:
        record = event_record(res)
    return res.sensor_id.encode(), orjson.dumps(record), []


def _dead_headers(
    reason: str,
    detail: str,
    topic: str | None,
    partition: int | None,
    offset: int | None,
    family: str | None = None,
) -> Headers:
    headers = [("reason", reason.encode()), ("detail", detail.encode("utf-8", "replace"))]
    if family is not None:
        headers.append(("family", family.encode()))
    for name, val in (
        ("source_topic", topic),
        ("source_partition", partition),
        ("source_offset", offset),
    ):
        if val is not None:
            headers.append((name, str(val).encode()))
    return headers


# Most bytes of a dead letter's original key and value kept together: librdkafka refuses a
# message over its ``message.max.bytes`` (1,000,000 by default) when it is produced, and that
# error stopped the flow on the same message at every restart (a compressed 1 MB reading gets
# through a broker, then cannot be written back uncompressed). Room is left for the headers.
DEAD_LETTER_MAX_BYTES = 900_000


def encode_dead_letter(dl: DeadLetter) -> tuple[bytes | None, bytes | None, Headers]:
    """The original key and value bytes untouched (the first ``DEAD_LETTER_MAX_BYTES`` of them,
    with a ``truncated`` header saying how many there were); why and where from in headers."""
    headers = _dead_headers(dl.reason, dl.detail, dl.topic, dl.partition, dl.offset, dl.family)
    return _bounded(dl.key, dl.value, headers)


def _bounded(
    key: bytes | None, value: bytes | None, headers: Headers
) -> tuple[bytes | None, bytes | None, Headers]:
    """Key and value cut to ``DEAD_LETTER_MAX_BYTES`` together, with a ``truncated`` header."""
    nk, nv = len(key or b""), len(value or b"")
    if nk + nv > DEAD_LETTER_MAX_BYTES:
        # The value first (what was sent), the key at least half the room if it needs it.
        keep_v = min(nv, DEAD_LETTER_MAX_BYTES - min(nk, DEAD_LETTER_MAX_BYTES // 2))
        keep_k = min(nk, DEAD_LETTER_MAX_BYTES - keep_v)
        headers.append(
            (
                "truncated",
                f"key of {nk} bytes, value of {nv}: the first {keep_k} and {keep_v} kept".encode(),
            )
        )
        key = None if key is None else key[:keep_k]
        value = None if value is None else value[:keep_v]
    return key, value, headers


def encode_late(late: LateReading) -> tuple[bytes | None, bytes | None, Headers]:
    """A reading the shard refused (late, future, sensor limit): its original bytes and origin
    when known, else re-encoded; with its family, always (several families reading one topic
    each refuse their own readings of a message: copies told apart by nothing else)."""
    r = late.reading
    src = r.source
    reason, detail = late.reason, late.detail
    if src is not None:
        return _bounded(
            src.key(),
            src.value(),
            _dead_headers(reason, detail, src.topic(), src.partition(), src.offset(), r.family),
        )
    value = orjson.dumps(
        {"family": r.family, "sensor_id": r.sensor_id, "ts_ns": r.ts, "value": r.value}
    )
    return r.sensor_id.encode(), value, _dead_headers(reason, detail, None, None, None, r.family)
