"""A snapshot written by the previous release's own code resumes: nothing lost, nothing
repeated, and every model it knew stays ready (no second warm-up)."""

from __future__ import annotations

from pathlib import Path

from dataflow.config import Settings
from dataflow.families import TEMPERATURE
from dataflow.flow import SNAPSHOT_VERSION, restore, shard_config
from dataflow.progress import Beat
from dataflow.readings import Reading
from dataflow.shard import ShardState, WindowResult
from tests.fixtures import snapshots as fx

FIXTURE = Path(__file__).parents[2] / "fixtures" / "snapshot-v9.bin"


def feed(state: ShardState, first_s: int, last_s: int, pause_s: float) -> list[WindowResult]:
    out = []
    for sec, sensor, ns, value in fx.readings(first_s, last_s):
        wall = fx.WALL0 + sec + pause_s
        since = fx.WALL0 + pause_s if pause_s else fx.WALL0
        out += state.ingest(
            [Beat(fx.PART, wall, since), Reading(TEMPERATURE, sensor, ns, value)], wall
        )
    return [o for o in out if isinstance(o, WindowResult)]


def key(w: WindowResult) -> tuple[str, int, int, float]:
    return (w.sensor_id, w.stats.start, w.stats.count, w.stats.mean)


def test_the_fixture_is_of_the_previous_format() -> None:
    assert FIXTURE.read_bytes()[:40].find(bytes([0x4B, SNAPSHOT_VERSION - 1])) > 0


def test_a_previous_release_snapshot_resumes_without_loss_repeat_or_warm_up() -> None:
    config = shard_config(Settings.from_env(fx.ENV))
    state = restore(FIXTURE.read_bytes(), config)
    state.reconfigure(config)
    assert sorted(s for _, s in state.sensors) == sorted(fx.SENSORS)
    learned = {s: sensor.scorer.seen for (_, s), sensor in state.sensors.items() if sensor.scorer}
    assert set(learned) == set(fx.SENSORS)
    resumed = feed(state, fx.BEFORE_S, fx.BEFORE_S + fx.AFTER_S, pause_s=0.0)
    resumed += [o for o in state.flush() if isinstance(o, WindowResult)]

    # The same input, start to end, in one run of this release: the windows after the
    # snapshot's are exactly the resumed ones (none lost, none twice).
    whole = ShardState(config)
    everything = feed(whole, 0, fx.BEFORE_S + fx.AFTER_S, pause_s=0.0)
    everything += [o for o in whole.flush() if isinstance(o, WindowResult)]
    before = {key(w) for w in everything if w.stats.end <= fx.T0 + (fx.BEFORE_S - 3) * fx.S}
    after = [key(w) for w in everything if key(w) not in before]
    assert sorted(key(w) for w in resumed) == sorted(after) and after

    # Every model learned on from where it was, ready at once.
    assert all(w.model_ready for w in resumed)
    for (_, s), sensor in state.sensors.items():
        assert sensor.scorer is not None
        n = sum(1 for w in resumed if w.sensor_id == s)
        assert sensor.scorer.seen == learned[s] + n
