"""The documentation's `rpk topic consume anomalies` and `kcat` commands, run for real.

A dataflow run (docker-compose.yml's services through entrypoint.sh, overheat scenario) fills
a unique anomalies topic; every command of README.md and docs/*.md that reads `anomalies` is
then run against the local broker with only the topic, the broker address and the record count
substituted, and its output must be exactly what the broker holds, including machine 2's alert.

rpk comes from `scripts/rpk.sh` (built from the Go module proxy and cached; about 4 minutes
the first time). If Go or kcat is missing, or rpk cannot be built, the test that needs it fails
under `make test` (REQUIRE_TOOLS=1, see tests/tools.py) and otherwise skips with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient

from tests.integration.conftest import BROKERS, ROOT, consume_all
from tests.integration.test_entrypoint import compose_pipeline
from tests.tools import go_built, require_tool

RPK_SH = ROOT / "scripts" / "rpk.sh"
GO_MOD = (ROOT / "scripts" / "rpk" / "go.mod").read_text()
GO_SUM = (ROOT / "scripts" / "rpk" / "go.sum").read_text()
# README.md and the reference pages it links (docs/), where the commands live.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README = "\n".join(page.read_text() for page in PAGES)
RPK_MODULE = "github.com/redpanda-data/redpanda/src/go/rpk"
Record = tuple[str, str, int, int]  # key, value, partition, offset


def readme_command_lines() -> list[str]:
    """Lines of fenced code blocks, and inline code spans, of the README and docs/."""
    lines, fenced = [], False
    for line in README.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced:
            lines.append(line)
        else:
            lines.extend(re.findall(r"`([^`]+)`", line))
    return lines


def readme_rpk_commands() -> list[list[str]]:
    """rpk's arguments in every README command that consumes `anomalies`."""
    out = []
    for line in readme_command_lines():
        if "topic consume anomalies" not in line:
            continue
        tokens = shlex.split(line, comments=True)
        for i, token in enumerate(tokens):
            if token in ("rpk", "scripts/rpk.sh") and tokens[i + 1 : i + 4] == [
                "topic",
                "consume",
                "anomalies",
            ]:
                out.append(tokens[i + 1 :])
    return out


def readme_kcat_commands() -> list[list[str]]:
    out = []
    for line in readme_command_lines():
        if not line.startswith("kcat "):
            continue
        tokens = shlex.split(line, comments=True)
        if (
            tokens[:1] == ["kcat"]
            and "-t" in tokens
            and tokens[tokens.index("-t") + 1] == "anomalies"
        ):
            out.append(tokens[1:])
    return out


def set_option(args: list[str], names: tuple[str, ...], value: str) -> list[str]:
    """Replace the value of the first of ``names`` in ``args``, or append ``names[0] value``."""
    args = list(args)
    for i, arg in enumerate(args):
        if arg in names:
            args[i + 1] = value
            return args
    return [*args, names[0], value]


def rpk_args(readme_args: list[str], topic: str, count: int) -> list[str]:
    args = [*readme_args[:2], topic, *readme_args[3:]]
    brokers = [i for i, a in enumerate(args) if a == "-X" and args[i + 1].startswith("brokers=")]
    if brokers:
        args[brokers[0] + 1] = f"brokers={BROKERS}"
    else:  # `docker compose exec redpanda rpk ...`: inside the container the broker is implied
        args += ["-X", f"brokers={BROKERS}"]
    # rpk blocks until it has --num records: ask for exactly what the topic holds.
    return set_option(args, ("--num", "-n"), str(count))


def parse_json_stream(text: str) -> list[dict]:
    """rpk's default output: one (pretty-printed) JSON object per record."""
    decoder, pos, out = json.JSONDecoder(), 0, []
    while (pos := len(text) - len(text[pos:].lstrip())) < len(text):
        obj, pos = decoder.raw_decode(text, pos)
        out.append(obj)
    return out


def assert_machine_2_alert(values: list[str]) -> None:
    events = [orjson.loads(v) for v in values]
    assert all(isinstance(e, dict) for e in events), "each value is one JSON object"
    assert ("open", "temperature", "2", True) in {
        (e["event"], e["family"], e["sensor_id"], e["threshold_alarm"]) for e in events
    }
    assert {e["sensor_id"] for e in events if e["threshold_alarm"]} == {"2"}


@pytest.fixture(scope="module")
def anomalies(admin: AdminClient, tmp_path_factory) -> Iterator[tuple[str, list[Record]]]:
    """A unique anomalies topic after an overheat run, and what the broker holds in it."""
    with compose_pipeline(admin, tmp_path_factory.mktemp("rpk")) as topics:
        topic = topics["ANOMALIES_TOPIC"]
        records = [
            (m.key().decode(), m.value().decode(), m.partition(), m.offset())
            for m in consume_all(topic)
        ]
        assert records, "the overheat scenario must raise an alert"
        yield topic, sorted(records)


@pytest.fixture(scope="module")
def rpk() -> str:
    """The rpk binary: cached, else built with scripts/rpk.sh, else fail or skip with the reason."""
    return go_built(
        RPK_SH,
        "the README's rpk command (test_readme_kcat_command checks the same records)",
    )


def test_readme_rpk_commands(rpk: str, anomalies: tuple[str, list[Record]]) -> None:
    topic, expected = anomalies
    commands = readme_rpk_commands()
    assert len(commands) >= 3, "Inspecting the output, Run with Docker (container and host)"
    for readme_args in commands:
        args = rpk_args(readme_args, topic, len(expected))
        proc = subprocess.run([rpk, *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"rpk {shlex.join(args)}: {proc.stderr}"
        if "-f" in args or "--format" in args:
            fmt = args[args.index("-f" if "-f" in args else "--format") + 1]
            assert fmt == r"%k %v\n", f"README uses a new format {fmt!r}: teach this test"
            got = sorted(tuple(line.split(" ", 1)) for line in proc.stdout.splitlines())
            assert got == sorted((key, value) for key, value, _, _ in expected), args
        else:
            records = parse_json_stream(proc.stdout)
            assert {r["topic"] for r in records} == {topic}
            got = sorted((r["key"], r["value"], r["partition"], r["offset"]) for r in records)
            assert got == expected, args
        assert_machine_2_alert([value for _, value, _, _ in expected])


def test_readme_kcat_command(anomalies: tuple[str, list[Record]]) -> None:
    require_tool("kcat", "Debian package `kcat`")
    topic, expected = anomalies
    commands = readme_kcat_commands()
    assert commands, "the README shows how to read anomalies with kcat"
    for readme_args in commands:
        args = set_option(set_option(readme_args, ("-b",), BROKERS), ("-t",), topic)
        proc = subprocess.run(["kcat", *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"kcat {shlex.join(args)}: {proc.stderr}"
        lines = proc.stdout.splitlines()
        if "-K" in args:  # README: -K '\t', key TAB value
            assert args[args.index("-K") + 1] == r"\t"
            got = sorted(tuple(line.split("\t", 1)) for line in lines)
            assert got == sorted((key, value) for key, value, _, _ in expected), args
        else:
            assert sorted(lines) == sorted(value for _, value, _, _ in expected), args
        assert_machine_2_alert(lines if "-K" not in args else [v for _, v in got])


# --- scripts/rpk.sh and its pin, without a broker ------------------------------------------


def pinned_version() -> str:
    [version] = re.findall(rf"^\s*{re.escape(RPK_MODULE)} (v\S+)", GO_MOD, flags=re.M)
    return version


def test_rpk_pin_is_consistent_and_verified_by_go_sum() -> None:
    version = pinned_version()
    assert re.fullmatch(r"v0\.0\.0-\d{14}-[0-9a-f]{12}", version), "a pseudo-version"
    assert f"tool {RPK_MODULE}/cmd/rpk" in GO_MOD
    [(replaced, target, target_version)] = re.findall(
        r"^replace (\S+) => (\S+) (\S+)$", GO_MOD, flags=re.M
    )
    assert replaced == "github.com/hamba/avro/v2"
    for module, ver in ((RPK_MODULE, version), (target, target_version)):
        assert f"{module} {ver} h1:" in GO_SUM, f"go.sum must pin {module} {ver}"
        assert f"{module} {ver}/go.mod h1:" in GO_SUM
    assert version in README, "README names the pinned rpk"


def test_rpk_sh_reports_a_missing_go_clearly(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(RPK_SH), "build"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RPK_CACHE_DIR": str(tmp_path), "GO": str(tmp_path / "no-go")},
    )
    assert proc.returncode == 1
    assert "Go not found" in proc.stderr and "Go 1.24+" in proc.stderr
    path = subprocess.run(
        [str(RPK_SH), "path"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RPK_CACHE_DIR": str(tmp_path)},
    )
    assert path.returncode == 1
    assert f"rpk {pinned_version()} is not built yet" in path.stderr
