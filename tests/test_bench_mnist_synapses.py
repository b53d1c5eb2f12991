"""benchmarks/bench_mnist_synapses.py end to end on a tiny configuration (the committed MNIST
fixture): every unit of the table trains, a unit stopped between epochs resumes to the same
result, finished units are skipped, and the saved fields are readable with numpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--ns", "1", "16", "--deep-ns", "4", "--deep-hidden", "8", "--seeds", "0", "--epochs", "2",
        "--n-train", "300", "--n-val", "100", "--n-test", "100"]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_mnist_synapses")


def test_tiny_table_resumes_and_saves_fields(bench, mnist_dir, tmp_path, capsys, monkeypatch):
    args = ["--data", str(mnist_dir), *TINY]
    assert bench.main([*args, "--run-dir", str(tmp_path / "whole")]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["units"] == 4  # perceptron, n = 1, n = 16, 196-8-10 at n = 4
    whole = bench.done_results(tmp_path / "whole")
    assert set(whole) == {"perceptron-196-10-n1-s0", "stochastic-196-10-n1-s0", "stochastic-196-10-n16-s0",
                          "stochastic-196-8-10-n4-s0"}
    m = np.load(tmp_path / "whole" / "stochastic-196-8-10-n4-s0" / "model.npz")
    assert m["H0"].shape[-2:] == (8, 196) and m["p1"].shape[-2:] == (10, 8)
    assert ((m["p0"] >= 0) & (m["p0"] <= 1)).all()

    # a session whose budget ends after the first epoch of the first unit, then the same command
    a = bench.parse_args([*args, "--run-dir", str(tmp_path / "part")])
    ds = bench.load_split(a)
    clock = iter([0.0, 10.0])
    monkeypatch.setattr(bench.time, "time", lambda: next(clock))
    assert bench.train_unit(a, bench.units(a)[0], ds, deadline=5.0) is None
    monkeypatch.undo()
    assert bench.main([*args, "--run-dir", str(tmp_path / "part")]) == 0
    part = bench.done_results(tmp_path / "part")
    for name, r in whole.items():
        assert part[name]["test_accuracy"] == r["test_accuracy"], name
    # finished units are not trained again
    assert bench.main([*args, "--run-dir", str(tmp_path / "part")]) == 0
    assert len((tmp_path / "part" / "results.jsonl").read_text().splitlines()) == 4


def test_missing_data_is_one_line(bench, tmp_path, capsys):
    assert bench.main(["--data", str(tmp_path / "nowhere"), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: MNIST folder") and len(err.splitlines()) == 1
