"""Alert lifecycle per sensor: one alert per anomalous episode, not one per window.

Pure. A tutorial this project replaces sent an alert for every anomalous (overlapping) window, so a
fault lasting a minute paged a dozen times. Here a sensor's alert **opens** at its first anomalous
window and stays quiet while the episode persists: an ``update`` is sent at once when a new reason
appears or the severity rises (a warning that became critical must not wait: routing follows
it), and when the peak moved further, at most once per ``update_every`` windows (a move within
them is sent with the first anomalous window after them, not lost). The alert
**resolves** after ``resolve_after`` consecutive clean windows. The ``alert_id`` is derived from
the sensor and the window that opened it, so a replay after a crash gives the same id.

An alert that stays open with no news sends its ``update`` again, unchanged, once ``refresh``
(ns of the sensor's own time) has passed since its last event: a steady fault sends nothing
else for as long as it lasts, and a consumer that resolves an alert silent for too long (the
notifier's expiry, for an alert whose ``resolved`` was lost) would end one still going.

After an alert resolves, a new alert raised by the model alone stays silent for ``cooldown``
windows: a sensor whose episode flickers on and off pages once, not once per flicker. The count
runs from the resolution and silent anomalous windows do not restart it, so a fault that keeps
coming back pages again once the cooldown is over. An alarm of a rule (the user's own,
``threshold`` or any configured one) always opens.

**Adapted.** The model learns every window, so a lasting shift becomes its new normal and the
windows turn clean while the sensor is still far from where it was. An episode the model took
part in therefore resolves ``clean`` only when the sensor is back: within ``reach`` of its
``home`` (the scorer's level and a few of its spreads when the alert opened). A sensor that
stays away resolves ``adapted`` once the episode has had ``adapt_after`` clean windows in all
(a flicker of anomalous windows does not start the count again, or a fault that never settles
would hold its alert open for good, and a new fault would only be an ``update``): the new level
is its baseline now, and the alert says so instead of calling it clean.

An episode of the model alone resolves only once the model has **settled**: its level (``home``
as passed with each window) within two of its spreads of the sensor, the slack within which its
drift sums do not grow. (One a user's rule took part in ends with the rule's condition: an
overheat resolves when the machine has cooled down, ``clean`` if back near home, else
``adapted`` at once: not back, and no wait for an episode that is over.) The model learns
a lasting move slowly; resolved while its level still lags, its next windows would call the
sensor's place a change again (the drift sums) and page a second time for one episode.

The home from before an adapted episode is kept as the sensor's ``origin``: when it later
returns there, the model calls the return a change (it learned the fault's level), and that
alert resolves ``clean`` once the sensor is back near its origin and the model has settled. It
is where the sensor belongs, not a new level to adapt to; the origin is kept until the sensor
comes back to it. A window back at the origin opens its alert inside the cooldown too: the
return is news, not a flicker, and held back the model accepts it as a change of level
(``SensorScorer._anchor``, some 20 windows) before the cooldown ends, so it never paged.

The alert's severity is the highest of its episode's reasons'; a rise in severity is news, sent
as an ``update`` at once, like a new reason.

The peak is the anomalous window mean furthest from the sensor's last clean window mean before
the alert opened (its baseline), so an overheat reports its hottest window and a drop its
lowest. Clean windows within the episode do not move the baseline: once the model has accepted
a shifted level, the sensor's return to normal would otherwise be "further" from it than the
fault was, and the healthy value reported as the peak.

>>> t = AlertTracker()
>>> [e and e.event for e in (t.observe("s", i, m, 0.0, r, 10, 2, 5) for i, m, r in
...     [(0, 65, []), (1, 95, ["threshold"]), (2, 99, ["threshold"]), (3, 66, []), (4, 65, [])])]
[None, 'open', None, None, 'resolved']
"""

from __future__ import annotations

from typing import NamedTuple

from dataflow.pickled import restore
from dataflow.rules import RANK

OPEN, UPDATE, RESOLVED = "open", "update", "resolved"
CLEAN, STALE, ADAPTED = "clean", "stale", "adapted"  # how a resolved alert ended
ML = "ml"  # the model's reason; every other reason is a user's rule
NEVER = 1 << 62  # ``calm`` of a sensor that never had an alert
# The model's level must be within 1 / SETTLED_SHARE of the reach (two spreads of the three it
# spans, dataflow.model.scoring.HOME_SPREADS: the drift sums' slack) from the sensor for its ML
# alert to resolve. One spread held alerts open 90-145 windows after a plain return.
SETTLED_SHARE = 1.5


class AlertEvent(NamedTuple):
    """An alert's change of state."""

    event: str  # open | update | resolved
    alert_id: str
    opened_at: int  # start of the first anomalous window, ns
    peak_mean: float
    peak_score: float
    peak_at: int  # start of the window holding peak_mean, ns
    reasons: tuple[str, ...]  # every reason seen during the episode
    anomalous_windows: int
    # Resolved events: clean (back, clean windows), adapted (clean but never back) or stale
    # (silence).
    resolution: str | None = None
    severity: str | None = None  # the highest severity of the episode's reasons


class AlertTracker:
    """One sensor's baseline and open alert, if any. Small: it lives in every sensor's state."""

    __slots__ = (
        "accepted",
        "alert_id",
        "anomalous",
        "baseline",
        "calm",
        "clean",
        "event_at",
        "home",
        "lasted",
        "opened_at",
        "origin",
        "origin_reach",
        "peak_at",
        "peak_mean",
        "peak_score",
        "pending",
        "reach",
        "reasons",
        "severity",
        "since_event",
    )

    def __init__(self) -> None:
        self.alert_id: str | None = None
        self.baseline: float | None = None
        self.calm = NEVER  # clean windows since the last anomalous one, with no alert open
        self.anomalous = self.clean = self.since_event = 0
        self.opened_at = self.peak_at = 0
        self.peak_mean = self.peak_score = 0.0
        self.home = self.reach = 0.0  # where the sensor was when the alert opened; 0: no test
        self.lasted = 0  # windows since the alert opened
        # The home from before an episode that resolved adapted (reach 0: none).
        self.origin = self.origin_reach = 0.0
        self.reasons: tuple[str, ...] = ()
        self.severity: str | None = None
        self.pending = False  # a peak that moved within ``update_every`` of the last event
        self.accepted = False  # the model took the episode's state as its new normal (accept)
        self.event_at = 0  # start of the window of the open alert's latest event, ns

    def __setstate__(self, state: tuple[None, dict[str, object]]) -> None:
        """Trackers pickled before ``pending``, ``accepted`` and ``event_at`` existed had none:
        an alert open then is refreshed as if its last event was its opening."""
        self.pending = self.accepted = False
        self.event_at = -1
        restore(self, state)
        if self.event_at == -1:
            self.event_at = self.opened_at

    def quiet(self, mean: float) -> None:
        """A clean window while no alert is open: the usual case, kept cheap."""
        self.baseline = mean
        self.calm += 1

    def observe(
        self,
        alert_key: str,
        start: int,
        mean: float,
        score: float,
        reasons: list[str],
        update_every: int,
        resolve_after: int,
        cooldown: int = 0,
        severity: str | None = None,
        home: tuple[float, float] | None = None,
        adapt_after: int = 0,
        refresh: int = 0,
    ) -> AlertEvent | None:
        """Feed one closed window (``reasons`` empty when it is clean, ``severity`` the highest
        of its reasons'); return an event or None. ``home`` is (level, reach) of the sensor as
        its model knows it, read when an alert opens; ``refresh``: ns of silence after which
        an open alert's ``update`` is sent again (0: never)."""
        if not reasons:
            if self.alert_id is None:
                self.quiet(mean)
                return None
            self.clean += 1
            self.lasted += 1
            self.since_event += 1
            if self.clean < resolve_after:
                return self._refresh(start, refresh)
            how = CLEAN
            if self.accepted:
                how = ADAPTED  # the model's normal now, not where the sensor was
            elif self.reach > 0.0 and ML in self.reasons:
                waited = self.lasted - self.anomalous >= adapt_after
                # Settled: the model's level is within two of its spreads (the drift sums'
                # slack) of the sensor. Resolved before that, the model's next windows call
                # the sensor's new place a change again, and page a second time. The level
                # follows the sensor, so it settles. An episode a user's rule took part in
                # ends with the rule's condition (an overheat resolves when it cools down).
                if (
                    home is not None
                    and home[1] > 0.0
                    and self.reasons == (ML,)
                    and abs(home[0] - mean) * SETTLED_SHARE > home[1]
                ):
                    return self._refresh(start, refresh)
                if self._returning(mean):
                    self.origin_reach = 0.0  # back where it belongs: no origin any more
                elif abs(mean - self.home) > self.reach:
                    # Clean to the model, but not back where it was: the model's episode waits
                    # (it may yet come back); one a rule took part in ends with the rule's
                    # condition, said to be away (an overheat that cooled to a warmer level).
                    if not waited and self.reasons == (ML,):
                        return self._refresh(start, refresh)
                    how = ADAPTED
                    if self.origin_reach == 0.0:  # the first adapted episode's home
                        self.origin, self.origin_reach = self.home, self.reach
            event = self._event(RESOLVED, how)
            self.alert_id = None
            self.calm = 0
            self.accepted = False
            return event
        if self.alert_id is None:
            if self.calm < cooldown and reasons == [ML] and not self._returning(mean):
                self.calm += 1  # silent; the cooldown runs on from the last resolution
                return None
            self.home, self.reach = home if home is not None else (0.0, 0.0)
            if self.baseline is None:
                # No clean window yet (a sensor that starts hot): the peak is measured from
                # the model's level if it has one, else from the opening window, never from
                # the peak itself (every other window "moved" it, with an update each time).
                self.baseline = self.home if self.reach > 0.0 else mean
            self.alert_id = f"{alert_key}@{start}"
            self.opened_at = self.peak_at = start
            self.peak_mean, self.peak_score = mean, score
            self.reasons = tuple(reasons)
            self.severity = severity
            self.anomalous, self.clean, self.since_event, self.lasted = 1, 0, 0, 1
            self.pending = self.accepted = False
            self.event_at = start
            return self._event(OPEN)
        self.anomalous += 1
        self.lasted += 1
        self.clean = 0
        self.since_event += 1
        base = self.baseline if self.baseline is not None else self.peak_mean
        if abs(mean - base) > abs(self.peak_mean - base):
            self.peak_mean, self.peak_at = mean, start
            self.pending = True
        self.peak_score = max(self.peak_score, score)
        news = False
        new = tuple(r for r in reasons if r not in self.reasons)
        if new:
            self.reasons += new
            news = True
        if severity is not None and (self.severity is None or RANK[severity] > RANK[self.severity]):
            self.severity = severity
            news = True
        if news or (self.pending and self.since_event >= update_every):
            self.since_event = 0
            self.pending = False
            self.event_at = start
            return self._event(UPDATE)
        return self._refresh(start, refresh)

    def _refresh(self, start: int, refresh: int) -> AlertEvent | None:
        """The open alert's ``update`` again, unchanged, if ``refresh`` has passed since its
        last event (nothing else is news: a steady fault)."""
        if refresh <= 0 or start - self.event_at < refresh:
            return None
        self.event_at = start
        self.since_event = 0
        self.pending = False  # the peak goes with it
        return self._event(UPDATE)

    def _returning(self, mean: float) -> bool:
        """Is the sensor back near its origin (its home before an adapted episode)? Such a
        window is the return, news that the cooldown must not hold back: held, the model
        accepts the return as a change of level within the cooldown, and it is never paged."""
        return self.origin_reach > 0.0 and abs(mean - self.origin) <= self.origin_reach

    def accept(self) -> None:
        """The model took the state of the open episode as its new normal (a machine's joint
        model that started anew on it): the alert resolves ``adapted`` at its clean windows,
        which are clean to the new model only."""
        if self.alert_id is not None:
            self.accepted = True

    def stale(self) -> AlertEvent | None:
        """The sensor fell silent: resolve its open alert, if any, as stale.

        No cooldown follows: whatever the sensor says when it comes back is news.
        """
        if self.alert_id is None:
            return None
        event = self._event(RESOLVED, STALE)
        self.alert_id = None
        self.accepted = False
        self.calm = NEVER
        return event

    def _event(self, kind: str, resolution: str | None = None) -> AlertEvent:
        assert self.alert_id is not None
        return AlertEvent(
            kind,
            self.alert_id,
            self.opened_at,
            self.peak_mean,
            self.peak_score,
            self.peak_at,
            self.reasons,
            self.anomalous,
            resolution,
            self.severity,
        )
