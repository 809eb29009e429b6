"""Preconditions of the whole suite, whatever started it."""

from __future__ import annotations

import signal

# The suite stops flows, producers and notifiers with SIGINT, as a person at a terminal does,
# and checks that the flow handles it. A shell that starts pytest as a background job (``nohup
# make test &``, some CI runners) hands it SIGINT ignored, every child inherits that, and the
# flow rightly leaves an ignored signal ignored (``dataflow.stopping``): those tests would then
# fail, or wait out their timeouts, for the way they were started. Python's own handler here
# means the children start with SIGINT at its default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
