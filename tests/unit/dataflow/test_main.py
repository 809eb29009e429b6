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
    hundreds of MB of a backlog per flow for no speed, and so did 1 MiB fetches of compressed
    readings, each well over a hundred thousand messages once decompressed (bench/RESULTS.md,
    "Consumer prefetch")."""
    from dataflow.config import KAFKA_BATCH_SIZE
    from dataflow.main import CONSUMER_DEFAULTS, PREFETCH_POLLS

    assert "queued.min.messages" not in CONSUMER_DEFAULTS  # PREFETCH_POLLS polls of a batch
    assert PREFETCH_POLLS * int(KAFKA_BATCH_SIZE.default) <= 20_000
    assert int(CONSUMER_DEFAULTS["fetch.message.max.bytes"]) <= 1 << 18


def test_a_full_prefetch_puts_off_the_next_fetch_for_less_than_the_queue_takes_to_drain() -> None:
    """With a queue of a few polls, librdkafka's default backoff once it is full (1 s) left a
    one-partition flow idle most of each second (bench/RESULTS.md, "fetch.queue.backoff.ms").
    The next fetch must be asked for before the flow has worked through the queue, even at its
    fastest (a microsecond a message, at the least)."""
    from dataflow.config import KAFKA_BATCH_SIZE
    from dataflow.main import CONSUMER_DEFAULTS, PREFETCH_POLLS

    drain_ms = PREFETCH_POLLS * int(KAFKA_BATCH_SIZE.default) * 1e-3
    assert int(CONSUMER_DEFAULTS["fetch.queue.backoff.ms"]) <= drain_ms


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ("queued.min.messages=0", "outside allowed range"),
        ("message.max.bytes=100000000", "`fetch.max.bytes` must be >= `message.max.bytes`"),
        ("fetch.wait.max.ms=soon", 'Invalid value for configuration property "fetch.wait.max.ms"'),
        # The source's own settings: a replay that never ends, a group's commits, a reset.
        ("enable.partition.eof=false", "sets enable.partition.eof, which the source sets"),
        ("group.id=mine,auto.offset.reset=latest", "sets auto.offset.reset, group.id, which"),
    ],
)
def test_a_consumer_setting_librdkafka_refuses_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], override: str, reason: str
) -> None:
    """Exit 2 with librdkafka's reason, before any broker is asked: it stopped the flow at its
    first partition's consumer, with a traceback naming Bytewax's build_part (and, for the
    second, a setting the user never set: this project's fetch.max.bytes)."""
    import dataflow.main

    def no_broker(*_: object) -> None:
        raise AssertionError("asked the broker")

    monkeypatch.setattr("sys.argv", ["bytewax.run", "dataflow.main:flow"])
    monkeypatch.setattr(dataflow.main, "ensure_flow_topics", no_broker)
    monkeypatch.setenv("KAFKA_BROKERS", "127.0.0.1:1")
    monkeypatch.setenv("KAFKA_CONSUMER_CONFIG", override)
    with pytest.raises(SystemExit) as exit_:
        dataflow.main.make_flow()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("configuration error: KAFKA_CONSUMER_CONFIG: ") and reason in err


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ("compression.type=zstdx", 'Invalid value "zstdx" for configuration property'),
        ("linger.ms=abc", 'Invalid value for configuration property "queue.buffering.max.ms"'),
    ],
)
def test_a_producer_setting_librdkafka_refuses_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], override: str, reason: str
) -> None:
    """Exit 2 naming KAFKA_PRODUCER_CONFIG, before any broker is asked: it got past the start-up
    checks and the topics' creation, and stopped the flow when Bytewax built a sink, in
    librdkafka's words alone."""
    import dataflow.main

    def no_broker(*_: object) -> None:
        raise AssertionError("asked the broker")

    monkeypatch.setattr("sys.argv", ["bytewax.run", "dataflow.main:flow"])
    monkeypatch.setattr(dataflow.main, "ensure_flow_topics", no_broker)
    monkeypatch.setenv("KAFKA_BROKERS", "127.0.0.1:1")
    monkeypatch.setenv("KAFKA_PRODUCER_CONFIG", override)
    with pytest.raises(SystemExit) as exit_:
        dataflow.main.make_flow()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("configuration error: KAFKA_PRODUCER_CONFIG: ") and reason in err


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KAFKA_CONSUMER_CONFIG", "group.id=mine"),
        ("KAFKA_CONSUMER_CONFIG", "fetch.wait.max.ms=banana"),
        ("KAFKA_PRODUCER_CONFIG", "linger.ms=abc"),
    ],
)
def test_check_config_refuses_the_client_settings_the_flow_refuses(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    """``--check-config`` is the pre-deploy check: it said 0 for settings the flow then
    refused at its start."""
    from dataflow.__main__ import main

    monkeypatch.setenv(variable, value)
    assert main(["--check-config"]) == 2
    assert capsys.readouterr().err.startswith(f"configuration error: {variable}: ")
    monkeypatch.delenv(variable)
    assert main(["--check-config"]) == 0


def test_the_default_consumer_settings_pass_librdkafka_s_check() -> None:
    from dataflow.config import Settings
    from dataflow.main import check_consumer_config, check_producer_config

    check_consumer_config(Settings.from_env({}))
    check_consumer_config(Settings.from_env({"KAFKA_BATCH_SIZE": "1000000"}))
    check_producer_config(Settings.from_env({}))
