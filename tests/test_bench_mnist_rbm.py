"""benchmarks/bench_mnist_rbm.py end to end on a tiny configuration (the committed MNIST fixture,
20 hidden units, a short AIS schedule): the saved binarised set, resuming, the numpy-readable
model file and the one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import last_json, load_benchmark

from labml import mnist_binarised
from labml.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "20", "--epochs", "3", "--n-train", "500", "--n-val", "200", "--n-test", "100",
        "--val-every", "2", "--val-ais-scale", "0.01", "--ais-scale", "0.02", "--ais-runs", "20",
        "--val-runs", "20", "--reverse-sweeps", "200", "--sklearn-epochs", "1", "--lr", "0.01"]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_mnist_rbm")



@pytest.mark.parametrize("chains", [[], ["--chains", "pt", "--pt-replicas", "3", "--pt-beta-min", "0.9",
                                     "--weight-decay", "0.01"]])
def test_tiny_run_resumes_bit_exactly_and_saves_a_numpy_model(bench, mnist_dir, tmp_path, capsys, chains):
    binarised = tmp_path / "bits.npz"
    common = ["--data", str(mnist_dir), "--binarised", str(binarised), *TINY, *chains]
    assert bench.main([*common, "--run-dir", str(tmp_path / "whole")]) == 0
    whole = last_json(capsys.readouterr().out)

    # the same run stopped after its first epoch (as --hours does) and continued by the same command
    part = tmp_path / "parts"
    s = bench.Session(bench.parse_args([*common, "--run-dir", str(part)]))
    s.checkpoint(s.epoch())
    assert bench.main([*common, "--run-dir", str(part)]) == 0
    resumed = last_json(capsys.readouterr().out)
    for key in ("log_Z_forward", "log_Z_reverse", "test_loglik_forward", "val_loglik_reverse"):
        assert resumed[key] == whole[key], key
    history = [json.loads(line) for line in (part / "history.jsonl").read_text().splitlines()]
    assert len(history) == 3
    if chains:  # the exchange rates of the 2 neighbouring pairs, recorded every epoch
        assert all(len(r["pt_swap_rates"]) == 2 and 0 < min(r["pt_swap_rates"]) for r in history)

    # AIS forward and reverse agree within 4 combined standard errors on this small model
    se = np.hypot(whole["log_Z_forward_se"], whole["log_Z_reverse_se"])
    assert abs(whole["log_Z_forward"] - whole["log_Z_reverse"]) <= 4 * se + 0.05
    assert whole["sklearn_sec_per_epoch_median"] > 0 and whole["epochs_done"] == 3

    # model.npz with numpy alone: the bit form gives the reported test log-likelihood
    m = np.load(tmp_path / "whole" / "model.npz")
    x = mnist_binarised.load(binarised)["test_stochastic"][:100].astype(np.float64)
    logp = x @ m["c01"] + np.logaddexp(0.0, m["d01"] + x @ m["W01"]).sum(1) - m["log_Z01"]
    assert logp.mean() == pytest.approx(whole["test_loglik_forward"], abs=1e-3)
    assert m["W"].shape == (784, 20) and float(m["temperature"]) == 1.0
    # and the numpy-only check script, reading the saved binarised set itself, reports the same
    check = load_benchmark("check_rbm_npz")
    got = check.main(str(tmp_path / "whole" / "model.npz"), str(binarised), 100)
    assert got == pytest.approx(whole["test_loglik_forward"], abs=1e-3)
    assert str(m["data_sha256"]) == mnist_binarised.load(binarised)["content_sha256"]
    assert str(m["binarisation"]) == "stochastic"
    assert (tmp_path / "whole" / "samples.png").stat().st_size > 0


def test_a_final_model_trained_on_every_training_image_reports_test_and_training_likelihoods(
        bench, mnist_dir, tmp_path, capsys):
    """--n-val 0: the settings were chosen on a split; the final model trains on all the training
    images, runs no validation check and reports test and training log-likelihoods."""
    binarised = tmp_path / "bits.npz"
    n_all = len(mnist_binarised.binarised_mnist(mnist_dir, binarised, 0)["train_labels"])
    tiny = [*TINY]
    tiny[tiny.index("--n-train") + 1], tiny[tiny.index("--n-val") + 1] = str(n_all), "0"
    args = ["--data", str(mnist_dir), "--binarised", str(binarised), *tiny,
            "--run-dir", str(tmp_path / "all")]
    s = bench.Session(bench.parse_args(args))  # stopped after its first epoch, then resumed
    s.checkpoint(s.epoch())
    assert bench.main(args) == 0
    final = last_json(capsys.readouterr().out)
    assert final["n_val"] == 0 and not any(k.startswith("val_loglik") for k in final)
    history = [json.loads(line) for line in (tmp_path / "all" / "history.jsonl").read_text().splitlines()]
    assert len(history) == 3 and not any("val_loglik_forward" in r for r in history)
    m = np.load(tmp_path / "all" / "model.npz")
    bits = mnist_binarised.load(binarised)
    for name, x in (("test", bits["test_stochastic"][:100]), ("train", bits["train_stochastic"])):
        x = x.astype(np.float64)
        logp = x @ m["c01"] + np.logaddexp(0.0, m["d01"] + x @ m["W01"]).sum(1) - m["log_Z01"]
        assert logp.mean() == pytest.approx(final[f"{name}_loglik_forward"], abs=1e-3), name


def test_binarised_set_is_reproducible_and_verified(mnist_dir, tmp_path):
    a = mnist_binarised.binarised_mnist(mnist_dir, tmp_path / "a.npz", seed=3)
    b = mnist_binarised.build(mnist_dir, seed=3)
    assert str(b["content_sha256"]) == a["content_sha256"]
    # each pixel drawn once with P(1) = intensity / 255: the mean over all pixels matches the mean
    # intensity within 4 binomial standard errors
    from labml.data import load_mnist_arrays

    im = load_mnist_arrays(mnist_dir)[0].astype(np.float64) / 255.0
    bits = a["train_stochastic"]
    sd = np.sqrt((im * (1 - im)).sum()) / im.size
    assert abs(bits.mean() - im.mean()) <= 4 * sd
    assert np.array_equal(a["train_threshold"], (im > 0.5).reshape(len(im), -1).astype(np.uint8))
    with pytest.raises(Exception, match="seed 3, not 4"):
        mnist_binarised.load(tmp_path / "a.npz", seed=4)
    raw = dict(np.load(tmp_path / "a.npz"))
    raw["train_stochastic"] = raw["train_stochastic"].copy()
    raw["train_stochastic"][0, 0] ^= 1
    np.savez(tmp_path / "bad.npz", **raw)
    with pytest.raises(Exception, match="corrupt"):
        mnist_binarised.load(tmp_path / "bad.npz")


def test_bad_input_gives_one_line_errors(bench, mnist_dir, tmp_path, capsys):
    assert bench.main(["--data", str(tmp_path / "nowhere"), "--run-dir", str(tmp_path / "r"), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: MNIST folder") and "nowhere" in err and len(err.splitlines()) == 1
    common = ["--data", str(mnist_dir), "--binarised", str(tmp_path / "bits.npz"),
              "--run-dir", str(tmp_path / "r")]
    s = bench.Session(bench.parse_args([*common, *TINY]))
    s.checkpoint(s.epoch())
    assert bench.main([*common, *TINY, "--hidden", "30"]) == 2
    err = capsys.readouterr().err.strip()
    assert "hidden: run 20, now 30" in err and len(err.splitlines()) == 1
    assert bench.main([*common, *TINY, "--weight-decay", "0.001"]) == 2
    err = capsys.readouterr().err.strip()
    assert "weight_decay: run 0.0, now 0.001" in err and len(err.splitlines()) == 1
    # a run folder written before --weight-decay existed ran without it, and resumes so
    cfg_path = tmp_path / "r" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["settings"]["weight_decay"]
    cfg_path.write_text(json.dumps(cfg))
    assert bench.Session(bench.parse_args([*common, *TINY])).trainer.epoch == 1
    with pytest.raises(UserError, match="weight_decay: run 0.0, now 0.001"):
        bench.Session(bench.parse_args([*common, *TINY, "--weight-decay", "0.001"]))
    for bad in (["--lr", "0"], ["--weight-decay", "-1e-4"], ["--chains", "pt", "--pt-beta-min", "1"],
                ["--chains", "pt", "--pt-replicas", "1"], ["--n-val", "-1"], ["--n-val", "0", "--no-test"]):
        with pytest.raises(SystemExit):
            bench.parse_args(["--run-dir", "x", *bad])


def test_a_set_sorted_by_class_is_split_from_a_fixed_shuffle(bench, mnist_dir, tmp_path, capsys):
    """The 5k subset is stored sorted by class: its last images are all nines. The split must not
    validate on nines only (and train without them); a mixed set keeps its order (standard split)."""
    from labml.data import load_mnist_arrays, write_idx

    images, labels, test_images, test_labels, _ = load_mnist_arrays(mnist_dir)
    order = np.argsort(labels, kind="stable")
    sorted_dir = tmp_path / "sorted"
    sorted_dir.mkdir()
    for name, arr in (("train-images-idx3-ubyte", images[order]), ("train-labels-idx1-ubyte", labels[order]),
                      ("t10k-images-idx3-ubyte", test_images), ("t10k-labels-idx1-ubyte", test_labels)):
        write_idx(sorted_dir / name, arr)
    common = ["--n-train", "600", "--n-val", "200", "--run-dir", str(tmp_path / "r")]
    a = bench.parse_args(["--data", str(sorted_dir), "--binarised", str(tmp_path / "s.npz"), *common])
    bits = bench.load_bits(a)
    assert "sorted by class" in capsys.readouterr().err
    assert set(bits["y_val"].tolist()) == set(bits["y_train"].tolist()) == set(range(10))
    b = bench.parse_args(["--data", str(mnist_dir), "--binarised", str(tmp_path / "m.npz"), *common])
    mixed = bench.load_bits(b)
    assert "sorted" not in capsys.readouterr().err
    assert np.array_equal(mixed["y_train"], labels[:600]) and np.array_equal(mixed["y_val"], labels[-200:])


def test_the_numpy_check_script_refuses_a_wrong_file_in_one_line(mnist_dir, tmp_path):
    script = ROOT / "benchmarks" / "check_rbm_npz.py"
    bits = tmp_path / "bits.npz"
    mnist_binarised.binarised_mnist(mnist_dir, bits, 0)
    np.savez(tmp_path / "foreign.npz", W=np.zeros((2, 2)))
    (tmp_path / "cut.npz").write_bytes(bits.read_bytes()[:1000])
    np.savez(tmp_path / "other.npz", data_sha256=np.array("0" * 64), binarisation=np.array("stochastic"),
             **{k: np.zeros(1) for k in ("W01", "c01", "d01", "log_Z01")})
    for args, says in (([tmp_path / "missing.npz", bits], "No such file"),
                       ([tmp_path / "foreign.npz", bits], "c01"),
                       ([tmp_path / "other.npz", bits], "trained on the binarised set 000000000000"),
                       ([tmp_path / "other.npz", tmp_path / "cut.npz"], "zip"),
                       ([tmp_path / "other.npz", bits, "ten"], "invalid literal")):
        out = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True)
        assert out.returncode == 1 and out.stdout == ""
        err = out.stderr.strip()
        assert err.startswith("error: ") and says in err and len(err.splitlines()) == 1, err
