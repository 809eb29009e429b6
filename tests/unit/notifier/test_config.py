"""The notifier's settings and secrets: basic auth only over https unless allowed, the
passwords never in a repr or a message, and the table of its variables in docs/operations.md."""

from __future__ import annotations

import re

import pytest

from dataflow.config import ConfigError
from notifier import __main__ as notifier_main
from notifier.__main__ import main
from notifier.config import OPTIONS, Settings
from tests.checkout import ROOT

SECRET = "s3cret-pw"
AUTH = {"ALERTMANAGER_USERNAME": "ops", "ALERTMANAGER_PASSWORD": SECRET}


def test_basic_auth_over_plain_http_is_refused_naming_the_variable_that_allows_it() -> None:
    with pytest.raises(ConfigError) as exc:
        Settings.from_env({**AUTH, "ALERTMANAGER_URL": "http://am:9093"})
    message = str(exc.value)
    assert "ALERTMANAGER_URL='http://am:9093' is plain http" in message
    assert "ALERTMANAGER_ALLOW_INSECURE_AUTH=true" in message
    assert SECRET not in message


def test_the_refusal_stops_the_notifier_at_start_up_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def connect(*args: object) -> None:
        raise AssertionError("must stop before it connects to Kafka")

    monkeypatch.setattr(notifier_main, "connect", connect)
    for name, value in {**AUTH, "ALERTMANAGER_URL": "http://am:9093"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ALERTMANAGER_ALLOW_INSECURE_AUTH", raising=False)
    assert main([]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("configuration error: ") and "ALERTMANAGER_ALLOW_INSECURE_AUTH" in line
    assert SECRET not in line


def test_basic_auth_over_http_when_allowed_and_over_https_always() -> None:
    allowed = Settings.from_env({**AUTH, "ALERTMANAGER_ALLOW_INSECURE_AUTH": "true"})
    assert (allowed.username, allowed.password, allowed.tls) == ("ops", SECRET, None)
    assert "over plain http, NOT encrypted" in allowed.redacted_alertmanager()
    https = Settings.from_env({**AUTH, "ALERTMANAGER_URL": "https://am:9093"})
    assert https.password == SECRET and https.tls is not None
    assert "NOT encrypted" not in https.redacted_alertmanager()
    # Without credentials there is nothing to protect: plain http stays the default.
    assert Settings.from_env({}).alertmanager_url.startswith("http://")


def test_a_bad_allow_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^ALERTMANAGER_ALLOW_INSECURE_AUTH='maybe'"):
        Settings.from_env({**AUTH, "ALERTMANAGER_ALLOW_INSECURE_AUTH": "maybe"})


def test_the_repr_hides_both_passwords() -> None:
    settings = Settings.from_env(
        {
            **AUTH,
            "ALERTMANAGER_URL": "https://am:9093",
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "PLAIN",
            "KAFKA_SASL_USERNAME": "notifier",
            "KAFKA_SASL_PASSWORD": "kafka-" + SECRET,
        }
    )
    text = repr(settings)
    assert SECRET not in text and SECRET not in str(settings)
    assert "username='ops', password='***'" in text
    assert "username='notifier', password='***'" in text
    assert settings.password == SECRET and settings.security.password == "kafka-" + SECRET


@pytest.mark.parametrize(
    "url",
    [
        f"http://ops:{SECRET}@am:9093",
        f"htp://ops:{SECRET}@am:9093",  # a bad scheme too: refused for it first, once
        f"ops:{SECRET}@am:9093",
        f"https://ops:{SECRET}@[::1",
    ],
)
def test_credentials_in_the_url_are_refused_without_showing_them(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^ALERTMANAGER_URL=") as exc:
        Settings.from_env({"ALERTMANAGER_URL": url})
    assert SECRET not in str(exc.value)
    assert "***@" in str(exc.value) and "no credentials in the URL" in str(exc.value)


@pytest.mark.parametrize(
    ("url", "why"),
    [("http://am:abc", "could not be cast"), ("http://127.0.0.1:99999", "out of range")],
)
def test_a_url_with_a_bad_port_is_a_configuration_error(url: str, why: str) -> None:
    """Refused at start naming the variable: ``abc`` failed after the state topic was read,
    with a traceback, and 99999 was retried for ever as a refused connection."""
    with pytest.raises(ConfigError, match=rf"^ALERTMANAGER_URL='{url}': not a URL \(.*{why}"):
        Settings.from_env({"ALERTMANAGER_URL": url})


def test_a_url_python_cannot_split_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"^ALERTMANAGER_URL='http://\[::1': not a URL"):
        Settings.from_env({"ALERTMANAGER_URL": "http://[::1"})


def test_the_operations_page_documents_every_notifier_variable_with_its_default() -> None:
    """The notifier section's table: a row per variable with its default; the variables shared
    with the dataflow may sit in the one row that says so."""
    page = (ROOT / "docs" / "operations.md").read_text()
    start = page.index("Pointing it at your Alertmanager:")
    section = page[start : page.index("\n## ", start)]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    shared = next(row for row in rows if "as for the dataflow" in row)
    for option in OPTIONS:
        row = next((r for r in rows if r.startswith(f"| `{option.env}` |")), None)
        if row is None:
            assert f"`{option.env}`" in shared, f"{option.env} is not in the notifier's table"
            continue
        default = row.split(" | ")[1].strip()
        expected = f"`{option.default}`" if option.default else "(unset)"
        assert default == expected, row
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", section, flags=re.M))
    assert documented <= {option.env for option in OPTIONS}, "a row for no notifier variable"
