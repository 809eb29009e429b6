"""The demo's alert line says why the model fired, from the record's ``explain``."""

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[3]


def demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_script", ROOT / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(**extra: object) -> dict:
    base = {
        "event": "open",
        "family": "air-quality",
        "sensor_id": "3",
        "window_start": "2026-11-22T20:28:20.000Z",
        "window_end": "2026-11-22T20:28:25.000Z",
        "mean": 71.3,
        "count": 5,
        "min": 70.0,
        "max": 72.0,
        "score": 0.4,
        "ml_cut": None,
        "threshold": None,
        "threshold_alarm": False,
        "ml_anomaly": True,
        "alert": None,
        "alert_id": "air-quality/3@1",
    }
    return {**base, **extra}


def test_an_ml_alert_line_carries_the_explanation() -> None:
    text = "level 71.3, 9.4 spreads above its usual 64.2 (pages beyond 7.2)"
    line = demo().describe(record(explain={"detector": "level", "text": text}))
    assert line.startswith("OPEN     air-quality/3 20:28:20-20:28:25 UTC")
    assert line.endswith(f"ml: {text}")


def test_an_ml_alert_without_an_explanation_still_prints() -> None:
    assert demo().describe(record(explain=None)).endswith("ml: the model")
