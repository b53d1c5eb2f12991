"""Evaluation of Boltzmann machines: exact log Z, annealed importance sampling (forward and
reverse), log-likelihoods, classification accuracy and PNG sample grids (SCIENCE.md section 5).

All log-partition functions and log-likelihoods are natural logs (nats) of probabilities of the
0/1 data (the map x -> s = 2x - 1 is one-to-one, so log p(x) = log p(s)).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from labml.bm.models import BM, RBM, ClassRBM, all_spin_states, log2cosh, spin_states_range

logger = logging.getLogger(__name__)

MAX_EXACT_UNITS = 24


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(n, start + size)


@torch.no_grad()
def exact_log_partition(model: RBM | ClassRBM | BM, chunk: int = 8192) -> float:
    """Exact log Z by enumeration.

    RBM / ClassRBM: sums over the 2^n_hidden hidden states with the visible spins (and the label)
    summed analytically, so n_hidden <= 24 (or, for an RBM, over the visible states when they are
    fewer). BM: sums over all 2^n_units states (n_units <= 24).
    """
    beta = model.beta
    if isinstance(model, BM):
        n = model.n_units
        if n > MAX_EXACT_UNITS:
            raise ValueError(f"exact log Z of a BM needs <= {MAX_EXACT_UNITS} units, it has {n}")
        J = model.coupling().double()
        b = model.b.double()
        parts = []
        for s0, s1 in _chunks(2**n, chunk):
            s = spin_states_range(n, s0, s1)
            E = -0.5 * ((s @ J) * s).sum(-1) - s @ b
            parts.append(torch.logsumexp(-beta * E, 0))
        return float(torch.logsumexp(torch.stack(parts), 0))
    W = model.W.double()
    a = model.a.double()
    b = model.b.double()
    nh = model.n_hidden
    if isinstance(model, RBM) and model.n_visible < nh and model.n_visible <= MAX_EXACT_UNITS:
        parts = []
        for s0, s1 in _chunks(2**model.n_visible, chunk):
            v = spin_states_range(model.n_visible, s0, s1)
            parts.append(torch.logsumexp(-beta * model.free_energy(v.to(model.W.dtype)).double(), 0))
        return float(torch.logsumexp(torch.stack(parts), 0))
    if nh > MAX_EXACT_UNITS:
        raise ValueError(f"exact log Z needs <= {MAX_EXACT_UNITS} hidden units, the model has {nh}")
    parts = []
    for s0, s1 in _chunks(2**nh, chunk):
        h = spin_states_range(nh, s0, s1)  # (c, nh)
        lp = beta * (h @ b) + log2cosh(beta * (h @ W.t() + a)).sum(-1)
        if isinstance(model, ClassRBM):
            lp = lp + torch.logsumexp(beta * (h @ model.U.double().t() + model.d.double()), dim=1)
        parts.append(torch.logsumexp(lp, 0))
    return float(torch.logsumexp(torch.stack(parts), 0))


@torch.no_grad()
def log_unnormalised(
    model: RBM | ClassRBM | BM, v: torch.Tensor, y: torch.Tensor | None = None
) -> torch.Tensor:
    """log p*(v) = -beta F(v) (RBM), -beta F(v, y) (ClassRBM with y), or, for a BM, the log of
    the unnormalised marginal of the visible spins (hidden summed by enumeration, <= 20 hidden)."""
    if isinstance(model, RBM):
        return -model.beta * model.free_energy(v)
    if isinstance(model, ClassRBM):
        return -model.beta * model.free_energy(v, y)
    nh = model.n_hidden
    if nh > 20:
        raise ValueError(f"the visible marginal of a BM needs <= 20 hidden units, it has {nh}")
    J = model.coupling().double()
    b = model.b.double()
    v = v.double()
    nv = model.n_visible
    if nh == 0:
        return (0.5 * ((v @ J) * v).sum(-1) + v @ b) * model.beta
    H = all_spin_states(nh)  # (2^nh, nh)
    Jvv, Jvh, Jhh = J[:nv, :nv], J[:nv, nv:], J[nv:, nv:]
    e_v = 0.5 * ((v @ Jvv) * v).sum(-1) + v @ b[:nv]  # (B,)
    e_h = 0.5 * ((H @ Jhh) * H).sum(-1) + H @ b[nv:]  # (K,)
    cross = v @ Jvh @ H.t()  # (B, K)
    return model.beta * e_v + torch.logsumexp(model.beta * (cross + e_h[None, :]), dim=1)


@torch.no_grad()
def exact_log_likelihood(
    model: RBM | ClassRBM | BM, v: torch.Tensor, y: torch.Tensor | None = None, batch: int = 2000
) -> float:
    """Average exact log-likelihood (nats per example) of spins v (and one-hot labels y)."""
    logZ = exact_log_partition(model)
    total = 0.0
    for s0, s1 in _chunks(v.shape[0], batch):
        yy = None if y is None else y[s0:s1]
        total += float(log_unnormalised(model, v[s0:s1], yy).double().sum())
    return total / v.shape[0] - logZ


@dataclass
class AISResult:
    """log Z estimate of an AIS run; `log_weights` per chain; `log_Z_std` is the standard error of
    log Z from the spread of the importance weights (delta method)."""

    log_Z: float
    log_Z_std: float
    log_Z_base: float
    log_weights: np.ndarray
    direction: str


def base_rate_model(model: RBM, v_data: torch.Tensor | None = None, eps: float = 1e-3) -> torch.Tensor:
    """Visible biases of the base-rate model (W = 0, b = 0): the data's log-odds when data are
    given (Salakhutdinov & Murray 2008), else the model's own visible biases."""
    if v_data is None:
        return model.a.detach().double().clone()
    p = (0.5 * (v_data.double() + 1.0)).mean(0).clamp(eps, 1 - eps)
    return 0.5 * model.temperature * torch.log(p / (1 - p))


def _ais_terms(model: RBM, a0: torch.Tensor):
    beta = model.beta
    W = model.W.detach().double()
    a = model.a.detach().double()
    b = model.b.detach().double()

    def log_f(v: torch.Tensor, bk: float) -> torch.Tensor:
        """log of the intermediate unnormalised density at inverse-annealing bk (hidden summed)."""
        return beta * ((1 - bk) * (v @ a0) + bk * (v @ a)) + log2cosh(bk * beta * (v @ W + b)).sum(-1)

    def transition(v: torch.Tensor, bk: float, gen: torch.Generator | None) -> torch.Tensor:
        ph = torch.sigmoid(2 * bk * beta * (v @ W + b))
        h = torch.where(torch.rand(ph.shape, generator=gen, dtype=ph.dtype) < ph, 1.0, -1.0).double()
        pv = torch.sigmoid(2 * beta * ((1 - bk) * a0 + bk * (h @ W.t() + a)))
        return torch.where(torch.rand(pv.shape, generator=gen, dtype=pv.dtype) < pv, 1.0, -1.0).double()

    return log_f, transition


def _log_Z_base(model: RBM, a0: torch.Tensor) -> float:
    # base: W = 0 visible biases a0, hidden biases 0 -> each hidden spin contributes log 2
    return float(log2cosh(model.beta * a0).sum()) + model.n_hidden * math.log(2.0)


def _summarise(log_w: torch.Tensor, log_Z_base: float, direction: str) -> AISResult:
    n = log_w.numel()
    lse = float(torch.logsumexp(log_w, 0))
    log_mean = lse - math.log(n)
    w = torch.exp(log_w - log_w.max())
    rel_se = float(w.std() / (w.mean() * math.sqrt(n))) if n > 1 else float("nan")
    if direction == "forward":
        log_Z = log_Z_base + log_mean
    else:
        log_Z = log_Z_base - log_mean
    return AISResult(log_Z, rel_se, log_Z_base, log_w.numpy(), direction)


@torch.no_grad()
def ais_log_partition(
    model: RBM,
    n_betas: int = 10000,
    n_chains: int = 100,
    v_data: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> AISResult:
    """Forward AIS from the base-rate model to the RBM (Salakhutdinov & Murray 2008).

    Linear schedule of `n_betas` inverse temperatures; each step one Gibbs transition of the
    intermediate model. Returns the estimate of log Z; its expectation is a stochastic lower
    bound (Jensen), so estimated log-likelihoods tend to be optimistic.
    """
    if not isinstance(model, RBM):
        raise TypeError("AIS is implemented for RBMs")
    a0 = base_rate_model(model, v_data)
    log_f, transition = _ais_terms(model, a0)
    betas = torch.linspace(0.0, 1.0, n_betas, dtype=torch.float64)
    pv = torch.sigmoid(2 * model.beta * a0).expand(n_chains, -1)
    v = torch.where(torch.rand(pv.shape, generator=generator, dtype=pv.dtype) < pv, 1.0, -1.0).double()
    log_w = torch.zeros(n_chains, dtype=torch.float64)
    for k in range(1, n_betas):
        log_w += log_f(v, float(betas[k])) - log_f(v, float(betas[k - 1]))
        if k < n_betas - 1:
            v = transition(v, float(betas[k]), generator)
    return _summarise(log_w, _log_Z_base(model, a0), "forward")


@torch.no_grad()
def reverse_ais_log_partition(
    model: RBM,
    v_start: torch.Tensor,
    n_betas: int = 10000,
    v_data: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> AISResult:
    """Reverse AIS: start from (approximate) samples of the RBM, `v_start` (+/-1, one chain per
    row; e.g. the end of long persistent chains), and anneal to the base-rate model. Its weights
    estimate Z_base / Z, so log Z comes out as a stochastic upper bound when the starting
    samples are exact: forward and reverse bracket the true value."""
    if not isinstance(model, RBM):
        raise TypeError("reverse AIS is implemented for RBMs")
    a0 = base_rate_model(model, v_data)
    log_f, transition = _ais_terms(model, a0)
    betas = torch.linspace(1.0, 0.0, n_betas, dtype=torch.float64)
    v = v_start.double().clone()
    log_w = torch.zeros(v.shape[0], dtype=torch.float64)
    for k in range(1, n_betas):
        log_w += log_f(v, float(betas[k])) - log_f(v, float(betas[k - 1]))
        if k < n_betas - 1:
            v = transition(v, float(betas[k]), generator)
    return _summarise(log_w, _log_Z_base(model, a0), "reverse")


@torch.no_grad()
def model_samples(
    model: RBM,
    n: int,
    n_sweeps: int = 1000,
    v_init: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Visible spins at the end of `n` heat-bath chains of `n_sweeps` block-Gibbs sweeps."""
    from labml.bm.chains import Sampler
    from labml.bm.kernels import HeatBath

    s = Sampler(model, HeatBath(generator))
    state = s.random_state(n, model.W.dtype) if v_init is None else s.state_from_data(v_init[:n])
    state = s.run(state, n_sweeps)
    return state["v"]


@torch.no_grad()
def classification_accuracy(
    model: ClassRBM, v: torch.Tensor, labels: torch.Tensor, batch: int = 2000
) -> float:
    """Fraction of examples whose label is argmin_y F(v, y)."""
    correct = 0
    for s0, s1 in _chunks(v.shape[0], batch):
        correct += int((model.predict(v[s0:s1]) == labels[s0:s1]).sum())
    return correct / v.shape[0]


def save_sample_grid(
    v: torch.Tensor | np.ndarray,
    path: str | Path,
    shape: tuple[int, int] = (28, 28),
    ncols: int = 10,
    title: str | None = None,
) -> Path:
    """Write a grid of visible samples (+/-1 spins or 0/1 bits or probabilities) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
    if x.min() < 0:
        x = 0.5 * (x + 1.0)
    n = x.shape[0]
    nrows = max(1, math.ceil(n / ncols))
    H, Wd = shape
    canvas = np.ones((nrows * (H + 1) + 1, ncols * (Wd + 1) + 1))
    for i in range(n):
        r, c = divmod(i, ncols)
        canvas[1 + r * (H + 1) : 1 + r * (H + 1) + H, 1 + c * (Wd + 1) : 1 + c * (Wd + 1) + Wd] = 1 - x[
            i
        ].reshape(shape)
    fig, ax = plt.subplots(figsize=(ncols * 0.6, nrows * 0.6 + (0.4 if title else 0)))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=8)
    path = Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
