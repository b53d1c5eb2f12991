"""Boltzmann-machine models: free-energy identities, exact log Z, gradients and AIS against brute
force on models small enough to enumerate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from labml.bm.evaluation import (
    ais_log_marginal_bm,
    ais_log_partition,
    classification_accuracy,
    exact_log_likelihood,
    exact_log_partition,
    log_unnormalised,
    reverse_ais_log_partition,
)
from labml.bm.models import BM, RBM, ClassRBM, all_spin_states

torch.set_num_threads(1)


def _random_rbm(nv=5, nh=3, T=0.7, seed=0, std=0.6) -> RBM:
    g = torch.Generator().manual_seed(seed)
    m = RBM(nv, nh, temperature=T, init_std=std, generator=g, dtype=torch.float64)
    with torch.no_grad():
        m.a.copy_(torch.randn(nv, generator=g, dtype=torch.float64) * 0.5)
        m.b.copy_(torch.randn(nh, generator=g, dtype=torch.float64) * 0.5)
    return m


def _random_classrbm(nv=4, nh=3, C=3, T=1.3, seed=1) -> ClassRBM:
    g = torch.Generator().manual_seed(seed)
    m = ClassRBM(nv, nh, C, temperature=T, init_std=0.7, generator=g, dtype=torch.float64)
    with torch.no_grad():
        for p in (m.a, m.b, m.d):
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    return m


def test_rbm_free_energy_is_minus_T_log_sum_over_hidden_states():
    m = _random_rbm()
    V = all_spin_states(5)
    Hs = all_spin_states(3)
    E = torch.stack([m.energy({"v": V, "h": h.expand(len(V), -1)}) for h in Hs], 1)  # (32, 8)
    F_brute = -m.temperature * torch.logsumexp(-m.beta * E, 1)
    torch.testing.assert_close(m.free_energy(V), F_brute)


def test_rbm_hidden_mean_is_tanh_of_beta_field():
    m = _random_rbm()
    V = all_spin_states(5)
    Hs = all_spin_states(3)
    E = torch.stack([m.energy({"v": V, "h": h.expand(len(V), -1)}) for h in Hs], 1)
    w = torch.softmax(-m.beta * E, 1)  # p(h | v)
    mean_brute = w @ Hs
    torch.testing.assert_close(m.mean_hidden(V), mean_brute)


def test_exact_log_partition_matches_full_enumeration_both_ways():
    for nv, nh in ((5, 3), (3, 6)):  # hidden-sum and visible-sum branches
        m = _random_rbm(nv, nh, seed=nv)
        V, Hs = all_spin_states(nv), all_spin_states(nh)
        E = torch.stack([m.energy({"v": V, "h": h.expand(len(V), -1)}) for h in Hs], 1)
        logZ = float(torch.logsumexp((-m.beta * E).detach().flatten(), 0))
        assert exact_log_partition(m) == pytest.approx(logZ, abs=1e-9)


def test_classrbm_free_energy_and_log_partition_against_brute_force():
    m = _random_classrbm()
    V, Hs = all_spin_states(4), all_spin_states(3)
    Y = torch.eye(3, dtype=torch.float64)
    logp = []
    for c in range(3):
        y = Y[c].expand(len(V), -1)
        E = torch.stack([m.energy({"v": V, "y": y, "h": h.expand(len(V), -1)}) for h in Hs], 1)
        F_brute = -m.temperature * torch.logsumexp(-m.beta * E, 1)
        torch.testing.assert_close(m.free_energy(V, y), F_brute)
        torch.testing.assert_close(m.free_energy_all_classes(V)[:, c], F_brute)
        logp.append(-m.beta * F_brute)
    logp = torch.stack(logp, 1).detach()
    assert exact_log_partition(m) == pytest.approx(float(torch.logsumexp(logp.flatten(), 0)), abs=1e-9)
    # p(y | v) is the softmax of -beta F(v, y); the prediction is its argmax = argmin F
    torch.testing.assert_close(m.class_log_prob(V), torch.log_softmax(logp, 1))
    labels = logp.argmax(1)
    assert classification_accuracy(m, V, labels) == 1.0


def test_bm_marginal_and_log_partition_against_enumeration():
    g = torch.Generator().manual_seed(3)
    m = BM(3, 2, temperature=0.8, init_std=0.8, generator=g, dtype=torch.float64)
    with torch.no_grad():
        m.b.copy_(torch.randn(5, generator=g, dtype=torch.float64) * 0.3)
    J = m.coupling()
    assert torch.equal(J, J.t()) and torch.all(torch.diagonal(J) == 0)
    S = all_spin_states(5)
    lw = -m.beta * m.energy({"s": S})
    assert exact_log_partition(m) == pytest.approx(float(torch.logsumexp(lw.detach(), 0)), abs=1e-9)
    # visible marginal: sum over the hidden part of the states
    V = all_spin_states(3)
    brute = torch.stack([torch.logsumexp(lw[(S[:, :3] == v).all(1)], 0) for v in V])
    torch.testing.assert_close(log_unnormalised(m, V), brute)


def test_rbm_log_likelihood_gradient_is_beta_times_force_difference():
    """-dL/dtheta = beta (f_target - f_model): autograd of the exact log-likelihood against the
    force difference with exact model expectations."""
    m = _random_rbm()
    g = torch.Generator().manual_seed(5)
    v = torch.where(torch.rand(20, 5, generator=g) < 0.5, -1.0, 1.0).double()
    V = all_spin_states(5)
    logZ = torch.logsumexp(-m.beta * m.free_energy(V), 0)
    L = (-m.beta * m.free_energy(v)).mean() - logZ
    L.backward()
    with torch.no_grad():
        assert float(L) == pytest.approx(exact_log_likelihood(m, v), abs=1e-9)
        p = torch.softmax(-m.beta * m.free_energy(V), 0)
        mh = m.mean_hidden(V)
        f_t = m.forces({"v": v}, m.mean_hidden(v))
        f_m = {"W": (V * p[:, None]).t() @ mh, "a": p @ V, "b": p @ mh}
    for name, param in m.named_parameters():
        torch.testing.assert_close(param.grad, m.beta * (f_t[name] - f_m[name]))


def test_classrbm_joint_gradient_is_beta_times_force_difference():
    m = _random_classrbm()
    g = torch.Generator().manual_seed(6)
    v = torch.where(torch.rand(15, 4, generator=g) < 0.5, -1.0, 1.0).double()
    y = torch.nn.functional.one_hot(torch.randint(3, (15,), generator=g), 3).double()
    V = all_spin_states(4)
    Fall = m.free_energy_all_classes(V)  # (16, 3)
    logZ = torch.logsumexp((-m.beta * Fall).flatten(), 0)
    L = (-m.beta * m.free_energy(v, y)).mean() - logZ
    L.backward()
    with torch.no_grad():
        p = torch.softmax((-m.beta * Fall).flatten(), 0).reshape(16, 3)
        f_t = m.forces({"v": v, "y": y}, m.mean_hidden(v, y))
        f_m = {k: 0.0 for k in f_t}
        Y = torch.eye(3, dtype=torch.float64)
        for c in range(3):
            yc = Y[c].expand(16, -1)
            mh = m.mean_hidden(V, yc)
            w = p[:, c]
            f_m["W"] = f_m["W"] + (V * w[:, None]).t() @ mh
            f_m["U"] = f_m["U"] + (yc * w[:, None]).t() @ mh
            f_m["a"] = f_m["a"] + w @ V
            f_m["b"] = f_m["b"] + w @ mh
            f_m["d"] = f_m["d"] + w @ yc
    for name, param in m.named_parameters():
        torch.testing.assert_close(param.grad, m.beta * (f_t[name] - f_m[name]))


def test_bm_forces_are_minus_energy_gradient():
    g = torch.Generator().manual_seed(7)
    m = BM(3, 1, init_std=0.5, generator=g, dtype=torch.float64)
    s = torch.where(torch.rand(8, 4, generator=g) < 0.5, -1.0, 1.0).double()
    E = m.energy({"s": s}).mean()
    E.backward()
    f = m.forces({"s": s})
    torch.testing.assert_close(-m.W.grad, f["W"])
    torch.testing.assert_close(-m.b.grad, f["b"])


def test_ais_forward_and_reverse_bracket_the_exact_log_partition():
    """On a 12-visible, 10-hidden RBM: forward AIS (stochastic lower bound) and reverse AIS
    (upper bound from exact samples) agree with exact log Z within 4 of their standard errors."""
    g = torch.Generator().manual_seed(11)
    m = RBM(12, 10, temperature=1.0, init_std=0.4, generator=g, dtype=torch.float64)
    with torch.no_grad():
        m.a.copy_(torch.randn(12, generator=g, dtype=torch.float64) * 0.3)
    exact = exact_log_partition(m)
    fwd = ais_log_partition(m, n_betas=500, n_chains=200, generator=torch.Generator().manual_seed(1))
    # exact samples of the RBM by enumeration of its 4096 visible states
    V = all_spin_states(12)
    p = torch.softmax(-m.beta * m.free_energy(V), 0)
    idx = torch.multinomial(p, 200, replacement=True, generator=torch.Generator().manual_seed(2))
    rev = reverse_ais_log_partition(m, V[idx], n_betas=500, generator=torch.Generator().manual_seed(3))
    for r in (fwd, rev):
        se = max(r.log_Z_std, 1e-3)
        assert abs(r.log_Z - exact) < 4 * se + 0.02, (r.direction, r.log_Z, exact, se)
    assert fwd.log_Z <= exact + 4 * max(fwd.log_Z_std, 1e-3)
    assert rev.log_Z >= exact - 4 * max(rev.log_Z_std, 1e-3)
    assert math.isfinite(fwd.log_Z_base)


def _ais_agrees(r, exact: float) -> None:
    se = max(r.log_Z_std, 1e-3)
    assert abs(r.log_Z - exact) < 4 * se + 0.02, (r.direction, r.log_Z, exact, se)


def test_ais_of_a_classification_rbm_matches_its_exact_log_partition():
    """ClassRBM (10 visible, 8 hidden, 3 classes): forward AIS from the base-rate model with
    uniform labels, and reverse AIS from exact joint (v, y) samples, agree with exact log Z
    within 4 standard errors (+ 0.02 nats)."""
    g = torch.Generator().manual_seed(5)
    m = ClassRBM(10, 8, n_classes=3, init_std=0.5, generator=g, dtype=torch.float64)
    with torch.no_grad():
        m.a.copy_(torch.randn(10, generator=g, dtype=torch.float64) * 0.3)
        m.d.copy_(torch.tensor([0.4, -0.2, 0.1], dtype=torch.float64))
    exact = exact_log_partition(m)
    _ais_agrees(
        ais_log_partition(m, n_betas=500, n_chains=200, generator=torch.Generator().manual_seed(1)), exact
    )
    V = all_spin_states(10)
    Y = torch.eye(3, dtype=torch.float64)
    F = torch.stack([m.free_energy(V, Y[c].expand(len(V), -1)) for c in range(3)], 1)  # (1024, 3)
    idx = torch.multinomial(
        torch.softmax(-m.beta * F.flatten(), 0), 200, True, generator=torch.Generator().manual_seed(2)
    )
    start = (V[idx // 3], Y[idx % 3])
    _ais_agrees(
        reverse_ais_log_partition(m, start, n_betas=500, generator=torch.Generator().manual_seed(3)), exact
    )


def test_ais_of_a_fully_connected_bm_and_its_clamped_marginals():
    """BM with 9 visible and 4 hidden units (13, enumerable): forward AIS of log Z agrees with the
    exact value; AIS of the visible marginals log sum_h p*(v, h) (v clamped) agrees with
    enumeration per item within 0.05 nats (32 chains per item; mean |error| < 0.02)."""
    g = torch.Generator().manual_seed(8)
    m = BM(9, 4, init_std=0.4, generator=g, dtype=torch.float64)
    with torch.no_grad():
        m.b.copy_(torch.randn(13, generator=g, dtype=torch.float64) * 0.3)
    exact = exact_log_partition(m)
    _ais_agrees(
        ais_log_partition(m, n_betas=300, n_chains=200, generator=torch.Generator().manual_seed(1)), exact
    )
    # reverse AIS from exact samples of the 2^13 states
    S = all_spin_states(13)
    E = m.energy({"s": S})
    idx = torch.multinomial(
        torch.softmax(-m.beta * E, 0), 200, True, generator=torch.Generator().manual_seed(4)
    )
    _ais_agrees(
        reverse_ais_log_partition(m, S[idx], n_betas=300, generator=torch.Generator().manual_seed(5)), exact
    )
    v = torch.where(torch.rand(50, 9, generator=g) < 0.5, 1.0, -1.0).double()
    est = ais_log_marginal_bm(
        m, v, n_betas=300, generator=torch.Generator().manual_seed(2), chains_per_item=32
    )
    ref = log_unnormalised(m, v)
    assert (est - ref).abs().max() < 0.05 and (est - ref).abs().mean() < 0.02, est - ref


def test_evaluate_reports_ais_log_likelihood_for_large_classrbm_and_bm():
    """`--json` needs test_loglik for every model: a ClassRBM and a BM above the exact limits get
    an AIS estimate (loglik_method "ais"; the BM's visible marginals by clamped AIS too) within
    0.05 nats of the exact value of the same model (the limits lowered to force AIS)."""
    from labml.bm.training import BMData, BMTrainConfig, BMTrainer

    rng = np.random.default_rng(0)
    x = (rng.random((60, 10)) < 0.3).astype(np.float32)
    y = np.arange(60) % 3
    data = BMData(x, y, x[:30], y[:30])
    for model, hidden in (("classrbm", 6), ("bm", 3)):
        cfg = BMTrainConfig(
            model=model, hidden=hidden, epochs=2, batch_size=20, eval_ais_betas=300, eval_ais_chains=100
        )
        tr = BMTrainer(cfg, data)
        tr.fit()
        with torch.no_grad():  # couplings far from the base model, so that annealing matters
            W = torch.randn(tr.model.W.shape, generator=torch.Generator().manual_seed(3)) * 0.5
            tr.model.W.copy_(W if model == "classrbm" else 0.5 * (W + W.t()))
        exact = tr.evaluate()
        assert exact["loglik_method"] == "exact"
        tr.config.eval_max_exact_hidden = 2
        tr.config.eval_max_exact_units = 5
        est = tr.evaluate()
        assert est["loglik_method"] == "ais", model
        assert abs(est["test_loglik"] - exact["test_loglik"]) < 0.05, (model, est, exact)
        assert abs(est["test_loglik_reverse_ais"] - exact["test_loglik"]) < 0.05, (model, est, exact)


def test_visible_marginal_of_a_bm_sums_hidden_states_in_blocks():
    """log sum_h p*(v, h) for 17 hidden units (2^17 states: two blocks) equals brute force."""
    g = torch.Generator().manual_seed(2)
    m = BM(3, 17, init_std=0.2, generator=g, dtype=torch.float64)
    v = torch.tensor([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]], dtype=torch.float64)
    H = all_spin_states(17)
    ref = torch.stack(
        [
            torch.logsumexp(-m.beta * m.energy({"s": torch.cat([row.expand(len(H), -1), H], 1)}), 0)
            for row in v
        ]
    )
    torch.testing.assert_close(log_unnormalised(m, v), ref.detach())
