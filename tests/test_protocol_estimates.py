"""A dry run's time estimate of an in-the-loop training tells the user what the bench time will be."""

from protocols.runner import run_protocol

PARAMS = {"backend": "rig", "n": 2, "epochs": 2, "patience": 0, "train_size": 200, "test_size": 100,
          "test_passes": 2}


def test_in_the_loop_training_estimate_is_within_a_quarter_of_the_bench_time_it_then_reports(tmp_path):
    plan = run_protocol("train-synapses", PARAMS, rig="sim", dry_run=True)
    estimate_s = plan["plan"]["estimate_s"]
    out = run_protocol("train-synapses", PARAMS, rig="sim", run_dir=tmp_path / "run", progress=False)
    assert out["status"] == "success"
    bench_s = out["results"]["bench_time_s"]
    # The estimate leaves out the validation passes' exact count and the rest the duty limit adds: it
    # is an estimate, but one a user can plan a bench day with.
    assert 0.75 * bench_s < estimate_s < 1.25 * bench_s


def test_the_model_backend_needs_no_bench_time():
    plan = run_protocol("train-synapses", {**PARAMS, "backend": "model"}, rig="sim", dry_run=True)
    assert plan["plan"]["estimate_s"] == 0.0
