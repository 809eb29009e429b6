"""``python -m dataflow [bytewax.run options]``: run the flow; ``--help`` lists the settings.

The flow itself is ``dataflow.main:flow`` and is usually started with
``python -m bytewax.run dataflow.main:flow``; this wrapper adds a help text for the environment
variables and passes every other argument (``-w``, ``-r``, ...) on to ``bytewax.run``.
"""

from __future__ import annotations

import os
import sys

from dataflow.config import ENV_DOCS


def usage() -> str:
    rows = "\n".join(f"  {name:<26} {default or '(unset)':<22} {text}"
                     for name, (default, text) in ENV_DOCS.items())
    return (
        "usage: python -m dataflow [bytewax.run options, e.g. -w 2]\n\n"
        "Reads sensor readings from Kafka, averages each sensor's values per event-time window,\n"
        "scores every window (River HalfSpaceTrees + threshold rule) and writes anomalies to\n"
        "Kafka. Same as: python -m bytewax.run dataflow.main:flow [options]\n"
        "(python -m bytewax.run --help lists the options).\n\n"
        f"environment variables (name, default, meaning):\n{rows}\n\n"
        "Ctrl-C (SIGINT) or SIGTERM: the flow reads no more, writes what it has read, logs one\n"
        "line (stopped by SIGINT; status ...) and exits 0; open windows stay open (with -r, the\n"
        "next run resumes them). A second signal exits at once, status 128 + the signal number.\n"
    )


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(usage())
        return 0
    os.execv(sys.executable, [sys.executable, "-m", "bytewax.run", "dataflow.main:flow", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
