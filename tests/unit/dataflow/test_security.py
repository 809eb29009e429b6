"""TLS settings: what reaches each client library, what fails at start-up (naming the variable),
and which client errors mean TLS refused a certificate (so clients stop at once)."""

from __future__ import annotations

import pytest

from dataflow.options import Reader
from dataflow.security import (
    NOT_TLS_AFTER,
    SECURITY_ENV_DOCS,
    SECURITY_OPTIONS,
    KafkaSecurity,
    SecurityConfigError,
    TlsWatch,
)
from tests.certs import KEY_PASSPHRASE, TlsFiles, mtls_env

# librdkafka 2.16's words (OpenSSL 3), as the TLS integration test met them.
WRONG_CA = (
    "ssl://127.0.0.1:40001/bootstrap: SSL handshake failed: error:0A000086:SSL routines::"
    "certificate verify failed: broker certificate could not be verified, verify that "
    "ssl.ca.location is correctly configured or root CA certificates are installed "
    "(install ca-certificates package) (after 17ms in state SSL_HANDSHAKE)"
)
WRONG_CA_TRANSPORT = (
    "ssl://127.0.0.1:40001/bootstrap: error:0A000086:SSL routines::certificate "
    "verify failed (after 8ms in state SSL_HANDSHAKE)"
)
NO_CLIENT_CERT = (
    "ssl://127.0.0.1:40002/bootstrap: Receive failed: error:0A000412:SSL routines::"
    "ssl/tls alert bad certificate: SSL alert number 42 (after 0ms in state "
    "APIVERSION_QUERY)"
)
TLS13_CERT_REQUIRED = (
    "ssl://h:1/bootstrap: Receive failed: error:0A00045C:SSL routines::tlsv13 "
    "alert certificate required: SSL alert number 116"
)
# An SSL client on a PLAINTEXT listener, as the TLS integration test met it: the broker reads the
# TLS hello as a request and closes the connection.
PLAINTEXT_LISTENER = (
    "ssl://127.0.0.1:40003/bootstrap: SSL handshake failed: Disconnected: SSL connection closed "
    "by peer: connecting to a PLAINTEXT broker listener? (after 2ms in state SSL_HANDSHAKE)"
)
NOT_REFUSALS = [
    "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused "
    "(after 0ms in state CONNECT)",
    "1/1 brokers are down",
    "ssl://127.0.0.1:40003/bootstrap: SSL handshake failed: Disconnected: SSL connection closed "
    "by peer: connecting to a PLAINTEXT broker listener? (after 2ms in state SSL_HANDSHAKE)",
    "SASL authentication error: Authentication failed during authentication due to invalid "
    "credentials with SASL mechanism SCRAM-SHA-256",
]


def test_mutual_tls_settings_reach_both_client_libraries(tls_files: TlsFiles) -> None:
    security = KafkaSecurity.from_env(mtls_env(tls_files, "ssl"))
    assert security.librdkafka() == {
        "security.protocol": "ssl",
        "ssl.ca.location": str(tls_files.ca.cert),
        "ssl.certificate.location": str(tls_files.client.cert),
        "ssl.key.location": str(tls_files.client.key),
    }
    assert security.kafka_python() == {
        "security_protocol": "SSL",
        "ssl_cafile": str(tls_files.ca.cert),
        "ssl_certfile": str(tls_files.client.cert),
        "ssl_keyfile": str(tls_files.client.key),
    }
    assert security.redacted() == (
        f"SSL, CA {tls_files.ca.cert}, client certificate {tls_files.client.cert}"
    )


def test_tls_without_a_ca_file_uses_the_system_cas() -> None:
    security = KafkaSecurity.from_env({"KAFKA_SECURITY_PROTOCOL": "SSL"})
    assert security.librdkafka() == {"security.protocol": "ssl"}
    assert security.kafka_python() == {"security_protocol": "SSL"}
    assert security.redacted() == "SSL, CA (system)"


@pytest.mark.parametrize("protocol", ["", "PLAINTEXT", "SASL_PLAINTEXT"])
def test_tls_files_without_a_tls_protocol_are_an_error(tls_files: TlsFiles, protocol: str) -> None:
    """Ignoring them would leave a TLS cluster unreachable with no word of why."""
    env = {
        **mtls_env(tls_files, protocol),
        "KAFKA_SASL_MECHANISM": "PLAIN",
        "KAFKA_SASL_USERNAME": "u",
        "KAFKA_SASL_PASSWORD": "s3cret-pw",
    }
    if protocol != "SASL_PLAINTEXT":
        env = {k: v for k, v in env.items() if not k.startswith("KAFKA_SASL_")}
    del env["KAFKA_SSL_KEY_LOCATION"]
    with pytest.raises(SecurityConfigError) as err:
        KafkaSecurity.from_env(env)
    assert str(err.value) == (
        "KAFKA_SSL_CA_LOCATION/KAFKA_SSL_CERT_LOCATION are set but KAFKA_SECURITY_PROTOCOL="
        f"{protocol or 'PLAINTEXT'} uses no TLS (use SSL or SASL_SSL)"
    )
    assert "s3cret-pw" not in str(err.value)


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ("KAFKA_SSL_CERT_LOCATION", "KAFKA_SSL_KEY_LOCATION"),
        ("KAFKA_SSL_KEY_LOCATION", "KAFKA_SSL_CERT_LOCATION"),
    ],
)
def test_a_client_certificate_needs_its_key_and_the_other_way_round(
    tls_files: TlsFiles, given: str, missing: str
) -> None:
    env = mtls_env(tls_files)
    del env[missing]
    with pytest.raises(SecurityConfigError, match=rf"^{missing}: required with {given}"):
        KafkaSecurity.from_env(env)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"KAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem"},
            "KAFKA_SSL_CA_LOCATION=/nonexistent/ca.pem: No such file or directory",
        ),
        (
            {"KAFKA_SSL_CERT_LOCATION": "/nonexistent/client.pem"},
            "KAFKA_SSL_CERT_LOCATION=/nonexistent/client.pem: No such file or directory",
        ),
        (
            {"KAFKA_SSL_KEY_LOCATION": "/nonexistent/client.key"},
            "KAFKA_SSL_KEY_LOCATION=/nonexistent/client.key: No such file or directory",
        ),
        ({"KAFKA_SSL_CA_LOCATION": "{ca_dir}"}, "KAFKA_SSL_CA_LOCATION={ca_dir}: Is a directory"),
        (
            {"KAFKA_SSL_CA_LOCATION": "{ca_key}"},
            "KAFKA_SSL_CA_LOCATION={ca_key}: no PEM certificate in it",
        ),
        (
            {"KAFKA_SSL_KEY_LOCATION": "{client_cert}"},
            "KAFKA_SSL_KEY_LOCATION={client_cert}: no PEM private key in it",
        ),
        (
            {"KAFKA_SSL_KEY_LOCATION": "{other_key}"},
            "KAFKA_SSL_CERT_LOCATION={client_cert} / KAFKA_SSL_KEY_LOCATION={other_key}: they do "
            "not load as a certificate and its key ([X509: KEY_VALUES_MISMATCH] key values "
            "mismatch)",
        ),
        (
            {"KAFKA_SSL_KEY_LOCATION": "{encrypted_key}"},
            "KAFKA_SSL_KEY_LOCATION={encrypted_key}: the key is encrypted; set "
            "KAFKA_SSL_KEY_PASSWORD",
        ),
        (
            {"KAFKA_SSL_KEY_LOCATION": "{encrypted_key}", "KAFKA_SSL_KEY_PASSWORD": "not-it"},
            "KAFKA_SSL_KEY_PASSWORD does not decrypt KAFKA_SSL_KEY_LOCATION={encrypted_key}",
        ),
        (
            {
                "KAFKA_SSL_CERT_LOCATION": "{other_cert}",
                "KAFKA_SSL_KEY_LOCATION": "{encrypted_key}",
                "KAFKA_SSL_KEY_PASSWORD": KEY_PASSPHRASE,
            },
            "KAFKA_SSL_CERT_LOCATION={other_cert} / KAFKA_SSL_KEY_LOCATION={encrypted_key}: they "
            "do not load as a certificate and its key ([X509: KEY_VALUES_MISMATCH]",
        ),
    ],
)
def test_a_tls_file_that_cannot_be_used_fails_at_start_up_naming_its_variable(
    tls_files: TlsFiles, change: dict[str, str], message: str
) -> None:
    """Checked as the clients would load the files: otherwise librdkafka fails later with
    "ssl.ca.location failed: BIO lib" and kafka-python retries until its bootstrap timeout."""
    paths = {
        "ca_dir": tls_files.ca.cert.parent,
        "ca_key": tls_files.ca.key,
        "client_cert": tls_files.client.cert,
        "other_key": tls_files.other.key,
        "other_cert": tls_files.other.cert,
        "encrypted_key": tls_files.encrypted_key,
    }
    env = {**mtls_env(tls_files), **{k: v.format(**paths) for k, v in change.items()}}
    with pytest.raises(SecurityConfigError) as err:
        KafkaSecurity.from_env(env)
    assert str(err.value).startswith(message.format(**paths)), str(err.value)
    assert KEY_PASSPHRASE not in str(err.value)


def test_an_encrypted_client_key_with_its_password_reaches_both_libraries_never_shown(
    tls_files: TlsFiles,
) -> None:
    env = {
        **mtls_env(tls_files, "SSL"),
        "KAFKA_SSL_KEY_LOCATION": str(tls_files.encrypted_key),
        "KAFKA_SSL_KEY_PASSWORD": KEY_PASSPHRASE,
    }
    security = KafkaSecurity.from_env(env)
    assert security.librdkafka()["ssl.key.password"] == KEY_PASSPHRASE
    assert security.librdkafka()["ssl.key.location"] == str(tls_files.encrypted_key)
    assert security.kafka_python()["ssl_password"] == KEY_PASSPHRASE
    assert security.kafka_python()["ssl_keyfile"] == str(tls_files.encrypted_key)
    assert security.redacted().endswith(", key password ***")
    for shown in (security.redacted(), repr(security), str(security)):
        assert KEY_PASSPHRASE not in shown
    assert "key_password='***'" in repr(security)
    # As given: spaces in a password may be meant, so it is not stripped.
    with pytest.raises(SecurityConfigError, match="KAFKA_SSL_KEY_PASSWORD does not decrypt"):
        KafkaSecurity.from_env({**env, "KAFKA_SSL_KEY_PASSWORD": f" {KEY_PASSPHRASE}"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"KAFKA_SSL_KEY_PASSWORD": "s3cret-pw"},
            "KAFKA_SSL_KEY_PASSWORD is set but KAFKA_SECURITY_PROTOCOL=PLAINTEXT uses no TLS",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEY_PASSWORD": "s3cret-pw"},
            "KAFKA_SSL_KEY_PASSWORD: set but KAFKA_SSL_KEY_LOCATION is not",
        ),
    ],
)
def test_a_key_password_without_a_key_is_an_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(SecurityConfigError) as err:
        KafkaSecurity.from_env(env)
    assert str(err.value).startswith(message), str(err.value)
    assert "s3cret-pw" not in str(err.value)


@pytest.mark.parametrize("text", [WRONG_CA, WRONG_CA_TRANSPORT])
def test_an_untrusted_broker_certificate_is_a_refusal_naming_the_ca_variable(
    tls_files: TlsFiles, text: str
) -> None:
    hint = KafkaSecurity.from_env(mtls_env(tls_files)).tls_refusal(text)
    assert hint is not None
    assert "KAFKA_SSL_CA_LOCATION" in hint and str(tls_files.ca.cert) in hint
    assert "KAFKA_BROKERS" in hint  # a certificate for another host fails the same way
    system = KafkaSecurity.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "PLAIN",
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD": "pw",
        }
    )
    assert "unset, so the system CAs" in str(system.tls_refusal(text))


@pytest.mark.parametrize("text", [NO_CLIENT_CERT, TLS13_CERT_REQUIRED])
def test_a_rejected_client_certificate_is_a_refusal_saying_what_to_set(
    tls_files: TlsFiles, text: str
) -> None:
    without = KafkaSecurity.from_env(
        {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": str(tls_files.ca.cert)}
    )
    assert without.tls_refusal(text) == (
        "the broker wants a client certificate (mutual TLS): "
        "set KAFKA_SSL_CERT_LOCATION and KAFKA_SSL_KEY_LOCATION"
    )
    hint = KafkaSecurity.from_env(mtls_env(tls_files)).tls_refusal(text)
    assert hint is not None and f"KAFKA_SSL_CERT_LOCATION={tls_files.client.cert}" in hint


@pytest.mark.parametrize("text", NOT_REFUSALS)
def test_errors_that_may_pass_are_not_refusals(tls_files: TlsFiles, text: str) -> None:
    """A broker still starting, or down, must be waited for, not given up on."""
    assert KafkaSecurity.from_env(mtls_env(tls_files)).tls_refusal(text) is None


def test_without_tls_nothing_is_a_tls_refusal() -> None:
    assert KafkaSecurity().tls_refusal(WRONG_CA) is None
    assert KafkaSecurity().not_tls(PLAINTEXT_LISTENER) is None


def test_a_watch_gives_up_on_a_refused_certificate_at_once(tls_files: TlsFiles) -> None:
    watch = TlsWatch(KafkaSecurity.from_env(mtls_env(tls_files)))
    assert watch("1/1 brokers are down") is None
    refused = watch(NO_CLIENT_CERT)
    assert refused is not None and refused.startswith(f"{NO_CLIENT_CERT}; the broker did not")
    assert watch("1/1 brokers are down") == refused  # it stays refused


def test_a_watch_gives_up_on_a_broker_without_tls_after_a_few_closed_handshakes(
    tls_files: TlsFiles,
) -> None:
    """One handshake closed may be a TLS broker stopping; the same again and again is a
    listener without TLS, which waiting cannot mend."""
    security = KafkaSecurity.from_env(
        {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": str(tls_files.ca.cert)}
    )
    watch = TlsWatch(security)
    for _ in range(NOT_TLS_AFTER - 1):
        assert watch(PLAINTEXT_LISTENER) is None
        assert watch("1/1 brokers are down") is None
    refused = watch(PLAINTEXT_LISTENER)
    assert refused is not None and refused.startswith(f"{PLAINTEXT_LISTENER}; ")
    assert "the broker did not speak TLS" in refused
    assert "KAFKA_BROKERS" in refused and "KAFKA_SECURITY_PROTOCOL=SSL" in refused
    # A client without TLS never reads it so (it would not have started a handshake).
    plain = TlsWatch(KafkaSecurity())
    assert all(plain(PLAINTEXT_LISTENER) is None for _ in range(NOT_TLS_AFTER * 2))


# --- the declarations ---------------------------------------------------------------------


def test_the_eight_variables_are_declared_once_and_documented_from_the_declarations() -> None:
    names = [option.env for option in SECURITY_OPTIONS]
    assert names == [
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SSL_CA_LOCATION",
        "KAFKA_SSL_CERT_LOCATION",
        "KAFKA_SSL_KEY_LOCATION",
        "KAFKA_SSL_KEY_PASSWORD",
    ]
    defaults = {name: default for name, (default, _help) in SECURITY_ENV_DOCS.items()}
    assert defaults == {"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT", **dict.fromkeys(names[1:], "")}
    assert [Reader({})(option) for option in SECURITY_OPTIONS] == ["PLAINTEXT"] + [None] * 7
    assert KafkaSecurity.from_env({}) == KafkaSecurity()


def test_an_empty_protocol_is_plaintext_and_any_case_is_upper_cased() -> None:
    assert KafkaSecurity.from_env({"KAFKA_SECURITY_PROTOCOL": "  "}).protocol == "PLAINTEXT"
    sasl = KafkaSecurity.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": " sasl_plaintext ",
            "KAFKA_SASL_MECHANISM": " scram-sha-256 ",
            "KAFKA_SASL_USERNAME": " u ",
            "KAFKA_SASL_PASSWORD": " pw ",
        }
    )
    assert (sasl.protocol, sasl.mechanism, sasl.username) == (
        "SASL_PLAINTEXT",
        "SCRAM-SHA-256",
        "u",
    )
    assert sasl.password == " pw "  # as given: spaces in a password may be meant


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"KAFKA_SECURITY_PROTOCOL": " sasl "},
            "KAFKA_SECURITY_PROTOCOL='SASL': must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, "
            "SASL_SSL",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "KAFKA_SASL_MECHANISM": "gssapi"},
            "KAFKA_SASL_MECHANISM='GSSAPI': must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 "
            "with KAFKA_SECURITY_PROTOCOL=SASL_SSL",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_PASSWORD": "s3cret-pw"},
            "KAFKA_SASL_MECHANISM='': must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 "
            "with KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "PLAIN",
                "KAFKA_SASL_USERNAME": " ",
                "KAFKA_SASL_PASSWORD": "s3cret-pw",
            },
            "KAFKA_SASL_USERNAME: required with SASL_SSL",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "PLAIN",
                "KAFKA_SASL_USERNAME": "u",
                "KAFKA_SASL_PASSWORD": "",
            },
            "KAFKA_SASL_PASSWORD: required with SASL_SSL",
        ),
        (
            {"KAFKA_SASL_PASSWORD": "s3cret-pw"},
            "KAFKA_SASL_MECHANISM/USERNAME/PASSWORD are set but KAFKA_SECURITY_PROTOCOL="
            "PLAINTEXT uses no SASL (use SASL_PLAINTEXT or SASL_SSL)",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEY_LOCATION": "/k.pem"},
            "KAFKA_SSL_CERT_LOCATION: required with KAFKA_SSL_KEY_LOCATION (mutual TLS needs "
            "the client certificate and its key)",
        ),
        (
            {"KAFKA_SSL_KEY_LOCATION": "/k.pem"},
            "KAFKA_SSL_KEY_LOCATION is set but KAFKA_SECURITY_PROTOCOL=PLAINTEXT uses no TLS "
            "(use SSL or SASL_SSL)",
        ),
    ],
)
def test_each_refusal_keeps_its_words_names_its_variable_and_hides_the_password(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SecurityConfigError) as err:
        KafkaSecurity.from_env(env)
    assert str(err.value) == message
    assert any(option.env in message for option in SECURITY_OPTIONS)
    assert "s3cret-pw" not in str(err.value)


# --- secrets in reprs -------------------------------------------------------------------------


def test_the_repr_hides_the_password() -> None:
    """Settings end up in logs, tracebacks and test failures: the dataclass repr had it all."""
    security = KafkaSecurity.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "PLAIN",
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD": "s3cret-pw",
        }
    )
    assert "s3cret-pw" not in repr(security) and "s3cret-pw" not in str(security)
    assert "password='***'" in repr(security) and "username='u'" in repr(security)
    assert security.password == "s3cret-pw"  # the clients still get it
    assert "password=None" in repr(KafkaSecurity())
