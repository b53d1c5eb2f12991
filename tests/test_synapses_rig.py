"""Hardware in the loop: planner, wire mapping, rig reads, calibration, inference on a rig."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from instruments.calibration import Logistic
from instruments.roles import SynapseReads
from labml.data import load_dataset
from labml.synapses.layer import StochasticSynapseLinear
from labml.synapses.rig import MeasurementPlanner, RigReader, assign_wires, calibrate_wires, evaluate_on_rig
from labml.synapses.trainer import SynapseTrainConfig, SynapseTrainer

torch.set_num_threads(1)


class FakeRig:
    """A small stand-in with the SynapseRig methods the learning code uses; wires with distinct curves."""

    def __init__(self, curves=None, true_curves=None, seed=0, lo=1.0, hi=8.0):
        self.curves = curves or [Logistic(), Logistic(H0=5.2, k=2.3, a=0.96), Logistic(H0=4.1, k=3.0)]
        self.true_curves = true_curves or self.curves
        self.n_wires = len(self.curves)
        self.rng = np.random.default_rng(seed)
        self.lo, self.hi = lo, hi
        self.requests = []
        self.closed = False

    def calibration(self, wire):
        return self.curves[wire]

    def field_range_mT(self, wire):
        return (self.lo, self.hi)

    def read_synapses(self, fields_mT, wires, n):
        fields_mT, wires = np.asarray(fields_mT), np.asarray(wires)
        self.requests.append((fields_mT.copy(), wires.copy(), n))
        p = np.empty(len(fields_mT))
        for w in np.unique(wires):
            sel = wires == w
            p[sel] = self.true_curves[w].p(fields_mT[sel])
        counts = self.rng.binomial(n, p)
        return SynapseReads(counts=counts, n=n, bench_time_s=0.005 * n * len(p), energy_J=0.1 * n * len(p))

    def shutdown(self):
        self.closed = True


def test_planner_groups_by_wire_and_quantised_level_within_range():
    planner = MeasurementPlanner(field_step_mT=0.05)
    x = np.array([[1, 0, 1], [0, 1, 1.0]])
    H = np.array([[[4.01, 9.7, 4.03], [0.2, 5.0, 4.98]]])  # (1 device, 2 out, 3 in)
    wires = np.array([[[0, 1, 0], [1, 0, 1]]])
    plan = planner.plan(x, H, wires, np.array([1.0, 1.0]), np.array([8.0, 8.0]))
    assert len(plan.fields_mT) == 2 * 4  # out x active pairs
    key = list(zip(plan.wires, plan.fields_mT, strict=True))
    assert key == sorted(key)  # sorted by wire, then level
    assert np.allclose(np.round(plan.fields_mT / 0.05) * 0.05, plan.fields_mT)
    assert plan.fields_mT.min() >= 1.0 and plan.fields_mT.max() <= 8.0
    assert plan.n_groups == len(set(key))
    # Scatter: a count of 1 for every request gives sum_i x_i per output.
    sums = plan.scatter(np.ones(len(plan.fields_mT)))
    np.testing.assert_allclose(sums[0], np.repeat(x.sum(1, keepdims=True), 2, axis=1))


def test_wires_are_assigned_round_robin_over_all_devices():
    maps = assign_wires([3, 2, 2], n_wires=4, signed=True)
    assert maps[0].shape == (2, 2, 3) and maps[1].shape == (2, 2, 2)
    allw = np.concatenate([m.ravel() for m in maps])
    assert np.array_equal(allw, np.arange(len(allw)) % 4)


def test_rig_reads_have_the_same_law_as_the_model():
    """Two-sample chi-square (level 1e-3, fixed seed) between rig-backed and model-backed forward sums."""
    rig = FakeRig(curves=[Logistic()] * 3)
    x = (torch.arange(10) % 3 != 0).float().expand(4000, 10).contiguous()
    g = torch.Generator().manual_seed(0)
    a = StochasticSynapseLinear(10, 2, n=8, generator=g)
    with torch.no_grad():
        a.H.copy_(torch.linspace(3.0, 6.5, 20).reshape(1, 2, 10))
    b = StochasticSynapseLinear(10, 2, n=8, generator=g)
    b.load_state_dict(a.state_dict())
    RigReader(rig, [np.zeros((1, 2, 10), dtype=int)], field_step_mT=1e-4).attach(b)
    ya = (a(x) - a.bias).detach().numpy() * 8
    yb = (b(x) - b.bias).detach().numpy() * 8
    for j in range(2):
        edges = np.unique(np.quantile(np.r_[ya[:, j], yb[:, j]], np.linspace(0, 1, 9)))
        ha = np.histogram(ya[:, j], np.r_[-np.inf, edges[1:-1], np.inf])[0]
        hb = np.histogram(yb[:, j], np.r_[-np.inf, edges[1:-1], np.inf])[0]
        assert stats.chi2_contingency(np.stack([ha, hb]))[1] > 1e-3


def test_training_in_the_loop_reads_every_synapse_on_its_wire_in_range():
    rig = FakeRig()
    ds = load_dataset(None, train_size=600, seed=0)
    cfg = SynapseTrainConfig(n=8, epochs=6, patience=0, backend="rig", test_size=100)
    tr = SynapseTrainer(cfg, dataset=ds, rig=rig)
    res = tr.fit()
    assert res["test_accuracy"] > 0.5 and res["bench_time_s"] > 0 and res["energy_J"] > 0
    fields = np.concatenate([r[0] for r in rig.requests])
    assert fields.min() >= 1.0 and fields.max() <= 8.0  # never out of the rig's range
    # The layer's p(H) is the wire's own curve: synapse (j, i) -> wire (j*64 + i) % 3.
    layer = tr.model.layers[0]
    wires = (np.arange(10 * 64) % 3).reshape(10, 64)
    H = layer.H.detach().numpy()[0]
    p = layer.probabilities().detach().numpy()[0]
    for w in range(3):
        np.testing.assert_allclose(p[wires == w], rig.curves[w].p(H[wires == w]), atol=2e-6)
    assert not rig.closed  # a rig passed in belongs to the caller


def test_calibration_recovers_each_wires_curve():
    true = [Logistic(H0=4.3, k=2.5, a=0.97), Logistic(H0=5.4, k=3.1, a=0.98)]
    rig = FakeRig(curves=[Logistic(), Logistic()], true_curves=true, seed=1)
    fitted = calibrate_wires(rig, [0, 1], n_reads=400)
    for f, t in zip(fitted, true, strict=True):
        assert abs(f.H0 - t.H0) < 0.1 and abs(f.k - t.k) / t.k < 0.15  # ~5 standard errors of the fit


def test_measured_calibration_follows_a_curve_no_logistic_fits():
    """A wire with two depinning modes apart (a 50/50 mix of two logistics 1.5 mT apart): the
    logistic fit misses it by > 0.08 somewhere, the measured table (isotonic, 2000 reads at 33
    fields: binomial sd <= 0.011 per point) stays within 0.04 (about 3.5 sd) everywhere, is
    non-decreasing, and its inverse gives back the field of every measured level it passes."""
    from instruments.calibration import MeasuredCurve

    a, b = Logistic(H0=3.8, k=4.0, a=0.98), Logistic(H0=5.3, k=4.0, a=0.98)

    class TwoModes:
        def p(self, H):
            return 0.5 * (a.p(H) + b.p(H))

    rig = FakeRig(curves=[Logistic()], true_curves=[TwoModes()], seed=3)
    H = np.linspace(1.0, 8.0, 701)
    costs: dict = {}
    (table,) = calibrate_wires(rig, [0], n_reads=2000, shape="measured", costs=costs)
    (logistic,) = calibrate_wires(rig, [0], n_reads=2000)
    assert isinstance(table, MeasuredCurve) and len(table.H_mT) == 33
    assert costs["reads"] == 33 * 2000
    assert np.max(np.abs(logistic.p(H) - TwoModes().p(H))) > 0.08
    assert np.max(np.abs(table.p(H) - TwoModes().p(H))) < 0.04
    assert np.all(np.diff(table.p_values) >= 0)
    rising = np.flatnonzero(np.diff(table.p_values) > 0) + 1
    assert np.allclose(table.inverse(np.asarray(table.p_values)[rising]), np.asarray(table.H_mT)[rising])
    assert table.inverse(0.5, 4.0, 4.2) == 4.2  # p = 0.5 lies above 4.2 mT: clipped to the range
    # a probability the wire cannot give returns the end of the measured range, never beyond it
    assert table.inverse(-0.5) == table.H_mT[0] and table.inverse(1.5) == table.H_mT[-1]
    with pytest.raises(ValueError, match="non-decreasing"):
        MeasuredCurve((1.0, 2.0, 3.0), (0.1, 0.6, 0.5))
    with pytest.raises(ValueError, match="increasing"):
        MeasuredCurve((1.0, 1.0), (0.1, 0.6))
    with pytest.raises(ValueError, match="shape"):
        calibrate_wires(rig, [0], n_reads=10, shape="spline")


def test_inference_on_the_rig_sets_trained_p_through_each_wires_curve():
    ds = load_dataset(None, train_size=400, seed=0)
    tr = SynapseTrainer(SynapseTrainConfig(n=16, epochs=4, patience=0), dataset=ds)
    tr.fit()
    rig = FakeRig()
    res = evaluate_on_rig(tr, rig, test_size=200)
    fields, wires, n = rig.requests[0]
    assert n == 16 and res["rig_n_test"] == 200
    assert fields.min() >= 1.0 and fields.max() <= 8.0
    # Each synapse's field, read through its wire's curve, gives the trained p (where the range allows).
    layer = tr.model.layers[0]
    p = layer.probabilities().detach().numpy()
    wmap = assign_wires([64, 10], rig.n_wires)[0]
    reader = RigReader(rig, [wmap], fields_from="p")
    H = reader._fields(layer, wmap)
    for w in range(rig.n_wires):
        c, sel = rig.curves[w], wmap == w
        want = np.clip(p[sel], c.p(1.0), c.p(8.0))
        np.testing.assert_allclose(c.p(H[sel]), want, atol=1e-6)
    # Like for like (same 200 images, one pass each): a rig whose wires match their calibration gives the
    # model's accuracy up to sampling noise (sd of the difference ~0.03 here).
    assert abs(res["rig_test_accuracy"] - res["model_test_accuracy_same_images"]) < 0.1
    # Calibrating first recovers wires whose stored calibration is wrong.
    off = FakeRig(curves=[Logistic(H0=6.5)] * 3, true_curves=rig.curves, seed=3)
    res_cal = evaluate_on_rig(tr, off, test_size=200, calibrate=True)
    assert abs(res_cal["rig_test_accuracy"] - res_cal["model_test_accuracy_same_images"]) < 0.1


def test_simulated_rig_in_the_loop():
    rigs = pytest.importorskip("labml.rigs")
    ds = load_dataset(None, train_size=150, seed=0)
    with rigs.open_rig("sim") as rig:
        cfg = SynapseTrainConfig(n=2, epochs=1, patience=0, backend="rig", test_size=50, test_passes=2)
        res = SynapseTrainer(cfg, dataset=ds, rig=rig).fit()
    assert res["bench_time_s"] > 0 and res["energy_J"] > 0 and res["device_reads"] > 0
    assert 0 < res["read_groups"] <= res["read_requests"] == res["device_reads"] // 2
