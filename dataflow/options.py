"""Settings from one declaration: flag > environment variable > default, typed, with ``--help``.

Every program of the project (the dataflow, the producer, the notifier, the broker wait) declares
its settings as :class:`Option` values: the variable, an optional flag, the default as text, a
parser from text to a typed value, a help line. From that one declaration come

- the value (:class:`Reader`: the flag if given, else the variable if set, else the default),
- one error per bad value (:class:`OptionError`) naming the flag and/or the variable, the text
  and where it came from,
- ``--help`` (:func:`add_options`: each flag with its variable and default; options without a
  flag listed as environment variables, as :func:`env_section` lists them for the programs
  that have no flags),
- the tables of docs/configuration.md (:func:`markdown_table`) and ``name -> (default, help)`` maps
  (:func:`env_docs`), so documentation cannot drift from what the code reads,
- for a setting that is or may hold a secret, errors that never show it (``redact``:
  :func:`hidden`, :func:`redact_key_values`); the settings classes' reprs hide theirs with
  :func:`redacted_repr`.

Why the standard library's argparse with environment defaults, not click or pydantic-settings:
it adds no dependency (neither is pinned in requirements.txt), the producer and the scripts
already use argparse, and flags must win over variables for the producer while the dataflow and
the notifier read variables only; argparse gives the flags and ``--help``, and this module the
precedence and the typed parsing both sides share. pydantic-settings would bring pydantic (a
compiled dependency) for a dozen scalar types and word errors its own way, where operators and
tests know these; click would own the command line, which ``python -m dataflow`` cannot give up
(it hands its arguments to ``bytewax.run``: its options have no flag). A parser is a plain
function ``str -> T`` that raises ``ValueError`` with a human reason; the reader adds the names.
There is one boolean parser (:func:`boolean`), used by every program.

Pure: no Kafka, no process state; :class:`Reader` takes the environment as a mapping (only
:func:`read_settings` falls back to ``os.environ`` when given none, as each program's
``Settings.from_env`` does).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Parser = Callable[[str], T]

#: Origins of a value, as errors and :meth:`Reader.origin` report them.
DEFAULT = "default"


class OptionError(ValueError):
    """A bad setting; the message names it (flag and variable), its text and where it came from.

    Two shapes, as the programs have always worded them: an option with a flag,
    ``invalid --rate (env PRODUCER_RATE) value '-1' (from env PRODUCER_RATE): must be >= 0``;
    an environment-only one, ``WINDOW_SECONDS='five': expected a number of seconds (...)``.
    """

    def __init__(self, option: Option[Any], raw: str, origin: str, reason: str) -> None:
        if option.redact is not None and raw.strip():  # a parser's reason may quote the text
            reason = reason.replace(raw.strip(), option.shown(raw.strip()))
        self.option, self.raw, self.origin, self.reason = option, raw, origin, reason
        if option.flag is None:  # the variable's value as the program read it: stripped
            text = f"{option.env}={option.shown(raw.strip())!r}: {reason}"
        else:
            text = f"invalid {option.label} value {option.shown(raw)!r} (from {origin}): {reason}"
        super().__init__(text)


class Expected(ValueError):
    """The text is not of the option's type: worded ``expected <what> (<detail>)``."""

    def __init__(self, what: str, detail: str = "") -> None:
        self.short = f"expected {what}"
        super().__init__(self.short + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class Option(Generic[T]):
    """One setting.

    ``default`` is text, parsed like a value from the environment (``""``: unset; the parser
    decides what that means). ``bare`` is the value of the flag given without one (``--realtime``
    alone means ``true``). ``redact`` gives the text as an error message may show it, for a
    setting that is or may hold a secret (:func:`hidden`, :func:`redact_key_values`).
    """

    env: str
    default: str
    parse: Parser[T]
    help: str
    flag: str | None = None
    metavar: str | None = None
    bare: str | None = None
    redact: Callable[[str], str] | None = None

    def shown(self, raw: str) -> str:
        """``raw`` as a message may show it: secrets redacted."""
        return raw if self.redact is None else self.redact(raw)

    @property
    def dest(self) -> str:
        """The attribute name argparse stores the flag under."""
        if self.flag is None:
            return self.env.lower()
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def label(self) -> str:
        """How messages name it: ``--rate (env PRODUCER_RATE)`` or ``PRODUCER_RATE``."""
        return self.env if self.flag is None else f"{self.flag} (env {self.env})"

    @property
    def shown_default(self) -> str:
        return self.default if self.default else "unset"


class Reader:
    """Resolves options: the flag (from parsed arguments) > the variable > the default.

    ``flags`` is argparse's namespace (or a mapping of ``dest`` to text), ``None`` where a flag
    was not given.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        flags: argparse.Namespace | Mapping[str, str | None] | None = None,
    ) -> None:
        self.env = env
        if isinstance(flags, argparse.Namespace):
            flags = vars(flags)
        self._flags: Mapping[str, str | None] = flags or {}

    def raw(self, option: Option[Any]) -> tuple[str, str]:
        """The text of ``option`` as given, and where it came from."""
        given = self._flags.get(option.dest) if option.flag is not None else None
        if given is not None:
            return given, f"flag {option.flag}"
        if option.env in self.env:
            return self.env[option.env], f"env {option.env}"
        return option.default, DEFAULT

    def text(self, option: Option[Any]) -> str:
        """The text, stripped."""
        return self.raw(option)[0].strip()

    def origin(self, option: Option[Any]) -> str:
        return self.raw(option)[1]

    def __call__(self, option: Option[T]) -> T:
        """The typed value; ``OptionError`` if the parser refuses the text."""
        raw, origin = self.raw(option)
        try:
            return option.parse(raw.strip())
        except (ValueError, TypeError) as exc:
            # A flag's message is longer already: Python's own wording of the refusal is left
            # to the variables' (the dataflow's and the notifier's, as they have always had it).
            reason = exc.short if option.flag and isinstance(exc, Expected) else str(exc)
            raise OptionError(option, raw, origin, reason) from None

    def fail(self, option: Option[Any], reason: str) -> OptionError:
        """An error about ``option``'s current value, for checks across settings."""
        raw, origin = self.raw(option)
        return OptionError(option, raw, origin, reason)

    def check(self, option: Option[Any], ok: bool, what: str) -> None:
        """Raise ``must be <what>`` about ``option`` unless ``ok``."""
        if not ok:
            raise self.fail(option, f"must be {what}")


class Registry(list[Option[Any]]):
    """A program's options in the order they are declared (the order ``--help`` and
    docs/configuration.md list them): each settings module declares into its own."""

    def declare(
        self,
        env: str,
        default: str,
        parse: Parser[T],
        help: str,
        redact: Callable[[str], str] | None = None,
    ) -> Option[T]:
        option = Option(env, default, parse, help, redact=redact)
        self.append(option)
        return option


def read_settings(
    read: Callable[[Reader], T],
    env: Mapping[str, str] | None,
    error: Callable[[str], Exception],
    *also: type[Exception],
) -> T:
    """``read`` with a :class:`Reader` of ``env`` (``os.environ`` when ``None``): how a program
    reads its settings. An :class:`OptionError`, or an exception of a type in ``also`` (checks
    made outside this layer), is raised again as ``error(message)``, the program's own
    configuration error, with the message unchanged and no traceback of the parse."""
    caught: tuple[type[Exception], ...] = (OptionError, *also)
    try:
        return read(Reader(os.environ if env is None else env))
    except caught as exc:
        raise error(str(exc)) from None


# --- Parsers: text -> value, ValueError with a human reason. ----------------------------------


def text(raw: str) -> str:
    """Any text, stripped (empty allowed)."""
    return raw.strip()


def non_empty(reason: str = "must not be empty") -> Parser[str]:
    """Text that must not be empty (stripped); ``reason`` words the refusal."""

    def parse(raw: str) -> str:
        value = raw.strip()
        if not value:
            raise ValueError(reason)
        return value

    return parse


def choice(
    *choices: str, fold: Callable[[str], str] = str.lower, reason: str | None = None
) -> Parser[str]:
    """One of ``choices``, in any case: the text is given through ``fold`` (lower-case by
    default; ``str.upper`` where the choices are upper-case). ``reason`` words the refusal
    (default ``must be a, b or c``)."""

    def parse(raw: str) -> str:
        value = fold(raw.strip())
        if value not in choices:
            raise ValueError(reason or f"must be {', '.join(choices[:-1])} or {choices[-1]}")
        return value

    return parse


def optional_text(raw: str) -> str | None:
    """Empty: ``None``."""
    return raw.strip() or None


TRUE = ("1", "true", "yes", "on", "y")
FALSE = ("0", "false", "no", "off", "n")


def boolean(raw: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off, y/n), any case. Empty is refused: give a
    default."""
    low = raw.strip().lower()
    if low in TRUE:
        return True
    if low in FALSE:
        return False
    raise Expected("true or false")


def _bound_text(lo: float | None, hi: float | None, strict: bool) -> str | None:
    def show(bound: float) -> str:
        return f"{bound:g}" if isinstance(bound, float) else str(bound)

    if lo is not None and hi is not None:
        return f"between {show(lo)} and {show(hi)}"
    if lo is not None:
        return f"{'>' if strict else '>='} {show(lo)}"
    return None if hi is None else f"<= {show(hi)}"


def integer(lo: int | None = None, hi: int | None = None, what: str = "an integer") -> Parser[int]:
    """An integer within ``lo..hi`` (inclusive, either optional)."""

    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError as exc:
            raise Expected(what, str(exc)) from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ValueError(f"must be {_bound_text(lo, hi, False)}")
        return value

    return parse


def finite(raw: str) -> float:
    """A finite float (``nan`` and ``inf`` refused), or ``ValueError``."""
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


def number(
    lo: float | None = None,
    hi: float | None = None,
    *,
    strict: bool = False,
    what: str = "a number",
) -> Parser[float]:
    """A finite number at least ``lo`` (above it when ``strict``) and at most ``hi``."""

    def parse(raw: str) -> float:
        try:
            value = finite(raw.strip())
        except ValueError as exc:
            raise Expected(what, str(exc)) from None
        low = lo is not None and (value <= lo if strict else value < lo)
        if low or (hi is not None and value > hi):
            raise ValueError(f"must be {_bound_text(lo, hi, strict)}")
        return value

    return parse


def optional(parse: Parser[T], none: Sequence[str] = ("",)) -> Parser[T | None]:
    """``parse``, but the texts ``none`` (any case) mean ``None``."""

    def wrapped(raw: str) -> T | None:
        return None if raw.strip().lower() in none else parse(raw)

    return wrapped


def or_default(parse: Parser[T], default: T) -> Parser[T]:
    """``parse``, but an empty text means ``default``, as ``${VAR:-default}`` does in the
    scripts (a variable set to nothing is not a bad value)."""

    def wrapped(raw: str) -> T:
        return parse(raw) if raw.strip() else default

    return wrapped


def unlimited(parse: Parser[T]) -> Parser[T | None]:
    """A limit: empty, ``none``, ``unlimited``, ``inf`` or 0 mean none (``None``)."""
    inner = optional(parse, ("", "none", "unlimited", "inf"))

    def wrapped(raw: str) -> T | None:
        value = inner(raw)
        return None if value == 0 else value

    return wrapped


def items(raw: str) -> tuple[str, ...]:
    """A comma list, parts stripped, empty parts dropped (may be empty)."""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def comma_list(what: str, each: Parser[Any] | None = None) -> Parser[tuple[Any, ...]]:
    """A non-empty comma list (``what`` names the missing item), each part through ``each``."""

    def parse(raw: str) -> tuple[Any, ...]:
        parts = items(raw)
        if not parts:
            raise ValueError(what)
        return parts if each is None else tuple(each(part) for part in parts)

    return parse


def broker(raw: str) -> str:
    """A bootstrap server, ``host[:port]``: a port given must be 1-65535, which librdkafka
    does not check (``127.0.0.1:99999`` connected to another port). A part after the last
    colon with ``/`` or ``]`` in it is not a port (``SSL://host``, ``[::1]``)."""
    text = raw.strip()
    _, sep, port = text.rpartition(":")
    if sep and not any(c in port for c in "/]") and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"the port of {text!r} must be 1-65535")
    return text


def numbers(raw: str) -> tuple[float, ...]:
    """A comma list of finite numbers (may be empty)."""
    return tuple(number()(part) for part in items(raw))


def pair(raw: str) -> tuple[float, float]:
    """``lo,hi``: two finite numbers with lo < hi."""
    lo, hi = (finite(part) for part in raw.split(","))
    if not lo < hi:
        raise ValueError("lo must be below hi")
    return lo, hi


def key_values(raw: str) -> dict[str, str]:
    """``k=v,k=v``; a part without ``=`` continues the previous value, because librdkafka lists
    are comma-separated themselves (``debug=broker,fetch,linger.ms=5``). A refusal names the
    part by its position and shows it only if it cannot be (part of) a secret."""
    out: dict[str, str] = {}
    key = ""
    for number, (part, hide) in enumerate(_key_value_parts(raw), 1):
        name, sep, val = part.partition("=")
        if sep and name.strip():
            key = name.strip()
            out[key] = val.strip()
        elif not sep and key:
            out[key] += "," + part
        else:
            if hide:
                raise ValueError(f"part {number}, not shown as it may hold a secret, is not k=v")
            raise ValueError(f"part {number}, {part!r}, is not k=v")
    return out


# --- Secrets: what messages and reprs never show. ---------------------------------------------

#: What a message or a repr shows instead of a secret.
REDACTED = "***"

# Names of settings whose values are secret, or may hold one: passwords, keys, tokens, and
# librdkafka's settings that embed credentials (sasl.oauthbearer.config, sasl.jaas.config).
# Broad on purpose: hiding a harmless value costs little, showing a password costs a lot.
_SECRET_NAME = re.compile(
    r"passw|secret|passphrase|token|credential|private|key\.pem|ssl_key|api.?key|jaas|"
    r"oauthbearer\.(config|extensions)",
    re.IGNORECASE,
)


def is_secret(name: str) -> bool:
    """Whether the setting ``name`` (a librdkafka key, a variable) is or may hold a secret."""
    return bool(_SECRET_NAME.search(name))


def hidden(raw: str) -> str:
    """``redact`` of a setting that is a secret: never shown."""
    return REDACTED


def _key_value_parts(raw: str) -> list[tuple[str, bool]]:
    """The parts of a ``k=v,k=v`` text, each with whether it may be (part of) a secret: the
    value of a secret key, a part continuing one, or a part that names a secret itself (as in
    ``sasl.password:pw``, a mistyped ``=``)."""
    out = []
    hiding = False
    for part in items(raw):
        name, sep, _ = part.partition("=")
        if sep and name.strip():
            hiding = is_secret(name)
            out.append((part, hiding))
        else:
            out.append((part, hiding or is_secret(part)))
    return out


def redact_key_values(raw: str) -> str:
    """A ``k=v,k=v`` text (:func:`key_values`) as a message may show it: the keys, and the
    values that cannot be secrets."""
    shown = []
    for part, hide in _key_value_parts(raw):
        name, sep, _ = part.partition("=")
        if not hide:
            shown.append(part)
        elif sep and name.strip():
            shown.append(f"{name.strip()}={REDACTED}")
        else:
            shown.append(REDACTED)
    return ",".join(shown)


def redacted_config(config: Mapping[str, str]) -> dict[str, str]:
    """Client settings as a log or a repr may show them: secret values :data:`REDACTED`."""
    return {key: REDACTED if is_secret(key) else value for key, value in config.items()}


def redacted_repr(obj: Any, **shown: object) -> str:
    """The dataclass repr of ``obj``, with the values of ``shown`` in place of its fields'
    (the settings classes' ``__repr__``: their passwords never reach a log or a traceback)."""
    fields = ", ".join(
        f"{f.name}={shown[f.name] if f.name in shown else getattr(obj, f.name)!r}"
        for f in dataclasses.fields(obj)
        if f.repr
    )
    return f"{type(obj).__qualname__}({fields})"


def masked(secret: str | None) -> str | None:
    """A secret as :func:`redacted_repr` shows it: ``None`` if unset, else :data:`REDACTED`."""
    return None if secret is None else REDACTED


def expecting(what: str, parse: Parser[T]) -> Parser[T]:
    """``parse``, its ``ValueError`` reworded ``expected <what> (<reason>)``."""

    def wrapped(raw: str) -> T:
        try:
            return parse(raw)
        except (ValueError, TypeError) as exc:
            raise Expected(what, str(exc)) from None

    return wrapped


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def level_name(raw: str) -> str:
    """A Python logging level's name, upper-cased."""
    value = raw.strip().upper()
    if value not in LOG_LEVELS:
        raise ValueError("must be a logging level name")
    return value


# --- Documentation from the declarations. -----------------------------------------------------


def env_docs(options: Iterable[Option[Any]]) -> dict[str, tuple[str, str]]:
    """``variable -> (default, help)``, in declaration order."""
    return {option.env: (option.default, option.help) for option in options}


#: Width of the rows :func:`env_rows` wraps, as the programs' hand-written help paragraphs.
HELP_WIDTH = 90
ENV_TITLE = "environment variables"


def env_rows(options: Iterable[Option[Any]]) -> str:
    """A row per option, ``  NAME (default: D): help``, a long one wrapped under itself."""
    return "\n".join(
        textwrap.fill(
            f"{option.env} (default: {option.shown_default}): {option.help}",
            HELP_WIDTH,
            initial_indent="  ",
            subsequent_indent="      ",
            break_long_words=False,
            break_on_hyphens=False,
        )
        for option in options
    )


def env_section(options: Iterable[Option[Any]], title: str = ENV_TITLE) -> str:
    """``title:`` and :func:`env_rows`: how a ``--help`` lists settings that have no flag."""
    return f"{title}:\n{env_rows(options)}\n"


def add_options(parser: argparse.ArgumentParser, options: Iterable[Option[Any]]) -> None:
    """Add a flag per option that has one, its help ending ``[env X; default: D]``; options
    without a flag are listed in a group of environment variables, a line each (with
    ``argparse.RawDescriptionHelpFormatter``; other formatters reflow them). Flags default to
    ``None`` so that :class:`Reader` can tell a flag from a variable."""
    env_only: list[Option[Any]] = []
    for option in options:
        if option.flag is None:
            env_only.append(option)
            continue
        extra: dict[str, Any] = {} if option.bare is None else {"nargs": "?", "const": option.bare}
        parser.add_argument(
            option.flag,
            dest=option.dest,
            metavar=option.metavar,
            default=None,
            help=f"{option.help} [env {option.env}; default: {option.shown_default}]",
            **extra,
        )
    if env_only:
        parser.add_argument_group(ENV_TITLE, env_rows(env_only))


def markdown_table(options: Iterable[Option[Any]], *, flags: bool = False) -> str:
    """The documentation's table of ``options``: ``| variable | default | meaning |`` (with a flag
    column when ``flags``); an empty default shows as ``(unset)``."""
    head = ["variable", *(["flag"] if flags else []), "default", "meaning"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for option in options:
        cells = [f"`{option.env}`"]
        if flags:
            cells.append(f"`{option.flag}`" if option.flag else "")
        cells.append(f"`{option.default}`" if option.default else "(unset)")
        cells.append(option.help.replace("%%", "%").replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
