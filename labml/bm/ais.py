"""Annealed importance sampling of an RBM's log partition function with the schedule of
Salakhutdinov & Murray 2008 ("On the quantitative analysis of deep belief networks"), forward
and reverse, vectorised over the runs.

Path: log f_k(v) = beta [(1 - b_k) a0 . v + b_k a . v] + sum_j log 2 cosh(b_k beta (b + v W)_j),
the hidden spins summed analytically (spins +/-1, temperature T = 1 / beta, as in
`labml.bm.models.RBM`). The base model (b_0 = 0) has independent visible spins with biases a0
(the base rates: the log-odds of the smoothed pixel means of the training data) and free hidden
spins, so log Z_0 = sum_i log 2 cosh(beta a0_i) + n_hidden log 2 exactly. Each intermediate
distribution's transition is one block-Gibbs sweep h | v, v | h that leaves f_k invariant.

- forward: v ~ base, anneal 0 -> 1; log Z = log Z_0 + log mean w. E[w] = Z / Z_0, so by Jensen the
  estimate is a stochastic lower bound of log Z, so log p(v) = -beta F(v) - log Z comes out
  optimistic (too high) in expectation.
- reverse: v from the end of long Gibbs chains at b = 1, anneal 1 -> 0; the weights estimate
  Z_0 / Z, so log Z = log Z_0 - log mean w is a stochastic upper bound when the starting states
  are exact samples (log-likelihood a conservative estimate); from chains that have not mixed it
  only tends to be (Burda, Grosse & Salakhutdinov 2015 discuss the caveat).

The standard error of an estimate is the delta-method error of log mean w: sd(w) / (mean(w) sqrt(n)).
The weights are accumulated in float64; the two matrix products per step run in the model's
dtype (the stored float32 parameters are the model; +/-1 states are exact in it).

Written here rather than taken from a library: no maintained package does AIS for an RBM in this
spin/temperature convention with a reverse run (the general `labml.bm.evaluation.ais_log_partition`
covers BMs and ClassRBMs with a linear schedule and one more product per step).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from labml.bm.models import RBM, bits_to_spins, log2cosh

#: (number of betas, upper end) of the three segments of Salakhutdinov & Murray 2008:
#: 500 betas over [0, 0.5), 4,000 over [0.5, 0.9), 10,000 over [0.9, 1].
SM_SEGMENTS = ((500, 0.5), (4000, 0.9), (10000, 1.0))


def sm_schedule(scale: float = 1.0) -> np.ndarray:
    """The inverse-temperature schedule of S&M 2008 (14,501 values from 0 to 1 with `scale` 1;
    `scale` < 1 shrinks every segment's count in proportion, for cheap checks)."""
    if not scale > 0:
        raise ValueError(f"AIS schedule scale must be > 0, got {scale}")
    parts, lo = [], 0.0
    for count, hi in SM_SEGMENTS:
        n = max(1, int(round(count * scale)))
        parts.append(np.linspace(lo, hi, n, endpoint=False))
        lo = hi
    return np.concatenate(parts + [np.array([1.0])])


@dataclass
class AISEstimate:
    """One AIS estimate of log Z: value, its standard error, the base model's exact log Z, the
    number of runs, their effective sample size (sum w)^2 / sum w^2, and the direction."""

    log_Z: float
    log_Z_se: float
    log_Z_base: float
    n_runs: int
    ess: float
    direction: str
    n_betas: int

    def to_dict(self) -> dict:
        return asdict(self)


def base_rates(
    x_bits: np.ndarray | torch.Tensor, temperature: float = 1.0, smoothing: float = 1.0
) -> torch.Tensor:
    """Visible biases (spin units) of the base-rate model: the log-odds of the pixel means of the
    0/1 data smoothed as (count + smoothing) / (n + 2 smoothing), so that no bias is infinite."""
    x = torch.as_tensor(np.asarray(x_bits), dtype=torch.float64)
    p = (x.sum(0) + smoothing) / (x.shape[0] + 2.0 * smoothing)
    return 0.5 * temperature * torch.log(p / (1.0 - p))


class _RBMPath:
    """The annealing path between the base-rate model and an RBM, and its Gibbs transition."""

    def __init__(self, model: RBM, a0: torch.Tensor, generator: torch.Generator) -> None:
        dt = model.W.dtype
        self.W = model.W.detach()
        self.b = model.b.detach()
        self.a = model.a.detach()
        self.beta = model.beta
        self.a0 = a0.to(torch.float64)
        self.a0_dt = a0.to(dt)
        self.da = self.a.double() - self.a0  # a - a0, for the visible part of log f
        self.gen = generator
        self.dtype = dt
        self.log_Z_base = float(log2cosh(self.beta * self.a0).sum()) + model.n_hidden * math.log(2.0)

    def sample_base(self, n: int) -> torch.Tensor:
        p = torch.sigmoid(2.0 * self.beta * self.a0_dt).expand(n, -1)
        return self._spins(p)

    def _spins(self, p: torch.Tensor) -> torch.Tensor:
        u = torch.rand(p.shape, generator=self.gen, dtype=p.dtype)
        return torch.where(u < p, 1.0, -1.0).to(p.dtype)

    def hidden_pre(self, v: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.b, v, self.W)

    def log_f_step(self, v: torch.Tensor, pre: torch.Tensor, b_new: float, b_old: float) -> torch.Tensor:
        """log f_new(v) - log f_old(v) (float64), from the hidden pre-activations of v."""
        pre = pre.double()
        vis = self.beta * (b_new - b_old) * (v.double() @ self.da)
        return vis + (log2cosh(b_new * self.beta * pre) - log2cosh(b_old * self.beta * pre)).sum(-1)

    def gibbs(self, pre: torch.Tensor, bk: float) -> torch.Tensor:
        """One sweep at b_k: h ~ p_k(h | v) (from v's pre-activations), then v ~ p_k(v | h)."""
        h = self._spins(torch.sigmoid(2.0 * bk * self.beta * pre))
        field = (1.0 - bk) * self.a0_dt + bk * torch.addmm(self.a, h, self.W.t())
        return self._spins(torch.sigmoid(2.0 * self.beta * field))


def _anneal(path: _RBMPath, v: torch.Tensor, betas: np.ndarray) -> torch.Tensor:
    """Log weights of the runs in v along `betas` (increasing: forward; decreasing: reverse)."""
    log_w = torch.zeros(v.shape[0], dtype=torch.float64)
    for k in range(1, len(betas)):
        pre = path.hidden_pre(v)
        log_w += path.log_f_step(v, pre, float(betas[k]), float(betas[k - 1]))
        if k < len(betas) - 1:
            v = path.gibbs(pre, float(betas[k]))
    return log_w


def _estimate(log_w: torch.Tensor, path: _RBMPath, direction: str, n_betas: int) -> AISEstimate:
    n = log_w.numel()
    log_mean = float(torch.logsumexp(log_w, 0)) - math.log(n)
    w = torch.exp(log_w - log_w.max())
    se = float(w.std() / (w.mean() * math.sqrt(n))) if n > 1 else float("nan")
    ess = float(w.sum() ** 2 / (w**2).sum())
    sign = 1.0 if direction == "forward" else -1.0
    return AISEstimate(path.log_Z_base + sign * log_mean, se, path.log_Z_base, n, ess, direction, n_betas)


@torch.no_grad()
def forward_ais(
    model: RBM, a0: torch.Tensor, betas: np.ndarray | None = None, n_runs: int = 100, seed: int = 0
) -> AISEstimate:
    """Forward AIS (base -> model), `n_runs` runs at once; `betas` defaults to `sm_schedule()`."""
    betas = sm_schedule() if betas is None else np.asarray(betas, dtype=np.float64)
    _check_schedule(betas)
    path = _RBMPath(model, a0, torch.Generator().manual_seed(seed))
    return _estimate(_anneal(path, path.sample_base(n_runs), betas), path, "forward", len(betas))


@torch.no_grad()
def long_chains(model: RBM, v_init: torch.Tensor, n_sweeps: int = 10_000, seed: int = 0) -> torch.Tensor:
    """The visible spins after `n_sweeps` block-Gibbs sweeps of the model from `v_init` (one chain
    per row): the starting states of reverse AIS."""
    path = _RBMPath(model, model.a.detach().double(), torch.Generator().manual_seed(seed))
    v = v_init.to(path.dtype)
    for _ in range(n_sweeps):
        v = path.gibbs(path.hidden_pre(v), 1.0)
    return v


@torch.no_grad()
def reverse_ais(
    model: RBM, a0: torch.Tensor, v_start: torch.Tensor, betas: np.ndarray | None = None, seed: int = 0
) -> AISEstimate:
    """Reverse AIS (model -> base) from the model states `v_start` (e.g. `long_chains`), one run
    per row; `betas` is the forward schedule (run backwards here)."""
    betas = sm_schedule() if betas is None else np.asarray(betas, dtype=np.float64)
    _check_schedule(betas)
    path = _RBMPath(model, a0, torch.Generator().manual_seed(seed))
    log_w = _anneal(path, v_start.to(path.dtype), betas[::-1].copy())
    return _estimate(log_w, path, "reverse", len(betas))


def _check_schedule(betas: np.ndarray) -> None:
    ends_ok = betas.ndim == 1 and len(betas) >= 2 and betas[0] == 0.0 and betas[-1] == 1.0
    if not ends_ok or np.any(np.diff(betas) <= 0):
        raise ValueError("an AIS schedule must increase strictly from 0 to 1 with >= 2 values")


@torch.no_grad()
def mean_log_unnormalised(model: RBM, v: torch.Tensor, batch: int = 5000) -> float:
    """Mean over the rows of v (spins) of log p*(v) = -beta F(v), in float64."""
    md = {k: t.detach().double() for k, t in model.named_parameters()}
    total = 0.0
    for s in range(0, v.shape[0], batch):
        vb = v[s : s + batch].double()
        pre = torch.addmm(md["b"], vb, md["W"])
        total += float((model.beta * (vb @ md["a"]) + log2cosh(model.beta * pre).sum(-1)).sum())
    return total / v.shape[0]


@torch.no_grad()
def ais_loglik(model: RBM, x_ref: np.ndarray, sets: dict, scale: float, runs: int, seed: int,
               reverse_sweeps: int = 0) -> dict:
    """Average log-likelihoods (nats per image) of each 0/1 set in `sets` with forward AIS (and, when
    reverse_sweeps > 0, reverse AIS from that many Gibbs sweeps of `runs` chains started at training
    images); base rates from x_ref. Returns the estimates and, under "_starts", the chains' states."""
    a0 = base_rates(x_ref, model.temperature)
    betas = sm_schedule(scale)
    t0 = time.perf_counter()
    est = {"forward": forward_ais(model, a0, betas, runs, seed=seed + 1)}
    out: dict = {"n_betas": len(betas), "runs": runs}
    if reverse_sweeps > 0:
        pick = np.random.default_rng(seed + 2).choice(len(x_ref), runs, replace=False)
        v0 = bits_to_spins(torch.as_tensor(x_ref[pick], dtype=model.W.dtype))
        starts = long_chains(model, v0, reverse_sweeps, seed=seed + 3)
        est["reverse"] = reverse_ais(model, a0, starts, betas, seed=seed + 4)
        out["_starts"] = starts
        out["reverse_sweeps"] = reverse_sweeps
    for direction, e in est.items():
        out[f"log_Z_{direction}"] = e.log_Z
        out[f"log_Z_{direction}_se"] = e.log_Z_se
        out[f"ess_{direction}"] = e.ess
    for name, x in sets.items():
        lu = mean_log_unnormalised(model, bits_to_spins(torch.as_tensor(x, dtype=torch.float64)))
        for direction, e in est.items():
            out[f"{name}_loglik_{direction}"] = lu - e.log_Z
    out["log_Z_base"] = est["forward"].log_Z_base
    out["ais_sec"] = time.perf_counter() - t0
    return out
