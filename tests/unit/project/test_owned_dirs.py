"""The scripts delete and re-make only directories they made themselves.

``scripts/broker.sh`` replaces its jar cache (``KAFKA_JARS_DIR``) when the pom changes and its TLS
certificates (``$BROKER_DIR/tls``) when they expire; ``scripts/rpk.sh`` replaces
``$RPK_CACHE_DIR/rpk-<version>``. Those paths are the user's to set, so a directory the script did
not make (no marker file in it) must come out untouched, with one line saying why. Maven, Java and
Go are fakes here: the first writes the one jar the broker's check looks for, the second answers
the version check and fails anything else (so ``start`` stops before any broker runs), the third
"builds" a script that answers ``--version``.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.checkout import ROOT

BROKER_SH = ROOT / "scripts" / "broker.sh"
RPK_SH = ROOT / "scripts" / "rpk.sh"
MARKER = ".sensor-anomaly-owned"
[KAFKA_VERSION] = re.findall(r'^readonly KAFKA_VERSION="([^"]+)"$', BROKER_SH.read_text(), re.M)
KAFKA_JAR = f"kafka_2.13-{KAFKA_VERSION}.jar"
[RPK_VERSION] = re.findall(
    r"^\s*github\.com/redpanda-data/redpanda/src/go/rpk (v\S+)",
    (ROOT / "scripts" / "rpk" / "go.mod").read_text(),
    re.M,
)

FAKE_MVN = f"""#!/usr/bin/env bash
echo "$@" >>"$FAKE_LOG"
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${{arg#-DoutputDirectory=}}" ;; esac
done
: >"$out/{KAFKA_JAR}"
"""
FAKE_JAVA = """#!/usr/bin/env bash
if [[ "$1" == -XshowSettings:properties ]]; then
  echo "    java.specification.version = 21" >&2
  exit 0
fi
echo "fake java: no JVM here" >&2
exit 1
"""
FAKE_GO = """#!/usr/bin/env bash
echo "$@" >>"$FAKE_LOG"
case "$1" in
  env) echo go1.24.0 ;;
  build)
    while (($# > 0)); do [[ "$1" != -o ]] || out="$2"; shift; done
    printf '#!/bin/sh\\nexit 0\\n' >"$out"
    chmod 755 "$out"
    ;;
esac
"""


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _user_dir(path: Path) -> dict[str, str]:
    """A directory of the user's own: two files, one hidden."""
    path.mkdir(parents=True, exist_ok=True)
    files = {"notes.txt": "mine\n", ".profile": "export EDITOR=vi\n"}
    for name, text in files.items():
        (path / name).write_text(text)
    return files


def _contents(path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in path.iterdir()}


class Fakes:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.log = tmp / "fake.log"
        bin_dir = tmp / "bin"
        _executable(bin_dir / "mvn", FAKE_MVN)
        self.go = _executable(bin_dir / "go", FAKE_GO)
        _executable(tmp / "jdk" / "bin" / "java", FAKE_JAVA)
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "JAVA_HOME": str(tmp / "jdk"),
            "PYTHON": sys.executable,
            "XDG_CACHE_HOME": str(tmp / "cache"),
            "BROKER_DIR": str(tmp / "broker"),
            "KAFKA_PORT": str(_free_port()),
            "KAFKA_CONTROLLER_PORT": str(_free_port()),
            "FAKE_LOG": str(self.log),
        }

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def run(self, script: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start_broker(self, jars: Path, **env: str) -> subprocess.CompletedProcess[str]:
        return self.run(BROKER_SH, "start", KAFKA_JARS_DIR=str(jars), **env)


@pytest.fixture
def fakes(tmp_path: Path) -> Fakes:
    return Fakes(tmp_path)


def _refusal(proc: subprocess.CompletedProcess[str], path: Path) -> str:
    """The one error line, which must name the directory."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert f"{path} is not" in errors[0] and "will not delete it" in errors[0]
    return errors[0]


def test_a_users_directory_as_kafka_jars_dir_survives(fakes: Fakes) -> None:
    home = fakes.tmp / "home"
    files = _user_dir(home)
    proc = fakes.start_broker(home)
    line = _refusal(proc, home)
    assert "set KAFKA_JARS_DIR to a new or empty directory" in line
    assert _contents(home) == files
    assert fakes.calls() == [], "refused before Maven ran"
    assert not list(fakes.tmp.glob("home.tmp.*")), "no download left behind"


def test_a_file_as_kafka_jars_dir_survives(fakes: Fakes) -> None:
    path = fakes.tmp / "file"
    path.write_text("mine\n")
    line = _refusal(fakes.start_broker(path), path)
    assert "is not a directory" in line
    assert path.read_text() == "mine\n"


def test_the_jar_cache_broker_sh_made_is_fetched_again_when_the_pom_changes(
    fakes: Fakes,
) -> None:
    jars = fakes.tmp / "jars"
    jars.mkdir()  # an empty directory may be used
    first = fakes.start_broker(jars)
    assert "fake java: no JVM here" in first.stderr, first.stderr  # got past the jars
    assert (jars / KAFKA_JAR).exists() and (jars / MARKER).exists()
    assert len(fakes.calls()) == 1

    # The pom changed (another hash), and the old classpath had a jar the new one has not.
    (jars / ".complete").write_text("0" * 64 + "\n")
    (jars / "old-dependency.jar").write_text("")
    fakes.start_broker(jars)
    assert len(fakes.calls()) == 2
    assert sorted(_contents(jars)) == sorted([".complete", MARKER, KAFKA_JAR])


def test_a_jar_cache_from_before_the_marker_is_still_fetched_again(fakes: Fakes) -> None:
    """What broker.sh left before it wrote markers (.complete and jars) is still its own."""
    jars = fakes.tmp / "jars"
    jars.mkdir()
    (jars / ".complete").write_text("0" * 64 + "\n")
    (jars / "old-dependency.jar").write_text("")
    fakes.start_broker(jars)
    assert sorted(_contents(jars)) == sorted([".complete", MARKER, KAFKA_JAR])


def test_jars_without_the_old_cache_file_are_the_users(fakes: Fakes) -> None:
    """A directory of jars alone is not one broker.sh made: it always wrote .complete."""
    jars = fakes.tmp / "lib"
    jars.mkdir()
    (jars / "mine.jar").write_text("mine\n")
    _refusal(fakes.start_broker(jars), jars)
    assert _contents(jars) == {"mine.jar": "mine\n"}


def test_a_users_tls_directory_in_broker_dir_survives(fakes: Fakes) -> None:
    """BROKER_DIR=$HOME with a ~/tls of one's own: the certificates are not made over it."""
    if subprocess.run(["sh", "-c", "command -v openssl"], capture_output=True).returncode:
        pytest.skip("openssl is not installed (Debian package openssl)")
    jars = fakes.tmp / "jars"
    fakes.start_broker(jars)  # a complete cache, so that the next start reaches the TLS files
    home = fakes.tmp / "home"
    files = _user_dir(home / "tls")
    proc = fakes.start_broker(jars, BROKER_DIR=str(home), KAFKA_SSL_PORT=str(_free_port()))
    line = _refusal(proc, home / "tls")
    assert "set BROKER_DIR to another directory" in line
    assert _contents(home / "tls") == files
    assert not list(home.glob("tls.tmp.*"))


def test_a_users_rpk_directory_survives(fakes: Fakes) -> None:
    cache = fakes.tmp / "rpk-cache"
    install = cache / f"rpk-{RPK_VERSION}"
    files = _user_dir(install)
    proc = fakes.run(RPK_SH, "build", RPK_CACHE_DIR=str(cache), GO=str(fakes.go))
    line = _refusal(proc, install)
    assert "set RPK_CACHE_DIR to another directory" in line
    assert _contents(install) == files
    assert not [call for call in fakes.calls() if call.startswith("build")]


def test_rpk_sh_marks_the_directory_it_builds_into(fakes: Fakes) -> None:
    cache = fakes.tmp / "rpk-cache"
    proc = fakes.run(RPK_SH, "build", RPK_CACHE_DIR=str(cache), GO=str(fakes.go))
    install = cache / f"rpk-{RPK_VERSION}"
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(install / "rpk")
    assert sorted(_contents(install)) == sorted([MARKER, "rpk"])
