"""The alert events of live reading, a backlog and a restart's replay agree: the seeded
differential fuzz of ``fuzz_back.py``, and the divergences it found shrunk to scenarios (each
failed before ``_back`` replayed the timers in their order, ``SilenceQueue.due`` re-read a
sensor's limit and ``expire`` resolved a stale moment before a later close). Each scenario's
first list is live's (the timers), the second the backlog's."""

from __future__ import annotations

import pytest

from tests.unit.dataflow.fuzz_back import (
    TEMP_MODES,
    Scenario,
    check,
    pump_scenario,
    run_mode,
    temp_scenario,
)

A = "temperature/s@"


def events(sc: Scenario, mode: str) -> list[tuple[str, str, str | None]]:
    return [(e, i.removeprefix(A), r) for e, i, r in run_mode(sc, mode).get("s", [])]


# -- 1. _back closes windows due after the stale moment before reading the limit (new) --------


def test_a_window_closing_after_the_stale_moment_does_not_lengthen_the_limit() -> None:
    """300 s windows, stale 300 s. 95 °C at 136 s (window ..175) and 176 s (window 175..475),
    silent until 1032 s. Live: the alert opens at 177 s; the stale timer (176 + 300 = 476 s)
    fires before window 175..475 closes (477 s), with no cadence known: stale; the return
    opens a second alert. From a backlog ``_back`` closes both windows first: the second,
    one reading in a 300 s window, sets the cadence to 300 s, the limit to 900 s > 856 s:
    the first alert runs on through the silence and the second page never comes."""
    sc = Scenario(300, 300.0, 2.0, [("s", 136.0, 95.0), ("s", 176.0, 95.0), ("s", 1032.0, 95.0)])
    live = events(sc, "live")
    assert live == [
        ("open", "1710856500000000000", None),
        ("resolved", "1710856500000000000", "stale"),
        ("open", "1710857400000000000", None),
        ("resolved", "1710857400000000000", "stale"),  # the end's silence, caught up
    ]
    for mode in TEMP_MODES:
        assert events(sc, mode) == live, mode  # it was: [open, resolved stale] only


# -- 2. live's stale heap keeps the limit a sensor had when it was queued (older + new) ------


def test_a_limit_grown_by_a_window_closed_in_the_silence_is_the_limit_live_too() -> None:
    """313 s windows, lateness 30 s, a reading every ~93 s, then 95 °C at 472 s (an alert
    opens when its window closes), 60 °C at 783 s, silent 379 s, back at 1162 s. The limit
    when the silence passes 300 s is 3 x 125.2 = 375.6 s; window 749..1062 closes at ~1092 s
    and raises it to 3 x 144 = 432 s. Live, ``SilenceQueue.due`` resolved the alert stale at
    376 s from the heap entry worked out with the old limit (never re-read), while ``_back``
    read the new one (432 s > 379 s). Both read the limit the sensor has now: no stale
    resolution, no second page."""
    sc = Scenario(
        313,
        300.0,
        30.0,
        [
            ("s", 101.0, 60.0),
            ("s", 194.0, 60.0),
            ("s", 286.0, 60.0),
            ("s", 379.0, 60.0),
            ("s", 472.0, 95.0),
            ("s", 783.0, 60.0),
            ("s", 1162.0, 60.0),
            ("s", 1540.0, 95.0),
        ],
    )
    live = events(sc, "live")  # it was: open, resolved stale, open, resolved stale
    assert [e[0] for e in live] == ["open", "resolved"]  # by the limit it has: one alert
    assert events(sc, "backlog-1") == live


def test_the_stale_heap_limit_also_splits_a_quick_sensor_s_alert() -> None:
    """120 s windows, stale 60 s: readings at 23 (60 °C), 70, 95, 117, 196 and 331 s (95 °C).
    Live was stale at 196 + 120 s (the limit when queued, 3 x 40 s), though window 175..295
    closed at 297 s and raised it to 144 s, then a new alert at 331 s; a backlog found no
    silence (135 < 144): one alert. Now live reads the limit the sensor has, as a backlog."""
    times = [23.0, 70.0, 95.0, 117.0, 196.0, 331.0]
    sc = Scenario(120, 60.0, 2.0, [("s", t, 60.0 if t < 50 else 95.0) for t in times])
    live = events(sc, "live")  # it was: open, resolved stale, open, resolved stale
    assert [e[0] for e in live] == ["open", "resolved"]  # by the limit it has: one alert
    assert events(sc, "backlog-1") == live


# -- 3. expire closes every due window before the stale check (older) -------------------------


def test_input_time_jumping_past_a_stale_moment_and_a_close_resolves_in_time_order() -> None:
    """600 s windows: "s" at 95 °C at 11 s and 222 s, then silent; "a" first heard at 957 s,
    "b" at 1107 s; "s" back at 1288 s. Live: the alert (opened at 177 s) goes stale at 522 s,
    before window 175..775 closes (777 s); "s" back opens a second alert. From a backlog read
    a reading a poll, "a"'s reading moves input time from 222 s to 957 s in one step, and
    ``expire`` closes window 175..775 first (one reading in a 600 s window: cadence 600 s,
    limit 1800 s), then finds "s" not silent enough: no stale, no second page."""
    sc = Scenario(
        600,
        300.0,
        2.0,
        [
            ("s", 11.0, 95.0),
            ("s", 222.0, 95.0),
            ("a", 957.0, 95.0),
            ("b", 1107.0, 60.0),
            ("s", 1288.0, 95.0),
        ],
    )
    live = events(sc, "live")
    assert [e[0] for e in live] == ["open", "resolved", "open", "resolved"]
    assert events(sc, "backlog-1") == live  # it was: [open, resolved stale]


# -- 4. the seeded fuzz itself ---------------------------------------------------------------


@pytest.mark.parametrize("block", range(6))
def test_seeded_fuzz_of_temperature_sensors(block: int) -> None:
    """300 seeds (50 a case), each read live, from a backlog in polls of 1, 10 and 500, as
    routed polls of runs, and restarted in the middle (about 12 s in all)."""
    for seed in range(block * 50, block * 50 + 50):
        assert check(temp_scenario(seed), seed) == {}, seed


@pytest.mark.parametrize("seed", range(30))
def test_seeded_fuzz_of_pumps(seed: int) -> None:
    """30 pump seeds, read live, from a backlog in polls of 1, 10 and 500 and restarted."""
    assert check(pump_scenario(seed), seed) == {}, seed


# -- 5. machines: a machine alert live and not from a backlog -------------------------------

#: docs/architecture.md's known limit: a machine's dead-channel rule compares its channels'
#: event times, while a silent channel's last window closes by input time, which a backlog does
#: not run through a silence; so a backlog can score a machine window without a channel live had.
MACHINE_LIMIT = "a known limit: the dead-channel rule against a backlog's input time"

PUMP_146 = [
    ("m0/flow", 1032.0, 44.2),
    ("m0/current", 1034.0, 21.61),
    ("m0/flow", 1034.0, 50.28),
    ("m0/flow", 1037.0, 51.21),
    ("m0/current", 1039.0, 18.72),
    ("m0/flow", 1039.0, 42.52),
    ("m0/current", 1094.0, 22.03),
    ("m0/current", 1099.0, 21.4),
    ("m0/current", 1104.0, 21.41),
    ("m0/current", 1109.0, 18.53),
    ("m0/current", 1114.0, 16.79),
    ("m0/current", 1119.0, 23.23),
    ("m0/current", 1124.0, 19.58),
    ("m0/current", 1129.0, 18.63),
    ("m0/current", 1134.0, 19.19),
    ("m0/current", 1139.0, 21.33),
    ("m0/current", 1144.0, 21.06),
    ("m0/current", 1149.0, 20.8),
    ("m0/current", 1154.0, 20.33),
    ("m0/current", 1159.0, 19.29),
    ("m0/current", 1164.0, 16.66),
    ("m0/current", 1169.0, 19.09),
    ("m0/current", 1174.0, 22.4),
    ("m0/current", 1179.0, 19.76),
    ("m0/current", 1184.0, 21.16),
    ("m0/current", 1189.0, 15.36),
    ("m0/current", 1194.0, 18.62),
    ("m0/current", 1199.0, 20.41),
    ("m0/current", 1204.0, 17.16),
    ("m0/current", 1209.0, 18.91),
    ("m0/current", 1214.0, 20.74),
    ("m0/current", 1219.0, 20.23),
    ("m0/current", 1224.0, 17.88),
    ("m0/current", 1229.0, 21.88),
    ("m0/current", 1234.0, 20.31),
    ("m0/current", 1239.0, 20.03),
    ("m0/current", 1244.0, 19.19),
    ("m0/current", 1249.0, 20.22),
    ("m0/current", 1254.0, 20.58),
    ("m0/current", 1259.0, 20.06),
    ("m0/current", 1264.0, 19.61),
    ("m0/current", 1269.0, 23.12),
    ("m0/current", 1274.0, 16.55),
    ("m0/current", 1279.0, 17.74),
    ("m0/current", 1284.0, 19.44),
    ("m0/current", 1289.0, 20.76),
    ("m0/current", 1294.0, 22.53),
    ("m0/current", 1299.0, 20.62),
    ("m0/current", 1304.0, 21.1),
    ("m0/current", 1309.0, 19.15),
    ("m0/current", 1314.0, 20.99),
    ("m0/current", 1319.0, 20.75),
    ("m0/current", 1324.0, 18.57),
    ("m0/current", 1329.0, 21.13),
    ("m0/current", 1334.0, 19.31),
    ("m0/current", 1339.0, 18.57),
    ("m0/current", 1344.0, 17.4),
    ("m0/current", 1349.0, 19.77),
    ("m0/current", 1354.0, 18.2),
    ("m0/current", 1890.0, 21.3),
    ("m0/flow", 2050.0, 35.28),
    ("m0/current", 2055.0, 20.89),
    ("m0/flow", 2085.0, 43.46),
    ("m0/current", 2090.0, 18.0),
    ("m0/flow", 2105.0, 38.97),
]


@pytest.mark.xfail(strict=True, reason=MACHINE_LIMIT)
def test_a_machine_alert_opened_live_opens_from_a_backlog_too() -> None:
    """Shrunk from pump seed 146 (stale 60 s, lateness 0): the channels' readings, partly
    unpaired, with silences of 55 s, 536 s, 160 s and 30 s. Flow's window 1035..1040 (readings
    at 1037 and 1039 s) closes live by its timer at input time 1040 s, before current's reading
    at 1094 s. From a backlog input time does not run through the 55 s silence (a step past the
    idle timeout is a clock's jump, not time passing), so the window was still open when
    current's windows 1090 and 1095 closed by its own readings, and the dead-channel rule
    (current ``MAX_BEHIND`` windows past it) scored machine window 1035 with flow missing and
    left flow's out: the model learned another window, and live's alert (m0@1710858730) never
    opened. Waiting for any channel with a window open stalled machines whose channel's clock
    stopped or runs far behind (test_machines); a bounded wait is not found yet."""
    sc = Scenario(5, 60.0, 0.0, PUMP_146, machine=True)
    live = run_mode(sc, "live")
    assert [e[0] for e in live.get("m0", [])] == ["open"]
    for mode in ("backlog-1", "backlog-10", "backlog-500"):
        assert run_mode(sc, mode) == live, mode  # backlog-1 was: {} (no machine alert)


def test_a_machine_alert_opened_in_a_backlog_poll_across_a_silence_goes_stale_as_live() -> None:
    """Pump seed 0: machine m1's alert opens at 1600 s, both channels fall silent at 1795 s
    for 760 s (stale 60 s). Live it resolves stale in the silence, and the return pages again
    at 2555 s. Read from a backlog in polls of 500, the windows that open it are filed in the
    same poll as the channels' return, and were scored only once the poll was folded: when
    the first channel came back (``_back_machine``) the alert was not open yet, so it never
    went stale, ran on through the silence and resolved clean (one page, not two). The
    machine windows due are scored before its alert is looked at."""
    sc = pump_scenario(0)
    assert check(sc, 0) == {}
