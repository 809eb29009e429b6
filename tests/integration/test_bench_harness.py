"""The benchmark harness runs end to end: ``bench/harness.py`` on a tiny load, every system.

The harness is part of the product (``make bench``), and it runs programs of two venvs: the
dataflow, the floor and the textbook flow in ``.venv``, the Quix Streams peer in
``.venv-bench`` (``make bench-venv``; ``make test`` makes it first). Nothing else runs it, so
an import or an option that breaks it would go unseen until the next benchmark. Here it runs
once, against the real broker, on the three workloads with a couple of thousand readings and one
round, with every kind of system it measures: the floor (tuned and default fetch), the flow
as one process (``-w 1``) and as a two-process cluster, the textbook flow, and the Quix peer.
``-w 2`` is left out: the harness runs it the same way as ``-w 1`` with another number.

The checks are of the report's structure, never of its speed: every workload and every
system is there, every number is finite, the measured ones are positive, the floor read every
reading, the table has a row per system, and the harness left no topic behind. On so small a
load the start-up is most of each run, so the rates themselves mean nothing here.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from tests.integration.conftest import BROKERS, ROOT
from tests.tools import missing

QUIX_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
MESSAGES = 2_000
WORKLOADS = ("W1", "W2", "W3")
# What the harness measures with --workers 1 --processes 2 --textbook; the textbook flow runs
# on W1 only (the harness's TEXTBOOK_WORKLOADS).
SYSTEMS = {"floor", "floor, default fetch", "ours -w 1", "ours 2 proc", "quix"}
EXPECTED = {"W1": SYSTEMS | {"textbook"}, "W2": SYSTEMS, "W3": SYSTEMS}
# Measured in every run of every system: a zero or a negative here is a broken measurement.
MEASURED = ("wall_s", "drain_s", "msg_per_s", "cpu_s", "rss_mb")
# Also measured for the systems whose start-up the harness subtracts (the flows and the peers).
STARTUP = ("startup_s", "startup_rss_mb")
HARNESS_TIMEOUT_S = 600


def bench_topics(admin: AdminClient) -> set[str]:
    """Topics the harness makes: its own (``bench-w1-...``) and the Quix peer's changelogs."""
    return {t for t in admin.list_topics(timeout=30).topics if "bench-" in t}


@dataclass
class Run:
    """One run of the harness: its output and its report (``--json``)."""

    proc: subprocess.CompletedProcess[str]
    report: dict[str, Any]


@pytest.fixture(scope="module")
def run(admin: AdminClient, tmp_path_factory: pytest.TempPathFactory) -> Run:
    if not QUIX_PYTHON.exists():
        missing(f"{QUIX_PYTHON} is missing (make bench-venv), so the Quix peer cannot run")
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    before = bench_topics(admin)
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "harness.py"),
            "--brokers",
            BROKERS,
            "--workloads",
            ",".join(WORKLOADS),
            "--runs",
            "1",
            "--messages",
            str(MESSAGES),
            "--workers",
            "1",
            "--processes",
            "2",
            "--textbook",
            "--quix-python",
            str(QUIX_PYTHON),
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HARNESS_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, (
        f"harness exited {proc.returncode}:\n{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}"
    )
    left = bench_topics(admin) - before
    assert left == set(), f"the harness left topics behind: {sorted(left)}"
    return Run(proc, json.loads(Path(out).read_text()))


def numbers(value: object, where: str) -> list[tuple[str, float]]:
    """Every number in a nested report value, with where it is."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [(where, float(value))]
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in numbers(v, f"{where}.{k}")]
    if isinstance(value, list | tuple):
        return [n for i, v in enumerate(value) for n in numbers(v, f"{where}[{i}]")]
    return []


def test_the_report_has_every_workload_and_every_system_in_one_round(run: Run) -> None:
    report = run.report
    assert {"date", "machine", "commit", "args", "results", "targets", "seconds"} <= report.keys()
    assert [r["workload"] for r in report["results"]] == list(WORKLOADS)
    for res in report["results"]:
        name = res["workload"]
        assert res["messages"] == MESSAGES
        assert res["partitions"] == 3
        assert res["windows"] > 0
        assert len(res["rounds"]) == 1
        assert set(res["rounds"][0]) == EXPECTED[name], name
        assert set(res["summary"]) == EXPECTED[name], name
        for system, m in res["summary"].items():
            assert len(m["msg_per_s_each"]) == 1, (name, system)
            # Every system is set against the floor and the Quix peer; on W1 also the textbook.
            assert {"x_floor", "x_quix", "cpu_us_per_msg"} <= m.keys(), (name, system)
            assert ("x_textbook" in m) is (name == "W1"), (name, system)
    assert report["targets"], "no target was checked"
    assert all(isinstance(t, str) for t in report["targets"])
    # W3 beside W1 in one run gives the fleet ratio, checked as a target.
    fleet = [t for t in report["targets"] if t.startswith("fleet ratio W3 / W1")]
    assert len(fleet) == 1, report["targets"]
    assert re.search(r"= \d+\.\d{3} \(target >= 0\.7\): (met|NOT met); as shares", fleet[0])


def test_every_number_is_finite_and_every_measured_one_positive(run: Run) -> None:
    found = numbers(run.report["results"], "results")
    assert found
    assert [(w, v) for w, v in found if not math.isfinite(v) or v < 0] == []
    for res in run.report["results"]:
        for system, m in res["rounds"][0].items():
            fields = MEASURED + (STARTUP if system.startswith(("ours", "textbook", "quix")) else ())
            for field in fields:
                assert m[field] > 0, (res["workload"], system, field, m[field])


def test_the_floor_read_every_reading_and_the_peers_ran_to_their_end(run: Run) -> None:
    for res in run.report["results"]:
        rnd = res["rounds"][0]
        assert rnd["floor"]["messages"] == MESSAGES
        assert rnd["floor, default fetch"]["messages"] == MESSAGES
        if "textbook" in rnd:
            # The harness checks that its windows held every reading, and stops if not.
            assert rnd["textbook"]["windows"] > 0
            assert rnd["textbook"]["late"] >= 0
        assert "process_s" in rnd["quix"]


def test_the_table_has_one_row_per_workload_and_system(run: Run) -> None:
    rows = [line for line in run.proc.stdout.splitlines() if line.startswith("| W")]
    seen = {(row.split(" ", 2)[1], row.split("|")[2].strip()) for row in rows}
    assert seen == {(w, s) for w, systems in EXPECTED.items() for s in systems}
    assert len(rows) == len(seen)
    header = next(line for line in run.proc.stdout.splitlines() if line.startswith("| workload"))
    assert {row.count("|") for row in rows} == {header.count("|")}
