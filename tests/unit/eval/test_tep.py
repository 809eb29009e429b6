"""``python -m eval tep``: the machine model on the Tennessee Eastman process beside PCA T²/Q at
the same false alarm rate. The data set is kept beside the checkout (``TEP_DATA`` names another
place); without it, only the parts that need no data run."""

import os
from pathlib import Path

import numpy as np
import pytest

from eval import tep
from eval.__main__ import main
from tests.checkout import SHARED_DATA

TEP_DIR = Path(os.environ.get("TEP_DATA") or SHARED_DATA / "tep")

needs_tep = pytest.mark.skipif(
    not (TEP_DIR / "d00.dat").is_file(),
    reason=f"TEP data not found at {TEP_DIR} (read-only, beside the checkout; or set TEP_DATA)",
)


def synthetic(seed: int, n_faults: int = 3) -> tep.Runs:
    """Runs shaped like TEP's, 6 channels two of which follow a common load; fault f breaks
    their relation after observation 160 by f times the load's spread."""
    rng = np.random.default_rng(seed)

    def run(n: int, shift: float = 0.0) -> np.ndarray:
        load = rng.normal(size=n)
        x = rng.normal(size=(n, 6))
        x[:, 0] += 3 * load
        x[:, 1] += 3 * load
        x[tep.FAULT_START :, 1] -= shift * 3
        return x

    return tep.Runs(run(500), run(960), {f: run(960, shift=f) for f in range(1, n_faults + 1)})


def test_baselines_are_held_to_the_false_alarm_rate_given() -> None:
    runs = synthetic(1)
    pca = tep.Pca.fit(runs.train, 0.9)
    for rate in (0.01, 0.05):
        for det in tep.pca_detectors(runs, pca, rate):
            assert det.normal.mean() <= rate
            assert det.normal.mean() >= rate / 2, det.name


def test_scores_rate_and_delay_from_the_fault_start() -> None:
    flags = np.zeros(960, dtype=bool)
    flags[tep.FAULT_START + 5 :: 2] = True
    assert tep.delay(flags) == 5
    assert tep.detection_rate(flags) == pytest.approx(398 / 800)
    assert tep.delay(np.zeros(960, dtype=bool)) == 800


def test_ours_finds_a_broken_relation_in_runs_shaped_like_teps() -> None:
    runs = synthetic(2)
    normal, faults = tep.ours_flags(runs, tep.MachineParams())
    assert normal.mean() < 0.05
    assert tep.detection_rate(faults[3]) > 0.9
    assert tep.detection_rate(faults[3]) > tep.detection_rate(faults[1])


def test_the_training_run_is_read_back_transposed(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    train = rng.normal(size=(500, tep.CHANNELS))
    np.savetxt(tmp_path / "d00.dat", train.T)
    np.savetxt(tmp_path / "d00_te.dat", rng.normal(size=(960, tep.CHANNELS)))
    runs = tep.load(tmp_path)
    assert runs.train.shape == (500, tep.CHANNELS)
    assert np.allclose(runs.train, train)
    assert runs.faults == {}


def test_missing_data_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["tep", "--data", str(tmp_path)]) == 2
    assert "d00.dat" in capsys.readouterr().err


@needs_tep
def test_smoke_on_the_tep_data(capsys: pytest.CaptureFixture) -> None:
    assert main(["tep", "--data", str(TEP_DIR)]) == 0
    out = capsys.readouterr().out
    means = out.split("means over the 18 usual faults")[1].splitlines()
    rows = {line.split()[0]: line.split() for line in means[2:] if line.strip()}
    ours = rows["ours"]
    fa_ours = float(ours[-2])
    assert fa_ours <= 0.05
    for name in ("PCA",):
        pca = next(v for k, v in rows.items() if k.startswith(name))
        assert float(pca[-2]) <= fa_ours  # held to ours' rate, not above it
    for fault in tep.FAULTS:
        assert any(line.split()[:1] in ([str(fault)], [f"{fault}*"]) for line in out.splitlines())
