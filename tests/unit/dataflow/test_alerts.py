"""The alert lifecycle: opens once, never repeats, updates rarely, resolves after K clean."""

from dataflow.alerts import AlertTracker


def feed(
    windows: list[tuple[float, list[str]]], update_every: int = 1000, resolve_after: int = 3
) -> list[tuple[int, str, str]]:
    tracker = AlertTracker()
    events = []
    for i, (mean, reasons) in enumerate(windows):
        ev = tracker.observe("temperature/2", i, mean, 0.0, reasons, update_every, resolve_after)
        if ev:
            events.append((i, ev.event, ev.alert_id))
    return events


HOT = (95.0, ["threshold"])
OK = (65.0, [])


def test_long_episode_opens_once_and_never_repeats() -> None:
    events = feed([OK] * 3 + [HOT] * 200 + [OK] * 3)
    assert [(i, e) for i, e, _ in events] == [(3, "open"), (205, "resolved")]
    assert events[0][2] == events[1][2] == "temperature/2@3"


def test_resolves_only_after_k_consecutive_clean_windows() -> None:
    flappy = [HOT, OK, OK, HOT, OK, OK, HOT, OK, OK, OK]
    assert [(i, e) for i, e, _ in feed(flappy, resolve_after=3)] == [(0, "open"), (9, "resolved")]
    assert [(i, e) for i, e, _ in feed(flappy, resolve_after=2)] == [
        (0, "open"),
        (2, "resolved"),
        (3, "open"),
        (5, "resolved"),
        (6, "open"),
        (8, "resolved"),
    ]


def test_new_episode_gets_a_new_id() -> None:
    events = feed([HOT, OK, HOT, OK], resolve_after=1)
    assert [e for _, e, _ in events] == ["open", "resolved", "open", "resolved"]
    assert events[0][2] != events[2][2]


def test_updates_at_most_every_n_windows_and_only_when_the_peak_moves() -> None:
    rising = [OK] + [(90.0 + i, ["threshold"]) for i in range(30)]
    events = feed(rising, update_every=10)
    assert [(i, e) for i, e, _ in events] == [(1, "open"), (11, "update"), (21, "update")]
    flat = [OK] + [HOT] * 30
    assert [e for _, e, _ in feed(flat, update_every=10)] == ["open"]


def test_a_new_reason_is_an_update() -> None:
    events = feed([OK, HOT, HOT, (95.0, ["threshold", "ml"])], update_every=1)
    assert [e for _, e, _ in events] == ["open", "update"]


def test_peak_is_furthest_from_the_baseline_in_either_direction() -> None:
    tracker = AlertTracker()
    last = None
    for mean, reasons in [
        (20.0, []),
        (5.0, ["ml"]),
        (2.0, ["ml"]),
        (9.0, ["ml"]),
        (20, []),
        (20, []),
        (20, []),
    ]:
        last = tracker.observe("aq/1", 0, mean, 0.5, reasons, 100, 3) or last
    assert last is not None and last.event == "resolved"
    assert last.peak_mean == 2.0 and last.anomalous_windows == 3


ML = (40.0, ["ml"])


def cooled(windows: list[tuple[float, list[str]]], cooldown: int) -> list[tuple[int, str]]:
    tracker = AlertTracker()
    out = []
    for i, (mean, reasons) in enumerate(windows):
        ev = tracker.observe("s", i, mean, 0.0, reasons, 1000, 3, cooldown)
        if ev:
            out.append((i, ev.event))
    return out


def test_an_ml_episode_that_flickers_pages_once_within_the_cooldown() -> None:
    # open at 0, resolved at 3; a flicker 3 windows later is silent with a cooldown of 10;
    # the episode at 17, 14 windows after the resolution, opens.
    windows = [ML] + [OK] * 3 + [OK] * 2 + [ML] + [OK] * 10 + [ML] + [OK] * 3
    assert cooled(windows, cooldown=10) == [
        (0, "open"),
        (3, "resolved"),
        (17, "open"),
        (20, "resolved"),
    ]
    assert cooled(windows, cooldown=0) == [
        (0, "open"),
        (3, "resolved"),
        (6, "open"),
        (9, "resolved"),
        (17, "open"),
        (20, "resolved"),
    ]


def test_a_fault_that_keeps_coming_back_pages_again_after_the_cooldown() -> None:
    """Silent flickers do not restart the cooldown: an intermittent fault is not muted for
    good by its first episode."""
    windows = [ML] + [OK] * 3 + ([OK] * 4 + [ML]) * 6
    events = cooled(windows, cooldown=10)
    assert events[:2] == [(0, "open"), (3, "resolved")]
    opened = [i for i, kind in events if kind == "open"]
    assert len(opened) >= 2 and 3 + 10 <= opened[1] <= 3 + 10 + 5


def test_a_threshold_alarm_opens_even_inside_the_cooldown() -> None:
    windows = [ML] + [OK] * 3 + [HOT] + [OK] * 3
    assert cooled(windows, cooldown=100) == [
        (0, "open"),
        (3, "resolved"),
        (4, "open"),
        (7, "resolved"),
    ]


def test_a_silent_sensor_s_alert_resolves_as_stale_once_and_a_clean_end_says_clean() -> None:
    t = AlertTracker()
    assert t.stale() is None  # nothing open
    opened = t.observe("s", 0, 95.0, 0.0, ["ml"], 10, 2, 0)
    assert opened is not None and opened.resolution is None
    stale = t.stale()
    assert stale is not None and (stale.event, stale.resolution) == ("resolved", "stale")
    assert stale.alert_id == opened.alert_id and t.stale() is None
    # No cooldown after silence: the model's next alert opens at once.
    again = t.observe("s", 9, 95.0, 0.0, ["ml"], 10, 2, 48)
    assert again is not None and again.event == "open"
    events = [t.observe("s", i, 60.0, 0.0, [], 10, 2, 48) for i in (10, 11)]
    assert events[1] is not None and events[1].resolution == "clean"


def away(
    windows: list[tuple[float, list[str]]], adapt_after: int, reach: float = 3.0
) -> list[tuple[int, str, str | None]]:
    """Windows of an ML episode through the lifecycle, with the model's home as the shard
    passes it: the level of the last clean window before each one (as a model that learns
    every window has it), and a fixed reach."""
    tracker = AlertTracker()
    events = []
    level = windows[0][0]
    for i, (mean, reasons) in enumerate(windows):
        ev = tracker.observe(
            "s", i, mean, 0.0, reasons, 1000, 3, 0, None, (level, reach), adapt_after
        )
        if not reasons:
            level = mean
        if ev is not None:
            events.append((i, ev.event, ev.resolution))
    return events


HOME, FAULT = (50.0, []), (80.0, [])
FAULT_ML = (80.0, ["ml"])


def test_a_fault_that_flickers_while_away_still_resolves_adapted() -> None:
    """The count of clean windows is in all, not in a row: a fault that keeps flickering must
    not hold its alert open for good (then a new fault would only be an update)."""
    windows = [HOME] * 5 + [FAULT_ML] + ([FAULT] * 9 + [FAULT_ML]) * 10 + [FAULT] * 3
    events = away(windows, adapt_after=40)
    assert events[0] == (5, "open", None)
    resolved = [(i, how) for i, kind, how in events if kind == "resolved"]
    assert resolved and resolved[0][1] == "adapted"
    assert 5 + 40 <= resolved[0][0] <= 5 + 40 + 12  # about 40 clean windows after the open


def test_a_sensor_that_returns_after_an_adapted_alert_resolves_clean() -> None:
    """After the fault's level became the baseline, the return is a change to the model, but
    the sensor is back where it belongs: that alert resolves clean, not adapted."""
    windows = [HOME] * 5 + [FAULT_ML] + [FAULT] * 30 + [(50.0, ["ml"])] + [HOME] * 3
    events = away(windows, adapt_after=20)
    assert [(kind, how) for _, kind, how in events] == [
        ("open", None),
        ("resolved", "adapted"),
        ("open", None),
        ("resolved", "clean"),
    ]
    assert events[-1][0] == len(windows) - 1  # after resolve_after windows, not adapt_after


def test_a_spike_on_the_adapted_level_resolves_clean_and_the_origin_is_kept() -> None:
    windows = [HOME] * 5 + [FAULT_ML] + [FAULT] * 30  # adapted: 80 is the baseline now
    windows += [(99.0, ["ml"])] + [FAULT] * 3  # a spike on it, and back to 80: clean
    windows += [FAULT] * 10 + [(50.0, ["ml"])] + [HOME] * 3  # then home: clean too
    events = away(windows, adapt_after=20)
    assert [how for _, kind, how in events if kind == "resolved"] == ["adapted", "clean", "clean"]


def test_an_overheat_the_model_saw_too_resolves_when_it_cools_down() -> None:
    """A rule took part (threshold and ml): the episode ends with the rule's condition, three
    clean windows back near home, though the model's level still lags above (it resolved
    only when the model settled, and a cooled machine's alert stayed open)."""
    tracker = AlertTracker()
    events = []
    for i, (mean, reasons, level) in enumerate(
        [(65.0, [], 65.0)] * 3
        + [(100.0, ["threshold", "ml"], 66.0)] * 10
        + [(65.0, [], 80.0)] * 3  # cooled; the model's level is still 15 off, its reach 3
    ):
        ev = tracker.observe("t/2", i, mean, 0.0, reasons, 1000, 3, 48, None, (level, 3.0), 360)
        if ev is not None:
            events.append((i, ev.event, ev.resolution))
    assert events == [(3, "open", None), (15, "resolved", "clean")]


def test_a_rise_in_severity_within_the_update_interval_is_sent_at_once() -> None:
    """A warning of the model that crosses the threshold the next window is critical now: the
    notifier routes by that update, so it must not wait for (or die within) ``update_every``."""
    tracker = AlertTracker()
    events = []
    windows = [(65.0, [], None), (80.0, ["ml"], "warning")]
    windows += [(95.0, ["threshold", "ml"], "critical")] * 40 + [(65.0, [], None)] * 3
    for i, (mean, reasons, severity) in enumerate(windows):
        ev = tracker.observe("t/1", i, mean, 0.0, reasons, 12, 3, 48, severity)
        if ev is not None:
            events.append((i, ev.event, ev.severity, ev.reasons))
    assert events[:2] == [
        (1, "open", "warning", ("ml",)),
        (2, "update", "critical", ("ml", "threshold")),
    ]
    assert events[-1][1:3] == ("resolved", "critical")


def test_a_peak_move_within_the_update_interval_is_sent_later_not_lost() -> None:
    """The peak moved on the second window and never again: it reaches the user with the first
    anomalous window after ``update_every``, not only when the peak happens to move again."""
    events = feed([OK, (95.0, ["threshold"]), (99.0, ["threshold"])] + [HOT] * 30, update_every=10)
    assert [(i, e) for i, e, _ in events] == [(1, "open"), (11, "update")]
    tracker = AlertTracker()
    sent = [
        tracker.observe("t/2", i, m, 0.0, r, 10, 3)
        for i, (m, r) in enumerate([OK, (95.0, ["threshold"]), (99.0, ["threshold"])] + [HOT] * 9)
    ]
    assert [e.peak_mean for e in sent if e is not None] == [95.0, 99.0]


def test_the_sensor_s_return_to_normal_is_never_its_alert_s_peak() -> None:
    """The model accepted a shifted level (its windows turned clean, the alert still open as the
    sensor is away); the return to the old level is anomalous to the model. The peak stays the
    fault's: measured from the last clean window before the alert, the healthy value is not
    "further" than the fault (it used to be reported as the peak, with an update saying so)."""
    windows = [HOME] * 5 + [(75.0, ["ml"])] + [(75.0, [])] * 10
    windows += [(50.0, ["ml"])] * 5 + [HOME] * 3
    tracker = AlertTracker()
    events = []
    for i, (mean, reasons) in enumerate(windows):
        ev = tracker.observe("s", i, mean, 0.0, reasons, 1, 3, 0, None, (50.0, 3.0), 360)
        if ev is not None:
            events.append(ev)
    assert [e.event for e in events] == ["open", "resolved"]
    assert events[-1].peak_mean == 75.0 and events[-1].resolution == "clean"


def test_a_tracker_pickled_before_deferred_updates_restores() -> None:
    tracker = AlertTracker()
    tracker.observe("s", 0, 95.0, 0.0, ["threshold"], 10, 3)
    state = tracker.__reduce_ex__(2)[2]
    old = (None, {k: v for k, v in state[1].items() if k != "pending"})
    restored = AlertTracker.__new__(AlertTracker)
    restored.__setstate__(old)
    assert restored.pending is False and restored.alert_id == "s@0"
    restored.observe("s", 1, 99.0, 0.0, ["threshold"], 10, 3)
    assert restored.pending is True


def test_an_overheat_that_cools_to_a_warmer_level_resolves_adapted_when_the_rule_ends() -> None:
    """Threshold and ml, cooled to 72 (home 65, reach 3): the episode ends with the rule, said
    to be away, three clean windows on (it waited out ALERT_ADAPT_WINDOWS, 373 windows in a
    reviewer's run: a critical page held open half an hour after the machine cooled)."""
    tracker = AlertTracker()
    events = []
    windows = [(65.0, [])] * 3 + [(95.0, ["threshold", "ml"])] * 10 + [(72.0, [])] * 400
    for i, (mean, reasons) in enumerate(windows):
        ev = tracker.observe("t/2", i, mean, 0.0, reasons, 1000, 3, 48, None, (65.0, 3.0), 360)
        if ev is not None:
            events.append((i, ev.event, ev.resolution))
    assert events == [(3, "open", None), (15, "resolved", "adapted")]
    # The model's own episode at that level still waits: it may yet come back.
    ml_only = AlertTracker()
    out = [
        ml_only.observe("s", i, m, 0.0, r, 1000, 3, 48, None, (65.0, 3.0), 360)
        for i, (m, r) in enumerate([(65.0, [])] * 3 + [(72.0, ["ml"])] + [(72.0, [])] * 20)
    ]
    assert [e.event for e in out if e is not None] == ["open"]


def test_a_sensor_that_starts_hot_reports_its_hottest_window_without_an_update_storm() -> None:
    """No clean window before the alert: the peak was measured from the peak itself, so each
    different window "moved" it (an update every interval), ending at 91 of 95..99."""
    tracker = AlertTracker()
    events = []
    for i, mean in enumerate([95.0, 97.0, 99.0, 98.0, 96.0, 93.0, 91.0] * 3 + [65.0] * 3):
        reasons = ["threshold"] if mean >= 90 else []
        ev = tracker.observe("t/9", i, mean, 0.0, reasons, 5, 3)
        if ev is not None:
            events.append((ev.event, ev.peak_mean))
    assert events[0] == ("open", 95.0) and events[-1] == ("resolved", 99.0)
    assert [e for e in events if e[0] == "update"] == [("update", 99.0)]


W = 10 * 10**9  # 10 s windows, in ns
HOUR = 3600 * 10**9


def steady(
    windows: list[tuple[float, list[str]]], refresh: int, home: tuple[float, float] | None = None
) -> list[tuple[int, str, float]]:
    """(window start in s, event, peak) of each event, windows ``W`` apart."""
    tracker = AlertTracker()
    out = []
    for i, (mean, reasons) in enumerate(windows):
        ev = tracker.observe(
            "t/2", i * W, mean, 0.0, reasons, 12, 3, 48, None, home, 360, refresh=refresh
        )
        if ev is not None:
            out.append((i * W // 10**9, ev.event, ev.peak_mean))
    return out


def test_a_steady_fault_sends_its_update_again_each_refresh_and_nothing_else() -> None:
    """Three hours at 95: nothing is news after the open, so without the refresh nothing is
    sent, and the notifier's expiry took the fault for a lost one after a day."""
    hot = [(95.0, ["threshold"])] * (3 * 360 + 1)
    assert steady(hot, HOUR) == [(0, "open", 95.0), (3600, "update", 95.0), (7200, "update", 95.0),
                                 (10800, "update", 95.0)]  # fmt: skip
    assert steady(hot, 0) == [(0, "open", 95.0)]


def test_news_restarts_the_refresh_clock() -> None:
    """An update for a hotter peak at 30 min: the next refresh an hour after it, not after the
    open."""
    windows = [(95.0, ["threshold"])] * 180 + [(97.0, ["threshold"])] * 400
    events = steady(windows, HOUR)
    assert [(t, e) for t, e, _ in events] == [(0, "open"), (1800, "update"), (5400, "update")]
    assert events[-1][2] == 97.0


def test_an_alert_waiting_for_its_model_to_settle_is_refreshed_too() -> None:
    """Clean windows while the model's level still lags (an ML episode holds): still open,
    so still said to be once an hour."""
    windows = [(80.0, ["ml"])] + [(80.0, [])] * 800
    events = steady(windows, HOUR, home=(50.0, 3.0))
    assert [(t, e) for t, e, _ in events] == [(0, "open"), (3600, "update"), (7200, "update")]


def test_a_tracker_pickled_before_the_refresh_counts_from_its_opening() -> None:
    tracker = AlertTracker()
    tracker.observe("s", 0, 95.0, 0.0, ["threshold"], 10, 3)
    state = tracker.__reduce_ex__(2)[2]
    old = (None, {k: v for k, v in state[1].items() if k != "event_at"})
    restored = AlertTracker.__new__(AlertTracker)
    restored.__setstate__(old)
    assert restored.event_at == 0 == restored.opened_at
    assert restored.observe("s", HOUR - 1, 95.0, 0.0, ["threshold"], 10, 3, refresh=HOUR) is None
    event = restored.observe("s", HOUR, 95.0, 0.0, ["threshold"], 10, 3, refresh=HOUR)
    assert event is not None and event.event == "update" and event.alert_id == "s@0"
