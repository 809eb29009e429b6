"""The partition lead's pure parts (``dataflow.progress``): its input time and its rebuild from
a snapshot's sensors. The lead's update while readings are read runs inline in
``ShardState.ingest`` and is tested there (test_shard, test_close_wait, test_review_lead*)."""

from __future__ import annotations

from dataflow.progress import Lead, lead_time

S = 1_000_000_000  # one second, ns


def test_with_no_mate_heard_input_time_is_the_latest_event_time_read() -> None:
    assert lead_time(first=100 * S, second=-1, mark=-1, lateness=2 * S) == 100 * S


def test_a_lead_a_minute_ahead_moves_input_time_only_by_its_progress_since_a_mate() -> None:
    # The mates were last heard at 1,000 s; the lead (a minute ahead) has gone on 5 s since.
    time = lead_time(first=1_065 * S, second=1_000 * S, mark=1_060 * S, lateness=2 * S)
    assert time == 1_000 * S + 5 * S + 2 * S


def test_clocks_that_agree_within_the_lateness_give_the_latest_event_time_read() -> None:
    # The lead is 1 s past its mates, inside the 2 s lateness: never past ``first``.
    assert lead_time(first=1_001 * S, second=1_000 * S, mark=1_001 * S, lateness=2 * S) == 1_001 * S


def test_a_restored_lead_is_the_latest_sensor_and_the_next_one_is_its_mate() -> None:
    lead = Lead.of([(("t", "a"), 5 * S), (("t", "b"), 9 * S), (("t", "c"), 7 * S)])
    assert (lead.key, lead.first, lead.second, lead.mark) == (("t", "b"), 9 * S, 7 * S, 9 * S)
    assert lead_time(lead.first, lead.second, lead.mark, 0) == 7 * S


def test_a_restored_partition_of_one_sensor_has_no_mate() -> None:
    lead = Lead.of([(("t", "a"), 5 * S)])
    assert (lead.first, lead.second) == (5 * S, -1)
    assert lead_time(lead.first, lead.second, lead.mark, 2 * S) == 5 * S
    assert Lead.of([]).key is None
