"""benchmarks/bench_pbit_rig_inference.py end to end on a tiny sparse p-bit machine (the committed
MNIST fixture, the built-in simulated rig): both accuracies reported, the reads the rig kernel
counts equal images x sweeps x sampled units, bench time and energy > 0, an interrupted run
resumes to the same numbers without counting a batch twice, --sweeps 201 refused in one line;
--calibrate-reads brings every wire's curve close to the simulated truth, costs what it reads, is
measured once and kept for a resumed run;
its statistics (Wilson, Newcombe's paired interval) against published examples. And the rig
kernel's block path in GraphSampler (made faster for this benchmark): bit for bit the reads of
the previous implementation, clamped units never read, the range check as strict as before."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from helpers import load_benchmark, tiny_pbit_trainer

from instruments.rig import check_wire_ranges
from labml.bm.sparse_graph import GraphSampler, random_graph
from labml.rigs import open_rig

SWEEPS = 5
N_TEST = 20


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_pbit_rig_inference")


@pytest.fixture(scope="module")
def tiny_model(bench, tmp_path_factory):
    """A small machine on the chip graph (784 pixels, 10 x 2 labels, 98 hidden), 2 epochs of PCD
    on 400 fixture images, saved as bench_pbit_mnist.py saves its model."""
    tmp = tmp_path_factory.mktemp("model")
    tr, _ = tiny_pbit_trainer(tmp)
    m = tr.model
    for _ in range(2):
        tr.run_epoch()
    m.save(tmp / "model.npz", {"note": "tiny"})
    return tmp / "model.npz", m


def _args(model, mnist_dir, bits, run_dir, *extra):
    return ["--model", str(model), "--data", str(mnist_dir), "--binarised", str(bits),
            "--run-dir", str(run_dir), "--n-test", str(N_TEST), "--sweeps", str(SWEEPS), "--batch", "8",
            *extra]


def _lines(run_dir):
    return [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]


def test_end_to_end_counts_reads_and_resumes_without_double_counting(bench, tiny_model, mnist_dir, tmp_path,
                                                                      capsys):
    model, m = tiny_model
    bits = tmp_path / "bits.npz"
    whole = tmp_path / "whole"
    assert bench.main(_args(model, mnist_dir, bits, whole)) == 0
    out = capsys.readouterr().out
    assert "| rig kernel (simulated rig) accuracy, 95 % Wilson |" in out
    s = json.loads((whole / "summary.json").read_text())
    assert s["status"] == "complete" and s["images"] == N_TEST and s["batches"] == 3  # 8 + 8 + 4
    for side in ("ideal", "rig"):
        acc = s[side]["accuracy"]
        assert 0.0 <= acc <= 1.0 and s[side]["wilson95"][0] <= acc <= s[side]["wilson95"][1]
        assert set(s[side]["accuracy_by_sweeps"]) == {"1", "2", str(SWEEPS)}
        assert s[side]["accuracy_by_sweeps"][str(SWEEPS)] == acc
    tab = s["paired_table"]
    assert tab["both"] + tab["ideal_only"] == s["ideal"]["correct"]
    assert tab["both"] + tab["rig_only"] == s["rig"]["correct"]
    assert s["accuracy_lost"]["difference"] == pytest.approx(s["ideal"]["accuracy"] - s["rig"]["accuracy"])
    # every sweep reads each label and hidden unit once per image; clamped pixels are never read
    units = m.layout.n_labels + m.layout.n_hidden
    assert s["units_sampled"] == units == 118
    assert s["reads"] == s["reads_expected"] == N_TEST * SWEEPS * units
    assert [r["reads"] for r in _lines(whole)] == [n * SWEEPS * units for n in (8, 8, 4)]
    assert s["bench_time_s"] > 0 and s["energy_J"] > 0
    rs = s["rig_settings"]
    assert rs["device_spread_on"] and rs["read_noise"]["moke_rin_per_rtHz"] > 0
    assert all(w["readout_bit_error"] > 0 for w in rs["wires"])
    assert "/" not in s["model"]["file"] and str(tmp_path) not in json.dumps(s)

    # interrupted after batch 0, with a line cut off by the crash: the rerun reads the rig state of
    # batch 0, runs batches 1 and 2 once each, and ends with the uninterrupted run's numbers
    part = tmp_path / "part"
    shutil.copytree(whole, part, ignore=shutil.ignore_patterns("summary.*"))
    first, second = (whole / "results.jsonl").read_text().splitlines()[:2]
    (part / "results.jsonl").write_text(first + "\n" + second[:200])
    assert bench.main(_args(model, mnist_dir, bits, part)) == 0
    capsys.readouterr()
    lines = _lines(part)
    assert [r["batch"] for r in lines] == [0, 1, 2]
    r = json.loads((part / "summary.json").read_text())
    same = ("ideal", "rig", "paired_table", "reads", "bench_time_s", "energy_J", "images")
    assert {k: r[k] for k in same} == {k: s[k] for k in same}
    # a finished run rerun adds nothing
    assert bench.main(_args(model, mnist_dir, bits, part)) == 0
    assert len(_lines(part)) == 3
    assert json.loads((part / "summary.json").read_text())["reads"] == s["reads"]


def test_calibration_before_inference_fits_every_wire_and_is_kept_on_resume(bench, tiny_model, mnist_dir,
                                                                             tmp_path, capsys):
    """sim_default's wires 1-3 are fabricated with spread but carry the nominal curve (up to 0.35
    away from their truth in p; a logistic fit would still miss wire 1 by 0.11, its two modes
    apart). Calibrated with 1000 reads at 33 fields each (binomial sd <= 0.016 per point) into a
    monotone table, every wire's curve lies within 0.05 of the truth over its allowed range
    (3 sd of one point; measured <= 0.04 at 400 reads, <= 0.027 at 2000) and each spread wire's
    mismatch at least halves. 4 wires x 33 fields x 1000 reads are counted apart from the
    inference's reads. A run stopped after its first batch resumes with the stored curves (not
    measured again) to the uninterrupted numbers; a damaged calibration file is one line."""
    model, _ = tiny_model
    bits = tmp_path / "bits.npz"
    plain, cal = tmp_path / "plain", tmp_path / "cal"
    assert bench.main(_args(model, mnist_dir, bits, plain)) == 0
    assert bench.main(_args(model, mnist_dir, bits, cal, "--calibrate-reads", "1000")) == 0
    out = capsys.readouterr().out
    assert "| wire calibration before inference (not in the figures above) | 132,000 reads" in out
    s0 = json.loads((plain / "summary.json").read_text())
    s1 = json.loads((cal / "summary.json").read_text())
    assert s0["calibration"] is None
    c = s1["calibration"]
    assert c["reads"] == 4 * 33 * 1000 and c["bench_time_s"] > 0 and c["energy_J"] > 0
    assert s1["reads"] == s1["reads_expected"] == s0["reads"]  # calibration reads counted apart
    before = [w["max_abs_p_true_minus_p_cal"] for w in s0["rig_settings"]["wires"]]
    after = [w["max_abs_p_true_minus_p_cal"] for w in s1["rig_settings"]["wires"]]
    assert max(before[1:]) > 0.1  # the uncalibrated spread wires are far off
    assert max(after) < 0.05, after
    for w in (1, 2, 3):
        assert after[w] < before[w] / 2, (w, before, after)
    assert [w["calibration"] for w in s1["rig_settings"]["wires"]] == c["curves"]

    part = tmp_path / "part"
    shutil.copytree(cal, part, ignore=shutil.ignore_patterns("summary.*"))
    stored = (part / bench.CALIBRATION).read_text()
    (part / "results.jsonl").write_text((cal / "results.jsonl").read_text().splitlines()[0] + "\n")
    assert bench.main(_args(model, mnist_dir, bits, part, "--calibrate-reads", "1000")) == 0
    capsys.readouterr()
    r = json.loads((part / "summary.json").read_text())
    same = ("ideal", "rig", "paired_table", "reads", "bench_time_s", "energy_J", "images", "calibration")
    assert {k: r[k] for k in same} == {k: s1[k] for k in same}
    assert (part / bench.CALIBRATION).read_text() == stored

    # stopped after the calibration, before the first batch: the stored curves and the rig state
    # the calibration left give the uninterrupted numbers
    (part / "results.jsonl").write_text("")
    assert bench.main(_args(model, mnist_dir, bits, part, "--calibrate-reads", "1000")) == 0
    capsys.readouterr()
    r = json.loads((part / "summary.json").read_text())
    assert {k: r[k] for k in same} == {k: s1[k] for k in same}

    def refused(words):
        assert bench.main(_args(model, mnist_dir, bits, part, "--calibrate-reads", "1000")) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and words in err, err

    (part / "results.jsonl").write_text("")
    (part / bench.CALIBRATION).write_text('{"curves": [{"H_mT": [2.0, 3.0], "p_values": [0.9, 0.1]}]}')
    refused("not a calibration")  # falling curve
    wide = json.loads(stored)
    wide["curves"][1]["H_mT"][-1] = 30.0  # a field beyond wire 1's allowed range
    (part / bench.CALIBRATION).write_text(json.dumps(wide))
    refused("leave")
    no_state = json.loads(stored)
    del no_state["rig_state_after"]
    (part / bench.CALIBRATION).write_text(json.dumps(no_state))
    refused("not a calibration")
    (part / "results.jsonl").write_text((cal / "results.jsonl").read_text().splitlines()[0] + "\n")
    (part / bench.CALIBRATION).unlink()
    refused("measuring the wires again")  # batches done, curves lost: never measured anew
    (part / "results.jsonl").write_bytes(b"\xff\xfe not json\n")
    refused("results.jsonl")
    assert bench.main(_args(model, mnist_dir, bits, tmp_path / "x", "--calibrate-reads", "-1")) == 2
    assert "--calibrate-reads -1" in capsys.readouterr().err


def test_budget_pauses_between_batches_and_other_settings_are_refused(bench, tiny_model, mnist_dir, tmp_path,
                                                                      capsys):
    model, _ = tiny_model
    bits, run = tmp_path / "bits.npz", tmp_path / "run"
    # a budget far below one batch: the first batch of a session always runs (no estimate yet),
    # then the session stops before the next one and says how to continue
    assert bench.main(_args(model, mnist_dir, bits, run, "--hours", "1e-9")) == 0
    err = capsys.readouterr().err
    assert "rerun the same command" in err
    assert len(_lines(run)) == 1 and json.loads((run / "summary.json").read_text())["status"] == "partial"
    assert bench.main(_args(model, mnist_dir, bits, run, "--seed", "1")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "other settings" in err and "seed" in err


def test_more_than_200_sweeps_refused_in_one_line(bench, tiny_model, tmp_path, capsys):
    model, _ = tiny_model
    assert bench.main(["--model", str(model), "--run-dir", str(tmp_path / "r"), "--sweeps", "201"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --sweeps 201:")
    assert not (tmp_path / "r").exists()


def test_intervals_match_published_examples(bench):
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion": 81/263, Wilson
    lo, hi = bench.wilson(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)
    # Newcombe (1998), paired proportions, worked example 36/12/2/0 (n = 50), method 10
    d = bench.paired_difference(36, 12, 2, 0)
    assert d["difference"] == pytest.approx(0.2)
    assert [round(v, 4) for v in d["interval_newcombe"]] == [0.0569, 0.3404]
    assert d["discordant_ideal_only"] == 12
    assert d["mcnemar_p"] == pytest.approx(2 * (1 + 14 + 91) / 2**14, rel=1e-9)  # 2 P(Bin(14, 1/2) <= 2)
    # the bootstrap interval agrees with the score interval at benchmark sizes
    d = bench.paired_difference(7000, 600, 200, 2200)
    assert np.allclose(d["interval_bootstrap"], d["interval_newcombe"], atol=0.002)


# --- the rig kernel's block path (GraphSampler) ------------------------------------------------------
def _reference_rig_sweeps(model, blocks, rig, s, clamp, sweeps):
    """The rig path as GraphSampler ran it before the speed-up (a sparse product per block, one
    boolean mask over (chains, units) per wire for the calibration, the range check on every
    request, one read_synapses call per block), reading the (chain, unit) pairs that are not
    clamped in row-major order (before the speed-up: all pairs, clamped ones included)."""
    nw = int(rig.n_wires)
    cals = [rig.calibration(w) for w in range(nw)]
    ranges = [tuple(float(v) for v in rig.field_range_mT(w)) for w in range(nw)]
    total = {"reads": 0, "bench_time_s": 0.0, "energy_J": 0.0}
    for _ in range(sweeps):
        for block in blocks:
            field = torch.from_numpy((model.J[block] @ s + model.b[block, None]).T.copy())
            q = torch.sigmoid(2.0 * model.beta * field).double().numpy()
            wires = np.broadcast_to(block % nw, q.shape)
            H = np.empty_like(q)
            for w in range(nw):
                m = wires == w
                H[m] = cals[w].inverse(q[m], *ranges[w])
            act = ~clamp[block].T
            check_wire_ranges(rig, H[act], wires[act])
            r = rig.read_synapses(H[act], np.ascontiguousarray(wires[act]), 1)
            new = s[block].T.copy()
            new[act] = 2.0 * np.asarray(r.counts) - 1.0
            s[block] = new.T
            total["reads"] += int(act.sum())
            total["bench_time_s"] += float(r.bench_time_s)
            total["energy_J"] += float(r.energy_J)
    return total


@pytest.mark.parametrize("clamped", ["none", "units and some chains"])
def test_rig_block_path_reads_what_the_reference_reads_bit_for_bit(clamped):
    """40 units, 80 couplings, 30 chains, 3 sweeps on two simulated rigs of the same seed: the
    sampler's spins, reads, bench time and energy equal the reference's exactly. Unclamped, that is
    the previous implementation; clamped (8 units in every chain, 5 more in every third chain),
    the clamped pairs keep their values and cost no read."""
    model = random_graph(40, 80, seed=5, coupling_std=0.8, bias_std=0.5)
    n, chains, sweeps = model.n_units, 30, 3
    clamp = np.zeros((n, chains), bool)
    if clamped != "none":
        clamp[[0, 3, 7, 11, 12, 20, 31, 39]] = True
        clamp[[5, 6, 17, 25, 33], ::3] = True
    with open_rig("sim", sim={"seed": 4}) as rig:
        sampler = GraphSampler(model, "rig", rig=rig)
        state = sampler.new_state(chains, seed=2)
        start = state.s.copy()
        sampler.sweep(state, sweeps, clamp=clamp)
        k = sampler.kernel
        got = {"reads": k.reads, "bench_time_s": k.bench_time_s, "energy_J": k.energy_J}
        blocks = sampler.colouring.blocks
    with open_rig("sim", sim={"seed": 4}) as rig:
        s = start.copy()
        want = _reference_rig_sweeps(model, blocks, rig, s, clamp, sweeps)
    assert np.array_equal(state.s, s)
    assert got == want
    assert got["reads"] == sweeps * int((~clamp).sum())
    assert np.array_equal(state.s[clamp], start[clamp])
    assert (state.s[~clamp] != start[~clamp]).any()


def test_rig_kernel_refuses_an_active_mask_of_the_wrong_shape():
    """`active` must match the field's shape; a wrong one is refused before any read."""
    with open_rig("sim") as rig:
        from labml.bm.kernels import RigKernel

        k = RigKernel(rig)
        reads = k.reads
        with pytest.raises(ValueError, match="shape"):
            k.update(torch.ones(2, 3), torch.zeros(2, 3), 1.0, active=np.ones((3, 2), bool))
        assert k.reads == reads
