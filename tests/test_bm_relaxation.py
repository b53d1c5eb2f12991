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
