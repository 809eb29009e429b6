"""The project's alert lifecycle as Alertmanager alerts. Pure: no Kafka, no HTTP.

Alertmanager knows an alert only by its label set: posting the same labels again updates that
alert, other labels make another one. So the labels of one ``alert_id`` must stay the same from
its ``open`` to its ``resolved``, and ``OpenAlerts`` is what remembers them.

Severity may rise during an episode (an ML warning whose machine then crosses the threshold).
Keeping the opening severity would leave a critical machine routed as a warning; so on a rise the
old label set is resolved and the alert is opened again under the new one, with the same
``alert_id`` and ``startsAt``: Alertmanager routes and notifies the escalation like any new
alert. Severity never goes down within an episode (the label is the highest seen so far).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

ALERTNAME = "SensorAnomaly"
#: Known severities, lowest first. An unknown one ranks as a warning.
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
#: Alertmanager rejects an alert whose end is not after its start.
MIN_DURATION = timedelta(milliseconds=1)
#: Events the notifier acts on; ``window`` (EMIT_ALL_WINDOWS) and others are passed over.
ALERT_EVENTS = ("open", "update", "resolved", "forgotten")


class BadRecord(ValueError):
    """An anomalies-topic value the notifier cannot read (logged and passed over)."""


def parse_time(text: str) -> datetime:
    """The records' ISO 8601 UTC (``2026-11-22T20:28:20.000Z``) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def format_time(when: datetime) -> str:
    """Alertmanager's RFC 3339, in UTC, to the millisecond as the records are."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def severity_of(record: Mapping[str, Any]) -> str:
    """The alert's severity: the dataflow's ``alert.severity`` (highest over the episode) when it
    sends one, else ``critical`` for a threshold alarm and ``warning`` for an ML-only alert."""
    alert = record.get("alert") or {}
    given = alert.get("severity")
    if isinstance(given, str) and given:
        return given
    return "critical" if "threshold" in (alert.get("reasons") or ()) else "warning"


def higher(a: str, b: str) -> str:
    """The higher of two severities (``a`` on a tie, so a known label is kept)."""
    return b if SEVERITY_RANK.get(b, 1) > SEVERITY_RANK.get(a, 1) else a


@dataclass(frozen=True)
class AmAlert:
    """One alert as Alertmanager's API v2 takes it (``postableAlert``)."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: str
    ends_at: str | None = None  # None: firing (Alertmanager applies its resolve_timeout)
    alert_id: str = field(default="", compare=False)
    #: When the notifier last had an event of this alert (its wall clock; from a state record,
    #: the record's Kafka timestamp): not posted, for ``OpenAlerts.expire``.
    seen_at: datetime | None = field(default=None, compare=False)
    #: When this notifier first posted it firing (its wall clock; None from a state record: in a
    #: previous run, long enough ago), for ``OpenAlerts``' ``min_firing``.
    posted_at: datetime | None = field(default=None, compare=False)
    #: A resolution Alertmanager must show firing this much longer (``OpenAlerts.min_firing``):
    #: its end is set when it is posted (``shown_from``), after an outage too.
    hold: timedelta = field(default=timedelta(0), compare=False)

    def shown_from(self, at: datetime) -> AmAlert:
        """As posted at ``at``: a held resolution ends no sooner than ``hold`` after it."""
        if self.hold <= timedelta(0) or self.ends_at is None:
            return self
        until = at + self.hold
        if parse_time(self.ends_at) >= until:
            return self
        return replace(self, ends_at=format_time(until))

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        """Alertmanager's identity of the alert: its sorted label set."""
        return tuple(sorted(self.labels.items()))

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": self.starts_at,
        }
        if self.ends_at is not None:
            out["endsAt"] = self.ends_at
        return out

    def state_payload(self) -> dict[str, Any]:
        """``payload()`` and when it was first posted, for the state topic: a restarted notifier
        still holds a short episode's resolution firing its ``min_firing`` (it took every
        alert it loaded for one posted long ago)."""
        out = self.payload()
        if self.posted_at is not None:
            out["postedAt"] = format_time(self.posted_at)
        return out

    @classmethod
    def from_payload(cls, alert_id: str, data: Mapping[str, Any]) -> AmAlert:
        """Back from ``state_payload()`` (the state topic's value; ``postedAt`` is not in a
        record written before it was kept)."""
        try:
            posted = data.get("postedAt")
            return cls(
                labels=dict(data["labels"]),
                annotations=dict(data.get("annotations", {})),
                starts_at=str(data["startsAt"]),
                ends_at=data.get("endsAt"),
                alert_id=alert_id,
                posted_at=None if posted is None else parse_time(str(posted)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRecord(f"state of {alert_id}: {exc!r}") from None

    def ended(self, at: datetime) -> AmAlert:
        """This alert resolved at ``at``. Alertmanager refuses an end before the start, and keeps
        an alert whose end is in the future firing until then: so when ``at`` is not after the
        start (a sensor clock running ahead), the start moves back, never the end forward."""
        end = format_time(at)
        if parse_time(self.starts_at) + MIN_DURATION > at:
            return replace(self, starts_at=format_time(at - MIN_DURATION), ends_at=end)
        return replace(self, ends_at=end)

    def started_by(self, now: datetime) -> AmAlert:
        """This alert with ``startsAt`` at most ``now``: Alertmanager refuses (400) a firing
        alert that starts after ``now`` + its resolve_timeout, and the start is the sensor's own
        event time, which may run ahead of this clock."""
        if parse_time(self.starts_at) > now:
            return replace(self, starts_at=format_time(now))
        return self

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "warning")


def _num(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _clock(iso: str) -> str:
    return iso[11:19]


TOP_DRIVERS = 3  # a machine alert's drivers in its annotation


def drivers_of(record: Mapping[str, Any]) -> str:
    """A machine record's top drivers, e.g. ``current (z 4.2), flow (z -3.1)``, or ``valve
    (still, 4% of its usual movement)`` where its chart drove it; "" for others."""
    raw = record.get("drivers")
    if not isinstance(raw, list):
        return ""
    parts = []
    for d in raw[:TOP_DRIVERS]:
        if isinstance(d, dict) and "channel" in d:
            z, moved = d.get("z"), d.get("movement")
            if isinstance(moved, int | float) and moved > 0:  # its chart drove it
                how = (
                    f"moving {moved:.1f}x its usual"
                    if moved >= 1
                    else f"still, {moved:.0%} of its usual movement"
                )
                parts.append(f"{d['channel']} ({how})")
            elif isinstance(z, int | float):
                parts.append(f"{d['channel']} (z {_num(z)})")
            else:
                parts.append(str(d["channel"]))
    return ", ".join(parts)


def description_of(record: Mapping[str, Any]) -> str | None:
    """Why this window is anomalous, in a line: its rules with the mean, and for ``ml`` the
    dataflow's ``explain`` text (which detector, the value against the sensor's own baseline,
    the threshold it crossed); None when the record says nothing of why."""
    unit = record.get("unit") or ""
    mean = record.get("mean")
    parts = []
    rules = [r for r in record.get("reasons") or () if r != "ml"]
    if rules and mean is not None:
        parts.append(f"{','.join(rules)}: mean {_num(mean)}{' ' + unit if unit else ''}")
    why = record.get("explain")
    text = why.get("text") if isinstance(why, Mapping) else None
    if isinstance(text, str) and text:
        parts.append(f"ml: {text}")
    return "; ".join(parts) or None


def _keep_description(old: AmAlert, annotations: Mapping[str, str]) -> dict[str, str]:
    """``annotations``, with ``old``'s description where they have none: an update or a
    resolution whose own window says nothing of why keeps the last word on it."""
    out = dict(annotations)
    if "description" not in out and "description" in old.annotations:
        out["description"] = old.annotations["description"]
    return out


def annotations_of(record: Mapping[str, Any]) -> dict[str, str]:
    """What a person reads: the window's mean, unit, window, the episode's reasons, a summary,
    and a description of why (``description_of``)."""
    alert = record.get("alert") or {}
    unit = record.get("unit") or ""
    reasons = ",".join(alert.get("reasons") or record.get("reasons") or ())
    name = f"{record['family']}/{record['sensor_id']}"
    out = {"reasons": reasons}
    if unit:
        out["unit"] = unit
    if alert.get("opened_at"):
        out["opened_at"] = alert["opened_at"]
    if alert.get("peak_mean") is not None:
        out["peak_mean"] = _num(alert["peak_mean"])
    if alert.get("anomalous_windows") is not None:
        out["anomalous_windows"] = str(alert["anomalous_windows"])
    mean = record.get("mean")
    start, end = record.get("window_start"), record.get("window_end")
    drivers = drivers_of(record)
    if drivers:
        out["drivers"] = drivers
    if mean is not None:
        out["mean"] = _num(mean)
    if start and end:
        out["window"] = f"{start}/{end}"
    if record.get("event") == "resolved":
        if record.get("resolution") == "stale":
            how = f"silent for {_num(record.get('silent_seconds'))} s"
        else:
            how = "clean windows"
        summary = f"{name} resolved ({how})"
        if mean is not None and start and end:
            summary += f": last window mean {_num(mean)}{' ' + unit if unit else ''}"
        out["summary"] = summary
    else:
        what = f"mean {_num(mean)}{' ' + unit if unit else ''}" if mean is not None else "anomaly"
        if "machine" in record:
            what = f"machine score {_num(mean)}" + (f", drivers {drivers}" if drivers else "")
        when = f" over {_clock(start)}-{_clock(end)} UTC" if start and end else ""
        since = f", open since {_clock(alert['opened_at'])} UTC" if alert.get("opened_at") else ""
        out["summary"] = f"{name}: {what}{when} ({reasons or 'anomaly'}){since}"
        description = description_of(record)
        if description:
            out["description"] = description
    return out


def alert_of(
    record: Mapping[str, Any], severity: str | None = None, now: datetime | None = None
) -> AmAlert:
    """The firing Alertmanager alert of an ``open``/``update`` (or the base of a ``resolved``)
    record: ``startsAt`` is the opening window's start, whatever event this is, but never after
    ``now`` when given (``AmAlert.started_by``)."""
    try:
        alert_id = record["alert_id"]
        alert = record["alert"]
        labels = {
            "alertname": ALERTNAME,
            "family": str(record["family"]),
            "sensor_id": str(record["sensor_id"]),
            "severity": severity or severity_of(record),
            "alert_id": str(alert_id),
        }
        starts_at = format_time(parse_time(alert["opened_at"]))
        made = AmAlert(labels, annotations_of(record), starts_at, alert_id=str(alert_id))
        return made if now is None else made.started_by(now)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadRecord(f"{record.get('event')!r} record without a usable alert: {exc!r}") from None


def end_of(record: Mapping[str, Any], now: datetime) -> datetime:
    """When a resolved alert ended: its resolving window's end (a replay gives the same), or now
    for a stale resolution (no window); never after now, since Alertmanager would keep an alert
    whose end is in the future firing until then (a sensor whose clock runs ahead)."""
    end = record.get("window_end")
    if end is not None and not isinstance(end, str):
        raise BadRecord(f"window_end is a {type(end).__name__}, not a time")
    try:
        at = parse_time(end) if end else now
    except ValueError:
        at = now
    return min(at, now)


@dataclass(frozen=True)
class Resolved:
    """The state value of a resolved ``alert_id``: remembered, so that a replayed ``open`` of it
    (a new consumer group, the dataflow's own replay after a restart) does not fire it again."""

    ends_at: str

    def payload(self) -> dict[str, Any]:
        return {"resolved": self.ends_at}


@dataclass(frozen=True)
class Expired:
    """The state value of an ``alert_id`` the notifier expired: forgotten as open (a later event
    of it fires it again), but its late ``resolved`` is not held firing, after a restart too."""

    ends_at: str

    def payload(self) -> dict[str, Any]:
        return {"expired": self.ends_at}


StateValue = AmAlert | Resolved | Expired


def state_value(alert_id: str, data: object) -> StateValue:
    """A state-topic value back from ``payload()``: an open alert, or a resolved or expired
    marker."""
    if isinstance(data, Mapping) and "resolved" in data:
        return Resolved(str(data["resolved"]))
    if isinstance(data, Mapping) and "expired" in data:
        return Expired(str(data["expired"]))
    if not isinstance(data, Mapping):
        raise BadRecord(f"state of {alert_id}: not a JSON object")
    return AmAlert.from_payload(alert_id, data)


@dataclass
class Change:
    """What one record asks for: alerts to post (in order), state writes (``alert_id`` -> open
    alert, ``Resolved``, or None to forget it), and the ids of replayed ``open``/``update``
    records of alerts already resolved, passed over."""

    posts: list[AmAlert] = field(default_factory=list)
    state: dict[str, StateValue | None] = field(default_factory=dict)
    replayed: list[str] = field(default_factory=list)

    def __iadd__(self, other: Change) -> Change:
        self.posts.extend(other.posts)
        self.state.update(other.state)
        self.replayed.extend(other.replayed)
        return self


class OpenAlerts:
    """The open alerts as Alertmanager last accepted them, by ``alert_id``, and the ids of the
    last ``resolved_memory`` resolved ones: the notifier's only state, rebuilt from the state
    topic after a restart; the open alerts are re-sent on a timer."""

    def __init__(
        self,
        alerts: Iterable[AmAlert] = (),
        resolved_memory: int = 10_000,
        min_firing: timedelta = timedelta(0),
    ) -> None:
        self._open: dict[str, AmAlert] = {a.alert_id: a for a in alerts}
        self.resolved_memory = resolved_memory
        self.min_firing = min_firing
        # Expired alerts (the newest ``resolved_memory``, kept in the state topic as
        # ``Expired``): their late ``resolved`` is not held firing again, which paged an alert
        # that was ending.
        self._expired: dict[str, None] = {}
        self._resolved: dict[str, None] = {}  # insertion order: the oldest resolved first

    @property
    def resolved(self) -> int:
        """How many resolved ids are remembered."""
        return len(self._resolved)

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, alert_id: object) -> bool:
        return alert_id in self._open

    def get(self, alert_id: str) -> AmAlert | None:
        return self._open.get(alert_id)

    def firing(self, now: datetime | None = None) -> list[AmAlert]:
        """Every open alert, to re-send; none starting after ``now`` when given (a state record
        written before starts were capped)."""
        if now is None:
            return list(self._open.values())
        return [alert.started_by(now) for alert in self._open.values()]

    def load(self, alert_id: str, alert: StateValue | None) -> None:
        """One state-topic record, in topic order (None: a tombstone)."""
        self._open.pop(alert_id, None)
        self._resolved.pop(alert_id, None)
        self._expired.pop(alert_id, None)
        if isinstance(alert, AmAlert):
            self._open[alert_id] = replace(alert, alert_id=alert_id)
        elif isinstance(alert, Resolved):
            self._resolved[alert_id] = None
            self._forget_oldest(Change())
        elif isinstance(alert, Expired):
            self._expired[alert_id] = None
            self._forget_expired(Change())

    def _remember(self, alert_id: str, ended: AmAlert, change: Change) -> None:
        """``alert_id`` resolved: keep it (and write it) as resolved, forgetting the oldest."""
        self._resolved.pop(alert_id, None)
        self._resolved[alert_id] = None
        change.state[alert_id] = Resolved(ended.ends_at or "")
        self._forget_oldest(change)

    def _forget_expired(self, change: Change) -> None:
        while len(self._expired) > self.resolved_memory:
            oldest = next(iter(self._expired))
            del self._expired[oldest]
            change.state[oldest] = None

    def _forget_oldest(self, change: Change) -> None:
        while len(self._resolved) > self.resolved_memory:
            oldest = next(iter(self._resolved))
            del self._resolved[oldest]
            change.state[oldest] = None  # a tombstone: compaction drops it from the state topic

    def apply(self, record: Mapping[str, Any], now: datetime) -> Change:
        """One record of the anomalies topic; ``BadRecord`` if it cannot be read."""
        if not isinstance(record, Mapping):
            raise BadRecord(f"not a JSON object: {type(record).__name__}")
        event = record.get("event")
        if event in ("open", "update"):
            return self._fire(record, now)
        if event == "resolved":
            return self._resolve(record, now)
        if event == "forgotten":
            return self._close_sensor(record, None, now)
        return Change()  # "window" records and anything newer: nothing for Alertmanager

    def _fire(self, record: Mapping[str, Any], now: datetime) -> Change:
        alert = alert_of(record, now=now)
        if alert.alert_id in self._resolved:  # a replay of an episode already over
            return Change(replayed=[alert.alert_id])
        change = self._close_sensor(record, alert.alert_id, now)  # a lost resolve: close it
        old = self._open.get(alert.alert_id)
        if old is not None:
            severity = higher(old.severity, alert.severity)
            # The start it was first posted with: a start capped at an earlier now stays put.
            alert = replace(
                alert_of(record, severity),
                starts_at=old.starts_at,
                annotations=_keep_description(old, alert.annotations),
            ).started_by(now)
            if alert.key != old.key:  # escalation: the old label set ends, the new one fires
                change.posts.append(old.ended(now))
        # A new label set (a first open, an escalation) is a new alert to Alertmanager.
        first = now if old is None or alert.key != old.key else old.posted_at
        self._expired.pop(alert.alert_id, None)
        alert = replace(alert, seen_at=now, posted_at=first)
        self._open[alert.alert_id] = alert
        change.posts.append(alert)
        change.state[alert.alert_id] = alert
        return change

    def expire(self, now: datetime, max_age: timedelta) -> Change:
        """Resolve, at ``now``, every open alert without an event for more than ``max_age``:
        its ``resolved`` was lost (the notifier was down longer than the anomalies topic keeps
        events), or it would be re-sent forever. Forgotten, not remembered as resolved: a later
        event of it is evidence that it is still open, and fires it again."""
        change = Change()
        for alert_id, alert in list(self._open.items()):
            if alert.seen_at is not None and now - alert.seen_at > max_age:
                del self._open[alert_id]
                ended = alert.started_by(now).ended(now)
                change.posts.append(ended)
                change.state[alert_id] = Expired(ended.ends_at or "")
                self._expired[alert_id] = None
                self._forget_expired(change)
        return change

    def _resolve(self, record: Mapping[str, Any], now: datetime) -> Change:
        alert_id = record.get("alert_id")
        # Read whole before the open alert is let go: an unreadable record (BadRecord) leaves
        # it open and re-sent, not silently dropped to expire in Alertmanager.
        old = self._open.get(alert_id) if isinstance(alert_id, str) else None
        fresh = alert_of(record, old.severity if old is not None else None, now)
        end = end_of(record, now)
        if old is not None:
            del self._open[old.alert_id]
        # The labels it fired with; the record's latest annotations (how it was resolved).
        base = (
            fresh
            if old is None
            else replace(old, annotations=_keep_description(old, fresh.annotations))
        )
        ended = self._shown(base.ended(end), old, now)
        change = Change([ended])
        self._remember(fresh.alert_id, ended, change)
        return change

    def _shown(self, ended: AmAlert, old: AmAlert | None, now: datetime) -> AmAlert:
        """``ended``, its end moved to ``min_firing`` after it was first posted when that is
        later: Alertmanager notifies nothing of an alert it first sees resolved, nor of one
        resolved within its group_wait, so an episode that opened and resolved while this
        notifier was behind (a backlog after a restart or an outage) paged no one. With its end
        ahead, Alertmanager holds it firing until then, notifies it, then its resolution."""
        if self.min_firing <= timedelta(0):
            return ended
        if old is None:
            if ended.alert_id in self._resolved or ended.alert_id in self._expired:
                return ended  # read again after a crash, or expired here: already shown
            left = self.min_firing  # its open never reached this notifier: shown when posted
        elif old.posted_at is None:
            return ended  # posted in an earlier run (from the state topic): long enough ago
        else:
            left = old.posted_at + self.min_firing - now
        if left <= timedelta(0):
            return ended  # shown firing long enough by now
        return replace(ended, hold=left)

    def posted(
        self,
        alerts: Iterable[AmAlert],
        read: datetime,
        at: datetime,
        state: dict[str, StateValue | None] | None = None,
    ) -> None:
        """Alertmanager took these at ``at``: a firing one first posted from the batch read at
        ``read`` was shown from ``at`` (an outage between them is no time shown firing). So
        say the batch's ``state`` records still to be written."""
        for alert in alerts:
            mine = self._open.get(alert.alert_id)
            if alert.ends_at is None and mine is not None and mine.posted_at == read:
                shown = self._open[alert.alert_id] = replace(mine, posted_at=at)
                if state is not None and isinstance(state.get(alert.alert_id), AmAlert):
                    state[alert.alert_id] = shown

    def _close_sensor(self, record: Mapping[str, Any], keep: str | None, now: datetime) -> Change:
        """Resolve the sensor's open alerts other than ``keep``: a ``forgotten`` sensor's, or an
        older alert still open when a new one opens (its resolve was never seen)."""
        try:
            family, sensor = str(record["family"]), str(record["sensor_id"])
        except KeyError as exc:
            raise BadRecord(f"record without {exc}") from None
        change = Change()
        for alert_id, alert in list(self._open.items()):
            if (
                alert_id != keep
                and alert.labels.get("family") == family
                and alert.labels.get("sensor_id") == sensor
            ):
                del self._open[alert_id]
                ended = alert.ended(now)
                change.posts.append(ended)
                self._remember(alert_id, ended, change)
        return change


def collapse(alerts: Iterable[AmAlert]) -> list[AmAlert]:
    """One alert per label set, the last one, in the order of those last ones: a batch that
    opened and resolved an alert posts only its resolution, so Alertmanager's merge of two
    updates stamped in the same instant cannot pick the older."""
    last: dict[tuple[tuple[str, str], ...], AmAlert] = {}
    for alert in alerts:
        last.pop(alert.key, None)
        last[alert.key] = alert
    return list(last.values())


class ResendClock:
    """When to re-send every open alert: every ``interval`` seconds, and at once when asked
    (after a restart or an outage, when Alertmanager may have lost them: it keeps alerts in
    memory only)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next: float | None = None  # None: due now

    def due(self, now: float) -> bool:
        return self._next is None or now >= self._next

    def wait(self, now: float) -> float:
        """Seconds until due (0 if due)."""
        return 0.0 if self._next is None else max(0.0, self._next - now)

    def sent(self, now: float, after: float | None = None) -> None:
        """Sent at ``now``: due again after the interval (or ``after`` seconds, a retry)."""
        self._next = now + (self.interval if after is None else after)

    def force(self) -> None:
        self._next = None


def parse_go_duration(text: str) -> float:
    """Seconds of a Go/Prometheus duration (``5m``, ``1h30m``, ``90s``, ``1d``); ValueError else.
    For the check of Alertmanager's own ``resolve_timeout``."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    text = text.strip()
    if not text:
        raise ValueError("empty duration")
    total, num = 0.0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            num += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        if not num or unit not in units:
            raise ValueError(f"not a duration: {text!r}")
        total += float(num) * units[unit]
        num = ""
        i += len(unit)
    if num:
        raise ValueError(f"not a duration (no unit): {text!r}")
    return total
