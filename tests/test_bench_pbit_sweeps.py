"""Accuracy against sweeps per classification (issue 19): SparseBM.classify's burn-in (`discard`)
sums exactly the label spins of the last part of each chain; benchmarks/bench_pbit_sweeps.py
compares a model.npz and a training checkpoint on validation, chooses by its stated rule before
any test image, resumes without redoing a line, and refuses a missing candidate in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import load_benchmark, tiny_pbit_trainer

from labml.bm.sparse_bm import SparseBM
from labml.bm.sparse_graph import GraphSampler
from labml.runs import checkpoints


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_pbit_sweeps")


@pytest.fixture(scope="module")
def trained(bench, tmp_path_factory):
    """A small machine on the chip graph trained 2 epochs on 400 fixture images: its run folder
    with model.npz (after epoch 1) and the checkpoint of epoch 2, as bench_pbit_mnist.py leaves them."""
    run = tmp_path_factory.mktemp("pbit-run")
    tr, b = tiny_pbit_trainer(run, n_val=200)
    m = tr.model
    tr.run_epoch()
    m.save(run / "model.npz")
    tr.run_epoch()
    ckpt = checkpoints.save(run, "uid", 2, {"trainer": tr.state_dict(), "records": [], "best": {}})
    return run, ckpt, m, b


def test_burn_in_sums_only_the_last_part_of_each_chain(trained):
    _, _, m, b = trained
    x, y = b["x_val"][:30], b["y_val"][:30]
    sweeps = 12
    out = m.classify(GraphSampler(m.graph, "heatbath"), x, sweeps, seed=5, y=y, counts=(4, 9), discard=0.5)
    # the same chains by hand: label spins after every sweep
    sampler = GraphSampler(m.graph, "heatbath")
    state = m.clamped_state(sampler, x, None, 5)
    spins = []
    for _ in range(sweeps):
        sampler.sweep(state, 1, clamp=m.mask("visible"))
        spins.append(state.s[m.layout.labels].astype(np.float64))
    for S, start in ((4, 2), (9, 4), (12, 6)):  # floor(0.5 * S) sweeps of burn-in
        pred = m.class_scores(np.sum(spins[start:S], axis=0)).argmax(1)
        assert out["accuracy_by_sweeps"][S] == pytest.approx(np.mean(pred == y), abs=1e-12)
    assert np.array_equal(out["pred"], m.class_scores(np.sum(spins[6:], axis=0)).argmax(1))
    with pytest.raises(ValueError, match="discard"):
        m.classify(sampler, x, 3, discard=1.0)


def test_candidates_compared_on_validation_chosen_then_tested_and_resumed(bench, trained, mnist_dir,
                                                                           capsys):
    run, ckpt, _, _ = trained
    out = run / "sweeps"
    common = ["--candidates", str(run / "model.npz"), str(ckpt), "--data", str(mnist_dir),
              "--binarised", str(run / "bits.npz"), "--run-dir", str(out), "--n-train", "400",
              "--n-val", "200", "--val-images", "100", "--sweeps", "30", "--n-test", "60", "--batch", "25"]
    assert bench.main(common + ["--no-test"]) == 0
    lines = [json.loads(s) for s in (out / "results.jsonl").read_text().splitlines()]
    assert [d["split"] for d in lines] == ["val", "val"] and all(d["n"] == 100 for d in lines)
    assert all(set(d["correct"]) == {"20", "30"} for d in lines)
    # the rule: most correct at the longest chain, the first listed on a tie
    best = max(lines, key=lambda d: (d["correct"]["30"], -d["candidate"]))["candidate"]
    # the same command with the test: validation is not redone (a line cut off by a crash is
    # dropped, not read), the test runs in batches of 25
    with open(out / "results.jsonl", "a") as f:
        f.write('{"uid": "cut off')
    assert bench.main(common) == 0
    lines2 = [json.loads(s) for s in (out / "results.jsonl").read_text().splitlines()]
    assert lines2[:2] == lines and [d["n"] for d in lines2[2:]] == [25, 25, 10]
    assert [d["batch"] for d in lines2] == list(range(5))
    s = json.loads((out / "summary.json").read_text())
    assert s["chosen"] == [str(run / "model.npz"), str(ckpt)][best]
    assert s["test"]["n"] == 60 and s["test"]["complete"] is True
    assert 0.0 <= s["test"]["accuracy"]["30"] <= 1.0
    lo, hi = s["test"]["wilson95"]["30"]
    assert lo <= s["test"]["accuracy"]["30"] <= hi
    chosen = SparseBM.load(out / "chosen_model.npz")  # the chosen parameters, numpy-loadable
    assert np.array_equal(chosen.w, bench.load_candidate(Path(s["chosen"])).w)
    # a checkpoint's parameters are the ones it holds, not the model.npz beside it
    m2 = bench.load_candidate(ckpt)
    state = checkpoints.load(ckpt)["trainer"]
    assert np.array_equal(m2.w, np.asarray(state["w"], np.float64))


def test_a_missing_candidate_is_refused_in_one_line(bench, trained, mnist_dir, tmp_path, capsys):
    run, _, _, _ = trained
    rc = bench.main(["--candidates", str(tmp_path / "nope.npz"), "--data", str(mnist_dir),
                     "--binarised", str(run / "bits.npz"), "--run-dir", str(tmp_path / "o"),
                     "--n-train", "400", "--n-val", "200", "--no-test"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "nope.npz: no such file" in err
