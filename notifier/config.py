"""The notifier's settings, from the environment, validated at start-up.

No Kafka and no HTTP here: reads a mapping and loads the TLS files it names (so a wrong path
fails now, naming its variable, not at the first delivery). Kafka's brokers and SASL/TLS come
from the same variables, parsed by the same code, as the dataflow's clients
(``dataflow.security.KafkaSecurity``).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from dataflow.config import ENV_DOCS as DATAFLOW_ENV_DOCS
from dataflow.config import ConfigError, _bool, _finite
from dataflow.security import KafkaSecurity, SecurityConfigError

T = TypeVar("T")

# name -> (default, help): `python -m notifier --help` prints them, tests check the compose file
# and the README notes against them.
ENV_DOCS: dict[str, tuple[str, str]] = {
    "KAFKA_BROKERS": (DATAFLOW_ENV_DOCS["KAFKA_BROKERS"][0], "Comma-separated bootstrap brokers."),
    "ANOMALIES_TOPIC": (
        DATAFLOW_ENV_DOCS["ANOMALIES_TOPIC"][0],
        "Topic of the dataflow's alert events, read by the notifier.",
    ),
    "NOTIFIER_GROUP": (
        "notifier",
        "Consumer group of the notifier; its committed offsets are "
        "the events Alertmanager has accepted.",
    ),
    "NOTIFIER_STATE_TOPIC": (
        "notifier-state",
        "Compacted topic of the open alerts (key "
        "alert_id, tombstone on resolve); created when "
        "missing. Rebuilds the open set after a restart.",
    ),
    "NOTIFIER_OFFSET_RESET": (
        "earliest",
        "Where a group with no committed offset starts: "
        "`earliest` (every alert event kept in the topic) or "
        "`latest`.",
    ),
    "NOTIFIER_RESEND_SECONDS": (
        "60",
        "Seconds between two re-sends of every open alert; must be "
        "at most a third of ALERTMANAGER_RESOLVE_TIMEOUT_SECONDS.",
    ),
    "NOTIFIER_BATCH_SIZE": ("100", "Alert events read per poll, and posted in one request."),
    "NOTIFIER_BACKOFF_INITIAL_SECONDS": ("0.5", "First wait before retrying a failed delivery."),
    "NOTIFIER_BACKOFF_MAX_SECONDS": (
        "30",
        "Longest wait between retries (doubling from the first).",
    ),
    "ALERTMANAGER_URL": (
        "http://127.0.0.1:9093",
        "Alertmanager's base URL (with its route "
        "prefix, if any); alerts go to "
        "`<url>/api/v2/alerts`.",
    ),
    "ALERTMANAGER_RESOLVE_TIMEOUT_SECONDS": (
        "300",
        "Alertmanager's `global.resolve_timeout` "
        "(its default is 5m): an open alert not "
        "re-sent within it expires there.",
    ),
    "ALERTMANAGER_TIMEOUT_SECONDS": ("10", "Timeout of one HTTP request to Alertmanager."),
    "ALERTMANAGER_CA_FILE": (
        "",
        "CA certificate (PEM) to verify an https Alertmanager (unset: the system CAs).",
    ),
    "ALERTMANAGER_CERT_FILE": (
        "",
        "Client certificate (PEM) for mutual TLS; needs ALERTMANAGER_KEY_FILE.",
    ),
    "ALERTMANAGER_KEY_FILE": ("", "Its private key (PEM, unencrypted)."),
    "ALERTMANAGER_TLS_INSECURE": (
        "false",
        "`true`: do not verify Alertmanager's certificate (tests only).",
    ),
    "ALERTMANAGER_USERNAME": ("", "Basic-auth user name."),
    "ALERTMANAGER_PASSWORD": ("", "Basic-auth password; never logged."),
    "LOG_LEVEL": ("INFO", "Python logging level."),
}

TLS_FILE_VARS = ("ALERTMANAGER_CA_FILE", "ALERTMANAGER_CERT_FILE", "ALERTMANAGER_KEY_FILE")


def _raw(env: Mapping[str, str], name: str) -> str:
    return env.get(name, ENV_DOCS[name][0]).strip()


def _parse(env: Mapping[str, str], name: str, conv: Callable[[str], T], what: str) -> T:
    raw = _raw(env, name)
    try:
        return conv(raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name}={raw!r}: expected {what} ({exc})") from None


def _seconds(env: Mapping[str, str], name: str, minimum: float = 0.0) -> float:
    value = _parse(env, name, _finite, "a number of seconds")
    if not value > minimum:
        raise ConfigError(f"{name}={_raw(env, name)!r}: must be > {minimum:g}")
    return value


def tls_context(env: Mapping[str, str]) -> ssl.SSLContext:
    """The TLS context for an https Alertmanager, its files loaded now so a bad one fails at
    start-up naming its variable."""
    ca, cert, key = (_raw(env, name) or None for name in TLS_FILE_VARS)
    insecure = _parse(env, "ALERTMANAGER_TLS_INSECURE", _bool, "true or false")
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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise ``ConfigError`` naming the first bad one."""
        env = os.environ if env is None else env
        brokers = tuple(b.strip() for b in _raw(env, "KAFKA_BROKERS").split(",") if b.strip())
        if not brokers:
            raise ConfigError("KAFKA_BROKERS='': must be a non-empty list of host:port")
        names = {}
        for name in ("ANOMALIES_TOPIC", "NOTIFIER_GROUP", "NOTIFIER_STATE_TOPIC"):
            names[name] = _raw(env, name)
            if not names[name]:
                raise ConfigError(f"{name}='': must not be empty")
        if names["NOTIFIER_STATE_TOPIC"] == names["ANOMALIES_TOPIC"]:
            raise ConfigError(
                f"NOTIFIER_STATE_TOPIC={names['NOTIFIER_STATE_TOPIC']!r}: must "
                "differ from ANOMALIES_TOPIC"
            )
        offset_reset = _raw(env, "NOTIFIER_OFFSET_RESET").lower()
        if offset_reset not in ("earliest", "latest"):
            raise ConfigError(f"NOTIFIER_OFFSET_RESET={offset_reset!r}: must be earliest or latest")
        resend = _seconds(env, "NOTIFIER_RESEND_SECONDS")
        resolve_timeout = _seconds(env, "ALERTMANAGER_RESOLVE_TIMEOUT_SECONDS")
        # Two re-sends may fail (Alertmanager restarting, a slow request) before an open alert
        # would expire in Alertmanager and page a false "resolved".
        if resend * 3 > resolve_timeout:
            raise ConfigError(
                f"NOTIFIER_RESEND_SECONDS={_raw(env, 'NOTIFIER_RESEND_SECONDS')!r}: must be at "
                f"most a third of ALERTMANAGER_RESOLVE_TIMEOUT_SECONDS={resolve_timeout:g}, so "
                "open alerts never expire in Alertmanager while they are open"
            )
        batch = _parse(env, "NOTIFIER_BATCH_SIZE", int, "an integer")
        if not 1 <= batch <= 10_000:
            raise ConfigError(f"NOTIFIER_BATCH_SIZE={batch}: must be between 1 and 10000")
        initial = _seconds(env, "NOTIFIER_BACKOFF_INITIAL_SECONDS")
        maximum = _seconds(env, "NOTIFIER_BACKOFF_MAX_SECONDS")
        if maximum < initial:
            raise ConfigError(
                f"NOTIFIER_BACKOFF_MAX_SECONDS={maximum:g}: must be >= "
                f"NOTIFIER_BACKOFF_INITIAL_SECONDS={initial:g}"
            )
        url = _raw(env, "ALERTMANAGER_URL").rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"ALERTMANAGER_URL={url!r}: must be an http:// or https:// URL with a host"
            )
        if parts.username or parts.password:
            raise ConfigError(
                "ALERTMANAGER_URL: put no credentials in the URL; use "
                "ALERTMANAGER_USERNAME and ALERTMANAGER_PASSWORD"
            )
        if parts.scheme == "https":
            tls = tls_context(env)
        else:
            given = [
                n
                for n in (*TLS_FILE_VARS, "ALERTMANAGER_TLS_INSECURE")
                if n in env and env[n].strip() and env[n].strip().lower() != "false"
            ]
            if given:
                raise ConfigError(
                    f"{'/'.join(given)} set but ALERTMANAGER_URL={url!r} is not https"
                )
            tls = None
        username = _raw(env, "ALERTMANAGER_USERNAME") or None
        password = env.get("ALERTMANAGER_PASSWORD") or None
        if bool(username) != bool(password):
            raise ConfigError(
                "ALERTMANAGER_USERNAME and ALERTMANAGER_PASSWORD: set both for "
                "basic auth, or neither"
            )
        log_level = _raw(env, "LOG_LEVEL").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError(f"LOG_LEVEL={log_level!r}: must be a logging level name")
        try:
            security = KafkaSecurity.from_env(env)
        except SecurityConfigError as exc:
            raise ConfigError(str(exc)) from None
        return cls(
            brokers=brokers,
            anomalies_topic=names["ANOMALIES_TOPIC"],
            group=names["NOTIFIER_GROUP"],
            state_topic=names["NOTIFIER_STATE_TOPIC"],
            offset_reset=offset_reset,
            resend_seconds=resend,
            batch_size=batch,
            backoff_initial_seconds=initial,
            backoff_max_seconds=maximum,
            alertmanager_url=url,
            resolve_timeout_seconds=resolve_timeout,
            request_timeout_seconds=_seconds(env, "ALERTMANAGER_TIMEOUT_SECONDS"),
            tls=tls,
            username=username,
            password=password,
            log_level=log_level,
            security=security,
        )

    def redacted_alertmanager(self) -> str:
        """Where alerts go, loggable: the password masked."""
        extra = [f"basic auth as {self.username!r}, password ***"] if self.username else []
        if self.tls is not None and self.tls.verify_mode == ssl.CERT_NONE:
            extra.append("certificate NOT verified")
        return self.alertmanager_url + (f" ({', '.join(extra)})" if extra else "")
