"""The one place that reads ``os.environ``.

Every knob of the dataflow is an environment variable with a default. ``Settings.from_env`` reads
and validates them all at start-up, so a typo or a nonsensical value stops the flow before it
touches Kafka, with a message naming the variable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from dataflow.families import (
    AIR_QUALITY,
    MAX_MAGNITUDE,
    TEMPERATURE,
    Family,
    FamilyConfigError,
    builtin,
    load_families,
    topics_of,
)
from dataflow.readings import VALID_RANGES
from dataflow.security import SECURITY_ENV_DOCS, KafkaSecurity, SecurityConfigError

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad environment value; the message names the variable."""


# name -> (default, help). The README table is checked against this by a test.
ENV_DOCS: dict[str, tuple[str, str]] = {
    "KAFKA_BROKERS": ("127.0.0.1:9092", "Comma-separated bootstrap brokers."),
    "SENSORS_CONFIG": (
        "",
        'A YAML file declaring the sensor families (README, "Your own '
        'sensors"); empty: the two tutorial families, set by the variables '
        "marked *family* below, which a file replaces.",
    ),
    "AIR_QUALITY_TOPIC": ("air-quality", "*family*: input topic of the air-quality family."),
    "TEMPERATURE_TOPIC": (
        "temperature_readings",
        "*family*: input topic of the machine-temperature family.",
    ),
    "ANOMALIES_TOPIC": ("anomalies", "Output topic of scored windows."),
    "DLQ_TOPIC": ("dead-letters", "Topic for messages that cannot be used, with their reason."),
    "TOPIC_PARTITIONS": ("3", "Partitions of topics the flow creates when they are missing."),
    "KAFKA_TAIL": ("true", "`false`: stop at the end of the input topics (replays, tests)."),
    "KAFKA_BATCH_SIZE": ("5000", "Messages fetched per partition per poll."),
    "KAFKA_CONSUMER_CONFIG": (
        "",
        "Extra librdkafka consumer settings, `k=v,k=v` (a list value "
        "keeps its commas: `debug=consumer,fetch`).",
    ),
    "KAFKA_PRODUCER_CONFIG": ("", "Extra librdkafka producer settings for the sinks, `k=v,k=v`."),
    "WINDOW_SECONDS": (
        "5",
        "Tumbling event-time window length, per sensor (a family in "
        "`SENSORS_CONFIG` may set its own).",
    ),
    "ALLOWED_LATENESS_SECONDS": (
        "2",
        "How far a sensor's event time may pass a window's end before the window closes.",
    ),
    "LIVE_SKEW_SECONDS": (
        "60",
        "A sensor whose event time is within this many seconds of the "
        "wall clock is live: between its readings its clock also runs "
        "on by the wall clock, so its windows close on time even when "
        "its next reading is slow to come. Older data (replays, "
        "backlogs) closes windows by event time only (0: never).",
    ),
    "IDLE_TIMEOUT_SECONDS": (
        "10",
        "Wall-clock seconds after a sensor's last reading at which its open windows close anyway.",
    ),
    "SHARDS": ("32", "Key groups that sensors are hashed into (Bytewax keys)."),
    "TEMPERATURE_THRESHOLD_C": (
        "90",
        "*family*: temperature window mean at or above which is "
        "an alarm (the rule `threshold`, severity `critical`).",
    ),
    "AIR_QUALITY_THRESHOLD": (
        "",
        "*family*: air-quality window mean at or above which is an "
        "alarm (the rule `threshold`, severity `warning`; empty: no "
        "rule).",
    ),
    "TEMPERATURE_LIMITS": (
        "0,120",
        "*family*: HalfSpaceTrees feature range `lo,hi` for temperature.",
    ),
    "AIR_QUALITY_LIMITS": (
        "0,500",
        "*family*: HalfSpaceTrees feature range `lo,hi` for air quality.",
    ),
    "TEMPERATURE_VALID_RANGE": (
        "{:g},{:g}".format(*VALID_RANGES[TEMPERATURE]),
        "*family*: plausible temperature readings `lo,hi` (inclusive); any other goes to the "
        "dead-letter topic as `out_of_range`, never into a window.",
    ),
    "AIR_QUALITY_VALID_RANGE": (
        "{:g},{:g}".format(*VALID_RANGES[AIR_QUALITY]),
        "*family*: plausible air-quality readings `lo,hi`, as above.",
    ),
    "HST_TREES": ("5", "HalfSpaceTrees: number of trees."),
    "HST_HEIGHT": ("3", "HalfSpaceTrees: tree height."),
    "HST_WINDOW_SIZE": ("100", "HalfSpaceTrees: windows per reference-mass period."),
    "ML_NOVELTY_MARGIN": (
        "1.2",
        "A window is novel when a feature (level distance, step, "
        "burst rate, HalfSpaceTrees score) exceeds this many times its "
        "decayed peak in the sensor's past.",
    ),
    "ML_NOVELTY_FLOOR": ("6", "... and is more than this many spreads (features) from the usual."),
    "ML_NOVELTY_HALF_LIFE": (
        "3000",
        "Windows over which a feature's remembered peak decays by half.",
    ),
    "ML_HST_NOVELTY": (
        "false",
        "`true`: HalfSpaceTrees' score also takes part in the novelty "
        "test (off by default: on NAB it added false alarms faster than "
        "it found windows, see bench/RESULTS.md).",
    ),
    "ML_SEASONALITY": ("true", "`false`: no daily or weekly baseline, the level alone."),
    "LEVEL_WINDOWS": (
        "300",
        "Memory, in windows, of each sensor's running level (the spread's is twice as long).",
    ),
    "ML_DRIFT_SLACK": (
        "2",
        "Spreads a window mean may sit from the level before it adds to the "
        "sensor's drift sums (CUSUM).",
    ),
    "ML_DRIFT_LIMIT": (
        "16",
        "A drift sum above this is an ML anomaly: a lasting moderate departure (0: off).",
    ),
    "ML_DRIFT_CLIP": (
        "4",
        "Most spreads one window adds to a drift sum, so a spike alone cannot cross the limit.",
    ),
    "WARMUP_WINDOWS": (
        "100",
        "Windows a sensor's model learns, after its first "
        "`HST_WINDOW_SIZE`, before it may raise ML anomalies.",
    ),
    "MODEL_SEED": ("42", "Seed of every sensor's model, so runs are reproducible."),
    "ALERT_UPDATE_WINDOWS": (
        "12",
        "An open alert sends an `update` (peak moved, new reason) at "
        "most once per this many windows.",
    ),
    "ALERT_RESOLVE_WINDOWS": ("3", "Consecutive clean windows that resolve an alert."),
    "ALERT_COOLDOWN_WINDOWS": (
        "48",
        "After an ML alert resolves, windows in which a new ML "
        "alert of the same sensor stays silent (threshold alarms "
        "always open).",
    ),
    "ALERT_STALE_SECONDS": (
        "300",
        "Wall-clock seconds without readings after which a sensor's "
        'open alert is resolved with `"resolution": "stale"` '
        "(0: never).",
    ),
    "SENSOR_STATE_TTL_SECONDS": (
        "604800",
        "Wall-clock seconds without readings after which a "
        "sensor's state (model, level, alert) is forgotten, "
        "its windows closed first; its next reading starts a "
        "fresh model with a warm-up. 7 days by default.",
    ),
    "EMIT_ALL_WINDOWS": ("false", "`true`: also write every scored window, not only alert events."),
    "STATUS_INTERVAL_SECONDS": ("5", "Seconds between status log lines (0: none)."),
    "LOG_LEVEL": ("INFO", "Python logging level."),
}


ALL_ENV_DOCS = {**ENV_DOCS, **SECURITY_ENV_DOCS}
# What a sensors file declares instead: set to anything but its default beside a file, a
# variable would silently do nothing, so that is refused.
FAMILY_ENV = tuple(name for name, (_, text) in ENV_DOCS.items() if text.startswith("*family*"))


def _raw(env: Mapping[str, str], name: str) -> str:
    return env.get(name, ENV_DOCS[name][0]).strip()


def _parse(env: Mapping[str, str], name: str, conv: Callable[[str], T], what: str) -> T:
    raw = _raw(env, name)
    try:
        return conv(raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name}={raw!r}: expected {what} ({exc})") from None


def _bool(raw: str) -> bool:
    low = raw.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a boolean")


def _finite(raw: str) -> float:
    val = float(raw)
    if not math.isfinite(val):
        raise ValueError("not finite")
    return val


def _limits(raw: str) -> tuple[float, float]:
    lo, hi = (_finite(p) for p in raw.split(","))
    if not lo < hi:
        raise ValueError("lo must be below hi")
    return lo, hi


def _valid_range(raw: str) -> tuple[float, float]:
    lo, hi = _limits(raw)
    if max(-lo, hi) > MAX_MAGNITUDE:
        raise ValueError(f"bounds must lie within +-{MAX_MAGNITUDE:g}")
    return lo, hi


def _kv(raw: str) -> dict[str, str]:
    """``k=v,k=v``; a part without ``=`` continues the previous value, because librdkafka lists
    are comma-separated themselves (``debug=broker,fetch,linger.ms=5``)."""
    out: dict[str, str] = {}
    key = ""
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, sep, val = part.partition("=")
        if sep and name.strip():
            key = name.strip()
            out[key] = val.strip()
        elif not sep and key:
            out[key] += "," + part
        else:
            raise ValueError(f"{part!r} is not k=v")
    return out


def _check(name: str, ok: bool, what: str, env: Mapping[str, str]) -> None:
    if not ok:
        raise ConfigError(f"{name}={_raw(env, name)!r}: must be {what}")


@dataclass(frozen=True)
class Settings:
    """Validated configuration of the dataflow."""

    brokers: tuple[str, ...]
    families: tuple[Family, ...]
    anomalies_topic: str
    dlq_topic: str
    tail: bool
    batch_size: int
    topic_partitions: int
    consumer_config: dict[str, str]
    producer_config: dict[str, str]
    window_seconds: float
    lateness_seconds: float
    idle_timeout_seconds: float
    live_skew_seconds: float
    shards: int
    hst_trees: int
    hst_height: int
    hst_window_size: int
    ml_novelty_margin: float
    ml_novelty_floor: float
    ml_novelty_half_life: float
    ml_hst_novelty: bool
    ml_seasonality: bool
    ml_drift_slack: float
    ml_drift_limit: float
    ml_drift_clip: float
    level_windows: int
    warmup_windows: int
    model_seed: int
    alert_update_windows: int
    alert_resolve_windows: int
    alert_cooldown_windows: int
    alert_stale_seconds: float
    sensor_state_ttl_seconds: float
    emit_all: bool
    status_interval_seconds: float
    log_level: str
    security: KafkaSecurity
    sensors_config: str = ""  # the file the families came from; empty: built in

    @property
    def topics(self) -> dict[str, tuple[Family, ...]]:
        """Input topic -> the families read from it."""
        return topics_of(self.families)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise ``ConfigError`` naming the first bad one."""
        env = os.environ if env is None else env
        brokers = tuple(b.strip() for b in _raw(env, "KAFKA_BROKERS").split(",") if b.strip())
        _check("KAFKA_BROKERS", bool(brokers), "a non-empty list of host:port", env)
        topic_names = {}
        for name in ("ANOMALIES_TOPIC", "DLQ_TOPIC"):
            topic_names[name] = _raw(env, name)
            _check(name, bool(topic_names[name]), "a topic name", env)
        _check(
            "ANOMALIES_TOPIC",
            topic_names["ANOMALIES_TOPIC"] != topic_names["DLQ_TOPIC"],
            "different from DLQ_TOPIC",
            env,
        )

        batch_size = _parse(env, "KAFKA_BATCH_SIZE", int, "an integer")
        _check("KAFKA_BATCH_SIZE", batch_size >= 1, ">= 1", env)
        partitions = _parse(env, "TOPIC_PARTITIONS", int, "an integer")
        _check("TOPIC_PARTITIONS", partitions >= 1, ">= 1", env)
        window = _parse(env, "WINDOW_SECONDS", _finite, "a number of seconds")
        _check("WINDOW_SECONDS", window > 0, "> 0", env)
        _check("WINDOW_SECONDS", (window * 1e9).is_integer(), "a whole number of nanoseconds", env)
        lateness = _parse(env, "ALLOWED_LATENESS_SECONDS", _finite, "a number of seconds")
        _check("ALLOWED_LATENESS_SECONDS", lateness >= 0, ">= 0", env)
        idle = _parse(env, "IDLE_TIMEOUT_SECONDS", _finite, "a number of seconds")
        _check("IDLE_TIMEOUT_SECONDS", idle > 0, "> 0", env)
        live_skew = _parse(env, "LIVE_SKEW_SECONDS", _finite, "a number of seconds")
        _check("LIVE_SKEW_SECONDS", live_skew >= 0, ">= 0", env)
        shards = _parse(env, "SHARDS", int, "an integer")
        _check("SHARDS", 1 <= shards <= 4096, "between 1 and 4096", env)

        sensors_config = _raw(env, "SENSORS_CONFIG")
        families = (
            _file_families(env, sensors_config, window)
            if sensors_config
            else families_from_env(env, window)
        )
        inputs = topics_of(families)
        for name in ("ANOMALIES_TOPIC", "DLQ_TOPIC"):
            _check(
                name,
                topic_names[name] not in inputs,
                f"different from the input topics ({', '.join(inputs)})",
                env,
            )
        ints = {}
        for name, low in (
            ("HST_TREES", 1),
            ("HST_HEIGHT", 1),
            ("HST_WINDOW_SIZE", 1),
            ("WARMUP_WINDOWS", 0),
            ("LEVEL_WINDOWS", 1),
            ("ALERT_UPDATE_WINDOWS", 1),
            ("ALERT_RESOLVE_WINDOWS", 1),
            ("ALERT_COOLDOWN_WINDOWS", 0),
        ):
            ints[name] = _parse(env, name, int, "an integer")
            _check(name, ints[name] >= low, f">= {low}", env)
        nums = {}
        # Bounds are floats here (the integers' loop above binds ``low`` to ints).
        for name, bound, strict in (
            ("ML_DRIFT_SLACK", 0.0, False),
            ("ML_DRIFT_LIMIT", 0.0, False),
            ("ML_DRIFT_CLIP", 0.0, True),
            ("ML_NOVELTY_MARGIN", 1.0, False),
            ("ML_NOVELTY_FLOOR", 0.0, False),
            ("ML_NOVELTY_HALF_LIFE", 0.0, True),
        ):
            nums[name] = _parse(env, name, _finite, "a number")
            ok = nums[name] > bound if strict else nums[name] >= bound
            _check(name, ok, f"{'>' if strict else '>='} {bound:g}", env)
        stale = _parse(env, "ALERT_STALE_SECONDS", _finite, "a number of seconds")
        _check("ALERT_STALE_SECONDS", stale >= 0, ">= 0", env)
        ttl = _parse(env, "SENSOR_STATE_TTL_SECONDS", _finite, "a number of seconds")
        _check("SENSOR_STATE_TTL_SECONDS", ttl > 0, "> 0", env)
        status = _parse(env, "STATUS_INTERVAL_SECONDS", _finite, "a number of seconds")
        _check("STATUS_INTERVAL_SECONDS", status >= 0, ">= 0", env)
        log_level = _raw(env, "LOG_LEVEL").upper()
        _check(
            "LOG_LEVEL",
            log_level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
            "a logging level name",
            env,
        )

        try:
            security = KafkaSecurity.from_env(env)
        except SecurityConfigError as exc:
            raise ConfigError(str(exc)) from None

        return cls(
            brokers=brokers,
            families=families,
            anomalies_topic=topic_names["ANOMALIES_TOPIC"],
            dlq_topic=topic_names["DLQ_TOPIC"],
            tail=_parse(env, "KAFKA_TAIL", _bool, "true or false"),
            batch_size=batch_size,
            topic_partitions=partitions,
            consumer_config=_parse(env, "KAFKA_CONSUMER_CONFIG", _kv, "k=v,k=v"),
            producer_config=_parse(env, "KAFKA_PRODUCER_CONFIG", _kv, "k=v,k=v"),
            window_seconds=window,
            lateness_seconds=lateness,
            idle_timeout_seconds=idle,
            live_skew_seconds=live_skew,
            shards=shards,
            hst_trees=ints["HST_TREES"],
            hst_height=ints["HST_HEIGHT"],
            hst_window_size=ints["HST_WINDOW_SIZE"],
            ml_novelty_margin=nums["ML_NOVELTY_MARGIN"],
            ml_novelty_floor=nums["ML_NOVELTY_FLOOR"],
            ml_novelty_half_life=nums["ML_NOVELTY_HALF_LIFE"],
            ml_hst_novelty=_parse(env, "ML_HST_NOVELTY", _bool, "true or false"),
            ml_seasonality=_parse(env, "ML_SEASONALITY", _bool, "true or false"),
            ml_drift_slack=nums["ML_DRIFT_SLACK"],
            ml_drift_limit=nums["ML_DRIFT_LIMIT"],
            ml_drift_clip=nums["ML_DRIFT_CLIP"],
            level_windows=ints["LEVEL_WINDOWS"],
            warmup_windows=ints["WARMUP_WINDOWS"],
            model_seed=_parse(env, "MODEL_SEED", int, "an integer"),
            alert_update_windows=ints["ALERT_UPDATE_WINDOWS"],
            alert_resolve_windows=ints["ALERT_RESOLVE_WINDOWS"],
            alert_cooldown_windows=ints["ALERT_COOLDOWN_WINDOWS"],
            alert_stale_seconds=stale,
            sensor_state_ttl_seconds=ttl,
            emit_all=_parse(env, "EMIT_ALL_WINDOWS", _bool, "true or false"),
            status_interval_seconds=status,
            log_level=log_level,
            security=security,
            sensors_config=sensors_config,
        )


def families_from_env(env: Mapping[str, str], window: float = 5.0) -> tuple[Family, ...]:
    """The tutorials' two families, as the *family* variables set them (``ConfigError`` naming
    a bad one): the dataflow's, and the producer's when it has no sensors file."""
    topics = {}
    for name in ("AIR_QUALITY_TOPIC", "TEMPERATURE_TOPIC"):
        topics[name] = _raw(env, name)
        _check(name, bool(topics[name]), "a topic name", env)
    _check(
        "TEMPERATURE_TOPIC",
        topics["TEMPERATURE_TOPIC"] != topics["AIR_QUALITY_TOPIC"],
        "different from AIR_QUALITY_TOPIC",
        env,
    )
    range_what = f"`lo,hi` with lo < hi, within +-{MAX_MAGNITUDE:g}"
    return builtin(
        air_quality_topic=topics["AIR_QUALITY_TOPIC"],
        temperature_topic=topics["TEMPERATURE_TOPIC"],
        window_seconds=window,
        temperature_threshold=_parse(env, "TEMPERATURE_THRESHOLD_C", _finite, "a number"),
        air_quality_threshold=(
            _parse(env, "AIR_QUALITY_THRESHOLD", _finite, "a number")
            if _raw(env, "AIR_QUALITY_THRESHOLD")
            else None
        ),
        temperature_limits=_parse(env, "TEMPERATURE_LIMITS", _limits, "`lo,hi` with lo < hi"),
        air_quality_limits=_parse(env, "AIR_QUALITY_LIMITS", _limits, "`lo,hi` with lo < hi"),
        temperature_valid=_parse(env, "TEMPERATURE_VALID_RANGE", _valid_range, range_what),
        air_quality_valid=_parse(env, "AIR_QUALITY_VALID_RANGE", _valid_range, range_what),
    )


def _file_families(env: Mapping[str, str], path: str, window: float) -> tuple[Family, ...]:
    """The families of a sensors file; a *family* variable set beside it is refused, since the
    file replaces it and it would silently do nothing."""
    for name in FAMILY_ENV:
        if name in env and _raw(env, name) != ENV_DOCS[name][0]:
            raise ConfigError(
                f"{name}={_raw(env, name)!r} has no effect with "
                f"SENSORS_CONFIG={path}: the file declares the families, so set "
                "it there (or unset it)"
            )
    try:
        return load_families(path, window)
    except FamilyConfigError as exc:
        raise ConfigError(f"SENSORS_CONFIG: {exc}") from None


def recovery_requested(argv: list[str], env: Mapping[str, str]) -> bool:
    """Whether ``bytewax.run`` was given a recovery directory (``-r``, ``--recovery-directory``
    or ``BYTEWAX_RECOVERY_DIRECTORY``).

    The flow is built before Bytewax parses its arguments, so it looks for itself; anything
    that might be ``-r`` counts, erring towards taking snapshots.
    """
    if env.get("BYTEWAX_RECOVERY_DIRECTORY"):
        return True
    return any(a.startswith(("-r", "--recovery")) for a in argv[1:])
