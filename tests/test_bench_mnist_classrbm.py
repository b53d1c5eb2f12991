"""benchmarks/bench_mnist_classrbm.py end to end on a tiny configuration (the committed MNIST
fixture): the best-validation model is the one saved and tested, numpy alone reproduces its test
accuracy from model.npz, and a stopped run resumes to the same result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import last_json, load_benchmark

from labml import mnist_binarised

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

    m = np.load(tmp_path / "whole" / "model.npz")
    d = mnist_binarised.load(bits)
    v = 2.0 * d["test_threshold"][:200].astype(np.float64) - 1.0
    T = float(m["temperature"])
    pre = (m["b"] + v @ m["W"])[:, None, :] + m["U"][None, :, :]
    logits = m["d"][None, :] + T * np.logaddexp(pre / T, -pre / T).sum(-1)
    acc = float((logits.argmax(1) == d["test_labels"][:200]).mean())
    assert acc == pytest.approx(whole["test_accuracy"], abs=1e-9)

    part = tmp_path / "part"
    s = bench.ClassSession(bench.parse_args([*args, "--run-dir", str(part)]))
    s.checkpoint(s.epoch())
    assert bench.main([*args, "--run-dir", str(part)]) == 0
    resumed = last_json(capsys.readouterr().out)
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    assert resumed["test_accuracy_last_epoch"] == whole["test_accuracy_last_epoch"]
