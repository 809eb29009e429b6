"""Fixtures every producer test shares."""

from __future__ import annotations

import pytest

from dataflow.security import SECURITY_ENV_DOCS
from producer.settings import OPTIONS


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The producer's settings come from the environment (its own variables and the Kafka
    security ones): start every test from a clean one, whatever the shell running pytest set."""
    for name in [option.env for option in OPTIONS] + list(SECURITY_ENV_DOCS):
        monkeypatch.delenv(name, raising=False)
