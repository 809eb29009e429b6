"""Every knob has a default, and a bad value fails at start-up naming its variable."""

import pytest

from dataflow.config import ALL_ENV_DOCS, ConfigError, Settings
from dataflow.families import AIR_QUALITY, TEMPERATURE
from dataflow.rules import Rule
from tests.certs import TlsFiles
from tests.checkout import ROOT

CONFIGURATION_PAGE = ROOT / "docs" / "configuration.md"


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.brokers == ("127.0.0.1:9092",)
    assert {t: [f.name for f in fams] for t, fams in s.topics.items()} == {
        "air-quality": [AIR_QUALITY],
        "temperature_readings": [TEMPERATURE],
    }
    assert (s.anomalies_topic, s.dlq_topic) == ("anomalies", "dead-letters")
    assert s.tail and not s.emit_all
    assert (s.window_seconds, s.lateness_seconds) == (5.0, 2.0)
    fams = {f.name: f for f in s.families}
    assert fams[TEMPERATURE].rules == (Rule("threshold", "above", 90.0, 1, "critical"),)
    assert fams[AIR_QUALITY].rules == ()
    assert s.sensors_config == ""


def test_overrides() -> None:
    s = Settings.from_env(
        {
            "KAFKA_BROKERS": "a:1, b:2",
            "KAFKA_TAIL": "false",
            "AIR_QUALITY_THRESHOLD": "150",
            "TEMPERATURE_LIMITS": "-10,200",
            "KAFKA_CONSUMER_CONFIG": "fetch.wait.max.ms=10",
        }
    )
    assert s.brokers == ("a:1", "b:2") and not s.tail
    fams = {f.name: f for f in s.families}
    assert fams[AIR_QUALITY].rules == (Rule("threshold", "above", 150.0, 1, "warning"),)
    assert fams[TEMPERATURE].model_limits == (-10.0, 200.0)
    assert s.consumer_config == {"fetch.wait.max.ms": "10"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KAFKA_BROKERS", " , "),
        ("KAFKA_BROKERS", "127.0.0.1:99999"),  # librdkafka connected to another port
        ("KAFKA_BROKERS", "a:9092,b:abc"),
        ("WINDOW_SECONDS", "-5"),
        ("WINDOW_SECONDS", "five"),
        ("WINDOW_SECONDS", "nan"),
        ("WINDOW_SECONDS", "0.0005"),  # the output's window times are in milliseconds
        ("ALLOWED_LATENESS_SECONDS", "-1"),
        ("IDLE_TIMEOUT_SECONDS", "0"),
        ("SHARDS", "0"),
        ("SHARDS", "1.5"),
        ("KAFKA_TAIL", "maybe"),
        ("EMIT_ALL_WINDOWS", "2"),
        ("TEMPERATURE_THRESHOLD_C", "hot"),
        ("TEMPERATURE_LIMITS", "100,0"),
        ("AIR_QUALITY_LIMITS", "5"),
        ("ML_NOVELTY_MARGIN", "0.5"),
        ("ML_NOVELTY_HALF_LIFE", "0"),
        ("ML_SEASONALITY", "maybe"),
        ("ALERT_COOLDOWN_WINDOWS", "-1"),
        ("HST_TREES", "0"),
        ("HST_TREES", "51"),
        ("HST_HEIGHT", "11"),  # a mistyped height: a scorer that never finished building
        ("KAFKA_BATCH_SIZE", "0"),
        ("KAFKA_BATCH_SIZE", "1000001"),  # consume() refuses it at the first poll
        ("KAFKA_CONSUMER_CONFIG", "novalue"),
        ("KAFKA_CONSUMER_CONFIG", "=5"),
        ("LOG_LEVEL", "LOUD"),
        ("TEMPERATURE_TOPIC", "air-quality"),
        ("ANOMALIES_TOPIC", "air-quality"),
        ("TOPIC_PARTITIONS", "0"),
        ("KAFKA_SECURITY_PROTOCOL", "SASL"),
        ("ML_DRIFT_CLIP", "0"),
        ("LEVEL_WINDOWS", "0"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{name}="):
        Settings.from_env({name: value})


@pytest.mark.parametrize(
    ("env", "name"),
    [
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KAFKA_SASL_MECHANISM": "PLAIN",
                "KAFKA_SASL_PASSWORD": "s3cret-pw",
            },
            "KAFKA_SASL_USERNAME",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
                "KAFKA_SASL_USERNAME": "u",
            },
            "KAFKA_SASL_PASSWORD",
        ),
        (
            {"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "s3cret-pw"},
            "KAFKA_SASL_MECHANISM/USERNAME/PASSWORD",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KAFKA_SASL_MECHANISM": "GSSAPI",
                "KAFKA_SASL_USERNAME": "u",
                "KAFKA_SASL_PASSWORD": "s3cret-pw",
            },
            "KAFKA_SASL_MECHANISM='GSSAPI'",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "PLAIN",
                "KAFKA_SASL_USERNAME": "u",
                "KAFKA_SASL_PASSWORD": "s3cret-pw",
                "KAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem",
            },
            "KAFKA_SSL_CA_LOCATION=/nonexistent/ca.pem: No such file",
        ),
        (
            {"KAFKA_SSL_CA_LOCATION": "/ca.pem"},
            "KAFKA_SSL_CA_LOCATION is set but KAFKA_SECURITY_PROTOCOL=PLAINTEXT uses no TLS",
        ),
    ],
)
def test_security_errors_name_the_variable_and_hide_the_password(env: dict, name: str) -> None:
    with pytest.raises(ConfigError, match=name) as err:
        Settings.from_env(env)
    assert "s3cret-pw" not in str(err.value)


SECRET = "s3cret-pw"


def test_the_settings_repr_hides_every_password() -> None:
    """The SASL password (in ``security``) and any secret given in the extra librdkafka
    settings: a repr reaches logs, tracebacks and test failures."""
    s = Settings.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "PLAIN",
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD": SECRET,
            "KAFKA_CONSUMER_CONFIG": f"fetch.wait.max.ms=10,ssl.key.password={SECRET}",
            "KAFKA_PRODUCER_CONFIG": f"sasl.oauthbearer.config=principal=u secret={SECRET}",
        }
    )
    assert SECRET not in repr(s) and SECRET not in str(s)
    assert "password='***'" in repr(s)
    assert "'fetch.wait.max.ms': '10', 'ssl.key.password': '***'" in repr(s)
    assert "'sasl.oauthbearer.config': '***'" in repr(s)
    # The values themselves are untouched: the clients need them.
    assert s.consumer_config["ssl.key.password"] == SECRET
    assert s.security.password == SECRET


@pytest.mark.parametrize("name", ["KAFKA_CONSUMER_CONFIG", "KAFKA_PRODUCER_CONFIG"])
@pytest.mark.parametrize(
    ("value", "shown"),
    [
        # A bad part before the secret: the secret's key shows, its value does not.
        (f"=5,sasl.password={SECRET}", "'=5,sasl.password=***': expected k=v,k=v (part 1, '=5',"),
        # A bad part after a secret may be a piece of it (a password with ",=" in it).
        (f"sasl.password=ab,={SECRET}", "'sasl.password=***,***': expected k=v,k=v (part 2, not"),
        # A mistyped "=": the part names a secret, so it is hidden whole.
        (f"ssl.key.pem:{SECRET}", "'***': expected k=v,k=v (part 1, not shown"),
        (
            f"debug=all,sasl.oauthbearer.client.secret={SECRET},=x",
            "'debug=all,sasl.oauthbearer.client.secret=***,***': expected k=v,k=v (part 3, not",
        ),
    ],
)
def test_a_bad_extra_kafka_setting_never_shows_a_secret(name: str, value: str, shown: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({name: value})
    message = str(err.value)
    assert SECRET not in message
    assert message.startswith(f"{name}=")
    assert shown in message


def test_security_settings_reach_both_client_libraries(tls_files: TlsFiles) -> None:
    ca = str(tls_files.ca.cert)  # a real one: the CA file is loaded to check it
    s = Settings.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "KAFKA_SASL_MECHANISM": "scram-sha-512",
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD": "pw",
            "KAFKA_SSL_CA_LOCATION": ca,
        }
    )
    assert s.security.librdkafka() == {
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "u",
        "sasl.password": "pw",
        "ssl.ca.location": ca,
    }
    assert s.security.kafka_python() == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "u",
        "sasl_plain_password": "pw",
        "ssl_cafile": ca,
    }
    assert "pw" not in s.security.redacted().replace("password", "")
    assert Settings.from_env({}).security.librdkafka() == {"security.protocol": "plaintext"}


def test_the_configuration_page_documents_every_variable_with_its_default() -> None:
    if not CONFIGURATION_PAGE.exists():
        pytest.fail("docs/configuration.md is missing")
    text = CONFIGURATION_PAGE.read_text()
    for name, (default, _help) in ALL_ENV_DOCS.items():
        row = next((line for line in text.splitlines() if line.startswith(f"| `{name}`")), None)
        assert row is not None, f"{name} is not in docs/configuration.md's tables"
        assert f"`{default}`" in row or (default == "" and "(unset)" in row), row


def test_extra_kafka_settings_keep_commas_inside_list_values() -> None:
    """librdkafka lists are comma-separated: ``debug=consumer,fetch`` is one setting."""
    s = Settings.from_env(
        {
            "KAFKA_CONSUMER_CONFIG": "debug=consumer,fetch, fetch.wait.max.ms=10",
            "KAFKA_PRODUCER_CONFIG": "linger.ms=5",
        }
    )
    assert s.consumer_config == {"debug": "consumer,fetch", "fetch.wait.max.ms": "10"}
    assert s.producer_config == {"linger.ms": "5"}
