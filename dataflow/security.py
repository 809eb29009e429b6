"""Kafka security settings (SASL, TLS) from the environment, for every client the project makes.

Pure: reads a mapping, returns client settings. One function per client library, so the
dataflow's librdkafka clients (Bytewax's source and sinks, admin) and the producer's kafka-python
client get the same settings from the same variables. Passwords are never put in an error
message; ``redacted`` gives a loggable view.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

# name -> (default, help); merged into the README table by the config test.
SECURITY_ENV_DOCS: dict[str, tuple[str, str]] = {
    "KAFKA_SECURITY_PROTOCOL": ("PLAINTEXT", "`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`."),
    "KAFKA_SASL_MECHANISM": ("", "`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (SASL protocols)."),
    "KAFKA_SASL_USERNAME": ("", "SASL user name."),
    "KAFKA_SASL_PASSWORD": ("", "SASL password; never logged."),
    "KAFKA_SSL_CA_LOCATION": ("", "CA certificate file (PEM) to verify the brokers (TLS)."),
    "KAFKA_SSL_CERT_LOCATION": ("", "Client certificate file (PEM), for mutual TLS."),
    "KAFKA_SSL_KEY_LOCATION": ("", "Client private key file (PEM), for mutual TLS."),
}


class SecurityConfigError(ValueError):
    """A bad security variable; the message names it and never holds a password."""


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

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSecurity:
        def get(name: str) -> str | None:
            return env.get(name, "").strip() or None

        protocol = (get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper()
        if protocol not in PROTOCOLS:
            raise SecurityConfigError(
                f"KAFKA_SECURITY_PROTOCOL={protocol!r}: must be one of {', '.join(PROTOCOLS)}")
        mechanism = get("KAFKA_SASL_MECHANISM")
        username, password = get("KAFKA_SASL_USERNAME"), env.get("KAFKA_SASL_PASSWORD") or None
        if protocol.startswith("SASL_"):
            mechanism = (mechanism or "").upper()
            if mechanism not in MECHANISMS:
                raise SecurityConfigError(
                    f"KAFKA_SASL_MECHANISM={mechanism!r}: must be one of {', '.join(MECHANISMS)} "
                    f"with KAFKA_SECURITY_PROTOCOL={protocol}")
            if not username:
                raise SecurityConfigError(f"KAFKA_SASL_USERNAME: required with {protocol}")
            if not password:
                raise SecurityConfigError(f"KAFKA_SASL_PASSWORD: required with {protocol}")
        elif mechanism or username or password:
            raise SecurityConfigError(
                f"KAFKA_SASL_MECHANISM/USERNAME/PASSWORD are set but KAFKA_SECURITY_PROTOCOL="
                f"{protocol} uses no SASL (use SASL_PLAINTEXT or SASL_SSL)")
        return cls(protocol, mechanism, username, password, get("KAFKA_SSL_CA_LOCATION"),
                   get("KAFKA_SSL_CERT_LOCATION"), get("KAFKA_SSL_KEY_LOCATION"))

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
            out.update({"sasl.mechanism": str(self.mechanism),
                        "sasl.username": str(self.username),
                        "sasl.password": str(self.password)})
        if self.uses_tls:
            for key, val in (("ssl.ca.location", self.ca_location),
                             ("ssl.certificate.location", self.cert_location),
                             ("ssl.key.location", self.key_location)):
                if val:
                    out[key] = val
        return out

    def kafka_python(self) -> dict[str, str]:
        """Keyword arguments for kafka-python's producer and admin client."""
        out = {"security_protocol": self.protocol}
        if self.uses_sasl:
            out.update({"sasl_mechanism": str(self.mechanism),
                        "sasl_plain_username": str(self.username),
                        "sasl_plain_password": str(self.password)})
        if self.uses_tls:
            for key, val in (("ssl_cafile", self.ca_location), ("ssl_certfile", self.cert_location),
                             ("ssl_keyfile", self.key_location)):
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
        return ", ".join(parts)
