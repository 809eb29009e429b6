"""``python -m eval --data DIR --labels FILE [--json OUT] [--plots DIR]``: NAB evaluation.

``python -m eval tep ...`` and ``python -m eval machine ...``: a machine's joint model
(``eval.tep``, ``eval.machine``).

Replays every labelled ``timestamp,value`` CSV under ``--data`` through the dataflow's own scoring
code (or, with ``--through-broker``, through Kafka and the running flow), beside NAB's random
detector (its threshold optimised over the files, as NAB does) and the threshold rule alone, and
scores all three with the NAB rules (``eval.nab``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from eval import detectors, loco, runner
from eval.nab import Profile, load_profiles, load_windows

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

EPILOG = """\
JSON (--json): {"<relative csv path>": {"nab_<profile>", "precision", "recall",
"false_alarms_per_day"}, ..., "baselines": {"random": {<path>: {...}}, "threshold": {...}},
"summary": {"ours" | "random" | "threshold": means over files, NAB's pooled score, ...}}.
A value is null where it is undefined (precision with no detection, a file without windows).

--loco: leave one category out. For each category, the grid point with the best pooled score
on the OTHER categories is chosen, and the category is scored with it; the held-out categories
are pooled as NAB pools a corpus. Default grid: GRID
(--grid NAME=v1,v2 ... replaces it). Only ours runs, each point once over every file
(--jobs processes). JSON (--json): {"grid", "folds": {<category>: {"point",
"nab_<profile>_held_out", "nab_<profile>_others", counts}},
"pooled": {...}, "tuned_on_all": {...}, "points": [{"point", "nab_<profile>", "categories"}]}.

Machines (docs/machines.md): `python -m eval tep --data DIR` (the Tennessee Eastman process,
the machine model beside PCA T²/Q at the same false alarm rate) and `python -m eval machine CSV
--out OUT.csv` (one machine's channels, a column each); each has its own --help.

Definitions: precision = scored detections inside a labelled window / scored detections;
recall = windows detected / windows; false alarms per day = detections outside every window per
day after probation. Ours detects an anomalous episode once (the dataflow's alert opens), charged
to the last row of the window that opened it.
"""
EPILOG = EPILOG.replace(
    "GRID", " ".join(f"{k}={','.join(v)}" for k, v in loco.DEFAULT_GRID.items())
)


def _kv(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _share(text: str) -> float:
    """A finite share, at least 0 (``nan`` and negatives crashed deep in the detector's setup,
    naming settings the user never set)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


SET_EXAMPLE = "ML_NOVELTY_MARGIN=1.3"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m eval",
        description="Score the dataflow's detector on NAB-style data, beside NAB's random "
        "detector and the threshold rule alone (Numenta Anomaly Benchmark rules).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="folder laid out like NAB's data/ (e.g. realTraffic/speed_7578.csv)",
    )
    p.add_argument(
        "--labels",
        type=Path,
        required=True,
        help="windows file in NAB's combined_windows.json format",
    )
    p.add_argument(
        "--profiles",
        type=Path,
        default=None,
        help="NAB profiles.json (default: ../../config/profiles.json from --labels, "
        "else NAB's standard weights)",
    )
    p.add_argument(
        "--profile", default="standard", help="profile to score with (default: %(default)s)"
    )
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write results as JSON")
    p.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="write NAB-format result files, DIR/<detector>/<category>/"
        "<detector>_<file>.csv (timestamp,value,anomaly_score,label), for NAB's "
        "own run.py --score --normalize",
    )
    p.add_argument(
        "--plots", type=Path, default=None, metavar="DIR", help="write one PNG per file into DIR"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=runner.Options.seed,
        help="seed of NAB's random detector, whose threshold NAB's optimiser picks over the "
        "files (default: %(default)s, NAB's)",
    )
    p.add_argument(
        "--threshold-margin",
        type=_share,
        default=runner.Options.threshold_margin,
        help="threshold baseline level: probation max + this share of the probation "
        "range (default: %(default)s)",
    )
    p.add_argument(
        "--detections",
        choices=detectors.MODES,
        default="alerts",
        help="alerts: one detection per alert opened (default); windows: every anomalous window",
    )
    p.add_argument(
        "--limit-pad",
        type=_share,
        default=detectors.OursConfig.limit_pad,
        help="HalfSpaceTrees range: probation min/max padded by this share of their "
        "spread (default: %(default)s)",
    )
    p.add_argument(
        "--set",
        type=_kv,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"override a dataflow setting for ours, e.g. --set {SET_EXAMPLE}",
    )
    p.add_argument(
        "--loco",
        action="store_true",
        help="leave one category out: score each category with the grid point chosen on the "
        "others, and pool them (the estimate on unseen data); see below",
    )
    p.add_argument(
        "--grid",
        type=_kv,
        nargs="+",
        default=None,
        metavar="NAME=v1,v2",
        help="the --loco grid, replacing the default ("
        + "; ".join(f"{k}={','.join(v)}" for k, v in loco.DEFAULT_GRID.items())
        + ")",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="processes for --loco (default: one per CPU)",
    )
    p.add_argument(
        "--through-broker",
        action="store_true",
        help="replay ours through Kafka and `python -m bytewax.run dataflow.main:flow` "
        "instead of calling the scoring code in-process",
    )
    p.add_argument(
        "--brokers",
        default="127.0.0.1:9092",
        help="Kafka brokers for --through-broker (default: %(default)s)",
    )
    return p


def _profile(args: argparse.Namespace) -> Profile:
    path = args.profiles
    if path is None:
        guess = args.labels.resolve().parent.parent / "config" / "profiles.json"
        if not guess.is_file():
            if args.profile != "standard":
                raise SystemExit(f"no profiles file for profile {args.profile!r}; use --profiles")
            print(
                "note: no profiles.json found, using NAB's standard weights (1, 1, 0.11)",
                file=sys.stderr,
            )
            return Profile()
        path = guess
    profiles = load_profiles(path)
    if args.profile not in profiles:
        raise SystemExit(f"profile {args.profile!r} not in {path} (has: {sorted(profiles)})")
    return profiles[args.profile]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "tep":
        from eval import tep

        return tep.main(argv[1:])
    if argv and argv[0] == "machine":
        from eval import machine

        return machine.main(argv[1:])
    args = parser().parse_args(argv)
    if not args.data.is_dir():
        print(f"--data {args.data}: not a folder", file=sys.stderr)
        return EXIT_USAGE
    if not args.labels.is_file():
        print(f"--labels {args.labels}: no such file", file=sys.stderr)
        return EXIT_USAGE
    if args.loco and (args.through_broker or args.results_dir or args.plots):
        print(
            "--loco runs ours in-process only: no --through-broker, --results-dir, --plots",
            file=sys.stderr,
        )
        return EXIT_USAGE
    for name, value in args.set:
        try:
            loco.check_setting("--set", name, value)
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return EXIT_USAGE
    if args.grid is not None and not args.loco:
        print("--grid is for --loco", file=sys.stderr)
        return EXIT_USAGE
    grid = loco.DEFAULT_GRID
    if args.grid is not None:
        try:
            grid = loco.parse_grid(args.grid)
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return EXIT_USAGE
    profile = _profile(args)
    windows = load_windows(args.labels)
    files, unlabelled = runner.find_files(args.data, windows)
    if unlabelled:
        print(
            f"note: {len(unlabelled)} CSV file(s) without labels skipped: "
            f"{', '.join(unlabelled[:5])}{' ...' if len(unlabelled) > 5 else ''}",
            file=sys.stderr,
        )
    if not files:
        print(f"no labelled CSV file under {args.data}", file=sys.stderr)
        return EXIT_FAILED
    opts = runner.Options(
        profile_name=args.profile,
        seed=args.seed,
        threshold_margin=args.threshold_margin,
        ours=detectors.OursConfig(
            limit_pad=args.limit_pad, mode=args.detections, env=dict(args.set)
        ),
    )
    if args.loco:
        score = loco.scorer(args.data, windows, profile, opts.ours, args.jobs)
        result = loco.run(files, grid, score)
        print(loco.table(result, args.profile))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(loco.to_json(result, args.profile), indent=2) + "\n")
            print(f"wrote {args.json}")
        return EXIT_OK
    ours_fn = None
    if args.through_broker:
        from eval.broker import BrokerReplay  # Kafka clients only when asked for

        ours_fn = BrokerReplay(args.brokers, opts.ours)
    results = runner.evaluate(args.data, windows, profile, opts, ours_fn)
    print(runner.table(results, args.profile))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(runner.to_json(results, args.profile), indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.results_dir:
        written = runner.write_results(results, args.results_dir)
        print(f"wrote {len(written)} NAB result file(s) under {args.results_dir}")
    if args.plots:
        from eval.plots import plot_file  # matplotlib only when asked for

        key = f"nab_{args.profile}"
        for r in results:
            m = {name: runner.metrics(s, args.profile)[key] for name, s in r.scores.items()}
            sub = "  ".join(f"{name} {'-' if v is None else f'{v:.1f}'}" for name, v in m.items())
            out = args.plots / (r.path.removesuffix(".csv") + ".png")
            plot_file(
                out,
                r.path,
                r.series,
                r.windows,
                runner.probation_of(r),
                r.detections["ours"],
                r.threshold_level,
                f"NAB {args.profile}: {sub}",
                r.fired_by,
            )
        print(f"wrote {len(results)} plot(s) under {args.plots}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
