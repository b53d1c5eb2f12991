"""benchmarks/bench_relaxation_vs_pcd.py end to end on a tiny setting (the committed MNIST fixture:
800 training and 200 test images; RBM 784x8 so that the exact log-likelihood costs nothing): in every
regime the device and its gradient counterpart make the same numbers of parameter updates, model-copy
sweeps, data batches and restarts at the data, with as many copies as chains and the same step;
results.json and the figure are written; the separated-time-scale device learns; the AIS estimates
(for RBMs too large for the exact sum) agree with the exact log-likelihood where both exist; a
stopped run resumes with the same result; a user's mistake is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import load_benchmark

TINY = ["--hidden", "8", "--updates", "200", "--eval-every", "100"]
COUNT_KEYS = ("parameter_updates", "model_sweeps", "data_batches", "copies", "restarts_at_data")


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_relaxation_vs_pcd")


def test_tiny_run_has_equal_budgets_and_writes_results_and_figure(bench, mnist_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert bench.main(["--data", str(mnist_dir), "--run-dir", str(run), *TINY]) == 0
    out = capsys.readouterr().out
    for name in ("separated", "reseeded", "lagging"):
        assert out.count(f"| {name} |") == 3, name

    res = json.loads((run / "results.json").read_text())
    png = (run / bench.FIGURE).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert (run / "table.md").read_text().count("\n") == 11
    assert res["config"]["data"]["n_train"] == 800 and res["config"]["data"]["n_test"] == 200
    assert "/" not in json.dumps(res["config"]["data"])  # no machine path in the results

    assert set(res["counts"]) == {"separated", "reseeded", "lagging"}
    for regime in bench.REGIMES:
        c = res["counts"][regime["name"]]
        for key in COUNT_KEYS:  # counted while running, on both sides, and what the formula says
            assert c["device"][key] == c["counterpart"][key] == c["expected"][key], (regime["name"], key)
        assert c["equal"] is True
        assert c["device"]["parameter_updates"] == c["device"]["model_sweeps"] == 200
        S = c["expected"]["steps_per_batch"]
        assert c["device"]["data_batches"] == 200 // S
        # the device's target copy samples the hidden spins once per move
        assert c["device"]["clamped_sweeps"] == 200
    assert res["counts"]["separated"]["expected"]["steps_per_batch"] == 10
    assert res["counts"]["reseeded"]["device"]["restarts_at_data"] == 200  # CD: every batch
    assert res["counts"]["lagging"]["device"]["restarts_at_data"] == 1  # persistent: once

    for r in res["final"]:
        if "counts" in r:
            assert r["counts_same_every_seed"]
    for regime in bench.REGIMES:
        rows = {r["side"]: r for r in res["final"] if r["regime"] == regime["name"] and "counts" in r}
        steps = [rows[side]["step_per_update"] for side in ("device", "gradient")]
        assert steps[0] == pytest.approx(steps[1], rel=1e-12)
    runs = res["runs"]
    assert len(runs) == 3 * 2 * 3
    for r in runs:
        assert [u for u, _ in r["curve"]] == [0, 100, 200]
        twin = next(x for x in runs if x["regime"] == r["regime"] and x["seed"] == r["seed"] and x is not r)
        assert r["curve"][0][1] == twin["curve"][0][1]  # same seed, same initial model on both sides


def test_separated_device_learns(bench, mnist_dir):
    """From the same start, 400 moves of the separated device (40 batches of 100 items, step 0.001)
    raise the exact test log-likelihood at every seed, and the 95 % Student-t interval of the mean
    gain over the fixed seeds 0, 1, 2 lies above +5 nats (measured: about +11.6, seed sd ~0.4)."""
    data, _ = bench.load_data(mnist_dir, None)
    separated = next(r for r in bench.REGIMES if r["name"] == "separated")
    gains = []
    for seed in (0, 1, 2):
        r = bench.run_side(separated, "device", data, seed, 8, 400, 200)
        assert r["counts"]["parameter_updates"] == r["counts"]["model_sweeps"] == 400
        lls = [ll for _, ll in r["curve"]]
        assert np.isfinite(lls).all()
        gains.append(lls[-1] - lls[0])
    mean, half = bench.t_interval(gains)
    assert min(gains) > 5.0, gains
    assert mean - half > 5.0, (mean, half, gains)


@pytest.mark.parametrize("args, words", [
    (["--updates", "abc"], "--updates"),
    (["--updates", "0"], "--updates"),
    (["--eval-every", "15"], "multiples of 10"),
    (["--hidden", "1001"], "--hidden"),
    (["--hidden", "40", "--loglik", "exact"], "--loglik exact"),
    (["--hidden", "21", "--loglik", "exact"], "at most 20 hidden units"),
    (["--loglik", "ais", "--ais-scale", "0"], "--ais-scale"),
    (["--loglik", "ais", "--final-ais-scale", "1.5"], "--final-ais-scale"),
    (["--loglik", "ais", "--ais-runs", "1"], "--ais-runs"),
    (["--loglik", "ais", "--reverse-sweeps", "0"], "--reverse-sweeps"),
    (["--loglik", "ais", "--ais-runs", "801"], "--ais-runs 801"),  # the fixture has 800 training images
    (["--seeds", "1", "1"], "each seed once"),
    (["--data", "/nonexistent/mnist"], "does not exist"),
])
def test_user_mistakes_are_one_line(bench, mnist_dir, tmp_path, capsys, args, words):
    argv = ["--data", str(mnist_dir), "--run-dir", str(tmp_path / "run"), *TINY, *args]
    assert bench.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and words in err[0], err
    assert not (tmp_path / "run" / "results.json").exists()


@pytest.fixture
def one_torch_thread():
    """One torch thread, as the benchmark's run() sets (two threads on a loaded 2-core machine make
    these small products many times slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_ais_curve_and_final_agree_with_the_exact_loglik(bench, mnist_dir, one_torch_thread):
    """The AIS path of the benchmark (used above 20 hidden units) on a model small enough for the
    exact sum: the same training (same seed) evaluated both ways. The final forward and reverse AIS
    estimates lie within 5 of their standard errors of the exact value (a 5-sigma bound; measured
    ~1 se), the curve's cheaper schedule (20 % of S&M: 2,901 betas, se ~0.03-0.05 nats here)
    within 0.15 nats at every point (measured: at most 0.042)."""
    data, _ = bench.load_data(mnist_dir, None)
    lagging = next(r for r in bench.REGIMES if r["name"] == "lagging")  # the largest moves
    exact = bench.run_side(lagging, "device", data, 0, 8, 200, 100)
    ais = bench.run_side(lagging, "device", data, 0, 8, 200, 100, bench.TestLogLik("ais", 0.2, 100),
                         {"scale": 0.2, "reverse_sweeps": 200})
    assert [u for u, _ in ais["curve"]] == [u for u, _ in exact["curve"]] == [0, 100, 200]
    assert exact["curve"][-1][1] > exact["curve"][0][1] - 50  # a trained model, not a blow-up
    for (_, ll_exact), (_, ll_ais) in zip(exact["curve"], ais["curve"], strict=True):
        assert abs(ll_ais - ll_exact) < 0.15, (ll_ais, ll_exact)
    fin, true = ais["final_ais"], exact["final_test_ll"]
    assert fin["n_betas"] == 2901 and fin["reverse_sweeps"] == 200 and fin["runs"] == 100
    for direction in ("forward", "reverse"):
        se = fin[f"log_Z_{direction}_se"]
        assert 0 < se < 0.1  # measured ~0.056 with this schedule
        assert abs(fin[f"test_loglik_{direction}"] - true) < 5 * se, (direction, fin, true)
    assert ais["final_test_ll"] == fin["test_loglik_forward"]
    assert ais["final_test_ll_reverse"] == fin["test_loglik_reverse"]


def test_a_stopped_run_resumes_with_the_same_result(bench, mnist_dir, tmp_path, capsys):
    """Every finished unit is one synced line; a rerun after a crash (here: 5 of 6 lines kept and
    half of the sixth) runs only the missing units and ends with the uninterrupted run's numbers.
    Another setting in the same folder is refused in one line."""
    argv = ["--data", str(mnist_dir), "--run-dir", str(tmp_path / "run"), *TINY, "--seeds", "0"]
    assert bench.main(argv) == 0
    first = json.loads((tmp_path / "run" / "results.json").read_text())
    lines = (tmp_path / "run" / "results.jsonl").read_bytes().splitlines(keepends=True)
    assert len(lines) == 6
    (tmp_path / "run" / "results.jsonl").write_bytes(b"".join(lines[:5]) + lines[5][:40])
    capsys.readouterr()
    assert bench.main(argv) == 0
    err = capsys.readouterr().err
    assert "dropped an incomplete last line" in err
    assert "unit 6 of 6" in err and "unit 5 of 6" not in err
    again = json.loads((tmp_path / "run" / "results.json").read_text())
    assert again["units_run_this_session"] == 1
    def numbers(res):  # everything but the wall-clock seconds
        return [{k: v for k, v in r.items() if k != "train_wall_s_mean"} for r in res["final"]]

    assert numbers(again) == numbers(first)
    assert [r["curve"] for r in again["runs"]] == [r["curve"] for r in first["runs"]]
    assert len((tmp_path / "run" / "results.jsonl").read_bytes().splitlines()) == 6

    assert bench.main([*argv, "--updates", "300"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other settings" in err[0], err
