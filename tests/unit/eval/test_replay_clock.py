"""``python -m eval`` runs the flow's rules as the flow does: the flow's parser and valid range,
and each row arriving at its own time on a virtual wall clock, so silence rules act."""

from __future__ import annotations

from eval.detectors import NEVER_READY, base_env, fit, replay
from eval.nab import Series

T = 1_400_000_000 * 10**9
FIVE_MIN = 300 * 10**9


def series(values: list[float], gap_after: int | None = None, gap_ns: int = 0) -> Series:
    stamps = [
        T + i * FIVE_MIN + (gap_ns if gap_after is not None and i > gap_after else 0)
        for i in range(len(values))
    ]
    return Series(stamps, values)


def env_for(s: Series, **extra: str) -> dict[str, str]:
    return {
        **base_env(fit(s), 1.0),
        "AIR_QUALITY_THRESHOLD": "50",
        "WARMUP_WINDOWS": NEVER_READY,
        **extra,
    }


HOT = [10.0] * 60 + [100.0] * 40


def test_a_slow_feed_s_open_alert_is_not_stale_between_its_rows() -> None:
    s = series(HOT)
    run = replay(s, env_for(s))
    opens = [w for w in run.windows if w.alert is not None and w.alert.event == "open"]
    assert len(opens) == 1 and run.stale == 0 and run.late == 0


def test_a_silence_of_two_hours_resolves_the_open_alert_as_stale() -> None:
    s = series(HOT, gap_after=70, gap_ns=2 * 3600 * 10**9)
    run = replay(s, env_for(s))
    opens = [w for w in run.windows if w.alert is not None and w.alert.event == "open"]
    assert run.stale == 1 and len(opens) == 2  # stale in the gap; the heat opens a new one


def test_rows_outside_the_declared_valid_range_are_refused_by_the_parser() -> None:
    s = series(HOT)
    run = replay(s, env_for(s, AIR_QUALITY_VALID_RANGE="0,50"))
    assert run.refused == 40
    assert sum(w.stats.count for w in run.windows) == 60
