"""``make demo``, shortened: ``scripts/demo.py`` against the real broker, stopped once both of its
alerts have shown.

The demo's producer writes hours of history at full speed, then goes live: machine 2 overheats
(a threshold alert; it has no history, so no model to pre-empt its rule) and air-quality
Sensor1's level shifts inside every rule's limits (an alert only its model raises). Both must
show on ``OPEN`` lines within a minute of going live, the first naming the threshold, the
second the reason ``ml``, and nothing else may open (the history is clean). The demo then stops
cleanly on SIGTERM, as on Ctrl-C.
"""

from __future__ import annotations

import ast
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, python_env

#: The demo promises its alerts within this long of going live.
LIVE_LIMIT_S = 60.0
#: Writing and reading the history on a loaded machine.
HISTORY_LIMIT_S = 180.0


@pytest.fixture
def topics(topic_factory) -> dict[str, str]:
    return {
        "AIR_QUALITY_TOPIC": topic_factory("aq"),
        "TEMPERATURE_TOPIC": topic_factory("temp"),
        "ANOMALIES_TOPIC": topic_factory("anomalies", 1),
        "DLQ_TOPIC": topic_factory("dlq", 1),
    }


def test_the_demo_opens_a_threshold_alert_and_an_ml_alert_soon_after_going_live(
    topics: dict[str, str], tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--log-dir", str(tmp_path)],
        cwd=ROOT,
        env=python_env(**topics, DEMO_SECONDS=str(HISTORY_LIMIT_S + 2 * LIVE_LIMIT_S)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[tuple[float, str | None]] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put((time.monotonic(), line.rstrip("\n")))
        lines.put((time.monotonic(), None))

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    live_at: float | None = None
    opened: dict[str, tuple[float, str]] = {}
    deadline = time.monotonic() + HISTORY_LIMIT_S
    try:
        while len(opened) < 2:
            try:
                at, line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line)
            if live_at is None and "live now" in line:
                live_at = at
                deadline = at + LIVE_LIMIT_S
            elif line.startswith("OPEN"):
                opened[line.split()[1]] = (at, line)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    while True:  # the rest of what it printed, up to its end
        _, line = lines.get(timeout=10)
        if line is None:
            break
        seen.append(line)
    transcript = "\n".join(seen)
    assert live_at is not None, f"the producer never went live:\n{transcript}"
    assert set(opened) == {"temperature/2", "air_quality/Sensor1"}, transcript

    hot_at, hot = opened["temperature/2"]
    assert re.search(r"  threshold: mean >= 90 °C$", hot), hot
    shift_at, shifted = opened["air_quality/Sensor1"]
    assert shifted.endswith("  ml") or "  ml:" in shifted, shifted
    assert "threshold" not in shifted, shifted
    for at in (hot_at, shift_at):
        assert at - live_at <= LIVE_LIMIT_S, transcript

    assert proc.returncode == 0, transcript
    final = re.search(r"demo: 2 alert\(s\) opened; final status: (\{.*\})$", transcript, re.M)
    assert final, transcript
    status = ast.literal_eval(final.group(1))
    # The history was read as it was written, by event time: nothing late, nothing refused; and
    # going live made no sensor silent (no alert resolved as stale, no sensor forgotten).
    assert int(status["readings"]) > 60_000, status
    assert (status["late"], status["rejected"]) == ("0", "0"), status
    assert (status["alerts_resolved"], status["forgotten"]) == ("0", "0"), status
    assert not [line for line in transcript.splitlines() if line.startswith("OPEN")][2:]
