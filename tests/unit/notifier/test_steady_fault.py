"""A fault that lasts longer than the notifier's expiry stays firing: the dataflow's refresh
(``ALERT_REFRESH_SECONDS``) against the notifier's ``NOTIFIER_EXPIRE_SECONDS``, both at their
defaults, with the real shard, encoding and notifier state between them (no Kafka)."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from dataflow.config import Settings as FlowSettings
from dataflow.encoding import encode_window
from dataflow.families import TEMPERATURE
from dataflow.flow import shard_config
from dataflow.progress import Beat
from dataflow.readings import Reading
from dataflow.shard import SensorEvent, ShardState, WindowResult
from notifier.alerts import OpenAlerts
from notifier.config import Settings as NotifierSettings

S = 10**9
T0 = 1_800_000_000 * S
EVERY = 60  # seconds between the machine's readings: two days in under 3,000 of them
DAYS = 2


def overheat(env: dict[str, str]) -> Iterator[tuple[datetime, dict[str, Any] | None]]:
    """Machine 2 held at 95 °C for ``DAYS``, live, read by a shard of the flow's settings:
    each minute's wall time, with each alert record the anomalies topic would carry then."""
    settings = FlowSettings.from_env(env)
    state = ShardState(shard_config(settings))
    part = f"{settings.families[0].topic}/0"
    for sec in range(0, DAYS * 86_400, EVERY):
        now = T0 / S + sec + 1
        out = state.ingest(
            [Beat(part, now, T0 / S), Reading(TEMPERATURE, "2", T0 + sec * S, 95.0)], now
        )
        wall = datetime.fromtimestamp(now, UTC)
        yield wall, None
        for res in out + state.expire(now):
            if isinstance(res, WindowResult | SensorEvent) and res.alert is not None:
                yield wall, orjson.loads(encode_window(res)[1])


def test_a_two_day_overheat_is_never_expired_by_the_notifier() -> None:
    notifier = NotifierSettings.from_env({})
    max_age = timedelta(seconds=notifier.expire_seconds)
    assert max_age < timedelta(days=DAYS)
    alerts = OpenAlerts(min_firing=timedelta(seconds=notifier.min_firing_seconds))
    events, last_pass = [], None
    for wall, record in overheat({}):
        if record is not None:
            events.append(record["event"])
            alerts.apply(record, wall)
        if last_pass is None or wall - last_pass >= timedelta(hours=1):  # its hourly pass
            assert alerts.expire(wall, max_age).posts == [], f"expired at {wall}"
            last_pass = wall
    assert events[0] == "open" and "resolved" not in events and len(alerts) == 1


def test_without_the_refresh_the_notifier_ends_a_two_day_overheat_after_its_expiry() -> None:
    """What the refresh is for: one event in two days, and the page ends while the fault goes
    on."""
    notifier = NotifierSettings.from_env({})
    max_age = timedelta(seconds=notifier.expire_seconds)
    alerts = OpenAlerts()
    records = [(w, r) for w, r in overheat({"ALERT_REFRESH_SECONDS": "0"}) if r is not None]
    assert [r["event"] for _, r in records] == ["open"]
    [(opened, record)] = records
    alerts.apply(record, opened)
    [ended] = alerts.expire(opened + max_age * 1.01, max_age).posts
    assert ended.labels["sensor_id"] == "2"
