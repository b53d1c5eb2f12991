"""`labml demo` (the README's main job) runs end to end on the built-in simulated rig."""

import json

from scipy.stats import binom

from labml.cli import main


def test_demo_checks_the_rig_calibrates_wire0_and_learns_in_the_loop(tmp_path, capsys):
    run_dir = tmp_path / "demo"
    rc = main(
        ["demo", "--run-dir", str(run_dir), "--epochs", "3", "--train-size", "300", "--test-size", "200",
         "--json"]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # The Hall probe sees the ramped field (its noise is ~0.01 mT) and the coil ends at zero.
    assert abs(summary["rig_check"]["hall_mT"] - summary["rig_check"]["target_mT"]) < 0.1
    assert abs(summary["rig_check"]["final_current_A"]) < 1e-3
    # Wire 0 is the nominal wire: its true midpoint is 4.61 mT (the default pulse), so the fit lies within
    # 4 of its own standard errors of it.
    cal = summary["calibration"]
    assert abs(cal["H0"] - 4.61) < 4 * cal["H0_err"] + 0.01
    assert (run_dir / "calibration" / "wire0-v1.toml").exists()
    # In the loop the network beats chance (10 classes) far beyond a 99.9 % binomial bound on 200 images.
    chance_bound = binom.ppf(0.999, 200, 0.1) / 200
    assert summary["training"]["test_accuracy"] > chance_bound
    assert summary["training"]["bench_time_s"] > 0 and summary["training"]["energy_J"] > 0
    # Everything recorded.
    assert (run_dir / "01-depinning-calibration" / "run.json").exists()
    assert (run_dir / "02-train-synapses" / "run.json").exists()
