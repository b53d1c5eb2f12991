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


def test_fresh_draws_are_new_each_epoch_and_a_stopped_run_resumes_to_the_same_result(
        bench, mnist_dir, tmp_path, capsys):
    """--train-draws fresh: each epoch trains on a new stochastic binarisation of the intensities
    (seeded by seed and epoch, so a resumed run draws what the whole run drew)."""
    bits = tmp_path / "bits.npz"
    args = ["--data", str(mnist_dir), "--binarised", str(bits), "--loss", "generative",
            "--train-draws", "fresh", *TINY]
    assert bench.main([*args, "--run-dir", str(tmp_path / "whole")]) == 0
    whole = last_json(capsys.readouterr().out)
    assert whole["train_draws"] == "fresh"

    s = bench.ClassSession(bench.parse_args([*args, "--run-dir", str(tmp_path / "part")]))
    p = s.bits["p_train"].astype(np.float64)
    saved = s.bits["x_train"].astype(np.float64)
    s.checkpoint(s.epoch())
    first = (s.trainer.v_train.numpy() > 0).astype(np.float64)
    s.epoch()
    second = (s.trainer.v_train.numpy() > 0).astype(np.float64)
    # each draw has sum(p) ones in expectation, variance sum p(1-p): within 4 sigma (99.99 %);
    # two draws disagree on sum 2p(1-p) pixels in expectation (a repeated draw: on none)
    sigma = np.sqrt((p * (1 - p)).sum())
    for x in (first, second):
        assert abs(x.sum() - p.sum()) < 4 * sigma
    differ, expected = np.abs(first - second).sum(), (2 * p * (1 - p)).sum()
    assert abs(differ - expected) < 4 * np.sqrt(expected)
    assert np.abs(first - saved).sum() > 0.5 * expected  # not the saved (threshold) bits

    assert bench.main([*args, "--run-dir", str(tmp_path / "part")]) == 0
    resumed = last_json(capsys.readouterr().out)
    assert resumed["best_epoch"] == whole["best_epoch"]
    # the saved models are bit-identical: the resumed epochs drew what the unbroken run drew
    with np.load(tmp_path / "whole" / "model.npz") as a, np.load(tmp_path / "part" / "model.npz") as b:
        for key in ("W", "U", "a", "b", "d"):
            assert np.array_equal(a[key], b[key]), key


def test_fresh_draws_refuse_a_data_folder_with_other_images(bench, mnist_dir, tmp_path, capsys):
    from labml.data import load_mnist_arrays, write_idx

    bits = tmp_path / "bits.npz"
    args = ["--binarised", str(bits), "--loss", "generative", "--train-draws", "fresh", *TINY]
    first = ["--data", str(mnist_dir), *args, "--epochs", "1", "--run-dir", str(tmp_path / "a")]
    assert bench.main(first) == 0
    other = tmp_path / "other"
    other.mkdir()
    train, y_train, test, y_test, _ = load_mnist_arrays(mnist_dir)
    for name, array in (("train-images-idx3-ubyte", 255 - train), ("train-labels-idx1-ubyte", y_train),
                        ("t10k-images-idx3-ubyte", test), ("t10k-labels-idx1-ubyte", y_test)):
        write_idx(other / name, array)
    capsys.readouterr()
    assert bench.main(["--data", str(other), *args, "--run-dir", str(tmp_path / "b")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(f"MNIST folder {other}: its training images are not the ones binarised in {bits}")
    assert not (tmp_path / "b").exists()


def test_without_validation_the_last_epoch_model_is_tested(bench, mnist_dir, tmp_path, capsys):
    """--n-val 0 (a final model on every training image, for the epochs chosen on validation):
    no validation pass, and the model tested and saved is the last epoch's."""
    args = ["--data", str(mnist_dir), "--binarised", str(tmp_path / "bits.npz"), "--loss", "hybrid",
            *TINY, "--n-train", "700", "--n-val", "0", "--run-dir", str(tmp_path / "run")]
    assert bench.main(args) == 0
    out = last_json(capsys.readouterr().out)
    history = [json.loads(x) for x in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2, 3] and not any("val_accuracy" in r for r in history)
    assert out["best_epoch"] == 3 and out["best_val_accuracy"] is None
    assert out["test_accuracy"] == out["test_accuracy_last_epoch"]
    check = load_benchmark("check_classrbm_npz")
    acc = check.main(tmp_path / "run" / "model.npz", mnist_dir, 200)
    assert acc == pytest.approx(out["test_accuracy"], abs=1e-9)
    with pytest.raises(SystemExit):
        bench.parse_args([*args, "--n-val", "-1"])
    assert "--n-val -1: must be >= 0" in capsys.readouterr().err
