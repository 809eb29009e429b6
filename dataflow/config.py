"""The one place that reads ``os.environ`` for the dataflow.

Every knob of the dataflow is an environment variable with a default, declared once below as a
:class:`dataflow.options.Option` (variable, default, typed parser, help). ``Settings.from_env``
reads and validates them all at start-up, so a typo or a nonsensical value stops the flow before
it touches Kafka, with a message naming the variable; ``ENV_DOCS`` (``python -m dataflow
--help``, the table in docs/configuration.md, checked by a test) is derived from the same
declarations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dataflow import MODES as COMPILED_MODES
from dataflow.families import (
    AIR_QUALITY,
    MAX_MAGNITUDE,
    TEMPERATURE,
    Family,
    FamilyConfigError,
    builtin,
    load_families,
    topics_of,
    whole_ms,
)
from dataflow.options import (
    Option,
    Reader,
    Registry,
    boolean,
    broker,
    choice,
    comma_list,
    env_docs,
    expecting,
    integer,
    key_values,
    level_name,
    non_empty,
    number,
    optional,
    optional_text,
    pair,
    read_settings,
    redact_key_values,
    redacted_config,
    redacted_repr,
    text,
)
from dataflow.readings import VALID_RANGES
from dataflow.security import SECURITY_OPTIONS, KafkaSecurity, SecurityConfigError


class ConfigError(ValueError):
    """A bad environment value; the message names the variable."""


#: Every option of the dataflow, in the order ``--help`` and docs/configuration.md list them.
OPTIONS = Registry()
_declare = OPTIONS.declare


def _valid_range(raw: str) -> tuple[float, float]:
    lo, hi = pair(raw)
    if max(-lo, hi) > MAX_MAGNITUDE:
        raise ValueError(f"bounds must lie within +-{MAX_MAGNITUDE:g}")
    return lo, hi


def _range_text(family: str) -> str:
    return "{:g},{:g}".format(*VALID_RANGES[family])


_SECONDS = "a number of seconds"
_KV = expecting("k=v,k=v", key_values)
_LIMITS = expecting("`lo,hi` with lo < hi", pair)
_VALID_RANGE = expecting(f"`lo,hi` with lo < hi, within +-{MAX_MAGNITUDE:g}", _valid_range)

# Read by the package as it is imported (``dataflow/__init__.py``), before any settings are:
# declared here so that ``--help`` lists them and a bad value stops the flow as any other does
# (the import runs the source then, rather than failing every program with a traceback).
DATAFLOW_COMPILED = _declare(
    "DATAFLOW_COMPILED",
    "auto",
    lambda raw: choice(*COMPILED_MODES)(raw.strip() or "auto"),  # empty: as the import reads it
    "The shard's modules compiled by mypyc (`make compiled`): `auto` uses a build that matches "
    "the sources and the interpreter, `off` runs the source, `require` fails at import without "
    "a matching build.",
)
DATAFLOW_COMPILED_DIR = _declare(
    "DATAFLOW_COMPILED_DIR",
    "",
    optional_text,
    "Where the build is; unset: `build/compiled` beside the package's directory.",
)
KAFKA_BROKERS = _declare(
    "KAFKA_BROKERS",
    "127.0.0.1:9092",
    comma_list("must be a non-empty list of host:port", broker),
    "Comma-separated bootstrap brokers.",
)
SENSORS_CONFIG = _declare(
    "SENSORS_CONFIG",
    "",
    text,
    "A YAML file declaring the sensor families (docs/sensor-families.md); empty: the two "
    "tutorial families, set by the variables marked *family* below, which a file replaces.",
)
AIR_QUALITY_TOPIC = _declare(
    "AIR_QUALITY_TOPIC",
    "air-quality",
    non_empty("must be a topic name"),
    "*family*: input topic of the air-quality family.",
)
TEMPERATURE_TOPIC = _declare(
    "TEMPERATURE_TOPIC",
    "temperature_readings",
    non_empty("must be a topic name"),
    "*family*: input topic of the machine-temperature family.",
)
ANOMALIES_TOPIC = _declare(
    "ANOMALIES_TOPIC",
    "anomalies",
    non_empty("must be a topic name"),
    "Output topic of scored windows.",
)
DLQ_TOPIC = _declare(
    "DLQ_TOPIC",
    "dead-letters",
    non_empty("must be a topic name"),
    "Topic for messages that cannot be used, with their reason.",
)
TOPIC_PARTITIONS = _declare(
    "TOPIC_PARTITIONS",
    "3",
    integer(1),
    "Partitions of topics the flow creates when they are missing.",
)
KAFKA_TAIL = _declare(
    "KAFKA_TAIL", "true", boolean, "`false`: stop at the end of the input topics (replays, tests)."
)
KAFKA_BATCH_SIZE = _declare(
    "KAFKA_BATCH_SIZE",
    "5000",
    # confluent-kafka's consume() refuses more than 1,000,000 messages a call, and
    # queued.min.messages (4 polls) more than 10,000,000: a larger batch passed here and stopped
    # the flow at its first poll.
    integer(1, 1_000_000),
    "Messages fetched per partition per poll (at most 1,000,000).",
)
KAFKA_CONSUMER_CONFIG = _declare(
    "KAFKA_CONSUMER_CONFIG",
    "",
    _KV,
    "Extra librdkafka consumer settings, `k=v,k=v` (a list value keeps its commas: "
    "`debug=consumer,fetch`); checked by librdkafka at start. Not `group.id`, "
    "`enable.auto.commit`, `enable.partition.eof` or `auto.offset.reset`: the source sets those.",
    redact_key_values,  # may hold sasl.password=...: an error shows the keys, not the secrets
)
KAFKA_PRODUCER_CONFIG = _declare(
    "KAFKA_PRODUCER_CONFIG",
    "",
    _KV,
    "Extra librdkafka producer settings for the sinks, `k=v,k=v`; checked by librdkafka at start.",
    redact_key_values,
)
WINDOW_SECONDS = _declare(
    "WINDOW_SECONDS",
    "5",
    number(0, strict=True, what=_SECONDS),
    "Tumbling event-time window length, per sensor, in whole milliseconds (a family in "
    "`SENSORS_CONFIG` may set its own).",
)
ALLOWED_LATENESS_SECONDS = _declare(
    "ALLOWED_LATENESS_SECONDS",
    "2",
    number(0, what=_SECONDS),
    "How far a sensor's event time may pass a window's end before the window closes.",
)
IDLE_TIMEOUT_SECONDS = _declare(
    "IDLE_TIMEOUT_SECONDS",
    "10",
    number(0, strict=True, what=_SECONDS),
    "Seconds of input time (see *Time and silence*) after a sensor's last reading at which its "
    "open windows close anyway; longer for a sensor whose usual gap between readings is longer.",
)
SHARDS = _declare(
    "SHARDS",
    "32",
    integer(1, 4096),
    "Key groups that sensors are hashed into (Bytewax keys). A recovery store remembers it: "
    "see *Upgrading and changing settings*.",
)
MAX_FUTURE_SECONDS = _declare(
    "MAX_FUTURE_SECONDS",
    "300",
    number(0, what=_SECONDS),
    "A reading dated more than this far ahead of the wall clock goes to the dead-letter topic "
    "as `future`: it learns nothing and moves no clock.",
)
MAX_SENSORS_PER_SHARD = _declare(
    "MAX_SENSORS_PER_SHARD",
    "40000",
    integer(1),
    "Sensors one shard keeps at most (the default holds 1M sensors at 32 shards); a new "
    "sensor's readings beyond it go to the dead-letter topic as `sensor_limit`.",
)
TEMPERATURE_THRESHOLD_C = _declare(
    "TEMPERATURE_THRESHOLD_C",
    "90",
    number(),
    "*family*: temperature window mean at or above which is an alarm (the rule `threshold`, "
    "severity `critical`).",
)
AIR_QUALITY_THRESHOLD = _declare(
    "AIR_QUALITY_THRESHOLD",
    "",
    optional(number()),
    "*family*: air-quality window mean at or above which is an alarm (the rule `threshold`, "
    "severity `warning`; empty: no rule).",
)
TEMPERATURE_LIMITS = _declare(
    "TEMPERATURE_LIMITS",
    "0,120",
    _LIMITS,
    "*family*: HalfSpaceTrees feature range `lo,hi` for temperature.",
)
AIR_QUALITY_LIMITS = _declare(
    "AIR_QUALITY_LIMITS",
    "0,500",
    _LIMITS,
    "*family*: HalfSpaceTrees feature range `lo,hi` for air quality.",
)
TEMPERATURE_VALID_RANGE = _declare(
    "TEMPERATURE_VALID_RANGE",
    _range_text(TEMPERATURE),
    _VALID_RANGE,
    "*family*: plausible temperature readings `lo,hi` (inclusive); any other goes to the "
    "dead-letter topic as `out_of_range`, never into a window.",
)
AIR_QUALITY_VALID_RANGE = _declare(
    "AIR_QUALITY_VALID_RANGE",
    _range_text(AIR_QUALITY),
    _VALID_RANGE,
    "*family*: plausible air-quality readings `lo,hi`, as above.",
)
# Bounded: each sensor's model keeps trees x 2^(height + 1) node counts, so a mistyped height
# (30 for 3) took memory no machine has and a scorer that never finished building.
HST_TREES = _declare(
    "HST_TREES",
    "5",
    integer(1, 50),
    "HalfSpaceTrees: number of trees (1-50; memory per sensor grows with it).",
)
HST_HEIGHT = _declare(
    "HST_HEIGHT",
    "3",
    integer(1, 10),
    "HalfSpaceTrees: tree height (1-10; memory per sensor doubles with each step).",
)
HST_WINDOW_SIZE = _declare(
    "HST_WINDOW_SIZE", "100", integer(1), "HalfSpaceTrees: windows per reference-mass period."
)
ML_NOVELTY_MARGIN = _declare(
    "ML_NOVELTY_MARGIN",
    "1.2",
    number(1),
    "A window is novel when a feature (level distance, step, burst rate, HalfSpaceTrees score) "
    "exceeds this many times its decayed peak in the sensor's past.",
)
ML_NOVELTY_FLOOR = _declare(
    "ML_NOVELTY_FLOOR",
    "6",
    number(0),
    "... and is more than this many spreads (features) from the usual.",
)
ML_NOVELTY_HALF_LIFE = _declare(
    "ML_NOVELTY_HALF_LIFE",
    "3000",
    number(0, strict=True),
    "Windows over which a feature's remembered peak decays by half.",
)
ML_HST_NOVELTY = _declare(
    "ML_HST_NOVELTY",
    "false",
    boolean,
    "`true`: HalfSpaceTrees' score also takes part in the novelty test (off by default: on NAB "
    "it added false alarms faster than it found windows, see bench/RESULTS.md).",
)
ML_PATTERN = _declare(
    "ML_PATTERN",
    "false",
    boolean,
    "`true`: a pattern detector takes part in the novelty test: the distance of the last few "
    "windows' shape to the nearest the sensor showed recently (off by default, see "
    "bench/RESULTS.md).",
)
ML_SEASONALITY = _declare(
    "ML_SEASONALITY", "true", boolean, "`false`: no daily or weekly baseline, the level alone."
)
LEVEL_WINDOWS = _declare(
    "LEVEL_WINDOWS",
    "300",
    integer(1),
    "Memory, in windows, of each sensor's running level (the spread's is twice as long).",
)
ML_DRIFT_SLACK = _declare(
    "ML_DRIFT_SLACK",
    "2",
    number(0),
    "Spreads a window mean may sit from the level before it adds to the sensor's drift sums "
    "(CUSUM).",
)
ML_DRIFT_LIMIT = _declare(
    "ML_DRIFT_LIMIT",
    "16",
    number(0),
    "A drift sum above this is an ML anomaly: a lasting moderate departure (0: off).",
)
ML_DRIFT_CLIP = _declare(
    "ML_DRIFT_CLIP",
    "4",
    number(0, strict=True),
    "Most spreads one window adds to a drift sum, so a spike alone cannot cross the limit.",
)
WARMUP_WINDOWS = _declare(
    "WARMUP_WINDOWS",
    "100",
    integer(0),
    "Windows a sensor's model learns, after its first `HST_WINDOW_SIZE`, before it may raise ML"
    " anomalies.",
)
MODEL_SEED = _declare(
    "MODEL_SEED", "42", integer(), "Seed of every sensor's model, so runs are reproducible."
)
ALERT_UPDATE_WINDOWS = _declare(
    "ALERT_UPDATE_WINDOWS",
    "12",
    integer(1),
    "An open alert sends an `update` for a peak that moved at most once per this many windows "
    "(a new reason or a rise in severity is sent at once).",
)
ALERT_RESOLVE_WINDOWS = _declare(
    "ALERT_RESOLVE_WINDOWS", "3", integer(1), "Consecutive clean windows that resolve an alert."
)
ALERT_COOLDOWN_WINDOWS = _declare(
    "ALERT_COOLDOWN_WINDOWS",
    "48",
    integer(0),
    "After an ML alert resolves, windows in which a new ML alert of the same sensor stays "
    "silent (threshold alarms always open, and so does a return to where the sensor was before "
    "an `adapted` alert).",
)
ALERT_ADAPT_WINDOWS = _declare(
    "ALERT_ADAPT_WINDOWS",
    "360",
    integer(0),
    "Clean windows, in all since the alert opened, after which an ML alert whose sensor never "
    "came back near its level from before the alert resolves with "
    '`"resolution": "adapted"` (its new level is the baseline now); until then it stays open.',
)
ALERT_STALE_SECONDS = _declare(
    "ALERT_STALE_SECONDS",
    "300",
    number(0, what=_SECONDS),
    "Seconds of input time without readings (or three of the sensor's usual gaps, if longer) "
    'after which its open alert is resolved with `"resolution": "stale"` (0: never).',
)
ALERT_REFRESH_SECONDS = _declare(
    "ALERT_REFRESH_SECONDS",
    "3600",
    number(0, what=_SECONDS),
    "An open alert with no event for this long (the sensor's own time) sends its `update` again, "
    "unchanged: a steady fault says nothing else, and the notifier resolves an alert with no "
    "event for `NOTIFIER_EXPIRE_SECONDS` (0: never; keep it well under that).",
)
SENSOR_STATE_TTL_SECONDS = _declare(
    "SENSOR_STATE_TTL_SECONDS",
    "604800",
    number(0, strict=True, what=_SECONDS),
    "Seconds of input time without readings after which a sensor's state (model, level, "
    "alert) is forgotten, its windows closed first; its next reading starts a fresh model with "
    "a warm-up. 7 days by default.",
)
EMIT_ALL_WINDOWS = _declare(
    "EMIT_ALL_WINDOWS",
    "false",
    boolean,
    "`true`: also write every scored window, not only alert events.",
)
STATUS_INTERVAL_SECONDS = _declare(
    "STATUS_INTERVAL_SECONDS",
    "5",
    number(0, what=_SECONDS),
    "Seconds between status log lines (0: none).",
)
LOG_LEVEL = _declare("LOG_LEVEL", "INFO", level_name, "Python logging level.")


# name -> (default, help), derived: docs/configuration.md's table is checked against it by a test.
ENV_DOCS: dict[str, tuple[str, str]] = env_docs(OPTIONS)
#: What the dataflow reads: its own options and the Kafka security ones.
ALL_OPTIONS: tuple[Option[Any], ...] = (*OPTIONS, *SECURITY_OPTIONS)
ALL_ENV_DOCS = env_docs(ALL_OPTIONS)
# What a sensors file declares instead: set to anything but its default beside a file, a
# variable would silently do nothing, so that is refused.
FAMILY_OPTIONS = tuple(o for o in OPTIONS if o.help.startswith("*family*"))
FAMILY_ENV = tuple(o.env for o in FAMILY_OPTIONS)


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
    shards: int
    max_future_seconds: float
    max_sensors_per_shard: int
    hst_trees: int
    hst_height: int
    hst_window_size: int
    ml_novelty_margin: float
    ml_novelty_floor: float
    ml_novelty_half_life: float
    ml_hst_novelty: bool
    ml_pattern: bool
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
    alert_adapt_windows: int
    alert_stale_seconds: float
    alert_refresh_seconds: float
    sensor_state_ttl_seconds: float
    emit_all: bool
    status_interval_seconds: float
    log_level: str
    security: KafkaSecurity
    sensors_config: str = ""  # the file the families came from; empty: built in

    def __repr__(self) -> str:
        """The dataclass repr, secrets redacted (``security``'s own repr hides its password)."""
        return redacted_repr(
            self,
            consumer_config=redacted_config(self.consumer_config),
            producer_config=redacted_config(self.producer_config),
        )

    @property
    def topics(self) -> dict[str, tuple[Family, ...]]:
        """Input topic -> the families read from it."""
        return topics_of(self.families)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise ``ConfigError`` naming the first bad one."""
        return read_settings(cls._read, env, ConfigError, SecurityConfigError)

    @classmethod
    def _read(cls, read: Reader) -> Settings:
        brokers = read(KAFKA_BROKERS)
        anomalies, dlq = read(ANOMALIES_TOPIC), read(DLQ_TOPIC)
        read.check(ANOMALIES_TOPIC, anomalies != dlq, "different from DLQ_TOPIC")
        batch_size, partitions = read(KAFKA_BATCH_SIZE), read(TOPIC_PARTITIONS)
        window = read(WINDOW_SECONDS)
        read.check(WINDOW_SECONDS, whole_ms(window), "a whole number of milliseconds")
        lateness, idle = read(ALLOWED_LATENESS_SECONDS), read(IDLE_TIMEOUT_SECONDS)
        shards = read(SHARDS)
        read(DATAFLOW_COMPILED), read(DATAFLOW_COMPILED_DIR)  # used at import; checked here

        sensors_config = read(SENSORS_CONFIG)
        families = (
            _file_families(read, sensors_config, window)
            if sensors_config
            else _tutorial_families(read, window)
        )
        inputs = topics_of(families)
        for option, name in ((ANOMALIES_TOPIC, anomalies), (DLQ_TOPIC, dlq)):
            what = f"different from the input topics ({', '.join(inputs)})"
            read.check(option, name not in inputs, what)
        ints = {
            o.env: read(o)
            for o in (
                HST_TREES,
                HST_HEIGHT,
                HST_WINDOW_SIZE,
                WARMUP_WINDOWS,
                LEVEL_WINDOWS,
                ALERT_UPDATE_WINDOWS,
                ALERT_RESOLVE_WINDOWS,
                ALERT_COOLDOWN_WINDOWS,
                ALERT_ADAPT_WINDOWS,
            )
        }
        nums = {
            o.env: read(o)
            for o in (
                ML_DRIFT_SLACK,
                ML_DRIFT_LIMIT,
                ML_DRIFT_CLIP,
                ML_NOVELTY_MARGIN,
                ML_NOVELTY_FLOOR,
                ML_NOVELTY_HALF_LIFE,
            )
        }
        stale, ttl = read(ALERT_STALE_SECONDS), read(SENSOR_STATE_TTL_SECONDS)
        status, log_level = read(STATUS_INTERVAL_SECONDS), read(LOG_LEVEL)

        security = KafkaSecurity.from_env(read.env)

        return cls(
            brokers=brokers,
            families=families,
            anomalies_topic=anomalies,
            dlq_topic=dlq,
            tail=read(KAFKA_TAIL),
            batch_size=batch_size,
            topic_partitions=partitions,
            consumer_config=read(KAFKA_CONSUMER_CONFIG),
            producer_config=read(KAFKA_PRODUCER_CONFIG),
            window_seconds=window,
            lateness_seconds=lateness,
            idle_timeout_seconds=idle,
            shards=shards,
            max_future_seconds=read(MAX_FUTURE_SECONDS),
            max_sensors_per_shard=read(MAX_SENSORS_PER_SHARD),
            hst_trees=ints["HST_TREES"],
            hst_height=ints["HST_HEIGHT"],
            hst_window_size=ints["HST_WINDOW_SIZE"],
            ml_novelty_margin=nums["ML_NOVELTY_MARGIN"],
            ml_novelty_floor=nums["ML_NOVELTY_FLOOR"],
            ml_novelty_half_life=nums["ML_NOVELTY_HALF_LIFE"],
            ml_hst_novelty=read(ML_HST_NOVELTY),
            ml_pattern=read(ML_PATTERN),
            ml_seasonality=read(ML_SEASONALITY),
            ml_drift_slack=nums["ML_DRIFT_SLACK"],
            ml_drift_limit=nums["ML_DRIFT_LIMIT"],
            ml_drift_clip=nums["ML_DRIFT_CLIP"],
            level_windows=ints["LEVEL_WINDOWS"],
            warmup_windows=ints["WARMUP_WINDOWS"],
            model_seed=read(MODEL_SEED),
            alert_update_windows=ints["ALERT_UPDATE_WINDOWS"],
            alert_resolve_windows=ints["ALERT_RESOLVE_WINDOWS"],
            alert_cooldown_windows=ints["ALERT_COOLDOWN_WINDOWS"],
            alert_adapt_windows=ints["ALERT_ADAPT_WINDOWS"],
            alert_stale_seconds=stale,
            alert_refresh_seconds=read(ALERT_REFRESH_SECONDS),
            sensor_state_ttl_seconds=ttl,
            emit_all=read(EMIT_ALL_WINDOWS),
            status_interval_seconds=status,
            log_level=log_level,
            security=security,
            sensors_config=sensors_config,
        )


def families_from_env(env: Mapping[str, str], window: float = 5.0) -> tuple[Family, ...]:
    """The tutorials' two families, as the *family* variables set them (``ConfigError`` naming
    a bad one): the dataflow's, and the producer's when it has no sensors file."""
    return read_settings(lambda read: _tutorial_families(read, window), env, ConfigError)


def _tutorial_families(read: Reader, window: float) -> tuple[Family, ...]:
    air_topic, temp_topic = read(AIR_QUALITY_TOPIC), read(TEMPERATURE_TOPIC)
    read.check(TEMPERATURE_TOPIC, temp_topic != air_topic, "different from AIR_QUALITY_TOPIC")
    return builtin(
        air_quality_topic=air_topic,
        temperature_topic=temp_topic,
        window_seconds=window,
        temperature_threshold=read(TEMPERATURE_THRESHOLD_C),
        air_quality_threshold=read(AIR_QUALITY_THRESHOLD),
        temperature_limits=read(TEMPERATURE_LIMITS),
        air_quality_limits=read(AIR_QUALITY_LIMITS),
        temperature_valid=read(TEMPERATURE_VALID_RANGE),
        air_quality_valid=read(AIR_QUALITY_VALID_RANGE),
    )


def _file_families(read: Reader, path: str, window: float) -> tuple[Family, ...]:
    """The families of a sensors file; a *family* variable set beside it is refused, since the
    file replaces it and it would silently do nothing."""
    for option in FAMILY_OPTIONS:
        if option.env in read.env and read.text(option) != option.default:
            raise ConfigError(
                f"{option.env}={read.text(option)!r} has no effect with "
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
