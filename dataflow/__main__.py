"""``python -m dataflow [bytewax.run options]``: run the flow; ``--help`` lists the settings.

``python -m dataflow --check-config [FILE]`` validates a sensors file (default: ``SENSORS_CONFIG``,
or none: the built-in families) with the rest of the environment, prints the resolved families
with every default filled in, and exits: 0 when valid, 2 with one line naming the problem.

The flow itself is ``dataflow.main:flow`` and is usually started with
``python -m bytewax.run dataflow.main:flow``; this wrapper adds a help text for the environment
variables and passes every other argument (``-w``, ``-r``, ...) on to ``bytewax.run``.
"""

from __future__ import annotations

import os
import sys

import yaml

from dataflow.config import ALL_OPTIONS, ConfigError, Settings
from dataflow.families import describe
from dataflow.options import env_section


def usage() -> str:
    return (
        "usage: python -m dataflow [bytewax.run options, e.g. -w 2]\n"
        "       python -m dataflow --check-config [FILE]\n\n"
        "Reads sensor readings from Kafka, averages each sensor's values per event-time window,\n"
        "scores every window (River HalfSpaceTrees + threshold rule) and writes anomalies to\n"
        "Kafka. Same as: python -m bytewax.run dataflow.main:flow [options]\n"
        "(python -m bytewax.run --help lists the options).\n\n"
        f"{env_section(ALL_OPTIONS)}\n"
        "Ctrl-C (SIGINT) or SIGTERM: the flow reads no more, writes what it has read, logs one\n"
        "line (stopped by SIGINT; status ...) and exits 0; open windows stay open (with -r, the\n"
        "next run resumes them). A second signal exits at once, status 128 + the signal number.\n"
    )


def check_config(path: str | None) -> int:
    """Validate the settings with this sensors file, and the Kafka clients' settings as
    librdkafka reads them (as the flow does at its start); print the resolved families."""
    env = dict(os.environ)
    if path is not None:
        env["SENSORS_CONFIG"] = path
    from dataflow.main import check_client_config  # Kafka clients: only for this check

    try:
        settings = Settings.from_env(env)
        check_client_config(settings)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    source = settings.sensors_config or "built in (no SENSORS_CONFIG)"
    print(f"# families: {source}")
    print(
        yaml.safe_dump(
            describe(settings.families),
            sort_keys=False,
            allow_unicode=True,
            default_flow_style=None,
        ),
        end="",
    )
    return 0


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(usage())
        return 0
    if argv and argv[0] == "--check-config":
        if len(argv) > 2:
            print("usage: python -m dataflow --check-config [FILE]", file=sys.stderr)
            return 2
        return check_config(argv[1] if len(argv) == 2 else None)
    os.execv(sys.executable, [sys.executable, "-m", "bytewax.run", "dataflow.main:flow", *argv])


def cli() -> int:
    """The ``sensor-dataflow`` console script: ``python -m dataflow`` under another name."""
    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(cli())
