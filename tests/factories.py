"""What the tests share: time constants, shard configurations and family formats."""

from __future__ import annotations

from dataclasses import replace
from itertools import chain
from typing import Any

from dataflow.config import Settings
from dataflow.families import AIR_QUALITY, TEMPERATURE, Family, builtin, parse_families
from dataflow.model.machine import MachineParams
from dataflow.model.scoring import ModelParams
from dataflow.readings import BUILTIN, Format, ValueRange, format_of
from dataflow.shard import FamilySetup, ShardConfig

S = 1_000_000_000  # one second in ns
T0 = 1_710_856_625 * S  # 2024-03-19 13:57:05 UTC: an epoch on a 5 s window boundary
# A wall time (s) long after T0, for tests about windows and rules, not silence: every reading
# of theirs is in the wall clock's past, as a replayed backlog's are.
LATER = 4_000_000_000.0


def families(window_s: float = 5.0, threshold: float | None = 90.0) -> tuple[Family, ...]:
    """The built-in families, with the temperature rule ``threshold`` at ``threshold``."""
    return builtin(window_seconds=window_s, temperature_threshold=threshold)


def flow_settings(**env: str) -> Settings:
    """The dataflow's settings from ``env`` over its defaults, with no periodic status line (a
    flow under test logs nothing by the clock)."""
    return Settings.from_env({"STATUS_INTERVAL_SECONDS": "0", **env})


def shard_config(
    fams: tuple[Family, ...] | None = None,
    limits: tuple[float, float] = (0.0, 150.0),
    window_ns: int = 5 * S,
    lateness_ns: int = 2 * S,
    idle: float = 10.0,
    **kwargs: Any,
) -> ShardConfig:
    """A shard of ``fams`` (the built-in ones by default), every model on ``limits``."""
    fams = families(window_ns / S) if fams is None else fams
    setups = {
        f.name: FamilySetup(f, ModelParams(limits=limits, window_ns=round(f.window_seconds * S)))
        for f in fams
    }
    return ShardConfig(lateness_ns=lateness_ns, idle_timeout_s=idle, families=setups, **kwargs)


PUMPS_CHANNELS = {"current": "amps", "flow": "m3h"}
# A machine family: a pump's two related channels, "<machine>/current" and "<machine>/flow".
PUMPS = {
    "families": {
        "pump": {
            "topic": "pumps",
            "machine": "asset",
            "channels": PUMPS_CHANNELS,
            "timestamp": "ts",
            "valid_range": [-1000, 1000],
            "window_seconds": 5,
        }
    }
}
PUMP_WARM = 60  # windows before a pump's machine model scores


def pump_config(lateness_ns: int = 0, **kwargs: Any) -> ShardConfig:
    """A shard of the pump family, small warm-ups so its models are ready early; ``kwargs``:
    more of ``ShardConfig``'s fields."""
    (fam,) = parse_families(PUMPS, "pumps.yaml")
    setup = FamilySetup(
        fam,
        ModelParams(limits=(-1000.0, 1000.0), window_ns=5 * S, window_size=20, warmup=20),
        MachineParams(memory=100, warmup=PUMP_WARM),
    )
    return ShardConfig(
        lateness_ns=lateness_ns, idle_timeout_s=10.0, families={"pump": setup}, **kwargs
    )


def fmt(family: str, valid: ValueRange | None = None) -> Format:
    """A built-in family's format, with another valid range if given."""
    base = BUILTIN[family]
    return format_of(base if valid is None else replace(base, valid_range=valid))


def topics(
    valid: dict[str, ValueRange] | None = None, only: tuple[str, ...] | None = None
) -> dict[str, list[Format]]:
    """topic -> formats of the built-in families, as ``route`` takes them."""
    names = only or (TEMPERATURE, AIR_QUALITY)
    return {BUILTIN[n].topic: [fmt(n, (valid or {}).get(n))] for n in names}


def readings_only(routed: Any) -> Any:
    """``route``'s answer with each shard's partition marks (``Beat``) left out and its ``Rows``
    as single readings: what tests of decoding and grouping compare. ``test_routing`` checks the
    marks and the hand-off's shapes themselves."""
    from dataflow.progress import Beat
    from dataflow.readings import Rows
    from dataflow.routing import ShardBatch

    by_shard, *rest = routed
    kept = {
        shard: ShardBatch(
            chain.from_iterable(
                item.readings() if type(item) is Rows else (item,)
                for item in batch
                if type(item) is not Beat
            )
        )
        for shard, batch in by_shard.items()
    }
    return (kept, *rest)
