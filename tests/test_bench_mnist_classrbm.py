"""benchmarks/bench_mnist_classrbm.py end to end on a tiny configuration (the committed MNIST
fixture): the best-validation model is the one saved and tested, numpy alone reproduces its test
accuracy from model.npz, and a stopped run resumes to the same result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import last_json, load_benchmark

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "30", "--epochs", "3", "--n-train", "500", "--n-val", "200", "--n-test", "200",
        "--lr", "0.01"]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_mnist_classrbm")



@pytest.mark.parametrize("loss", ["discriminative", "hybrid"])
def test_tiny_classrbm_run(bench, mnist_dir, tmp_path, capsys, loss):
    bits = tmp_path / "bits.npz"
    args = ["--data", str(mnist_dir), "--binarised", str(bits), "--loss", loss, *TINY]
    assert bench.main([*args, "--run-dir", str(tmp_path / "whole")]) == 0
    whole = last_json(capsys.readouterr().out)
    history = [json.loads(x) for x in (tmp_path / "whole" / "history.jsonl").read_text().splitlines()]
    best = max(history, key=lambda r: r["val_accuracy"])
    assert whole["best_epoch"] == best["epoch"] and whole["best_val_accuracy"] == best["val_accuracy"]
    # trained, not chance: 200 test images, chance 0.1; above 0.5 by far more than binomial noise
    assert whole["test_accuracy"] > 0.5

    # numpy alone, from model.npz and the IDX files (the checker a reader runs on a reported model)
    check = load_benchmark("check_classrbm_npz")
    acc = check.main(tmp_path / "whole" / "model.npz", mnist_dir, 200)
    assert acc == pytest.approx(whole["test_accuracy"], abs=1e-9)
    # the same model on its 500 training images (the overfitting beside the validation figure)
    bits = bench.common.load_bits(bench.parse_args([*args, "--run-dir", str(tmp_path / "whole")]))
    train = check.accuracy(np.load(tmp_path / "whole" / "model.npz"), bits["x_train"], bits["y_train"])
    assert whole["train_accuracy"] == pytest.approx(train, abs=1e-9) and len(bits["x_train"]) == 500

    part = tmp_path / "part"
    s = bench.ClassSession(bench.parse_args([*args, "--run-dir", str(part)]))
    s.checkpoint(s.epoch())
    assert bench.main([*args, "--run-dir", str(part)]) == 0
    resumed = last_json(capsys.readouterr().out)
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    assert resumed["test_accuracy_last_epoch"] == whole["test_accuracy_last_epoch"]
