"""The notifier's settings, from the environment, validated at start-up.

No Kafka and no HTTP here: reads a mapping and loads the TLS files it names (so a wrong path
fails now, naming its variable, not at the first delivery). Each variable is declared once as a
:class:`dataflow.options.Option`, read and documented by the same shared layer as the dataflow's
and the producer's; Kafka's brokers and SASL/TLS come from the same variables, parsed by the same
code, as the dataflow's clients (``dataflow.security.KafkaSecurity``).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from dataflow.config import ANOMALIES_TOPIC as DATAFLOW_ANOMALIES
from dataflow.config import KAFKA_BROKERS as DATAFLOW_BROKERS
from dataflow.config import ConfigError
from dataflow.options import (
    Reader,
    Registry,
    boolean,
    choice,
    env_docs,
    hidden,
    integer,
    level_name,
    masked,
    non_empty,
    number,
    read_settings,
    redacted_repr,
    text,
)
from dataflow.security import KafkaSecurity, SecurityConfigError

#: Every variable of the notifier, in the order ``python -m notifier --help`` lists them.
OPTIONS = Registry()
_declare = OPTIONS.declare


_NAME = non_empty()
_SECONDS = number(0, strict=True, what="a number of seconds")

KAFKA_BROKERS = _declare(
    "KAFKA_BROKERS",
    DATAFLOW_BROKERS.default,
    DATAFLOW_BROKERS.parse,
    "Comma-separated bootstrap brokers.",
)
ANOMALIES_TOPIC = _declare(
    "ANOMALIES_TOPIC",
    DATAFLOW_ANOMALIES.default,
    _NAME,
    "Topic of the dataflow's alert events, read by the notifier.",
)
NOTIFIER_GROUP = _declare(
    "NOTIFIER_GROUP",
    "notifier",
    _NAME,
    "Consumer group of the notifier; its committed offsets are the events Alertmanager has "
    "accepted.",
)
NOTIFIER_STATE_TOPIC = _declare(
    "NOTIFIER_STATE_TOPIC",
    "notifier-state",
    _NAME,
    "Compacted topic of the open alerts (key alert_id, tombstone on resolve); created when "
    "missing. Rebuilds the open set after a restart.",
)
NOTIFIER_OFFSET_RESET = _declare(
    "NOTIFIER_OFFSET_RESET",
    "earliest",
    choice("earliest", "latest"),
    "Where a group with no committed offset starts: `earliest` (every alert event kept in the "
    "topic) or `latest`.",
)
NOTIFIER_RESEND_SECONDS = _declare(
    "NOTIFIER_RESEND_SECONDS",
    "60",
    _SECONDS,
    "Seconds between two re-sends of every open alert; must be at most a third of "
    "ALERTMANAGER_RESOLVE_TIMEOUT_SECONDS.",
)
NOTIFIER_BATCH_SIZE = _declare(
    "NOTIFIER_BATCH_SIZE",
    "100",
    integer(1, 10_000),
    "Alert events read per poll, and posted in one request.",
)
NOTIFIER_BACKOFF_INITIAL_SECONDS = _declare(
    "NOTIFIER_BACKOFF_INITIAL_SECONDS",
    "0.5",
    _SECONDS,
    "First wait before retrying a failed delivery.",
)
NOTIFIER_BACKOFF_MAX_SECONDS = _declare(
    "NOTIFIER_BACKOFF_MAX_SECONDS",
    "30",
    _SECONDS,
    "Longest wait between retries (doubling from the first).",
)
ALERTMANAGER_URL = _declare(
    "ALERTMANAGER_URL",
    "http://127.0.0.1:9093",
    text,
    "Alertmanager's base URL (with its route prefix, if any); alerts go to `<url>/api/v2/alerts`.",
)
ALERTMANAGER_RESOLVE_TIMEOUT_SECONDS = _declare(
    "ALERTMANAGER_RESOLVE_TIMEOUT_SECONDS",
    "300",
    _SECONDS,
    "Alertmanager's `global.resolve_timeout` (its default is 5m): an open alert not re-sent "
    "within it expires there.",
)
ALERTMANAGER_TIMEOUT_SECONDS = _declare(
    "ALERTMANAGER_TIMEOUT_SECONDS", "10", _SECONDS, "Timeout of one HTTP request to Alertmanager."
)
ALERTMANAGER_CA_FILE = _declare(
    "ALERTMANAGER_CA_FILE",
    "",
    text,
    "CA certificate (PEM) to verify an https Alertmanager (unset: the system CAs).",
)
ALERTMANAGER_CERT_FILE = _declare(
    "ALERTMANAGER_CERT_FILE",
    "",
    text,
    "Client certificate (PEM) for mutual TLS; needs ALERTMANAGER_KEY_FILE.",
)
ALERTMANAGER_KEY_FILE = _declare(
    "ALERTMANAGER_KEY_FILE", "", text, "Its private key (PEM, unencrypted)."
)
ALERTMANAGER_TLS_INSECURE = _declare(
    "ALERTMANAGER_TLS_INSECURE",
    "false",
    boolean,
    "`true`: do not verify Alertmanager's certificate (tests only).",
)
ALERTMANAGER_USERNAME = _declare("ALERTMANAGER_USERNAME", "", text, "Basic-auth user name.")
ALERTMANAGER_PASSWORD = _declare(
    "ALERTMANAGER_PASSWORD", "", text, "Basic-auth password; never logged.", hidden
)
ALERTMANAGER_ALLOW_INSECURE_AUTH = _declare(
    "ALERTMANAGER_ALLOW_INSECURE_AUTH",
    "false",
    boolean,
    "`true`: send the basic-auth password to a plain `http://` ALERTMANAGER_URL anyway (refused "
    "by default: anyone on the path could read it).",
)
LOG_LEVEL = _declare("LOG_LEVEL", "INFO", level_name, "Python logging level.")
NOTIFIER_RESOLVED_MEMORY = _declare(
    "NOTIFIER_RESOLVED_MEMORY",
    "10000",
    integer(0, 10_000_000),
    "How many resolved alert ids are remembered (in the state topic too), so a replayed `open` "
    "of one does not fire it again; the oldest is forgotten first.",
)
NOTIFIER_EXPIRE_SECONDS = _declare(
    "NOTIFIER_EXPIRE_SECONDS",
    "86400",
    number(0, what="a number of seconds"),
    "An open alert with no event for this long is resolved by the notifier, logged and counted "
    "as expired: its `resolved` was lost (e.g. the notifier was down longer than the anomalies "
    "topic's retention). 0: never.",
)
NOTIFIER_MIN_FIRING_SECONDS = _declare(
    "NOTIFIER_MIN_FIRING_SECONDS",
    "90",
    number(0, what="a number of seconds"),
    "A resolved alert is posted ending at least this long after it was first posted firing: "
    "Alertmanager notifies nothing of an alert it first sees resolved, or resolved within its "
    "`group_wait`, so an episode that opened and resolved while the notifier was behind (a "
    "backlog) would page no one; nor, in a group that exists, of one resolved before the next "
    "`group_interval`. Keep it above both. 0: off.",
)
NOTIFIER_METRICS_PORT = _declare(
    "NOTIFIER_METRICS_PORT",
    "9495",
    integer(0, 65535),
    "Port of the notifier's Prometheus `/metrics`, on every interface; 0: none.",
)
NOTIFIER_STATE_LOAD_TIMEOUT_SECONDS = _declare(
    "NOTIFIER_STATE_LOAD_TIMEOUT_SECONDS",
    "60",
    _SECONDS,
    "How long start-up may take to read the state topic to its end before it gives up (exit 1).",
)

# name -> (default, help), derived: `python -m notifier --help` prints them, tests check the
# compose file and docs/operations.md against them.
ENV_DOCS: dict[str, tuple[str, str]] = env_docs(OPTIONS)

TLS_FILES = (ALERTMANAGER_CA_FILE, ALERTMANAGER_CERT_FILE, ALERTMANAGER_KEY_FILE)
TLS_FILE_VARS = tuple(option.env for option in TLS_FILES)

# What precedes the host of a URL: an optional scheme and "//", then any "user:password@".
_USERINFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*:)?//)?[^/?#]*@")


def _shown_url(url: str) -> str:
    """``url`` as a message may show it: any ``user:password@`` (refused, but a message may
    still quote the URL it was in) as ``***@``."""
    return _USERINFO.sub(r"\1***@", url)


def tls_context(env: Mapping[str, str]) -> ssl.SSLContext:
    """The TLS context for an https Alertmanager, its files loaded now so a bad one fails at
    start-up naming its variable."""
    return read_settings(_tls_context, env, ConfigError)


def _tls_context(read: Reader) -> ssl.SSLContext:
    ca, cert, key = (read(option) or None for option in TLS_FILES)
    insecure = read(ALERTMANAGER_TLS_INSECURE)
    if insecure and ca:
        raise ConfigError(
            "ALERTMANAGER_TLS_INSECURE=true and ALERTMANAGER_CA_FILE are both set: "
            "verify with the CA, or not at all"
        )
    if bool(cert) != bool(key):
        missing = "ALERTMANAGER_KEY_FILE" if cert else "ALERTMANAGER_CERT_FILE"
        given = "ALERTMANAGER_CERT_FILE" if cert else "ALERTMANAGER_KEY_FILE"
        raise ConfigError(f"{missing}: required with {given} (mutual TLS needs both)")
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if ca:
        try:
            context.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"ALERTMANAGER_CA_FILE={ca}: not a readable PEM CA certificate ({exc})"
            ) from None
    if cert and key:

        def no_password() -> bytes:
            """Asked for an encrypted key only: there is no key password setting."""
            raise ConfigError(
                f"ALERTMANAGER_KEY_FILE={key}: the key is encrypted; give an unencrypted PEM key"
            )

        try:
            context.load_cert_chain(cert, key, password=no_password)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"ALERTMANAGER_CERT_FILE={cert} / ALERTMANAGER_KEY_FILE={key}: "
                f"they do not load as a certificate and its key ({exc})"
            ) from None
    return context


@dataclass(frozen=True)
class Settings:
    """Validated configuration of the notifier."""

    brokers: tuple[str, ...]
    anomalies_topic: str
    group: str
    state_topic: str
    offset_reset: str
    resend_seconds: float
    batch_size: int
    backoff_initial_seconds: float
    backoff_max_seconds: float
    alertmanager_url: str
    resolve_timeout_seconds: float
    request_timeout_seconds: float
    tls: ssl.SSLContext | None  # None: plain http
    username: str | None
    password: str | None
    log_level: str
    security: KafkaSecurity
    resolved_memory: int
    expire_seconds: float
    min_firing_seconds: float
    metrics_port: int
    state_load_timeout_seconds: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise ``ConfigError`` naming the first bad one."""
        return read_settings(cls._read, env, ConfigError, SecurityConfigError)

    @classmethod
    def _read(cls, read: Reader) -> Settings:
        brokers = read(KAFKA_BROKERS)
        anomalies, group = read(ANOMALIES_TOPIC), read(NOTIFIER_GROUP)
        state_topic = read(NOTIFIER_STATE_TOPIC)
        if state_topic == anomalies:
            raise read.fail(NOTIFIER_STATE_TOPIC, "must differ from ANOMALIES_TOPIC")
        offset_reset = read(NOTIFIER_OFFSET_RESET)
        resend = read(NOTIFIER_RESEND_SECONDS)
        resolve_timeout = read(ALERTMANAGER_RESOLVE_TIMEOUT_SECONDS)
        # Two re-sends may fail (Alertmanager restarting, a slow request) before an open alert
        # would expire in Alertmanager and page a false "resolved".
        if resend * 3 > resolve_timeout:
            raise read.fail(
                NOTIFIER_RESEND_SECONDS,
                "must be at most a third of ALERTMANAGER_RESOLVE_TIMEOUT_SECONDS="
                f"{resolve_timeout:g}, so open alerts never expire in Alertmanager while they "
                "are open",
            )
        batch = read(NOTIFIER_BATCH_SIZE)
        initial = read(NOTIFIER_BACKOFF_INITIAL_SECONDS)
        maximum = read(NOTIFIER_BACKOFF_MAX_SECONDS)
        if maximum < initial:
            raise ConfigError(
                f"NOTIFIER_BACKOFF_MAX_SECONDS={maximum:g}: must be >= "
                f"NOTIFIER_BACKOFF_INITIAL_SECONDS={initial:g}"
            )
        url = read(ALERTMANAGER_URL).rstrip("/")
        shown = _shown_url(url)
        if shown != url:
            raise ConfigError(
                f"ALERTMANAGER_URL={shown!r}: put no credentials in the URL; use "
                "ALERTMANAGER_USERNAME and ALERTMANAGER_PASSWORD"
            )
        try:
            parts = urlsplit(url)
        except ValueError as exc:  # e.g. "Invalid IPv6 URL"
            raise ConfigError(f"ALERTMANAGER_URL={url!r}: not a URL ({exc})") from None
        try:
            parts.port  # noqa: B018 (checked on reading: "abc", 99999)
        except ValueError as exc:
            raise ConfigError(f"ALERTMANAGER_URL={url!r}: not a URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"ALERTMANAGER_URL={url!r}: must be an http:// or https:// URL with a host"
            )
        if parts.scheme == "https":
            tls = _tls_context(read)
        else:
            given = [
                o.env
                for o in (*TLS_FILES, ALERTMANAGER_TLS_INSECURE)
                if o.env in read.env and read.text(o) and read.text(o).lower() != "false"
            ]
            if given:
                raise ConfigError(
                    f"{'/'.join(given)} set but ALERTMANAGER_URL={url!r} is not https"
                )
            tls = None
        username = read(ALERTMANAGER_USERNAME) or None
        password = read.raw(ALERTMANAGER_PASSWORD)[0] or None  # as given: spaces may be meant
        if bool(username) != bool(password):
            raise ConfigError(
                "ALERTMANAGER_USERNAME and ALERTMANAGER_PASSWORD: set both for "
                "basic auth, or neither"
            )
        allow_insecure_auth = read(ALERTMANAGER_ALLOW_INSECURE_AUTH)
        if username and tls is None and not allow_insecure_auth:
            raise ConfigError(
                f"ALERTMANAGER_USERNAME/ALERTMANAGER_PASSWORD set but ALERTMANAGER_URL={url!r} "
                "is plain http, which would send the password unencrypted: use https, or set "
                "ALERTMANAGER_ALLOW_INSECURE_AUTH=true to send it anyway"
            )
        log_level = read(LOG_LEVEL)
        security = KafkaSecurity.from_env(read.env)
        return cls(
            brokers=brokers,
            anomalies_topic=anomalies,
            group=group,
            state_topic=state_topic,
            offset_reset=offset_reset,
            resend_seconds=resend,
            batch_size=batch,
            backoff_initial_seconds=initial,
            backoff_max_seconds=maximum,
            alertmanager_url=url,
            resolve_timeout_seconds=resolve_timeout,
            request_timeout_seconds=read(ALERTMANAGER_TIMEOUT_SECONDS),
            tls=tls,
            username=username,
            password=password,
            log_level=log_level,
            security=security,
            resolved_memory=read(NOTIFIER_RESOLVED_MEMORY),
            expire_seconds=read(NOTIFIER_EXPIRE_SECONDS),
            min_firing_seconds=read(NOTIFIER_MIN_FIRING_SECONDS),
            metrics_port=read(NOTIFIER_METRICS_PORT),
            state_load_timeout_seconds=read(NOTIFIER_STATE_LOAD_TIMEOUT_SECONDS),
        )

    def __repr__(self) -> str:
        """The dataclass repr, the password :data:`dataflow.options.REDACTED` (``security``'s
        own repr hides the Kafka one)."""
        return redacted_repr(self, password=masked(self.password))

    def redacted_alertmanager(self) -> str:
        """Where alerts go, loggable: the password masked."""
        extra = [f"basic auth as {self.username!r}, password ***"] if self.username else []
        if self.username and self.tls is None:
            extra.append("over plain http, NOT encrypted")
        if self.tls is not None and self.tls.verify_mode == ssl.CERT_NONE:
            extra.append("certificate NOT verified")
        return self.alertmanager_url + (f" ({', '.join(extra)})" if extra else "")
