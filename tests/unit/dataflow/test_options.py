"""The shared settings layer: precedence, parsers, errors, ``--help`` and the tables of
``docs/configuration.md``."""

from __future__ import annotations

import argparse
import math
import re
from typing import Any

import pytest

from dataflow import options as o
from dataflow.options import Option, OptionError, Reader

RATE = Option("PRODUCER_RATE", "0", o.number(0), "Messages per second.", flag="--rate", metavar="N")
WINDOW = Option("WINDOW_SECONDS", "5", o.number(0, strict=True, what="a number of seconds"), "W.")
REALTIME = Option("REALTIME", "false", o.boolean, "Pace it.", flag="--realtime", bare="true")


def parsed(*options: Option[Any], argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    o.add_options(parser, options)
    return parser.parse_args(argv)


# --- precedence -------------------------------------------------------------------------------


def test_a_flag_wins_over_the_variable_which_wins_over_the_default() -> None:
    env = {"PRODUCER_RATE": "7"}
    assert Reader({}, parsed(RATE, argv=[]))(RATE) == 0.0
    assert Reader(env, parsed(RATE, argv=[]))(RATE) == 7.0
    assert Reader(env, parsed(RATE, argv=["--rate", "9"]))(RATE) == 9.0


def test_the_origin_is_reported() -> None:
    env = {"PRODUCER_RATE": "7"}
    assert Reader({}).origin(RATE) == o.DEFAULT
    assert Reader(env).origin(RATE) == "env PRODUCER_RATE"
    assert Reader(env, {"rate": "1"}).origin(RATE) == "flag --rate"
    assert Reader(env, {"rate": None}).raw(RATE) == ("7", "env PRODUCER_RATE")


def test_a_bad_variable_is_not_read_when_the_flag_overrides_it() -> None:
    assert Reader({"PRODUCER_RATE": "-1"}, {"rate": "3"})(RATE) == 3.0


def test_an_option_without_a_flag_reads_only_the_environment() -> None:
    assert Reader({"WINDOW_SECONDS": "2"}, {"window_seconds": "9"})(WINDOW) == 2.0


def test_a_bare_flag_takes_its_bare_value() -> None:
    assert Reader({}, parsed(REALTIME, argv=["--realtime"]))(REALTIME) is True
    assert Reader({}, parsed(REALTIME, argv=["--realtime", "no"]))(REALTIME) is False


def test_the_text_is_stripped_before_parsing() -> None:
    assert Reader({"PRODUCER_RATE": "  2.5 "})(RATE) == 2.5
    assert Reader({"PRODUCER_RATE": "  2.5 "}).text(RATE) == "2.5"


# --- errors -----------------------------------------------------------------------------------


def test_a_flagged_option_error_names_flag_variable_text_and_origin() -> None:
    with pytest.raises(OptionError) as exc:
        Reader({"PRODUCER_RATE": " -1"})(RATE)
    assert str(exc.value) == (
        "invalid --rate (env PRODUCER_RATE) value ' -1' (from env PRODUCER_RATE): must be >= 0"
    )
    with pytest.raises(OptionError, match=r"\(from flag --rate\): expected a number$"):
        Reader({}, {"rate": "fast"})(RATE)


def test_a_variable_error_keeps_the_dataflow_shape_with_the_reason_in_full() -> None:
    with pytest.raises(OptionError) as exc:
        Reader({"WINDOW_SECONDS": " five "})(WINDOW)
    assert str(exc.value) == (
        "WINDOW_SECONDS='five': expected a number of seconds "
        "(could not convert string to float: 'five')"
    )
    with pytest.raises(OptionError, match=r"^WINDOW_SECONDS='0': must be > 0$"):
        Reader({"WINDOW_SECONDS": "0"})(WINDOW)


def test_checks_across_settings_use_the_same_shape() -> None:
    read = Reader({"WINDOW_SECONDS": "3"})
    read.check(WINDOW, True, "unused")
    with pytest.raises(OptionError, match=r"^WINDOW_SECONDS='3': must be even$"):
        read.check(WINDOW, False, "even")
    assert str(Reader({}, {"rate": "4"}).fail(RATE, "too fast")).endswith(
        "value '4' (from flag --rate): too fast"
    )


def test_the_error_keeps_its_parts() -> None:
    with pytest.raises(OptionError) as exc:
        Reader({}, {"rate": "x"})(RATE)
    err = exc.value
    assert (err.option, err.raw, err.origin) == (RATE, "x", "flag --rate")
    assert isinstance(err, ValueError)


class _ProgramError(ValueError):
    """A program's own configuration error, as ``dataflow.config.ConfigError``."""


class _CheckError(ValueError):
    """An error of a check made outside the layer, as ``SecurityConfigError``."""


def test_read_settings_reads_the_mapping_or_else_the_process_environment(monkeypatch) -> None:
    def window(read: Reader) -> float:
        return read(WINDOW)

    assert o.read_settings(window, {"WINDOW_SECONDS": "2"}, _ProgramError) == 2.0
    monkeypatch.setenv("WINDOW_SECONDS", "3")
    assert o.read_settings(window, None, _ProgramError) == 3.0
    assert o.read_settings(window, {}, _ProgramError) == 5.0


def test_read_settings_raises_the_program_s_error_with_the_message_unchanged() -> None:
    def window(read: Reader) -> float:
        return read(WINDOW)

    with pytest.raises(_ProgramError) as exc:
        o.read_settings(window, {"WINDOW_SECONDS": "0"}, _ProgramError)
    assert str(exc.value) == "WINDOW_SECONDS='0': must be > 0"
    assert exc.value.__cause__ is None and exc.value.__suppress_context__

    def check(read: Reader) -> float:
        raise _CheckError("KAFKA_SASL_USERNAME: required with SASL_SSL")

    with pytest.raises(_ProgramError, match=r"^KAFKA_SASL_USERNAME: required with SASL_SSL$"):
        o.read_settings(check, {}, _ProgramError, _CheckError)
    with pytest.raises(_CheckError):  # not listed: left as it is
        o.read_settings(check, {}, _ProgramError)


# --- parsers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1", "true", "TRUE", "yes", "on", "y", " True "])
def test_boolean_true(text: str) -> None:
    assert o.boolean(text) is True


@pytest.mark.parametrize("text", ["0", "false", "False", "no", "off", "n"])
def test_boolean_false(text: str) -> None:
    assert o.boolean(text) is False


@pytest.mark.parametrize("text", ["", "maybe", "2", "truee"])
def test_boolean_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match=r"^expected true or false$"):
        o.boolean(text)


def test_integer_bounds_and_errors() -> None:
    assert o.integer()("-12") == -12
    assert o.integer(1, 4096)("4096") == 4096
    with pytest.raises(ValueError, match=r"^expected an integer \(invalid literal"):
        o.integer()("1.5")
    with pytest.raises(ValueError, match=r"^must be >= 1$"):
        o.integer(1)("0")
    with pytest.raises(ValueError, match=r"^must be between 1 and 4096$"):
        o.integer(1, 4096)("4097")
    with pytest.raises(ValueError, match=r"^must be <= 3$"):
        o.integer(hi=3)("4")
    with pytest.raises(ValueError, match=r"^must be >= -9223372036854775808$"):
        o.integer(-(2**63))(str(-(2**63) - 1))


def test_number_is_finite_within_bounds() -> None:
    assert o.number()("-1e3") == -1000.0
    assert o.number(0)("0") == 0.0
    with pytest.raises(ValueError, match=r"^must be > 0$"):
        o.number(0, strict=True)("0")
    with pytest.raises(ValueError, match=r"^must be >= 1\.5$"):
        o.number(1.5)("1")
    with pytest.raises(ValueError, match=r"^must be between 0 and 1$"):
        o.number(0, 1)("2")
    for text in ("nan", "inf", "-inf"):
        with pytest.raises(ValueError, match=r"^expected a number \(not finite\)$"):
            o.number()(text)
    with pytest.raises(ValueError, match=r"^expected seconds \(could not convert"):
        o.number(what="seconds")("soon")


def test_finite() -> None:
    assert o.finite("2") == 2.0
    with pytest.raises(ValueError, match="not finite"):
        o.finite("nan")


def test_optional_and_unlimited() -> None:
    assert o.optional(o.number())("") is None
    assert o.optional(o.number())("3") == 3.0
    limit = o.unlimited(o.integer(0))
    for text in ("", "none", "Unlimited", "inf", "0"):
        assert limit(text) is None, text
    assert limit("12") == 12
    with pytest.raises(ValueError, match=r"^must be >= 0$"):
        limit("-5")


def test_text_parsers() -> None:
    assert o.text("  a ") == "a"
    assert o.optional_text("  ") is None and o.optional_text(" f ") == "f"
    assert o.non_empty()(" t ") == "t"
    with pytest.raises(ValueError, match=r"^must not be empty$"):
        o.non_empty()("  ")
    with pytest.raises(ValueError, match=r"^must be a topic name$"):
        o.non_empty("must be a topic name")("")
    assert o.choice("earliest", "latest")("LATEST") == "latest"
    with pytest.raises(ValueError, match=r"^must be earliest or latest$"):
        o.choice("earliest", "latest")("now")
    assert o.level_name("debug") == "DEBUG"
    with pytest.raises(ValueError, match=r"^must be a logging level name$"):
        o.level_name("LOUD")


def test_a_choice_may_fold_to_upper_case_and_word_its_own_refusal() -> None:
    protocol = o.choice("PLAINTEXT", "SSL", fold=str.upper, reason="must be one of PLAINTEXT, SSL")
    assert protocol(" ssl ") == "SSL"
    with pytest.raises(ValueError, match=r"^must be one of PLAINTEXT, SSL$"):
        protocol("tls")


def test_or_default_gives_the_default_for_an_empty_text_only() -> None:
    parse = o.or_default(o.choice("a", "b"), "a")
    assert parse("") == "a" and parse("  ") == "a" and parse("B") == "b"
    with pytest.raises(ValueError, match=r"^must be a or b$"):
        parse("c")


def test_comma_lists() -> None:
    assert o.items(" a, ,b ,") == ("a", "b")
    assert o.items("") == ()
    assert o.comma_list("no broker given")("a:1, b:2") == ("a:1", "b:2")
    assert o.comma_list("none", o.integer())("1,2") == (1, 2)
    with pytest.raises(ValueError, match=r"^no broker given$"):
        o.comma_list("no broker given")(" , ")
    assert o.numbers("-200, -999") == (-200.0, -999.0)
    assert o.numbers("") == ()
    with pytest.raises(ValueError):
        o.numbers("1,nan")


def test_pair() -> None:
    assert o.pair("-10,200") == (-10.0, 200.0)
    with pytest.raises(ValueError, match="lo must be below hi"):
        o.pair("100,0")
    for bad in ("5", "1,2,3", "a,b", "0,inf"):
        with pytest.raises(ValueError):
            o.pair(bad)


def test_key_values_keep_commas_inside_values() -> None:
    assert o.key_values("") == {}
    assert o.key_values("debug=broker,fetch, linger.ms=5") == {
        "debug": "broker,fetch",
        "linger.ms": "5",
    }
    for bad in ("novalue", "=5"):
        with pytest.raises(ValueError, match="is not k=v"):
            o.key_values(bad)


def test_expecting_rewords_a_refusal() -> None:
    limits = o.expecting("`lo,hi` with lo < hi", o.pair)
    assert limits("0,1") == (0.0, 1.0)
    with pytest.raises(
        ValueError, match=r"^expected `lo,hi` with lo < hi \(lo must be below hi\)$"
    ):
        limits("1,0")


def test_every_declared_default_parses() -> None:
    """A default is text parsed like a variable's: a typo in one would fail every start."""
    from dataflow.admin import WAIT_OPTIONS
    from dataflow.config import OPTIONS as DATAFLOW
    from dataflow.security import SECURITY_OPTIONS
    from notifier.config import OPTIONS as NOTIFIER
    from producer.settings import OPTIONS as PRODUCER

    for option in (*DATAFLOW, *SECURITY_OPTIONS, *NOTIFIER, *PRODUCER, *WAIT_OPTIONS):
        value = Reader({})(option)
        assert not (isinstance(value, float) and math.isnan(value)), option.env


# --- documentation ----------------------------------------------------------------------------


def test_help_lists_every_option_with_its_variable_and_default() -> None:
    parser = argparse.ArgumentParser(prog="p")
    count = Option("COUNT", "", o.unlimited(o.integer(0)), "Stop after N.", flag="--count")
    o.add_options(parser, (RATE, count, WINDOW, REALTIME))
    text = " ".join(parser.format_help().split())
    assert "--rate N Messages per second. [env PRODUCER_RATE; default: 0]" in text
    assert "[env COUNT; default: unset]" in text
    assert "--realtime [REALTIME]" in text
    assert "environment variables: WINDOW_SECONDS (default: 5): W." in text


def test_env_section_lists_a_row_per_option_a_long_help_wrapped_under_it() -> None:
    long = Option("LONG_ONE", "", o.text, " ".join(["word"] * 60))
    section = o.env_section((WINDOW, long, RATE))
    lines = section.splitlines()
    assert lines[:2] == ["environment variables:", "  WINDOW_SECONDS (default: 5): W."]
    assert lines[2].startswith("  LONG_ONE (default: unset): word word")
    rest = lines[3:-1]
    assert rest and all(line.startswith("      word") for line in rest)
    assert all(len(line) <= o.HELP_WIDTH for line in lines)
    assert " ".join(section.split()).count("word") == 60
    assert lines[-1] == "  PRODUCER_RATE (default: 0): Messages per second."
    assert section.endswith("\n")
    assert o.env_section((WINDOW,), "settings").startswith("settings:\n  WINDOW_SECONDS")


def test_argparse_help_lists_options_without_a_flag_as_env_section_does() -> None:
    parser = argparse.ArgumentParser(prog="p", formatter_class=argparse.RawDescriptionHelpFormatter)
    o.add_options(parser, (RATE, WINDOW))
    assert f"{o.ENV_TITLE}:\n  {o.env_rows((WINDOW,))}\n" in parser.format_help()


def test_help_of_an_option_without_a_flag_escapes_percent() -> None:
    parser = argparse.ArgumentParser(prog="p")
    o.add_options(parser, (Option("FMT", "", o.text, "strptime, e.g. %d/%m"),))
    assert "e.g. %d/%m" in parser.format_help()


def test_flags_default_to_none_so_the_reader_sees_the_variable() -> None:
    assert parsed(RATE, argv=[]).rate is None


def test_env_docs_and_the_readme_table_come_from_the_declarations() -> None:
    unset = Option("LOG_SENT", "", o.optional_text, "A | B, with %% escaped.", flag="--log-sent")
    assert o.env_docs((WINDOW, unset)) == {
        "WINDOW_SECONDS": ("5", "W."),
        "LOG_SENT": ("", "A | B, with %% escaped."),
    }
    assert o.markdown_table((WINDOW, unset)) == (
        "| variable | default | meaning |\n"
        "|---|---|---|\n"
        "| `WINDOW_SECONDS` | `5` | W. |\n"
        "| `LOG_SENT` | (unset) | A \\| B, with % escaped. |\n"
    )
    assert o.markdown_table((RATE, WINDOW), flags=True).splitlines() == [
        "| variable | flag | default | meaning |",
        "|---|---|---|---|",
        "| `PRODUCER_RATE` | `--rate` | `0` | Messages per second. |",
        "| `WINDOW_SECONDS` |  | `5` | W. |",
    ]


def test_the_rendered_dataflow_table_agrees_with_the_documented_rows() -> None:
    """Each row ``markdown_table`` renders for the dataflow has docs/configuration.md's default."""
    from dataflow.config import OPTIONS
    from tests.checkout import ROOT

    readme = (ROOT / "docs" / "configuration.md").read_text().splitlines()
    for row in o.markdown_table(OPTIONS).splitlines()[2:]:
        name, default = (cell.strip() for cell in row.strip("|").split(" | ")[:2])
        line = next((line for line in readme if line.startswith(f"| {name} |")), None)
        assert line is not None, name
        assert line.split(" | ")[1].strip() == default, (line, default)


def test_dest_and_label() -> None:
    assert RATE.dest == "rate" and RATE.label == "--rate (env PRODUCER_RATE)"
    assert WINDOW.dest == "window_seconds" and WINDOW.label == "WINDOW_SECONDS"
    assert Option("X", "", o.text, "", flag="--sensor-id-column").dest == "sensor_id_column"


def test_the_documented_producer_table_is_the_one_rendered_from_its_declarations() -> None:
    from producer.settings import OPTIONS as PRODUCER_OPTIONS
    from tests.checkout import ROOT

    table = o.markdown_table(PRODUCER_OPTIONS, flags=True).rstrip("\n")
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert table in page, "docs/configuration.md's producer table has drifted"


# --- secrets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.key.pem",
        "ssl_key",
        "sasl.oauthbearer.config",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.assertion.private.key.passphrase",
        "sasl.jaas.config",
        "KAFKA_SASL_PASSWORD",
    ],
)
def test_secret_settings_are_recognised(key: str) -> None:
    assert o.is_secret(key)
    assert o.redacted_config({key: "pw", "linger.ms": "5"}) == {key: "***", "linger.ms": "5"}


@pytest.mark.parametrize("key", ["linger.ms", "debug", "ssl.key.location", "sasl.username"])
def test_other_settings_are_shown(key: str) -> None:
    assert not o.is_secret(key)


def test_redact_key_values_keeps_the_keys_and_hides_the_secrets() -> None:
    assert o.redact_key_values("debug=broker,fetch, sasl.password=a,b,linger.ms=5") == (
        "debug=broker,fetch,sasl.password=***,***,linger.ms=5"
    )
    assert o.redact_key_values("sasl.password:pw,x=1") == "***,x=1"


def test_a_refused_part_is_named_by_position_and_hidden_if_it_may_be_secret() -> None:
    with pytest.raises(ValueError, match=r"^part 2, '=x', is not k=v$"):
        o.key_values("a=1,=x")
    with pytest.raises(ValueError) as exc:
        o.key_values("sasl.password=a,=pw")
    assert str(exc.value) == "part 2, not shown as it may hold a secret, is not k=v"


def test_an_option_s_redact_hides_its_text_in_both_message_shapes() -> None:
    """The text, and the parser's reason, which may quote it (int()'s does)."""
    secret = Option("X_PASSWORD", "", o.integer(), "", redact=o.hidden)
    flagged = Option("X_PASSWORD", "", o.integer(), "", flag="--password", redact=o.hidden)
    with pytest.raises(OptionError) as exc:
        Reader({"X_PASSWORD": " s3cret "})(secret)
    assert str(exc.value) == (
        "X_PASSWORD='***': expected an integer (invalid literal for int() with base 10: '***')"
    )
    with pytest.raises(OptionError) as exc:
        Reader({}, {"password": "s3cret"})(flagged)
    assert "value '***' (from flag --password)" in str(exc.value)
    assert "s3cret" not in str(exc.value) and "s3cret" not in repr(exc.value)


@pytest.mark.parametrize(
    "good", ["kafka", "h:9092", "h:65535", "[::1]:9092", "[::1]", "SSL://h:9093"]
)
def test_a_broker_without_a_port_or_with_one_in_range_is_taken(good: str) -> None:
    assert o.broker(f" {good} ") == good


@pytest.mark.parametrize("bad", ["h:0", "h:65536", "h:abc", "h:", "[::1]:99999"])
def test_a_broker_port_out_of_range_is_refused_naming_it(bad: str) -> None:
    with pytest.raises(ValueError, match=f"the port of '{re.escape(bad)}' must be 1-65535"):
        o.broker(bad)
