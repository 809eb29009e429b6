"""A SASL login for the producer's tests, whose password must never show in any output."""

from __future__ import annotations

PASSWORD = "s3cret-Pa55word"  # a test value that must never be printed
SCRAM_ENV = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
    "KAFKA_SASL_USERNAME": "alice",
    "KAFKA_SASL_PASSWORD": PASSWORD,
}
