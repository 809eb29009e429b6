"""The notifier's settings and secrets: the passwords never in a repr or a message, and the
README's table of its variables."""

from __future__ import annotations

import re

import pytest

from dataflow.config import ConfigError
from notifier.config import OPTIONS, Settings
from tests.checkout import ROOT

SECRET = "s3cret-pw"
AUTH = {"ALERTMANAGER_USERNAME": "ops", "ALERTMANAGER_PASSWORD": SECRET}


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


def test_a_url_python_cannot_split_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"^ALERTMANAGER_URL='http://\[::1': not a URL"):
        Settings.from_env({"ALERTMANAGER_URL": "http://[::1"})


def test_the_readme_documents_every_notifier_variable_with_its_default() -> None:
    """The notifier section's table: a row per variable with its default; the variables shared
    with the dataflow may sit in the one row that says so."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("Pointing it at your Alertmanager:")
    section = readme[start : readme.index("\n### ", start)]
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
