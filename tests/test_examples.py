"""The three scripts of examples/ run on the simulated rig, each in a fresh process in its own
folder, and what they print and write is checked against the physics of the simulated world (its
wire 0's configured drive range and calibration), not only their exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _wire0_range() -> tuple[float, float]:
    from labml.rigs import rig_config

    return tuple(rig_config("sim").wires[0].field_range_mT)


def _example(tmp_path, name: str, *argv: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LABML_RUNS": str(tmp_path / "runs"),
           "LABML_DATA": "digits", "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / name), *argv], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_hysteresis_loop_writes_a_plot_and_a_coercive_field_of_the_world(tmp_path):
    import matplotlib.image

    res = _example(tmp_path, "hysteresis_loop.py", "--field-max", "12 mT", "--out", "loop.png")
    lo, hi = _wire0_range()
    assert lo < res["coercive_field_mT"] < hi  # the wire's depinning field lies in its drive range
    assert res["switching_field_up_mT"] > 0 > res["switching_field_down_mT"]
    assert res["points"] == 2 * (2 * 12 / 0.5 + 1) and res["coil_at_zero"] is True
    png = tmp_path / "loop.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(png)
    assert image.shape[0] >= 300 and image.shape[1] >= 500 and image.std() > 0.01  # drawn, not blank
    assert Path(res["run"]).parent == tmp_path / "runs"


def test_calibration_then_training_on_the_rig_learns_above_chance(tmp_path):
    from scipy.stats import binom

    res = _example(tmp_path, "calibrate_then_train.py")
    lo, hi = _wire0_range()
    assert lo < res["H0_mT"] < hi and 0 < res["H0_err_mT"] < 0.3
    assert res["k_per_mT"] > 0 and 0.5 < res["a"] <= 1.0
    # 200 test images of 10 balanced classes: chance is 0.1; the accuracy reached must be above
    # chance at alpha = 1e-3 (binomial tail of the number right)
    right = round(res["test_accuracy"] * 200)
    assert binom.sf(right - 1, 200, 0.1) < 1e-3, res
    assert res["epochs"] == 6 and res["coil_at_zero"] is True


def test_sweep_analysed_with_xarray_shows_the_error_falling_with_reads(tmp_path):
    res = _example(tmp_path, "sweep_xarray.py", "--reads", "20,80", "--field-points", "7")
    lo, hi = _wire0_range()
    assert res["dims"] == {"reads": 2, "field": 7} and res["field_units"] == "mT"
    assert res["field_mT"] == sorted(res["field_mT"])
    assert all(lo < h < hi for h in res["H0_mT"])
    # four times the reads: the error of H0 halves (1/sqrt(reads)), within the fit's own spread
    err20, err80 = res["H0_err_mT"]
    assert 1.4 < err20 / err80 < 2.9, res
    p = res["mean_p_pass"]
    assert p[0] < 0.5 < p[-1]  # below and above the depinning field


@pytest.mark.parametrize("name", ["hysteresis_loop.py", "calibrate_then_train.py", "sweep_xarray.py"])
def test_every_example_says_what_it_does(name):
    text = (ROOT / "examples" / name).read_text()
    assert text.startswith('"""') and "python examples/" + name in text
