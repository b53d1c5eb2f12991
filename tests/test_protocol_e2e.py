"""End to end on the simulated rig: calibrate wire 0 (the fit agrees with the simulated truth within its
own uncertainties and with the nominal [E23] curve), write its calibration, train in the loop with a
rig config that uses it, and infer on the rig against the model's own prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from instruments.calibration import Logistic
from instruments.config import builtin_rig_path, load_calibration, load_rig_config
from labml.cli import main
from protocols.fits import LogisticFit
from protocols.runner import run_protocol


def _rig_with_calibration(cal_file, path):
    """The built-in simulated rig, with wire 0 taking its calibration from `cal_file`."""
    text = builtin_rig_path("sim_default").read_text()
    start, end = text.index("[[wires]]\nid = 0\n"), text.index("[[wires]]\nid = 1\n")
    text = text[:start] + f'[[wires]]\nid = 0\ncalibration_file = "{cal_file}"\n\n' + text[end:]
    path.write_text(text.replace('name = "sim_default"', 'name = "sim_calibrated"'))
    return path


def _truth_logistic(H):
    """The logistic that best describes the simulated wire 0's true read-bit probability (no noise)."""
    from labml.rigs import open_rig

    with open_rig("sim") as rig:
        world = rig.world
        p = world.true_pass_probability(H, np.zeros(H.shape, dtype=int))
        e = world.readout_error(0)
    q = p + (1 - 2 * p) * e
    big = 10**7
    return LogisticFit().fit(H, np.round(q * big), big)


def _p_sd(fit, H):
    """Pointwise standard error of the fitted curve (delta method with the fit's covariance)."""
    H0, k, a = (fit.params_[n] for n in ("H0", "k", "a"))
    s = 1 / (1 + np.exp(-k * (H - H0)))
    J = np.stack([-a * k * s * (1 - s), a * (H - H0) * s * (1 - s), s - 1], axis=-1)
    return np.sqrt(np.einsum("ij,jk,ik->i", J, fit.cov_[:3, :3], J))


@pytest.mark.slow
def test_calibrate_write_train_in_the_loop_and_infer_on_the_simulated_rig(tmp_path, capsys, mnist_dir):
    torch.set_num_threads(1)
    cal_dir = tmp_path / "calibrations"
    # 1. calibrate wire 0 from the command line: 13 fields x 200 reads at 1 ms, and at 10 ms for the
    #    Neel-Brown fit
    rc = main(
        [
            "run",
            "depinning-calibration",
            "--wire",
            "0",
            "--reads",
            "200",
            "--field-points",
            "13",
            "--nb-durations",
            "10 ms",
            "--calibration-dir",
            str(cal_dir),
            "--run-dir",
            str(tmp_path / "calibrate"),
            "--json",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    res = out["results"]
    assert out["run_dir"] == str(tmp_path / "calibrate")
    for key in ("H0", "k", "a", "H0_err", "k_err", "a_err"):
        assert np.isfinite(res[key])
    nb = res["neel_brown"]
    assert nb["f0_Hz"] == 1e9 and nb["beta"] == 1.5
    assert 0 < nb["Hc_mT_err"] < 2 and 0 < nb["E0_kT300_err"] < 5

    # the fit agrees with the simulated truth within 3.3 of its own standard errors (each < 0.1 % to fail)
    H = np.linspace(2.0, 8.0, 13)
    truth = _truth_logistic(H)
    for name in ("H0", "k", "a"):
        assert abs(res[name] - truth.params_[name]) < 3.3 * res[f"{name}_err"], (name, res, truth.params_)
    # ... and with the nominal [E23] curve over 3-7 mT: the simulated wire reproduces it to 0.03 in p
    # (SCIENCE.md), plus 3 pointwise standard errors of the fit
    fit = LogisticFit().fit(*_counts(tmp_path / "calibrate"))
    Hg = np.linspace(3, 7, 41)
    dev = np.abs(Logistic(res["H0"], res["k"], res["a"]).p(Hg) - Logistic().p(Hg))
    assert np.all(dev < 0.03 + 3 * _p_sd(fit, Hg)), dev.max()

    # 2. the new versioned calibration file, referenced by a rig config
    cal_file = res["calibration_file"]
    assert cal_file == str(cal_dir / "wire0-v1.toml")
    logistic, neel_brown, meta = load_calibration(cal_file, expected_wire=0)
    assert logistic.H0 == pytest.approx(res["H0"]) and meta["H0_err"] == pytest.approx(res["H0_err"])
    assert neel_brown is not None and neel_brown.modes[0].Hc_mT == pytest.approx(nb["Hc_mT"])
    rig_file = _rig_with_calibration(cal_file, tmp_path / "rig.toml")
    assert load_rig_config(rig_file).wires[0].calibration.H0 == pytest.approx(res["H0"])

    # 3. train in the loop on that rig (small: 160 training images, one epoch)
    train = run_protocol(
        "train-synapses",
        {
            "backend": "rig",
            "n": 1,
            "epochs": 1,
            "train_size": 200,
            "test_size": 50,
            "test_passes": 1,
            "data": str(mnist_dir),
        },
        rig=str(rig_file),
        run_dir=tmp_path / "train",
        progress=False,
    )
    assert train["status"] == "success"
    tr = train["results"]
    assert tr["device_reads"] > 5_000 and tr["bench_time_s"] > 0 and tr["energy_J"] > 0
    meta = json.loads((tmp_path / "train/run.json").read_text())
    assert meta["calibrations"]["0"]["H0"] == pytest.approx(res["H0"])  # wire 0 used the new calibration
    assert (tmp_path / "train/model.npz").is_file() and not (tmp_path / "train/model.pt").exists()

    # 4. infer on the rig: a stratified subset read on the rig vs the model's own prediction
    inf = run_protocol(
        "infer-on-rig",
        {"model_run": str(tmp_path / "train"), "test_size": 50, "passes": 4},
        rig=str(rig_file),
        run_dir=tmp_path / "infer",
        progress=False,
    )
    assert inf["status"] == "success"
    ir = inf["results"]
    assert ir["rig_n_test"] == 50 and ir["rig_device_reads"] > 0
    assert 0.0 <= ir["rig_test_accuracy"] <= 1.0 and 0.0 <= ir["model_test_accuracy"] <= 1.0
    # The rig reads the same synapse probabilities the model samples: the accuracies agree within
    # 4 standard errors of their difference (approximate: passes over the same images correlate).
    assert abs(ir["difference_z"]) < 4.0, ir


def _counts(run_dir):
    from labml.runs.store import load

    d = load(run_dir).arrays("depinning_wire0")
    m = np.isclose(d["duration_s"], 1e-3)
    return d["field_mT"][m], d["counts"][m], d["n"][m]
