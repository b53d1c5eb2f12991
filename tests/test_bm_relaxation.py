"""Learning by relaxation (SCIENCE.md section 5): the three regimes of the device on 3x3 bars and
stripes (14 patterns; an RBM of 9 visible and 6 hidden spins, exact log-likelihood).

Diagnostics, averaged over the second half of the run (block means over 10 blocks give the
standard errors, which absorbs the autocorrelation of the series):
- overlap: mean over pixels and copies of v_model * v_data at the end of an item. A model copy
  that is an independent sample of the model (PCD-like) has overlap ~ 0 on this symmetric data;
  one restarted at the data and relaxed briefly (CD-like) stays close to it.
- lag: E_p[log p(v)] - mean log p(v_model copies) (nats, exact). Zero when the copies sample the
  current model; positive when they lag behind the moving parameters.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labml.bm.evaluation import exact_log_likelihood
from labml.bm.kernels import HeatBath
from labml.bm.models import RBM, all_spin_states
from labml.bm.relaxation import RelaxationConfig, RelaxationDevice

torch.set_num_threads(1)


def bars_and_stripes(n: int = 3) -> torch.Tensor:
    pats = []
    for bits in range(2**n):
        row = np.array([(bits >> i) & 1 for i in range(n)])
        pats.append(np.repeat(row[:, None], n, 1).ravel())
        pats.append(np.repeat(row[None, :], n, 0).ravel())
    return torch.tensor(np.unique(np.array(pats), axis=0), dtype=torch.float32) * 2 - 1


def _block_mean_se(x: np.ndarray, blocks: int = 10) -> tuple[float, float]:
    b = np.array([c.mean() for c in np.array_split(x, blocks)])
    return float(b.mean()), float(b.std(ddof=1) / np.sqrt(blocks))


def run_device(config: RelaxationConfig, items: int, seed: int = 0) -> dict:
    P = bars_and_stripes()
    V = all_spin_states(9, torch.float32)
    g = torch.Generator().manual_seed(seed)
    m = RBM(9, 6, init_std=0.01, generator=g)
    dev = RelaxationDevice(m, HeatBath(g), config, n_copies=20, generator=g)
    overlap, lag = [], []
    with torch.no_grad():
        ll0 = exact_log_likelihood(m, P)
        for _ in range(items):
            idx = torch.randint(len(P), (20,), generator=g)
            dev.present(P[idx])
            vm = dev.sampler.values(dev.model_copy)["v"]
            overlap.append(float((vm * P[idx]).mean()))
            lp = -m.free_energy(V)
            logZ = torch.logsumexp(lp, 0)
            p = torch.exp(lp - logZ)
            lag.append(float((p * (lp - logZ)).sum() - (-m.free_energy(vm) - logZ).mean()))
        ll = exact_log_likelihood(m, P)
    half = items // 2
    return {
        "ll0": ll0,
        "ll": ll,
        "overlap": _block_mean_se(np.array(overlap[half:])),
        "lag": _block_mean_se(np.array(lag[half:])),
        "moves": dev.parameter_moves,
        "time": dev.time,
    }


ETA = 0.05  # parameter step per data item: tau_data / tau_theta


@pytest.fixture(scope="module")
def regimes():
    return {
        "separated": run_device(RelaxationConfig(tau_spin=1, tau_data=6, tau_theta=6 / ETA), 250),
        "reseeded": run_device(RelaxationConfig(tau_spin=1, tau_data=1, tau_theta=1 / ETA, reseed=True), 250),
        "lagging": run_device(RelaxationConfig(tau_spin=1, tau_data=1, tau_theta=1 / ETA), 600),
    }


def test_time_scales_are_explicit_and_checked():
    c = RelaxationConfig(tau_spin=1, tau_data=8, tau_theta=160, dt=0.5)
    assert c.steps_per_item == 16 and c.equivalent_lr == pytest.approx(0.05)
    with pytest.raises(ValueError, match="must not exceed tau_spin"):
        RelaxationConfig(tau_spin=1, dt=2)
    with pytest.raises(ValueError, match="not both"):
        RelaxationConfig(tau_theta=10, mu_theta=0.1)


def test_separated_time_scales_learn_like_pcd(regimes):
    """tau_spin << tau_data << tau_theta: the model copy is an independent, up-to-date sample of
    the model (overlap ~ 0, lag < 0.6 nats) and the device learns (log-likelihood up by > 2 nats
    from the initial ~ -6.2)."""
    r = regimes["separated"]
    ov, ov_se = r["overlap"]
    lag, lag_se = r["lag"]
    assert abs(ov) < 4 * ov_se + 0.05
    assert lag - 4 * lag_se < 0.6
    assert r["ll"] > r["ll0"] + 2.0
    assert r["moves"] == 250 * 6


def test_reseeded_copy_with_little_relaxation_is_cd_like(regimes):
    """Re-seeded at each item and relaxed one sweep: the model copy stays near the data
    (overlap > 0.6, as CD-1 negatives do) and learning still proceeds."""
    r = regimes["reseeded"]
    ov, ov_se = r["overlap"]
    assert ov - 4 * ov_se > 0.6
    assert r["ll"] > r["ll0"] + 2.0


def test_persistent_copy_with_little_relaxation_lags(regimes):
    """Persistent but relaxed only one sweep per parameter step of 0.05: the copies lag behind the
    model (lag > 3x that of the separated device, the difference significant at 4 sigma) and end with a worse
    log-likelihood than the separated device."""
    lag_sep, se_sep = regimes["separated"]["lag"]
    lag, se = regimes["lagging"]["lag"]
    assert lag - lag_sep > 4 * np.hypot(se, se_sep)  # difference significant at 4 sigma
    assert lag > 3 * lag_sep
    assert regimes["lagging"]["ll"] < regimes["separated"]["ll"]


def _chi2_p(counts: np.ndarray, probs: np.ndarray) -> float:
    """Chi-square p-value of `counts` against `probs`, states expected fewer than 5 times pooled."""
    from scipy.stats import chisquare

    probs = np.asarray(probs, np.float64) / np.sum(probs, dtype=np.float64)
    exp = probs * counts.sum()
    keep = exp >= 5
    obs, e = counts[keep].astype(np.float64), exp[keep]
    if (~keep).any() and exp[~keep].sum() > 0:
        obs, e = np.append(obs, counts[~keep].sum()), np.append(e, exp[~keep].sum())
    else:
        assert counts[~keep].sum() == 0, "states of probability 0 were sampled"
    return float(chisquare(obs, e * obs.sum() / e.sum()).pvalue)


def _state_index(s: torch.Tensor) -> np.ndarray:
    bits = ((s.numpy() > 0).astype(np.int64)) << np.arange(s.shape[1])
    return bits.sum(1)


@pytest.mark.parametrize("model_kind", ["bm", "classrbm"])
def test_frozen_device_copies_sample_the_boltzmann_distribution(model_kind):
    """With the parameters frozen (tau_theta = 1e15) and partial Glauber updates (dt = tau_spin / 2),
    the model copies of a BM (3 visible + 2 hidden units) and of a ClassRBM (3 visible, 2 hidden,
    2 classes) sample exp(-E/T) over all their units (visible and label for the ClassRBM, summing
    out h), and the target copies sample the hidden spins given the clamped data: chi-square
    p > 0.001 at a fixed seed, 4000 independent copies each."""
    from labml.bm.models import BM, ClassRBM

    g = torch.Generator().manual_seed(3)
    if model_kind == "bm":
        m = BM(3, 2, init_std=0.6, generator=g)
        with torch.no_grad():
            m.b.copy_(torch.randn(5, generator=g) * 0.4)
    else:
        m = ClassRBM(3, 2, n_classes=2, init_std=0.6, generator=g)
        with torch.no_grad():
            m.a.copy_(torch.randn(3, generator=g) * 0.4)
            m.d.copy_(torch.tensor([0.3, -0.3]))
    n = 4000
    dev = RelaxationDevice(
        m, HeatBath(g), RelaxationConfig(tau_spin=1, dt=0.5, tau_data=20, tau_theta=1e15), n, g
    )
    v = torch.tensor([[1.0, -1.0, 1.0]]).expand(n, -1).contiguous()
    y = torch.tensor([[0.0, 1.0]]).expand(n, -1).contiguous() if model_kind == "classrbm" else None
    for _ in range(3):  # 120 partial sweeps
        dev.present(v, y)
    if model_kind == "bm":
        S = all_spin_states(5, torch.float32)
        p = torch.softmax(-m.beta * m.energy({"s": S}), 0).detach().numpy()
        model_states = _state_index(dev.model_copy["s"])
        # target: hidden spins given the clamped v = (+, -, +): states whose first 3 spins match
        match = (S[:, :3] == v[0]).all(1)
        p_t = np.where(match.numpy(), p, 0.0) / p[match.numpy()].sum()
        target_states = _state_index(dev.target["s"])
    else:
        V = all_spin_states(3, torch.float32)
        Y = torch.eye(2)
        F = torch.stack([m.free_energy(V, Y[c].expand(8, -1)) for c in range(2)], 1)  # (8, 2)
        p = torch.softmax(-m.beta * F.flatten(), 0).detach().numpy()  # index = 2 * v_index + class
        model_states = 2 * _state_index(dev.model_copy["v"]) + dev.model_copy["y"].argmax(1).numpy()
        H = all_spin_states(2, torch.float32)
        field = m.hidden_field(v[:1], y[:1])
        p_t = torch.softmax(m.beta * (H * field).sum(1), 0).detach().numpy()
        target_states = _state_index(dev.target["h"])
    counts = np.bincount(model_states, minlength=len(p))
    assert _chi2_p(counts, p) > 1e-3, (counts, p * n)
    counts_t = np.bincount(target_states, minlength=len(p_t))
    assert _chi2_p(counts_t, p_t) > 1e-3, (counts_t, p_t * n)


@pytest.mark.parametrize("model_kind", ["bm", "classrbm"])
def test_device_learns_bm_and_classrbm(model_kind):
    """Learning by relaxation on 3x3 bars and stripes (label: bar or stripe for the ClassRBM):
    the exact log-likelihood (log p(v) for the BM with 3 hidden units, log p(v, y) for the
    ClassRBM) rises by more than 2 nats from the initial model in 200 items."""
    from labml.bm.evaluation import exact_log_likelihood
    from labml.bm.models import BM, ClassRBM

    P = bars_and_stripes()
    stripe = (P.view(-1, 3, 3)[:, 0, :] == P.view(-1, 3, 3)[:, 0, :1]).all(1)  # rows constant
    Y = torch.nn.functional.one_hot(stripe.long(), 2).float()
    g = torch.Generator().manual_seed(0)
    m = (
        BM(9, 3, init_std=0.01, generator=g)
        if model_kind == "bm"
        else ClassRBM(9, 6, 2, init_std=0.01, generator=g)
    )
    dev = RelaxationDevice(m, HeatBath(g), RelaxationConfig(tau_spin=1, tau_data=4, tau_theta=4 / ETA), 20, g)
    y = Y if model_kind == "classrbm" else None
    ll0 = exact_log_likelihood(m, P, y)
    with torch.no_grad():
        for _ in range(200):
            idx = torch.randint(len(P), (20,), generator=g)
            dev.present(P[idx], None if y is None else y[idx])
    ll = exact_log_likelihood(m, P, y)
    assert ll > ll0 + 2.0, (ll0, ll)
