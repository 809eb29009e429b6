"""``python -m dataflow --help``: every setting the flow reads, listed as every program lists
its environment variables."""

from __future__ import annotations

import pytest

from dataflow.__main__ import main, usage
from dataflow.config import ALL_OPTIONS, OPTIONS
from dataflow.options import env_section
from dataflow.security import SECURITY_OPTIONS


def test_help_lists_every_declared_variable_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert {*OPTIONS, *SECURITY_OPTIONS} == set(ALL_OPTIONS)
    for option in ALL_OPTIONS:
        row = f"  {option.env} (default: {option.shown_default}): "
        assert any(line.startswith(row) for line in lines), f"{option.env} is not in --help"


def test_help_lists_the_kafka_security_variables() -> None:
    text = usage()
    for name in ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_PASSWORD", "KAFKA_SSL_KEY_LOCATION"):
        assert f"\n  {name} (default: " in text


def test_help_is_the_shared_section_inside_the_flow_s_own_text() -> None:
    text = usage()
    assert text.startswith("usage: python -m dataflow [bytewax.run options, e.g. -w 2]\n")
    assert "python -m dataflow --check-config [FILE]" in text
    assert f"(python -m bytewax.run --help lists the options).\n\n{env_section(ALL_OPTIONS)}\n" in (
        text
    )
    assert text.endswith("A second signal exits at once, status 128 + the signal number.\n")


def test_each_partitions_prefetch_is_a_few_polls_not_a_backlog() -> None:
    """One consumer per partition: the floor's 8 MiB fetches and 200,000 queued messages held
    hundreds of MB of a backlog per flow for no speed (bench/RESULTS.md, "Consumer prefetch")."""
    from dataflow.config import KAFKA_BATCH_SIZE
    from dataflow.main import CONSUMER_DEFAULTS, PREFETCH_POLLS

    assert "queued.min.messages" not in CONSUMER_DEFAULTS  # PREFETCH_POLLS polls of a batch
    assert PREFETCH_POLLS * int(KAFKA_BATCH_SIZE.default) <= 20_000
    assert int(CONSUMER_DEFAULTS["fetch.message.max.bytes"]) <= 1 << 20
