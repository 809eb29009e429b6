"""The stop request behind Ctrl-C and SIGTERM: first signal asks, second exits at once."""

from __future__ import annotations

import signal
import threading

from dataflow.stopping import GracefulStop


def fake_stop(hint_after_s: float = 3600) -> tuple[GracefulStop, list[int], list[str]]:
    exits: list[int] = []
    lines: list[str] = []
    return (
        GracefulStop(exit_now=exits.append, write=lines.append, hint_after_s=hint_after_s),
        exits,
        lines,
    )


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


def test_install_leaves_an_ignored_signal_ignored() -> None:
    stop, _exits, _lines = fake_stop()
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # e.g. a background job of a shell
        stop.install()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == stop.handle
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def test_a_stop_that_takes_long_says_what_it_waits_for_and_how_to_skip_it() -> None:
    said = threading.Event()
    lines: list[str] = []

    def write(text: str) -> None:
        lines.append(text)
        said.set()

    stop = GracefulStop(exit_now=lambda code: None, write=write, hint_after_s=0.01)
    stop.handle(signal.SIGTERM)
    assert said.wait(10)
    assert lines == [
        "still stopping after SIGTERM: waiting for the output in flight to reach "
        "Kafka, or for the cluster's other processes to stop; SIGTERM again exits "
        "without waiting\n"
    ]
