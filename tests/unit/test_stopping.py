"""The stop request behind Ctrl-C and SIGTERM: first signal asks, second exits at once."""

from __future__ import annotations

import signal

from dataflow.stopping import GracefulStop


def fake_stop() -> tuple[GracefulStop, list[int], list[str]]:
    exits: list[int] = []
    lines: list[str] = []
    return GracefulStop(exit_now=exits.append, write=lines.append), exits, lines


def test_the_first_signal_only_asks_for_the_stop() -> None:
    stop, exits, lines = fake_stop()
    assert not stop.requested()
    stop.handle(signal.SIGINT)
    assert stop.requested() and stop.event.is_set()
    assert stop.name == "SIGINT"
    assert exits == [] and lines == []  # quiet: the one line comes when the flow has stopped


def test_a_second_signal_exits_at_once_with_128_plus_its_number() -> None:
    stop, exits, lines = fake_stop()
    stop.handle(signal.SIGTERM)
    stop.handle(signal.SIGINT)
    assert exits == [130]
    assert lines == ["stopped by a second SIGINT, without waiting for the output in flight\n"]
    assert stop.name == "SIGTERM"  # the stop was asked for by the first


def test_install_handles_sigint_and_sigterm() -> None:
    stop, _exits, _lines = fake_stop()
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop.install()
        assert signal.getsignal(signal.SIGINT) == stop.handle
        assert signal.getsignal(signal.SIGTERM) == stop.handle
        signal.raise_signal(signal.SIGINT)  # no KeyboardInterrupt
        assert stop.requested()
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
