"""AIS of an RBM's log Z with the Salakhutdinov & Murray 2008 schedule (labml.bm.ais): forward and
reverse estimates against the exact log Z of RBMs small enough to enumerate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labml.bm.ais import base_rates, forward_ais, long_chains, mean_log_unnormalised, reverse_ais, sm_schedule
from labml.bm.evaluation import exact_log_partition, log_unnormalised
from labml.bm.models import RBM, bits_to_spins

Z_99 = 2.576  # two-sided 99 % normal quantile: each agreement check below fails by chance with p ~ 0.01


@pytest.fixture(scope="module")
def trained_rbm():
    """A 64 x 10 RBM trained 30 epochs (PCD-1, centred) on scikit-learn's 8x8 digits (thresholded):
    structured, multimodal weights, exact log Z by summing 2^10 hidden states."""
    from labml.bm.training import BMData, BMTrainConfig, BMTrainer

    data = BMData.mnist("digits", seed=0)
    cfg = BMTrainConfig(model="rbm", hidden=10, epochs=30, lr=0.05, seed=0, eval_reverse_ais=False)
    trainer = BMTrainer(cfg, data)
    trainer.fit()
    model = trainer.model.double()
    return model, data.x_train, data.x_test


def test_schedule_is_that_of_salakhutdinov_and_murray():
    b = sm_schedule()
    assert len(b) == 14_501 and b[0] == 0.0 and b[-1] == 1.0
    assert np.sum(b < 0.5) == 500 and np.sum((b >= 0.5) & (b < 0.9)) == 4000 and np.sum(b >= 0.9) == 10_001
    assert np.all(np.diff(b) > 0)
    assert len(sm_schedule(0.1)) == 50 + 400 + 1000 + 1


def test_base_rate_model_log_z_is_exact():
    x = (np.random.default_rng(0).random((200, 12)) < 0.3).astype(np.float32)
    a0 = base_rates(x)
    m = RBM(12, 3, dtype=torch.float64)
    with torch.no_grad():
        m.W.zero_()
        m.a.copy_(a0)
    est = forward_ais(m, a0, betas=np.array([0.0, 1.0]), n_runs=10)
    # W = 0 and a = a0: every weight is exactly 1, so the estimate is exact with zero spread
    assert est.log_Z == pytest.approx(exact_log_partition(m), abs=1e-9)
    assert est.log_Z_se == pytest.approx(0.0, abs=1e-12) and est.ess == pytest.approx(10.0)


def test_forward_and_reverse_ais_agree_with_exact_log_z(trained_rbm):
    model, x_train, _ = trained_rbm
    exact = exact_log_partition(model)
    a0 = base_rates(x_train)
    betas = sm_schedule(0.1)
    fwd = forward_ais(model, a0, betas, n_runs=100, seed=1)
    v0 = bits_to_spins(torch.as_tensor(x_train[:100], dtype=torch.float64))
    rev = reverse_ais(model, a0, long_chains(model, v0, 10_000, seed=2), betas, seed=3)
    for est in (fwd, rev):
        assert 0 < est.log_Z_se < 0.05, est  # the stated precision is useful ...
        assert abs(est.log_Z - exact) <= Z_99 * est.log_Z_se + 1e-3, (est, exact)  # ... and true
    assert fwd.ess > 50 and rev.ess > 50


def test_a_short_schedule_brackets_log_z_from_both_sides(trained_rbm):
    """With 2 betas (plain importance sampling) and 20 runs the AIS bias shows: forward is a
    stochastic lower bound of log Z (Jensen on E[w] = Z / Z_0) and reverse from long chains an
    upper bound. In 20 independent repetitions (fixed seeds), forward falls below the exact log Z
    and reverse above it at least 15 times each: under a symmetric error either happens with
    p = 0.021 (binomial, 20 trials)."""
    model, x_train, _ = trained_rbm
    exact = exact_log_partition(model)
    a0 = base_rates(x_train)
    betas = np.linspace(0.0, 1.0, 2)
    v0 = bits_to_spins(torch.as_tensor(x_train[:400], dtype=torch.float64))
    starts = long_chains(model, v0, 2000, seed=5)
    below = sum(forward_ais(model, a0, betas, n_runs=20, seed=100 + r).log_Z < exact for r in range(20))
    above = sum(reverse_ais(model, a0, starts[20 * r : 20 * r + 20], betas, seed=200 + r).log_Z > exact
                for r in range(20))
    assert below >= 15 and above >= 15, (below, above)


def test_mean_log_unnormalised_is_minus_beta_free_energy(trained_rbm):
    model, _, x_test = trained_rbm
    v = bits_to_spins(torch.as_tensor(x_test, dtype=torch.float64))
    expected = float(log_unnormalised(model, v).mean())
    assert mean_log_unnormalised(model, v, batch=37) == pytest.approx(expected, rel=1e-12)


def test_bad_schedule_is_refused():
    m = RBM(4, 2)
    with pytest.raises(ValueError, match="schedule"):
        forward_ais(m, torch.zeros(4), betas=np.array([0.0, 0.6, 0.5, 1.0]))
    with pytest.raises(ValueError, match="scale"):
        sm_schedule(0)
