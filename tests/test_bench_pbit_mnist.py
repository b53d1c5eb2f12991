"""benchmarks/bench_pbit_mnist.py end to end on a tiny configuration (the committed MNIST fixture):
the best-validation model is the one saved and tested, numpy alone reads the saved graph and its
energy, and a stopped run resumes to the same result bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import last_json, load_benchmark

from labml.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "5", "--batch-size", "25", "--n-train", "500", "--n-val", "200", "--n-test", "200",
        "--lr", "0.01", "--val-every", "1", "--val-images", "200", "--val-sweeps", "20",
        "--test-sweeps", "20"]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_pbit_mnist")


def test_tiny_pbit_run_saves_the_best_model_and_resumes_exactly(bench, mnist_dir, tmp_path, capsys):
    args = ["--data", str(mnist_dir), "--binarised", str(tmp_path / "bits.npz"), *TINY]
    assert bench.main([*args, "--run-dir", str(tmp_path / "whole")]) == 0
    whole = last_json(capsys.readouterr().out)
    history = [json.loads(x) for x in (tmp_path / "whole" / "history.jsonl").read_text().splitlines()]
    best = max(history, key=lambda r: r["val_accuracy"])
    assert whole["best_epoch"] == best["epoch"] and whole["best_val_accuracy"] == best["val_accuracy"]
    assert whole["n_units"] == 4264 and whole["n_couplings"] == 27_176  # the machine at hardware size
    assert set(whole["test_accuracy_by_sweeps"]) == {"1", "2", "5", "10", "20"}  # JSON keys
    # 100 updates on 500 images (measured 0.62 on 200 test images): learning, not chance (0.1);
    # > 0.4 by chance has p < 1e-20 (binomial)
    assert whole["test_accuracy"] > 0.4

    with np.load(tmp_path / "whole" / "model.npz", allow_pickle=False) as m:  # numpy alone
        assert str(m["format"]) == "labml-sparse-pbit-bm/1"
        assert m["i"].size == whole["n_couplings"] and int(m["n_hidden"]) == 3430
        assert json.loads(str(m["extra"]))["best_epoch"] == whole["best_epoch"]

    part = tmp_path / "part"
    s = bench.PbitSession(bench.parse_args([*args, "--run-dir", str(part)]))
    s.checkpoint(s.epoch())
    assert bench.main([*args, "--run-dir", str(part)]) == 0  # a new process's view: resumes at epoch 1
    resumed = last_json(capsys.readouterr().out)
    assert resumed["test_accuracy_by_sweeps"] == whole["test_accuracy_by_sweeps"]
    assert resumed["best_epoch"] == whole["best_epoch"]


def test_bad_arguments_are_one_line(bench, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--run-dir", "x", "--momentum", "1.0"])
    assert "--momentum 1.0" in capsys.readouterr().err


def test_the_chip_is_held_to_30000_couplings_at_the_boundary(bench):
    """The default graph is Niazi et al.'s size (27,176 couplings); each extra hidden unit per label
    adds 50 couplings: 156 per label gives 29,976 (allowed), 157 gives 30,026 (refused in one line,
    naming the count, the limit and what to lower)."""
    assert bench.chip(bench.parse_args(["--run-dir", "r"]))[0].size == 27_176
    assert bench.chip(bench.parse_args(["--run-dir", "r", "--hidden-per-label", "156"]))[0].size == 29_976
    with pytest.raises(UserError, match=r"30026 couplings: .* at most 30000 .* --hidden-per-label"):
        bench.chip(bench.parse_args(["--run-dir", "r", "--hidden-per-label", "157"]))
    no_lateral = bench.chip(bench.parse_args(["--run-dir", "r", "--no-lateral"]))[0].size
    assert no_lateral < 27_176 - 6_000  # the hidden grid's neighbour couplings are gone


def test_a_run_folder_from_before_the_hybrid_objective_resumes_and_other_alphas_are_refused(bench, mnist_dir,
                                                                                          tmp_path, capsys):
    """Run folders written before --alpha existed hold no "alpha" setting: they ran with the
    implicit 1.0 and resume with it; another --alpha is refused in one line naming it."""
    args = ["--data", str(mnist_dir), "--binarised", str(tmp_path / "bits.npz"), *TINY,
            "--epochs", "2", "--run-dir", str(tmp_path / "old")]
    s = bench.PbitSession(bench.parse_args(args))
    s.checkpoint(s.epoch())
    cfg_path = tmp_path / "old" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["settings"]["alpha"]
    cfg_path.write_text(json.dumps(cfg))
    refused = r"objective: run 'joint', now 'hybrid'; alpha: run 1\.0, now 0\.5"
    with pytest.raises(UserError, match=refused):
        bench.PbitSession(bench.parse_args([*args, "--objective", "hybrid", "--alpha", "0.5"]))
    assert bench.main(args) == 0
    assert last_json(capsys.readouterr().out)["epochs_done"] == 2
    refusals = {"-0.1": "--alpha -0.1: must be finite and >= 0", "inf": "--alpha inf: must be finite",
                "2": "--alpha 2.0: only the hybrid objective"}
    for bad, said in refusals.items():
        with pytest.raises(SystemExit):
            bench.parse_args(["--run-dir", "x", "--alpha", bad])
        assert said in capsys.readouterr().err


def test_a_tiny_hybrid_run_learns_to_classify(bench, mnist_dir, tmp_path, capsys):
    args = ["--data", str(mnist_dir), "--binarised", str(tmp_path / "bits.npz"), *TINY, "--epochs", "3",
            "--objective", "hybrid", "--alpha", "1", "--run-dir", str(tmp_path / "hybrid")]
    assert bench.main(args) == 0
    out = last_json(capsys.readouterr().out)
    assert out["objective"] == "hybrid" and out["alpha"] == 1.0
    # 60 updates on 500 images, 200 test images (deterministic seeds): measured 0.545; the joint
    # objective alone scores 0.30 here and the term with its sign flipped 0.11, so the bound tells
    # them apart; > 0.4 by chance (0.1) has p < 1e-20 (binomial)
    assert out["test_accuracy"] > 0.4, out["test_accuracy"]
    with np.load(tmp_path / "hybrid" / "model.npz", allow_pickle=False) as m:
        assert json.loads(str(m["extra"]))["alpha"] == 1.0
