"""A machine's alert reaches Alertmanager with its top drivers as an annotation."""

import orjson

from dataflow.alerts import AlertEvent
from dataflow.encoding import encode_window
from dataflow.shard import WindowResult
from dataflow.windows import WindowStats
from notifier.alerts import TOP_DRIVERS, alert_of, annotations_of

T0 = 1_700_000_000 * 10**9
W = 5 * 10**9


def machine_record(drivers: tuple[tuple[str, float, float], ...]) -> dict:
    event = AlertEvent("open", f"pump/p1@{T0}", T0, 2.5, 2.5, T0, ("ml",), 1, None, "warning")
    res = WindowResult(
        "pump",
        "p1",
        WindowStats(T0, T0 + W, 2, 2.5, 2.5, 2.5),
        2.5,
        True,
        True,
        None,
        None,
        (),
        "warning",
        None,
        event,
        drivers=drivers,
    )
    return orjson.loads(encode_window(res)[1])


def test_the_top_drivers_are_an_annotation_and_in_the_summary() -> None:
    record = machine_record(
        (
            ("flow", -3.1, 0.0),
            ("current", 2.4, 0.0),
            ("temperature", 0.5, 0.0),
            ("vibration", 0.3, 0),
        )
    )
    alert = alert_of(record)
    drivers = alert.annotations["drivers"]
    assert drivers == "flow (z -3.1), current (z 2.4), temperature (z 0.5)"
    assert drivers.count("(z") == TOP_DRIVERS
    assert "drivers flow (z -3.1)" in alert.annotations["summary"]
    assert alert.labels["sensor_id"] == "p1"


def test_a_sensors_alert_has_no_drivers_annotation() -> None:
    record = machine_record((("flow", 1.0, 0.0),))
    del record["drivers"], record["machine"]
    assert "drivers" not in annotations_of(record)


def test_a_driver_its_chart_drove_says_how_it_moves() -> None:
    record = machine_record((("valve", 0.0, 0.04), ("flow", 0.3, 3.2)))
    assert annotations_of(record)["drivers"] == "valve (still, 4% of its usual movement), " + (
        "flow (moving 3.2x its usual)"
    )
