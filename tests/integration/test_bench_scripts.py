"""The broker benchmarks a person runs by hand run end to end, each once, on a tiny load.

``bench/RESULTS.md`` quotes figures from ``ab.py`` (same-run A/Bs), ``latency.py``, ``soak.py``,
``hotspots.py`` and ``drain.py``; nothing else runs them, so an import, an option or a tiny
drain that breaks one would go unseen until the next session that needs it (``ab.py`` divided by
a zero CPU time on a small load until these tests ran it). Each runs against the real broker
with a load of seconds; the checks are of the report's structure and of the topics it leaves,
never of its speed, which on such loads means nothing. ``harness.py`` has its own test
(``test_bench_harness.py``), the in-process scripts theirs (``tests/unit/project/
test_bench_smoke.py``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from tests.integration.conftest import BROKERS, ROOT, wait_for
from tests.tools import missing

BENCH = ROOT / "bench"
PY_SPY = ROOT / ".venv-bench" / "bin" / "py-spy"
TIMEOUT_S = 600  # ab's ten flow runs, one of them compiling, on a loaded machine
DELETED_WITHIN_S = 30.0


def topics_named(admin: AdminClient, prefix: str) -> set[str]:
    return {t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix)}


def run_script(
    admin: AdminClient, prefix: str, name: str, args: list[str], **env: str
) -> subprocess.CompletedProcess[str]:
    """``bench/<name>.py --brokers <the test broker> args``, with ``env`` added to the
    environment: it must exit 0 and delete the topics it made (named ``<prefix>...``)."""
    before = topics_named(admin, prefix)
    done = subprocess.run(
        [sys.executable, f"{name}.py", "--brokers", BROKERS, *args],
        cwd=BENCH,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"{name}.py exited {done.returncode}:\n{done.stderr[-3000:]}"
    # A deletion the controller has taken may still be listed for a moment.
    wait_for(
        f"{name}.py's topics ({prefix}...) to be deleted",
        lambda: not topics_named(admin, prefix) - before,
        timeout=DELETED_WITHIN_S,
    )
    return done


def report(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def test_ab_compares_two_checkouts_round_by_round(admin: AdminClient, tmp_path: Path) -> None:
    """Two checkouts (the project, and a copy of its ``dataflow/`` that has never run, so its
    compiled code is not cached yet, and has no compiled shard beside it: ``auto`` runs its
    source, where the suite's ``require`` would refuse it): every round of each, the summary,
    the JSON."""
    other = tmp_path / "other"
    shutil.copytree(
        ROOT / "dataflow", other / "dataflow", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path / "ab.json"
    done = run_script(
        admin,
        "ab-",
        "ab",
        [
            "--checkout",
            str(ROOT),
            "--checkout",
            str(other),
            "--workloads",
            "W1",
            "--messages",
            "2000",
            "--runs",
            "2",
            "--json",
            str(out),
        ],
        DATAFLOW_COMPILED="auto",
    )
    assert done.stdout.count("  round 1 ") == 2 and done.stdout.count("  round 2 ") == 2
    assert "## summary" in done.stdout
    data = report(out)
    assert set(data["checkouts"]) == {str(ROOT), str(other)}
    (result,) = data["results"]
    assert result["workload"] == "W1" and result["messages"] == 2000
    assert len(result["rounds"]) == 2
    for rnd in result["rounds"]:
        for co in (str(ROOT), str(other)):
            assert rnd[co] > 0 and math.isfinite(rnd[co])
            assert rnd[f"{co} cpu"] >= 0


def test_ab_refuses_the_same_checkout_twice() -> None:
    done = subprocess.run(
        [sys.executable, "ab.py", "--checkout", str(ROOT), "--checkout", f"{ROOT}/"],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "each --checkout must be a different directory" in done.stderr


def test_latency_reports_every_measure_with_samples(admin: AdminClient, tmp_path: Path) -> None:
    out = tmp_path / "latency.json"
    done = run_script(
        admin,
        "bench-lat-",
        "latency",
        ["--sensors", "20", "--rate", "200", "--seconds", "20", "--json", str(out)],
    )
    assert "target: p99 after window end + lateness" in done.stdout
    data = report(out)
    measure = data["latency_from_close"]
    assert measure["n"] > 0, f"no window was measured: {measure}"
    assert measure["p50_ms"] <= measure["p99_ms"] <= measure["max_ms"], measure
    assert data["sensors"] == 20 and data["achieved_rate"] > 0


def test_soak_samples_the_flow_memory(admin: AdminClient, tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    done = run_script(
        admin,
        "bench-soak-",
        "soak",
        [
            "--sensors",
            "200",
            "--interval",
            "1",
            "--minutes",
            "0.4",
            "--sample",
            "2",
            "--json",
            str(out),
        ],
    )
    assert "RSS: start-up" in done.stdout
    data = report(out)
    assert data["sensors"] == 200 and data["windows"] > 0 and data["late"] >= 0
    for field in ("startup_rss_mb", "peak_rss_mb", "end_rss_mb"):
        assert math.isfinite(data[field]) and data[field] > 0, (field, data[field])
    assert len(data["samples"]) >= 3


def test_hotspots_profiles_a_drain(admin: AdminClient, tmp_path: Path) -> None:
    if not PY_SPY.exists() and shutil.which("py-spy") is None:
        missing(f"{PY_SPY} is missing (make bench-venv), so hotspots.py cannot profile")
    raw = tmp_path / "profile.raw"
    done = run_script(
        admin,
        "bench-prof-",
        "hotspots",
        ["--workload", "W1", "--messages", "3000", "--out", str(raw)],
    )
    assert "self (leaf) %:" in done.stdout and "inclusive %:" in done.stdout
    assert raw.stat().st_size > 0


def test_drain_times_each_fleet_size(admin: AdminClient) -> None:
    done = run_script(
        admin,
        "bench-drain-",
        "drain",
        ["--sensors", "100,300", "--messages", "3000", "--runs", "1"],
    )
    assert "start-up on empty topics:" in done.stdout
    for sensors in ("100 sensors:", "300 sensors:"):
        assert sensors in done.stdout, done.stdout
