"""Issue #9 benchmark: the dataflow against the floor, Quix Streams and the textbook Bytewax flow.

Run by hand for its figures (never in CI), against the local broker, from the repository root
(``make bench``; ``make test`` only runs it once on a tiny load and checks the report's
structure, ``tests/integration/test_bench_harness.py``):

    .venv/bin/python bench/harness.py                       # W1 and W2, 3 rounds each
    .venv/bin/python bench/harness.py --partitions 1 --skip-quix   # one-partition topics
    .venv/bin/python bench/harness.py --workloads W1 --runs 1 --messages 200000   # quick check
    .venv/bin/python bench/harness.py --workloads W1,W3 --messages 10000000 --skip-quix  # fleet

5,000,000 readings per workload by default, so that a drain of the dataflow takes several
times its start-up: the start-up (a few seconds) is subtracted, and on a short drain the figure
would be mostly the noise of that subtraction. Each round's share of start-up in the loaded
run's wall time is reported; above 10 % the table says so.

For each workload (see ``bench/workloads.py``) it creates fresh topics, loads the readings once
with confluent-kafka's producer, and then, ``--runs`` times in rounds, measures on that same data:

- **floor**: ``bench/floor.py``, a tuned confluent-kafka consumer + ``orjson.loads`` per value
  (the ratios' reference); and the same with librdkafka's default fetch settings, for scale;
- **ours -w 1** and **ours -w 2**: ``python -m bytewax.run dataflow.main:flow`` with
  ``KAFKA_TAIL=false`` until drained; start-up (the same command on empty topics, measured in
  the same round) is subtracted;
- **ours 2 proc**: the same as two Bytewax processes of one worker each (``-i/-a``): Bytewax
  workers of one process are threads sharing one GIL, so this is how the flow can use 2 cores;
- **quix**: ``bench/quix_peer.py`` in ``.venv-bench`` (the classic tutorial); its start-up on
  empty topics is subtracted the same way;
- **textbook** (``--textbook``, W1 only): ``bench/textbook_peer.py``, the classic Bytewax + River
  tutorial flow, run like ours (``-w 1``, ``KAFKA_TAIL=false``, start-up subtracted). W1 only: it
  is too slow for a W2 round to finish in reasonable time (its rate is in ``bench/RESULTS.md``).
  Its exit line says how many readings its windows held and how many it dropped as late (its
  watermark is shared by the partitions one worker reads, so on a long input a lagging partition's
  readings fall behind it); a run that did not read every reading is an error.

Reported per system, medians over rounds: msg/s, windows/s, drain seconds, CPU seconds of the
loaded run, CPU per message (loaded minus empty run), peak RSS of the process (``wait4``), the
ratio to the floor, to Quix and to the textbook flow. Ratios are of medians from this one run;
beside them, every round's msg/s and the range of the same-round ratios, and the targets are
checked both on the medians and on every round. A markdown table goes to stdout and everything
(every round too) to ``--json``. Topics are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import workloads as wl
from offsets import end_offsets
from workloads import BENCH, ROOT, Measured, Topics, run_measured

QUIX_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
PY_SPY = ROOT / ".venv-bench" / "bin" / "py-spy"
TEXTBOOK_WORKLOADS = ("W1",)  # the textbook flow is too slow for W2's 100k sensors


def last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON line in output:\n{text[-2000:]}")


def check(m: Measured, what: str) -> Measured:
    if m.returncode != 0:
        raise RuntimeError(f"{what} exited {m.returncode}:\n{m.stderr[-3000:]}\n{m.stdout[-1000:]}")
    return m


def output_count(brokers: str, topic: str) -> int:
    return sum(end_offsets(brokers, [topic]).values())


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.brokers = args.brokers

    # --- the systems -----------------------------------------------------------------------

    def floor(self, topics: Topics, default: bool = False) -> dict[str, float]:
        m = check(
            run_measured(
                [
                    sys.executable,
                    str(BENCH / "floor.py"),
                    "--brokers",
                    self.brokers,
                    "--topics",
                    ",".join(topics.inputs),
                    *(["--default"] if default else []),
                ]
            ),
            "floor",
        )
        res = last_json(m.stdout)
        return {
            "drain_s": res["seconds"],
            "msg_per_s": res["msg_per_s"],
            "cpu_s": m.cpu,
            "cpu_drain_s": m.cpu,
            "rss_mb": m.maxrss_mb,
            "wall_s": m.wall,
            "messages": res["messages"],
        }

    def ours(self, topics: Topics, workers: int) -> Measured:
        cmd = [sys.executable, "-m", "bytewax.run", "dataflow.main:flow", "-w", str(workers)]
        return check(
            run_measured(cmd, env=wl.bytewax_env(self.brokers, topics)), f"dataflow -w {workers}"
        )

    def ours_cluster(self, topics: Topics, processes: int) -> Measured:
        """``processes`` Bytewax processes of one worker each (``-i/-a``): no shared GIL."""
        addrs = ";".join(f"127.0.0.1:{p}" for p in wl.free_ports(processes))
        cmds = [
            [
                sys.executable,
                "-m",
                "bytewax.run",
                "dataflow.main:flow",
                "-w",
                "1",
                "-i",
                str(i),
                "-a",
                addrs,
            ]
            for i in range(processes)
        ]
        return check(
            wl.run_cluster(cmds, env=wl.bytewax_env(self.brokers, topics)),
            f"dataflow x{processes} processes",
        )

    def quix(self, topics: Topics, out: str) -> Measured:
        # The group names the peer's changelog topics: chosen here, so that they are deleted
        # even when the peer dies before it prints anything, and its error is what is reported.
        group = f"bench-quix-{uuid.uuid4().hex[:8]}"
        cmd = [
            str(self.args.quix_python),
            str(BENCH / "quix_peer.py"),
            "--brokers",
            self.brokers,
            "--aq",
            topics.aq,
            "--temp",
            topics.temp,
            "--out",
            out,
            "--group",
            group,
        ]
        if self.args.quix_no_changelog:
            cmd.append("--no-changelog")
        try:
            m = run_measured(cmd, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        finally:
            wl.delete_prefixed(self.brokers, group)  # its changelog topics
        return check(m, "quix peer")

    def textbook(self, topics: Topics, out: str) -> Measured:
        """The tutorial Bytewax flow, one worker, with the dataflow's environment."""
        cmd = [sys.executable, "-m", "bytewax.run", "bench.textbook_peer:flow", "-w", "1"]
        env = wl.bytewax_env(self.brokers, topics, ANOMALIES_TOPIC=out)
        return check(run_measured(cmd, env=env), "textbook peer")

    # --- one workload -----------------------------------------------------------------------

    def workload(self, name: str) -> dict[str, Any]:
        args, brokers = self.args, self.brokers
        work = wl.WORKLOADS[name]
        messages = args.messages or work.messages
        topics = wl.create_topics(brokers, args.partitions, f"bench-{name.lower()}")
        empty = wl.create_topics(brokers, args.partitions, f"bench-{name.lower()}-empty")
        # Each peer writes to its own output topics: (loaded run, empty run).
        peers = ["quix"] + (["textbook"] if args.textbook and name in TEXTBOOK_WORKLOADS else [])
        outs = {p: (f"{topics.anomalies}-{p}", f"{empty.anomalies}-{p}") for p in peers}
        for out, empty_out in outs.values():
            wl.new_topics(brokers, [out, empty_out], args.partitions)
            topics.extra.append(out)
            empty.extra.append(empty_out)
        try:
            loaded = wl.load(brokers, topics, work, messages)
            print(
                f"\n## {name}: {work.sensors:,} sensors, {work.per_window} reading(s) per "
                f"sensor per window; loaded {loaded.messages:,} readings "
                f"({loaded.windows:,} windows, {loaded.hot_windows:,} over 90 degC) in "
                f"{loaded.seconds:.1f} s",
                flush=True,
            )
            if args.textbook and "textbook" not in outs:
                print(
                    f"  (no textbook peer on {name}: it runs on "
                    f"{', '.join(TEXTBOOK_WORKLOADS)} only, too slow here)",
                    flush=True,
                )
            rounds = []
            for r in range(args.runs):
                rounds.append(self.round(topics, empty, outs, loaded, r))
        finally:
            wl.delete_topics(brokers, topics.all() + empty.all())
        return {
            "workload": name,
            "partitions": args.partitions,
            "sensors": work.sensors,
            "per_window": work.per_window,
            "messages": loaded.messages,
            "windows": loaded.windows,
            "hot_windows": loaded.hot_windows,
            "load_s": loaded.seconds,
            "rounds": rounds,
            "summary": summarise(rounds),
        }

    def round(
        self,
        topics: Topics,
        empty: Topics,
        outs: dict[str, tuple[str, str]],
        loaded: wl.LoadResult,
        r: int,
    ) -> dict[str, dict[str, float]]:
        args, n = self.args, loaded.messages
        res: dict[str, dict[str, float]] = {"floor": self.floor(topics)}
        self.show(r, "floor", res["floor"])
        res["floor, default fetch"] = self.floor(topics, default=True)
        self.show(r, "floor, default fetch", res["floor, default fetch"])

        def ours(key: str, system: Callable[[Topics], Measured]) -> None:
            """Start-up on the empty topics, then the drain of the loaded ones."""
            start = system(empty)
            before = output_count(self.brokers, topics.anomalies)
            run = system(topics)
            outputs = output_count(self.brokers, topics.anomalies) - before
            res[key] = derive(run, start, n, loaded.windows, outputs)
            self.show(r, key, res[key])

        for workers in args.workers:
            ours(f"ours -w {workers}", lambda t, w=workers: self.ours(t, w))
        for procs in args.processes:
            ours(f"ours {procs} proc", lambda t, p=procs: self.ours_cluster(t, p))
        if "textbook" in outs:
            out, empty_out = outs["textbook"]
            start = self.textbook(empty, empty_out)
            before = output_count(self.brokers, out)  # the topic is reused by every round
            run = self.textbook(topics, out)
            peer = last_json(run.stdout)
            if peer["readings"] + peer["late"] != n:
                raise RuntimeError(
                    f"textbook peer did not drain the input: {peer}, expected {n} readings"
                )
            res["textbook"] = derive(
                run, start, n, peer["windows"], output_count(self.brokers, out) - before
            )
            res["textbook"]["late"] = peer["late"]
            self.show(r, "textbook", res["textbook"])
        if not args.skip_quix:
            start = self.quix(empty, outs["quix"][1])
            run = self.quix(topics, outs["quix"][0])
            peer = last_json(run.stdout)
            res["quix"] = derive(run, start, n, peer["windows"], peer["alerts"])
            res["quix"]["process_s"] = peer.get("process_s", float("nan"))
            self.show(r, "quix", res["quix"])
        return res

    @staticmethod
    def show(r: int, key: str, m: dict[str, float]) -> None:
        extra = f", start-up {m['startup_s']:.2f} s" if "startup_s" in m else ""
        print(
            f"  round {r + 1} {key:<21} {m['msg_per_s']:>10,.0f} msg/s  drain "
            f"{m['drain_s']:.2f} s{extra}, CPU {m['cpu_s']:.1f} s, RSS {m['rss_mb']:.0f} MB",
            flush=True,
        )


def derive(
    run: Measured, start: Measured, messages: int, windows: int, outputs: int
) -> dict[str, float]:
    drain = max(run.wall - start.wall, 1e-9)
    return {
        "wall_s": run.wall,
        "startup_s": start.wall,
        "drain_s": drain,
        "msg_per_s": messages / drain,
        "windows": windows,
        "windows_per_s": windows / drain,
        "cpu_s": run.cpu,
        "cpu_drain_s": max(run.cpu - start.cpu, 0.0),
        "rss_mb": run.maxrss_mb,
        "startup_rss_mb": start.maxrss_mb,
        "outputs": outputs,
        "messages": messages,
    }


STARTUP_SHARE_MAX = 0.10  # of a loaded run's wall time; above it the drain figure is noise


def summarise(rounds: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, Any]]:
    """Medians over rounds per system, and the ratios of those medians; every round's msg/s and
    the range of the same-round ratios beside them."""
    out: dict[str, dict[str, Any]] = {}
    for key in rounds[0]:
        fields = rounds[0][key].keys()
        out[key] = {f: statistics.median(rd[key][f] for rd in rounds) for f in fields}
    floor = out["floor"]["msg_per_s"]
    quix = out.get("quix", {}).get("msg_per_s")
    textbook = out.get("textbook", {}).get("msg_per_s")
    for m in out.values():
        m["x_floor"] = m["msg_per_s"] / floor
        if quix:
            m["x_quix"] = m["msg_per_s"] / quix
        if textbook:
            m["x_textbook"] = m["msg_per_s"] / textbook
        m["cpu_us_per_msg"] = m["cpu_drain_s"] / m["messages"] * 1e6
    # Same-round ratios too, medians and ranges of them: robust to a noisy neighbour in one
    # round, and honest about the spread.
    for key in out:
        m = out[key]
        m["msg_per_s_each"] = [rd[key]["msg_per_s"] for rd in rounds]
        if "startup_s" in rounds[0][key]:
            m["startup_share_max"] = max(rd[key]["startup_s"] / rd[key]["wall_s"] for rd in rounds)
        for peer, name in (("floor", "x_floor"), ("quix", "x_quix"), ("textbook", "x_textbook")):
            if peer not in rounds[0]:
                continue
            each = [rd[key]["msg_per_s"] / rd[peer]["msg_per_s"] for rd in rounds]
            m[f"{name}_each"] = each
            m[f"{name}_rounds"] = statistics.median(each)
    return out


def _each(values: list[float], fmt: str) -> str:
    return " / ".join(format(v, fmt) for v in values)


def table(results: list[dict[str, Any]]) -> str:
    """Medians first; then every round's msg/s and same-round ratios, in round order."""
    lines = [
        "| workload | system | msg/s (median) | each round | windows/s | drain s | CPU s | "
        "CPU µs/msg | peak RSS | start-up share (max) | x floor | each round | x Quix | "
        "each round | x textbook |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        for key, m in res["summary"].items():
            win = f"{m['windows_per_s']:,.0f}" if "windows_per_s" in m else "-"
            us = f"{m['cpu_us_per_msg']:.1f}"
            share = m.get("startup_share_max")
            share_s = (
                "-"
                if share is None
                else (f"{share:.0%}" + (" (over 10 %)" if share > STARTUP_SHARE_MAX else ""))
            )
            xq = f"{m['x_quix']:.2f}" if "x_quix" in m else "-"
            xq_each = _each(m["x_quix_each"], ".2f") if "x_quix_each" in m else "-"
            xt = f"{m['x_textbook']:.2f}" if "x_textbook" in m else "-"
            lines.append(
                f"| {res['workload']} ({res['sensors']:,} sensors, {res['messages']:,} msgs, "
                f"{res['partitions']} partition(s)) | {key} | {m['msg_per_s']:,.0f} | "
                f"{_each(m['msg_per_s_each'], ',.0f')} | {win} | {m['drain_s']:.2f} | "
                f"{m['cpu_s']:.1f} | {us} | {m['rss_mb']:.0f} MB | {share_s} | "
                f"{m['x_floor']:.3f} | {_each(m['x_floor_each'], '.3f')} | {xq} | {xq_each} | "
                f"{xt} |"
            )
    return "\n".join(lines)


def verdict(median: float, each: list[float], target: float) -> str:
    """Whether a ratio target holds by the median, and in every round."""
    by_median = "met" if median >= target else "NOT met"
    every = (
        "met in every round"
        if min(each) >= target
        else f"not in every round (lowest {min(each):.3f})"
    )
    return f"{by_median} by the median, {every}"


# Issue #28's targets: each workload's ratio to the floor and to the Quix peer, W2's peak RSS,
# and the fleet ratio (W3's 100k sensors against W1's 1k, the same readings per window).
FLOOR_TARGETS = {"W1": 0.6, "W2": 0.25}
QUIX_TARGETS = {"W1": 20.0, "W2": 10.0}
TEXTBOOK_TARGET = 15.0  # issue #9's, W1 only
W2_RSS_MB_MAX = 800.0
FLEET_RATIO_MIN = 0.7
SCALING_MIN = 1.8  # issue #15's: two processes against one


def fleet_ratio(by: dict[str, dict[str, Any]]) -> str | None:
    """W3 (100k sensors) against W1 (1k), ``ours -w 1``'s msg/s: the cost of a fleet's size
    alone. Beside the medians' ratio, each workload's msg/s as a share of its own rounds'
    floor, so a broker that ran slower in one workload's rounds does not pass for the flow."""
    if not all(w in by and "ours -w 1" in by[w] for w in ("W1", "W3")):
        return None
    small, large = by["W1"]["ours -w 1"], by["W3"]["ours -w 1"]
    x = large["msg_per_s"] / small["msg_per_s"]
    per_floor = large["x_floor"] / small["x_floor"]
    return (
        f"fleet ratio W3 / W1 (ours -w 1 msg/s) = {x:.3f} (target >= {FLEET_RATIO_MIN}): "
        f"{'met' if x >= FLEET_RATIO_MIN else 'NOT met'}; "
        f"as shares of each one's floor {per_floor:.3f}"
    )


def targets(results: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, checked on this run's medians (and the ratios in every round)."""
    out = []
    by = {r["workload"]: r["summary"] for r in results}
    for name, s in by.items():
        if "ours -w 1" not in s:
            continue
        m = s["ours -w 1"]
        goal = FLOOR_TARGETS.get(name)
        if goal is None:
            out.append(
                f"{name} ours -w 1 / floor = {m['x_floor']:.3f} (no target); "
                f"rounds {_each(m['x_floor_each'], '.3f')}"
            )
        else:
            out.append(
                f"{name} ours -w 1 / floor = {m['x_floor']:.3f} (target >= {goal}): "
                f"{verdict(m['x_floor'], m['x_floor_each'], goal)}"
            )
        if "quix" in s and name in QUIX_TARGETS:
            goal = QUIX_TARGETS[name]
            out.append(
                f"{name} ours -w 1 / Quix = {m['x_quix']:.2f} (target >= {goal:g}): "
                f"{verdict(m['x_quix'], m['x_quix_each'], goal)}"
            )
        if "textbook" in s:
            out.append(
                f"{name} ours -w 1 / textbook = {m['x_textbook']:.2f} "
                f"(target >= {TEXTBOOK_TARGET:g}): "
                f"{verdict(m['x_textbook'], m['x_textbook_each'], TEXTBOOK_TARGET)}"
            )
        for other in ("ours -w 2", "ours 2 proc"):
            if other in s:
                x = s[other]["msg_per_s"] / m["msg_per_s"]
                out.append(
                    f"{name} scaling {other} / ours -w 1 = {x:.2f} (target >= {SCALING_MIN}): "
                    f"{'met' if x >= SCALING_MIN else 'NOT met'}"
                )
        if name == "W2":
            rss = m["rss_mb"]
            out.append(
                f"W2 (100k sensors) peak RSS = {rss:.0f} MB (target <= {W2_RSS_MB_MAX:.0f} MB): "
                f"{'met' if rss <= W2_RSS_MB_MAX else 'NOT met'}"
            )
    fleet = fleet_ratio(by)
    if fleet:
        out.append(fleet)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", default=os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092"))
    parser.add_argument("--workloads", default="W1,W2", help="comma-separated: W1,W2,W3")
    parser.add_argument("--runs", type=int, default=3, help="rounds per workload (medians)")
    parser.add_argument(
        "--messages",
        type=int,
        default=5_000_000,
        help="readings per workload (default 5,000,000: a drain of several times the start-up)",
    )
    parser.add_argument("--partitions", type=int, default=3, help="partitions per input topic")
    parser.add_argument("--workers", default="1", help="bytewax -w values to run, e.g. 1,2")
    parser.add_argument(
        "--processes",
        default="",
        help="also run the flow as N processes of one worker (-i/-a); '' = none",
    )
    parser.add_argument("--skip-quix", action="store_true", help="no Quix Streams peer")
    parser.add_argument(
        "--textbook",
        action="store_true",
        help="also run the textbook Bytewax flow (bench/textbook_peer.py), on W1 only",
    )
    parser.add_argument(
        "--quix-python",
        type=Path,
        default=QUIX_PYTHON,
        help="python of the bench venv (default: .venv-bench/bin/python)",
    )
    parser.add_argument(
        "--quix-no-changelog",
        action="store_true",
        help="peer without changelog topics (not the tutorial's default)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "out" / "bench.json",
        help="results file (default: out/bench.json)",
    )
    args = parser.parse_args(argv)
    args.workers = [int(w) for w in args.workers.split(",") if w]
    args.processes = [int(p) for p in args.processes.split(",") if p]
    if not args.skip_quix and not args.quix_python.exists():
        parser.error(f"{args.quix_python} missing: make bench-venv (or --skip-quix)")

    started = datetime.now(UTC)
    commit = wl.git_rev()
    print(
        f"# bench {started:%Y-%m-%d %H:%M} UTC, commit {commit}, on {wl.machine()}; "
        f"{args.runs} round(s), "
        f"{args.partitions} partitions per input topic",
        flush=True,
    )
    bench = Bench(args)
    results = [bench.workload(name) for name in args.workloads.split(",") if name]
    report = {
        "date": started.isoformat(timespec="seconds"),
        "machine": wl.machine(),
        "commit": commit,
        "commit_at_end": wl.git_rev(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "results": results,
        "targets": targets(results),
        "load_avg_end": os.getloadavg(),
        "seconds": time.time() - started.timestamp(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, default=float))
    print("\n" + table(results) + "\n")
    for line in report["targets"]:
        print(f"- {line}")
    if report["commit_at_end"] != commit:
        print(
            f"- WARNING: the checkout moved from {commit} to {report['commit_at_end']} during "
            "the run; later rounds ran the newer code"
        )
    print(f"\nresults: {args.json}")
    kinds = Counter(k for r in results for k in r["summary"])
    return 0 if kinds else 1


if __name__ == "__main__":
    sys.exit(main())
