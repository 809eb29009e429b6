"""Where the dataflow spends its time on a workload: py-spy over one drain, summarised.

    .venv/bin/python bench/hotspots.py --workload W2            # 1M readings, 100k sensors
    .venv/bin/python bench/hotspots.py --workload W1 --native   # with Rust/C frames too

Loads the workload into fresh topics, runs ``py-spy record -r 200 --format raw`` around
``python -m bytewax.run dataflow.main:flow -w 1`` (``KAFKA_TAIL=false``) until drained, and prints
the functions with the most samples: *self* (the sampled leaf) and *inclusive* (anywhere on the
stack). The raw collapsed stacks are kept (``--out``) for a flame graph. py-spy comes from
``.venv-bench`` (``bench/requirements-bench.txt``) or ``PATH``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

import workloads as wl
from workloads import ROOT, run_measured


def frame_name(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``: one entry per function."""
    func, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{func} ({'/'.join(Path(path).parts[-2:])})" if path else func


def summarise(raw: Path, top: int) -> str:
    """Self and inclusive shares, start-up (importing and building the flow) left out."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = startup = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        if "_locate_dataflow" in stack:
            startup += n
            continue
        frames = [frame_name(f) for f in stack.split(";")]
        total += n
        self_c[frames[-1]] += n
        for name in set(frames):
            incl[name] += n
    lines = [f"{total} samples after start-up ({startup} in start-up, left out)"]
    lines.append("\nself (leaf) %:")
    lines += [f"  {c / total * 100:5.1f}  {name}" for name, c in self_c.most_common(top)]
    lines.append("\ninclusive %:")
    lines += [f"  {c / total * 100:5.1f}  {name}" for name, c in incl.most_common(top * 2)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", default=os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092"))
    parser.add_argument("--workload", default="W2", choices=sorted(wl.WORKLOADS))
    parser.add_argument("--messages", type=int, default=0)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="raw stacks (default: out/)")
    parser.add_argument(
        "--summarise",
        type=Path,
        default=None,
        metavar="RAW",
        help="only summarise an existing raw file",
    )
    args = parser.parse_args(argv)
    if args.summarise:
        print(summarise(args.summarise, args.top))
        return 0

    py_spy = ROOT / ".venv-bench" / "bin" / "py-spy"
    py_spy_cmd = str(py_spy) if py_spy.exists() else shutil.which("py-spy")
    if not py_spy_cmd:
        parser.error(
            "py-spy not found: .venv-bench/bin/pip install -r bench/requirements-bench.txt"
        )
    out = args.out or ROOT / "out" / f"profile-{args.workload}.raw"
    out.parent.mkdir(parents=True, exist_ok=True)
    work = wl.WORKLOADS[args.workload]
    topics = wl.create_topics(args.brokers, args.partitions, "bench-prof")
    try:
        loaded = wl.load(args.brokers, topics, work, args.messages or work.messages)
        cmd = [
            py_spy_cmd,
            "record",
            "-r",
            str(args.rate),
            "--format",
            "raw",
            "-o",
            str(out),
            *(["--native"] if args.native else []),
            "--",
            sys.executable,
            "-m",
            "bytewax.run",
            "dataflow.main:flow",
            "-w",
            "1",
        ]
        m = run_measured(cmd, env=wl.bytewax_env(args.brokers, topics))
        if m.returncode != 0:
            print(m.stderr[-3000:], file=sys.stderr)
            return 1
    finally:
        wl.delete_topics(args.brokers, topics.all())
    print(
        f"{args.workload}: {loaded.messages:,} readings, {loaded.windows:,} windows; "
        f"{m.wall:.1f} s wall under py-spy (start-up included), CPU {m.cpu:.1f} s"
    )
    print(summarise(out, args.top))
    print(f"\nraw stacks: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
