"""Kafka security settings (SASL, TLS) from the environment, for every client the project makes.

No Kafka here: reads a mapping (and loads the TLS files it names, to check them), returns client
settings. The eight variables are declared once below as :class:`dataflow.options.Option` values
(read, and documented in ``--help`` and docs/configuration.md, by the same layer as every other
setting);
what one variable alone cannot say (a SASL mechanism only with a SASL protocol, TLS files only
with TLS, a certificate with its key, files that load) is checked here. One function per client
library, so the dataflow's librdkafka clients (Bytewax's source and sinks, admin) and the
producer's kafka-python client get the same settings from the same variables. Passwords (the
SASL one, the client key's) are never put in an error message nor in the repr; ``redacted``
gives a loggable view.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from dataflow.options import (
    Option,
    OptionError,
    Reader,
    choice,
    env_docs,
    hidden,
    masked,
    optional,
    optional_text,
    or_default,
    redacted_repr,
)

T = TypeVar("T")

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_MECHANISM_REASON = f"must be one of {', '.join(MECHANISMS)}"

KAFKA_SECURITY_PROTOCOL = Option(
    "KAFKA_SECURITY_PROTOCOL",
    "PLAINTEXT",
    or_default(
        choice(*PROTOCOLS, fold=str.upper, reason=f"must be one of {', '.join(PROTOCOLS)}"),
        "PLAINTEXT",
    ),
    "`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.",
)
KAFKA_SASL_MECHANISM = Option(
    "KAFKA_SASL_MECHANISM",
    "",
    optional(choice(*MECHANISMS, fold=str.upper, reason=_MECHANISM_REASON)),
    "`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (SASL protocols).",
)
KAFKA_SASL_USERNAME = Option("KAFKA_SASL_USERNAME", "", optional_text, "SASL user name.")
# Read as given (``Reader.raw``), not through its parser: spaces in a password may be meant.
KAFKA_SASL_PASSWORD = Option(
    "KAFKA_SASL_PASSWORD", "", optional_text, "SASL password; never logged.", redact=hidden
)
KAFKA_SSL_CA_LOCATION = Option(
    "KAFKA_SSL_CA_LOCATION",
    "",
    optional_text,
    "CA certificate file (PEM) to verify the brokers (TLS).",
)
KAFKA_SSL_CERT_LOCATION = Option(
    "KAFKA_SSL_CERT_LOCATION",
    "",
    optional_text,
    "Client certificate file (PEM), for mutual TLS.",
)
KAFKA_SSL_KEY_LOCATION = Option(
    "KAFKA_SSL_KEY_LOCATION",
    "",
    optional_text,
    "Client private key file (PEM), for mutual TLS.",
)
# Read as given, as the SASL password is.
KAFKA_SSL_KEY_PASSWORD = Option(
    "KAFKA_SSL_KEY_PASSWORD",
    "",
    optional_text,
    "Password of an encrypted client key; never logged.",
    redact=hidden,
)
SSL_FILES = (KAFKA_SSL_CA_LOCATION, KAFKA_SSL_CERT_LOCATION, KAFKA_SSL_KEY_LOCATION)
SSL_OPTIONS = (*SSL_FILES, KAFKA_SSL_KEY_PASSWORD)

#: The security variables, in the order ``--help`` and docs/configuration.md list them.
SECURITY_OPTIONS: tuple[Option[Any], ...] = (
    KAFKA_SECURITY_PROTOCOL,
    KAFKA_SASL_MECHANISM,
    KAFKA_SASL_USERNAME,
    KAFKA_SASL_PASSWORD,
    *SSL_OPTIONS,
)
# name -> (default, help), derived; merged into docs/configuration.md's table by the config test.
SECURITY_ENV_DOCS: dict[str, tuple[str, str]] = env_docs(SECURITY_OPTIONS)

# OpenSSL's words, in librdkafka's error text, for certificates that TLS refused. Retrying cannot
# help (the certificates stay what they are), so clients report these at once instead of timing
# out. The first is our side rejecting the broker's certificate; the alerts are the broker
# rejecting ours (OpenSSL 1.1 says "sslv3 alert ...", 3.x "ssl/tls alert ...", TLS 1.3 adds
# "certificate required").
_BROKER_CERT_REFUSED = ("certificate verify failed",)
_CLIENT_CERT_REFUSED = (
    "alert bad certificate",
    "alert certificate required",
    "alert unknown ca",
    "alert certificate unknown",
    "alert certificate expired",
    "alert certificate revoked",
    "alert unsupported certificate",
)


# librdkafka's words when the peer closes the connection in the middle of the TLS handshake, as a
# PLAINTEXT or SASL_PLAINTEXT listener does on a TLS client's first bytes. A TLS broker may do so
# once (stopping, or at its connection limit), so a client gives up only after NOT_TLS_AFTER.
_NOT_TLS = "connecting to a PLAINTEXT broker listener?"
NOT_TLS_AFTER = 3


class SecurityConfigError(ValueError):
    """A bad security variable; the message names it and never holds a password."""


def _check_tls_files(
    ca: str | None, cert: str | None, key: str | None, key_password: str | None = None
) -> None:
    """Load the files as the clients will, so a wrong path or file fails at start-up naming its
    variable, not later as a client's "ssl.ca.location failed: BIO lib" or a bootstrap timeout.

    Python's ssl module is what kafka-python uses, on the same OpenSSL checks librdkafka makes
    when it creates a client (a CA file with a certificate, a key that matches the certificate).
    """
    for name, path, block in (
        ("KAFKA_SSL_CA_LOCATION", ca, b"CERTIFICATE-----"),
        ("KAFKA_SSL_CERT_LOCATION", cert, b"CERTIFICATE-----"),
        ("KAFKA_SSL_KEY_LOCATION", key, b"PRIVATE KEY-----"),
    ):
        if path is None:
            continue
        try:
            with open(path, "rb") as file:
                data = file.read()
        except OSError as exc:
            raise SecurityConfigError(f"{name}={path}: {exc.strerror or exc}") from None
        if block not in data:
            what = "private key" if name == "KAFKA_SSL_KEY_LOCATION" else "certificate"
            raise SecurityConfigError(
                f"{name}={path}: no PEM {what} in it (no '-----BEGIN ...{block.decode()}' line)"
            )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        try:
            context.load_verify_locations(cafile=ca)
        except ssl.SSLError as exc:
            raise SecurityConfigError(
                f"KAFKA_SSL_CA_LOCATION={ca}: not a PEM CA certificate ({_reason(exc)})"
            ) from None
    if cert and key:
        asked = False

        def password() -> str:
            """Asked for an encrypted key only. Without a password, say so now rather than let
            OpenSSL prompt on the terminal or a client fail at connect time."""
            nonlocal asked
            asked = True
            if key_password is None:
                raise SecurityConfigError(
                    f"KAFKA_SSL_KEY_LOCATION={key}: the key is encrypted; "
                    "set KAFKA_SSL_KEY_PASSWORD (or give an unencrypted PEM key)"
                )
            return key_password

        try:
            context.load_cert_chain(cert, key, password=password)
        except ssl.SSLError as exc:
            # Asked, a wrong password fails as "PEM lib"; a key that decrypted but belongs to
            # another certificate fails as a mismatch, like an unencrypted one.
            if asked and "KEY_VALUES_MISMATCH" not in str(exc):
                raise SecurityConfigError(
                    f"KAFKA_SSL_KEY_PASSWORD does not decrypt KAFKA_SSL_KEY_LOCATION={key} "
                    f"({_reason(exc)})"
                ) from None
            raise SecurityConfigError(
                f"KAFKA_SSL_CERT_LOCATION={cert} / KAFKA_SSL_KEY_LOCATION={key}: they do not load "
                f"as a certificate and its key ({_reason(exc)})"
            ) from None


def _refused(read: Reader, option: Option[Any], reason: str) -> SecurityConfigError:
    """``VAR='TEXT': reason``, the text upper-cased as the clients would get it. For the
    protocol and the mechanism only: a password is never shown."""
    return SecurityConfigError(f"{option.env}={read.text(option).upper()!r}: {reason}")


def _value(read: Reader, option: Option[T], context: str = "") -> T:
    """``read(option)``; a refusal as ``SecurityConfigError``, ``context`` after its reason."""
    try:
        return read(option)
    except OptionError as exc:
        raise _refused(read, option, exc.reason + context) from None


def _reason(exc: ssl.SSLError) -> str:
    """OpenSSL's reason, e.g. "[X509: KEY_VALUES_MISMATCH] key values mismatch", without the
    "(_ssl.c:3926)" of CPython's source line."""
    return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(exc.args[-1] if exc.args else exc))


@dataclass(frozen=True)
class KafkaSecurity:
    """Validated security settings."""

    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = None
    ca_location: str | None = None
    cert_location: str | None = None
    key_location: str | None = None
    key_password: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSecurity:
        """The settings the variables of ``env`` give; ``SecurityConfigError`` naming the first
        bad one."""
        read = Reader(env)
        protocol = _value(read, KAFKA_SECURITY_PROTOCOL)
        username = read(KAFKA_SASL_USERNAME)
        password = read.raw(KAFKA_SASL_PASSWORD)[0] or None  # as given, never stripped
        mechanism: str | None = None
        if protocol.startswith("SASL_"):
            with_protocol = f" with {KAFKA_SECURITY_PROTOCOL.env}={protocol}"
            mechanism = _value(read, KAFKA_SASL_MECHANISM, with_protocol)
            if mechanism is None:
                raise _refused(read, KAFKA_SASL_MECHANISM, _MECHANISM_REASON + with_protocol)
            if not username:
                raise SecurityConfigError(f"KAFKA_SASL_USERNAME: required with {protocol}")
            if not password:
                raise SecurityConfigError(f"KAFKA_SASL_PASSWORD: required with {protocol}")
        elif read.text(KAFKA_SASL_MECHANISM) or username or password:
            raise SecurityConfigError(
                f"KAFKA_SASL_MECHANISM/USERNAME/PASSWORD are set but KAFKA_SECURITY_PROTOCOL="
                f"{protocol} uses no SASL (use SASL_PLAINTEXT or SASL_SSL)"
            )
        ca, cert, key = (read(option) for option in SSL_FILES)
        key_password = read.raw(KAFKA_SSL_KEY_PASSWORD)[0] or None  # as given, never stripped
        if not protocol.endswith("SSL"):
            # Silently ignored, they would leave a cluster that needs TLS unreachable with no
            # word of why: the likely mistake is the protocol.
            given = [option.env for option in SSL_FILES if read(option)]
            given += [KAFKA_SSL_KEY_PASSWORD.env] if key_password else []
            if given:
                raise SecurityConfigError(
                    f"{'/'.join(given)} {'is' if len(given) == 1 else 'are'} set but "
                    f"KAFKA_SECURITY_PROTOCOL={protocol} uses no TLS (use SSL or SASL_SSL)"
                )
        elif bool(cert) != bool(key):
            missing, present = (
                ("KAFKA_SSL_KEY_LOCATION", "KAFKA_SSL_CERT_LOCATION")
                if cert
                else ("KAFKA_SSL_CERT_LOCATION", "KAFKA_SSL_KEY_LOCATION")
            )
            raise SecurityConfigError(
                f"{missing}: required with {present} (mutual TLS needs the "
                "client certificate and its key)"
            )
        elif key_password and not key:
            raise SecurityConfigError(
                "KAFKA_SSL_KEY_PASSWORD: set but KAFKA_SSL_KEY_LOCATION is not (it is the "
                "password of the client key)"
            )
        else:
            _check_tls_files(ca, cert, key, key_password)
        return cls(protocol, mechanism, username, password, ca, cert, key, key_password)

    def __repr__(self) -> str:
        """The dataclass repr, the password :data:`dataflow.options.REDACTED`: settings are
        printed in logs, tracebacks and test failures."""
        return redacted_repr(
            self, password=masked(self.password), key_password=masked(self.key_password)
        )

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol.endswith("SSL")

    def librdkafka(self) -> dict[str, str]:
        """Settings for confluent-kafka / librdkafka clients (and so for Bytewax's connector)."""
        out = {"security.protocol": self.protocol.lower()}
        if self.uses_sasl:
            out.update(
                {
                    "sasl.mechanism": str(self.mechanism),
                    "sasl.username": str(self.username),
                    "sasl.password": str(self.password),
                }
            )
        if self.uses_tls:
            for key, val in (
                ("ssl.ca.location", self.ca_location),
                ("ssl.certificate.location", self.cert_location),
                ("ssl.key.location", self.key_location),
                ("ssl.key.password", self.key_password),
            ):
                if val:
                    out[key] = val
        return out

    def kafka_python(self) -> dict[str, str]:
        """Keyword arguments for kafka-python's producer and admin client."""
        out = {"security_protocol": self.protocol}
        if self.uses_sasl:
            out.update(
                {
                    "sasl_mechanism": str(self.mechanism),
                    "sasl_plain_username": str(self.username),
                    "sasl_plain_password": str(self.password),
                }
            )
        if self.uses_tls:
            for key, val in (
                ("ssl_cafile", self.ca_location),
                ("ssl_certfile", self.cert_location),
                ("ssl_keyfile", self.key_location),
                ("ssl_password", self.key_password),
            ):
                if val:
                    out[key] = val
        return out

    def redacted(self) -> str:
        """A loggable description, password masked."""
        parts = [self.protocol]
        if self.uses_sasl:
            parts.append(f"{self.mechanism} as {self.username!r}, password ***")
        if self.uses_tls:
            parts.append(f"CA {self.ca_location or '(system)'}")
            if self.cert_location:
                parts.append(f"client certificate {self.cert_location}")
            if self.key_password:
                parts.append("key password ***")
        return ", ".join(parts)

    def tls_refusal(self, text: str) -> str | None:
        """What to check, if librdkafka's error ``text`` says TLS refused a certificate; else None.

        Such a failure comes back on every retry, so a client stops at once with this instead of
        waiting out a timeout. Anything else (a refused connection, a broker still starting) is
        not a refusal: it may pass.
        """
        if not self.uses_tls:
            return None
        lowered = text.lower()
        if any(words in lowered for words in _BROKER_CERT_REFUSED):
            return (
                "the broker's certificate is not trusted: KAFKA_SSL_CA_LOCATION must be the CA "
                f"that signed it ({self.ca_location or 'unset, so the system CAs'}), and the "
                "certificate must name the host given in KAFKA_BROKERS"
            )
        if any(words in lowered for words in _CLIENT_CERT_REFUSED):
            if not self.cert_location:
                return (
                    "the broker wants a client certificate (mutual TLS): set "
                    "KAFKA_SSL_CERT_LOCATION and KAFKA_SSL_KEY_LOCATION"
                )
            return (
                f"the broker did not accept the client certificate KAFKA_SSL_CERT_LOCATION="
                f"{self.cert_location}: it must be signed by a CA the broker trusts"
            )
        return None

    def not_tls(self, text: str) -> str | None:
        """What to check, if librdkafka's error ``text`` says the broker closed the TLS
        handshake as a listener without TLS does; else None. One such error may pass (see
        :class:`TlsWatch`)."""
        if not self.uses_tls or _NOT_TLS not in text:
            return None
        return (
            "the broker did not speak TLS: it closed the connection during the TLS handshake, as "
            f"a listener without TLS does; KAFKA_BROKERS must name a listener for "
            f"KAFKA_SECURITY_PROTOCOL={self.protocol}, or that protocol is not the listener's"
        )


class TlsWatch:
    """Reads one client's errors (librdkafka's ``error_cb`` texts, one call each) and says when
    TLS cannot work, so the client stops at once instead of waiting out its timeout.

    ``refused``, then, is librdkafka's words and what to check: after the first certificate
    TLS refused (``KafkaSecurity.tls_refusal``), or after ``NOT_TLS_AFTER`` handshakes the
    broker closed (``KafkaSecurity.not_tls``). Anything else leaves it None.
    """

    def __init__(self, security: KafkaSecurity) -> None:
        self.security = security
        self.refused: str | None = None
        self._closed = 0

    def __call__(self, text: str) -> str | None:
        """Note one error; ``refused`` so far."""
        hint = self.security.tls_refusal(text)
        if hint is None and (closed := self.security.not_tls(text)):
            self._closed += 1
            hint = closed if self._closed >= NOT_TLS_AFTER else None
        if hint:
            self.refused = f"{text}; {hint}"
        return self.refused
