"""Tests of what only the source can show (Python's default pickling, attributes left unset),
run on the source even where the suite runs on the compiled shard (``make test``): there the
test runs again in a child pytest with ``DATAFLOW_COMPILED=off``, which must pass it, not skip
it. So what the source is held to is checked on every run, whichever shard the run uses."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable
from typing import ParamSpec

import dataflow
from tests.checkout import ROOT

P = ParamSpec("P")


def on_source(test: Callable[P, None]) -> Callable[P, None]:
    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        if dataflow.COMPILED_FROM is None:
            return test(*args, **kwargs)
        node = os.environ["PYTEST_CURRENT_TEST"].rpartition(" ")[0]  # "path::name (call)"
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", node],
            cwd=ROOT,
            env={**os.environ, "DATAFLOW_COMPILED": "off"},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-3000:]
        return None

    return run
