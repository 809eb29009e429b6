"""Process settings of a running flow that are not the flow's logic: the garbage collector.

Set by ``dataflow.main`` when it builds the production flow, and by ``bench/inproc.py`` so that
its in-process measurements match.
"""

from __future__ import annotations

import gc

# CPython's cyclic GC runs a young collection every 700 container allocations and, as the
# long-lived heap grows, full ones that walk every object. A 100k-sensor state is millions of
# long-lived objects, and the per-message path allocates a few containers each, so the default
# made the cost per message grow with the fleet. The flow's garbage is acyclic and freed by
# reference counting; the collector only has to catch rare cycles. A young collection walks the
# containers still alive, mostly a poll's librdkafka messages, so fewer of them cost less. What
# these thresholds gained is measured in bench/RESULTS.md ("GC").
GC_THRESHOLDS = (500_000, 20, 100)


def tune_gc() -> None:
    """Collect cycles rarely (``GC_THRESHOLDS``): the per-message path's garbage is acyclic."""
    gc.set_threshold(*GC_THRESHOLDS)
