"""Ctrl-C (SIGINT) and SIGTERM: stop the running flow cleanly, with one line and exit status 0.

Left to Python's default, SIGINT raises ``KeyboardInterrupt`` inside whichever Kafka call the
worker is in; Bytewax turns that into a panic, a Rust backtrace and a Python traceback, exit 1,
and the batches in flight are lost. SIGTERM (``docker stop``) kills the process outright.

Instead, the first signal only sets ``event``. Each input partition sees it at its next poll
(``dataflow.source.PollPartition``) and ends as at the end of its topic, without reading more.
Bytewax then runs the dataflow to completion: what was read goes through the steps, the sinks
write and flush it, and ``cli_main`` returns. The shard state does not treat that end as the end
of the input (``ShardLogic.on_eof`` keeps open windows open instead of closing them early), so
with recovery the last snapshot resumes exactly where the flow stopped. A second signal exits at
once with 128 + its number, for a stop that cannot finish (e.g. sinks waiting on a broker that
is down); a stop still running after a few seconds says so.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

HINT_AFTER_S = 5.0


class GracefulStop:
    """The stop request shared by the signal handler, the sources and the shard logic."""

    def __init__(
        self,
        exit_now: Callable[[int], object] = os._exit,
        write: Callable[[str], object] | None = None,
        hint_after_s: float = HINT_AFTER_S,
    ) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._exit_now = exit_now
        self._write = write or _write_stderr
        self._hint_after_s = hint_after_s

    def requested(self) -> bool:
        return self.event.is_set()

    @property
    def name(self) -> str:
        """The signal that asked for the stop, e.g. ``SIGINT``."""
        return signal.Signals(self.signum).name if self.signum is not None else "request"

    def handle(self, signum: int, frame: FrameType | None = None) -> None:
        """Signal handler: the first call asks for the stop, the second exits at once."""
        if self.event.is_set():
            # A handler may interrupt logging's own lock holder: write directly.
            self._write(
                f"stopped by a second {signal.Signals(signum).name}, without waiting "
                "for the output in flight\n"
            )
            self._exit_now(128 + signum)
            return
        self.signum = signum
        self.event.set()
        # A clean stop takes well under a second; one that does not is waiting on Kafka (e.g. a
        # sink flushing to a broker that is down) or, with -i/-a, on the other processes, which
        # have to stop too before the dataflow can finish: say so, and how not to wait.
        hint = threading.Timer(self._hint_after_s, self._hint)
        hint.daemon = True
        hint.start()

    def _hint(self) -> None:
        self._write(
            f"still stopping after {self.name}: waiting for the output in flight to "
            "reach Kafka, or for the cluster's other processes to stop; "
            f"{self.name} again exits without waiting\n"
        )

    def install(self, signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
        """Handle ``signums`` from now on (Python handlers can only be set in the main thread).

        A signal the process was started with ignored stays ignored, as Python itself leaves
        SIGINT of a shell's background job: whoever started it chose so.
        """
        for signum in signums:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, self.handle)


def _write_stderr(text: str) -> None:
    sys.stderr.flush()
    os.write(2, text.encode())
