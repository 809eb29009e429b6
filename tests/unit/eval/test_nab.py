"""The NAB scorer (eval.nab) on hand-made cases, and one cross-check against NAB's own output."""

import json
import math
import random
from pathlib import Path

import pytest

from eval import nab
from tests.checkout import SHARED_DATA
from tests.factories import S

NAB_DIR = SHARED_DATA / "nab"
STANDARD = nab.Profile(tp_weight=1.0, fn_weight=1.0, fp_weight=0.11)
MIN = 60 * S


def times(n: int) -> list[int]:
    """``n`` rows one minute apart."""
    return [i * MIN for i in range(n)]


def at(n: int, *rows: int) -> list[bool]:
    hits = set(rows)
    return [i in hits for i in range(n)]


def window(first: int, last: int) -> tuple[int, int]:
    """The window holding rows ``first..last`` of ``times(n)``."""
    return first * MIN, last * MIN


# 1000 rows: probation is the first 150. One window, rows 500..599 (100 rows).
N = 1000
WIN = [window(500, 599)]


def score(*rows: int, windows=WIN, profile=STANDARD, n=N) -> nab.FileScore:
    return nab.score_file(times(n), at(n, *rows), windows, profile)


def test_scaled_sigmoid_matches_nabs_documented_values() -> None:
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert nab.scaled_sigmoid(0.0) == 0.0
    assert nab.scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(3.0) == nab.scaled_sigmoid(50.0) == -1.0


def test_probation_is_15_percent_at_most_750_rows() -> None:
    assert nab.probation_rows(1000) == 150
    assert nab.probation_rows(1127) == 169  # floor
    assert nab.probation_rows(5000) == 750
    assert nab.probation_rows(7267) == 750


def test_detector_that_never_fires_scores_null_and_zero() -> None:
    s = score()
    assert s.raw == s.null == -1.0
    assert s.normalized == 0.0
    assert s.recall == 0.0 and s.precision is None and s.false_alarms_per_day == 0.0


def test_detection_at_a_windows_left_edge_scores_plus_one_and_is_perfect() -> None:
    s = score(500)
    assert s.raw == pytest.approx(1.0)
    assert s.perfect == pytest.approx(1.0)
    assert s.normalized == pytest.approx(100.0)
    assert (s.precision, s.recall, s.false_positives) == (1.0, 1.0, 0)


def test_later_in_the_window_earns_less_and_the_right_edge_almost_nothing() -> None:
    middle = score(550).raw  # position -(599 - 550 + 1) / 100 = -0.5
    assert middle == pytest.approx(nab.scaled_sigmoid(-0.5) / nab.scaled_sigmoid(-1.0))
    last = score(599).raw  # position -1/100
    assert 0.0 < last < 0.03
    assert 1.0 > middle > last


def test_only_the_earliest_detection_in_a_window_counts() -> None:
    assert score(550, 560, 599).raw == score(550).raw
    assert score(550, 560, 599).false_positives == 0
    assert score(550, 560).precision == 1.0


def test_detection_outside_any_window_costs_the_false_positive_weight() -> None:
    before = score(300)  # no window precedes it: the full weight
    assert before.raw - score().raw == pytest.approx(-0.11)
    assert before.false_positives == 1 and before.precision == 0.0
    far_after = score(599 + 3 * 99 + 1)  # 3 window widths or more after: the full weight
    assert far_after.raw - score().raw == pytest.approx(-0.11)
    just_after = score(601)  # right after the window: the anomaly may still be unfolding
    assert -0.11 < just_after.raw - score().raw < -0.0
    halfway = score(599 + 99)  # one window width after
    assert halfway.raw - score().raw == pytest.approx(0.11 * nab.scaled_sigmoid(1.0))


def test_missed_window_costs_the_false_negative_weight() -> None:
    two = [window(300, 349), window(600, 649)]
    both, one = score(300, 600, windows=two), score(300, windows=two)
    assert both.raw - one.raw == pytest.approx(2.0)  # +1 for the hit instead of -1 for the miss
    assert one.recall == 0.5
    assert one.normalized == pytest.approx(50.0)


def test_probation_rows_are_not_scored() -> None:
    assert score(10, 149).raw == score().raw  # false positives in probation are ignored
    assert score(10, 149).detections == 0
    early = [window(20, 60), *WIN]  # a window wholly inside probation is neither hit nor missed
    s = score(500, windows=early)
    assert (s.windows, s.null, s.raw) == (1, -1.0, pytest.approx(1.0))
    assert score(30, windows=early).raw == pytest.approx(-1.0)


def test_windows_in_probation_still_count_towards_perfect_as_in_nabs_normalisation() -> None:
    """NAB's ``runner.normalize``: perfect = number of labelled windows x tp weight, whether or
    not probation hides them, so a detector cannot reach 100 on such a file."""
    early = [window(20, 60), *WIN]  # wholly inside probation (rows 0..149)
    s = score(500, windows=early)
    assert s.perfect == pytest.approx(2.0)  # not 1.0: the early window still counts
    assert s.normalized == pytest.approx(100.0 * (1.0 + 1.0) / (2.0 + 1.0))
    straddling = [window(100, 199)]  # rows 100..149 in probation, 150..199 scored
    first_scored = score(150, windows=straddling)
    # The best a detector can do, at the first scored row, earns S(-0.5)/S(-1) < 1 ...
    assert first_scored.raw == pytest.approx(nab.scaled_sigmoid(-0.5) / nab.scaled_sigmoid(-1.0))
    # ... but perfect is a whole tp weight, so that is not 100.
    assert first_scored.perfect == pytest.approx(1.0)
    assert first_scored.normalized == pytest.approx(100.0 * (first_scored.raw + 1.0) / 2.0)
    assert first_scored.normalized < 93.0
    only_early = score(30, windows=[window(20, 60)])  # nothing scorable: null 0, perfect 1
    assert (only_early.null, only_early.perfect, only_early.normalized) == (0.0, 1.0, 0.0)
    assert nab.corpus_score([s, first_scored]) == pytest.approx(
        100.0 * (s.raw + first_scored.raw + 2.0) / (3.0 + 2.0)
    )


def test_normalisation_is_per_file_and_pooled_like_nab() -> None:
    a, b = score(500), score()  # perfect and null
    assert nab.corpus_score([a, b]) == pytest.approx(50.0)
    no_windows = score(300, windows=[])
    assert no_windows.normalized is None and no_windows.false_positives == 1


def test_threshold_optimiser_picks_the_best_corpus_threshold_as_nabs_sweep_does() -> None:
    """The threshold maximises the raw score summed over the files (each scored by
    ``score_file`` at that threshold), ties going to the highest threshold, as in NAB."""
    rng = random.Random(5)
    files = []
    for n, wins in (
        (1000, WIN),
        (600, [window(80, 120), window(300, 359)]),  # the first one straddles probation (90)
        (400, []),  # no window: every detection a false positive
    ):
        scores = [round(rng.random(), 2) for _ in range(n)]  # few levels: ties
        files.append(nab.Scored(times(n), scores, wins))

    def raw_at(threshold: float) -> float:
        return sum(
            nab.score_file(
                f.timestamps, nab.detections_at(f.scores, threshold), f.windows, STANDARD
            ).raw
            for f in files
        )

    sweep = nab.threshold_scores(files, STANDARD)
    levels = sorted({s for f in files for s in f.scores} | {nab.NO_DETECTION}, reverse=True)
    assert [t for t, _ in sweep] == levels
    raws = {t: raw_at(t) for t in levels}
    for t, total in sweep:
        assert total == pytest.approx(raws[t]), t  # the sweep scores as score_file does
    threshold, total = nab.optimise_threshold(files, STANDARD)
    assert total == pytest.approx(raw_at(threshold))
    assert total == pytest.approx(max(raws.values()))
    assert threshold == max(t for t, r in raws.items() if r >= total - 1e-9)
    assert threshold < nab.NO_DETECTION  # here some detections are worth their false alarms
    # With no window at all nothing is worth a false alarm: NAB's threshold above every score.
    assert nab.optimise_threshold([files[2]], STANDARD) == (nab.NO_DETECTION, 0.0)


def test_other_profiles_weigh_differently() -> None:
    low_fp = nab.Profile(1.0, 1.0, 0.22)
    low_fn = nab.Profile(1.0, 2.0, 0.11)
    assert score(300, profile=low_fp).raw == pytest.approx(-1.22)
    assert score(profile=low_fn).null == -2.0
    assert score(500, profile=low_fn).normalized == pytest.approx(100.0)


def test_false_alarms_per_day_count_scored_days() -> None:
    s = score(300, 400)  # 1000 one-minute rows, scored from row 150 to 999
    assert s.scored_days == pytest.approx(849 / 1440)
    assert s.false_alarms_per_day == pytest.approx(2 / (849 / 1440))


def test_windows_hold_rows_inclusive_of_both_ends() -> None:
    ts = times(10)
    assert nab.window_rows(ts, [(2 * MIN, 4 * MIN)]) == [(2, 4)]
    assert nab.window_rows(ts, [(2 * MIN + 1, 4 * MIN - 1)]) == [(3, 3)]
    assert nab.window_rows(ts, [(2 * MIN + 1, 2 * MIN + 2)]) == []  # holds no row: dropped


def test_event_times_are_charged_to_the_last_row_seen() -> None:
    ts = times(5)
    assert nab.rows_at(ts, [2 * MIN, 3 * MIN - 1, -5]) == [False, False, True, False, False]


def test_profiles_and_windows_are_read_from_nabs_files(tmp_path: Path) -> None:
    (tmp_path / "profiles.json").write_text(
        json.dumps(
            {
                "standard": {
                    "CostMatrix": {
                        "tpWeight": 1.0,
                        "fnWeight": 1.0,
                        "fpWeight": 0.11,
                        "tnWeight": 1.0,
                    }
                },
                "odd": {
                    "CostMatrix": {
                        "tpWeight": 2.0,
                        "fnWeight": 3.0,
                        "fpWeight": 0.5,
                        "tnWeight": 1.0,
                    }
                },
            }
        )
    )
    profiles = nab.load_profiles(tmp_path / "profiles.json")
    assert profiles["standard"] == STANDARD
    assert profiles["odd"] == nab.Profile(2.0, 3.0, 0.5)
    (tmp_path / "windows.json").write_text(
        json.dumps(
            {
                "a/b.csv": [
                    ["2015-09-11 17:54:00.000000", "2015-09-11 18:54:00.000000"],
                    ["2015-09-11 15:34:00.000000", "2015-09-11 15:35:00.000000"],
                ]
            }
        )
    )
    wins = nab.load_windows(tmp_path / "windows.json")["a/b.csv"]
    assert wins[0][0] == nab.parse_time("2015-09-11 15:34:00")  # sorted
    assert wins[1][1] - wins[1][0] == 60 * MIN


def test_parse_time_reads_naive_nab_timestamps_as_utc() -> None:
    assert nab.parse_time("1970-01-01 00:01:00") == MIN
    assert nab.parse_time("1970-01-01 00:00:00.000001") == 1000


@pytest.mark.skipif(
    not (NAB_DIR / "config" / "profiles.json").exists(),
    reason=f"NAB data not found at {NAB_DIR} (read-only, beside the checkout)",
)
def test_profiles_file_beside_the_checkout() -> None:
    profiles = nab.load_profiles(NAB_DIR / "config" / "profiles.json")
    assert profiles["standard"] == STANDARD
    assert profiles["reward_low_FP_rate"].fp_weight == 0.22
    assert profiles["reward_low_FN_rate"].fn_weight == 2.0


SPEED_7578 = NAB_DIR / "data" / "realTraffic" / "speed_7578.csv"


@pytest.mark.skipif(
    not SPEED_7578.exists(),
    reason=f"NAB data not found at {SPEED_7578} (read-only, beside the checkout)",
)
def test_reproduces_nabs_published_score_of_numentas_detector_on_speed_7578() -> None:
    """NAB's results/numenta/realTraffic/numenta_speed_7578.csv: its detections at NAB's
    threshold, and its per-row S(t) columns, which sum to these raw scores per profile."""
    series = nab.load_series(SPEED_7578)
    windows = nab.load_windows(NAB_DIR / "labels" / "combined_windows.json")[
        "realTraffic/speed_7578.csv"
    ]
    detected = [
        "2015-09-12 00:16:00",
        "2015-09-14 17:45:00",
        "2015-09-15 06:05:00",
        "2015-09-15 14:34:00",
        "2015-09-16 14:19:00",
        "2015-09-16 17:15:00",
        "2015-09-16 17:45:00",
    ]
    det = nab.rows_at(series.timestamps, [nab.parse_time(t) for t in detected])
    assert sum(det) == len(detected)
    published = {  # sum of the S(t)_<profile> column
        nab.Profile(1.0, 1.0, 0.11): -1
        - 0.109276714495
        - 0.11
        - 0.11
        + 0.871604206333
        + 2 * 0.847084961863,
        nab.Profile(1.0, 1.0, 0.22): -1
        - 0.21855342899
        - 0.22
        - 0.22
        + 0.871604206333
        + 2 * 0.847084961863,
        nab.Profile(1.0, 2.0, 0.11): -2
        - 0.109276714495
        - 0.11
        - 0.11
        + 0.871604206333
        + 2 * 0.847084961863,
    }
    for profile, raw in published.items():
        s = nab.score_file(series.timestamps, det, windows, profile)
        assert math.isclose(s.raw, raw, abs_tol=1e-9), (profile, s.raw, raw)
    s = nab.score_file(series.timestamps, det, windows, STANDARD)
    assert (s.windows, s.windows_found, s.false_positives) == (4, 3, 3)
