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

from labml.bm.models import BM, RBM, ClassRBM, log2cosh, spin_states_range

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
    Jvv, Jvh, Jhh = J[:nv, :nv], J[:nv, nv:], J[nv:, nv:]
    e_v = 0.5 * ((v @ Jvv) * v).sum(-1) + v @ b[:nv]  # (B,)
    field = v @ Jvh  # (B, nh)
    # sum over the 2^nh hidden states in blocks of (rows x states) <= 2^22 entries, so memory stays
    # bounded (tens of MB) for any test set
    rows = max(1, min(v.shape[0], 2**22 // min(2**nh, 2**16)))
    states = min(2**nh, 2**16)
    out = torch.empty(v.shape[0], dtype=torch.float64)
    for r0, r1 in _chunks(v.shape[0], rows):
        parts = []
        for s0, s1 in _chunks(2**nh, states):
            H = spin_states_range(nh, s0, s1)
            e_h = 0.5 * ((H @ Jhh) * H).sum(-1) + H @ b[nv:]
            parts.append(torch.logsumexp(model.beta * (field[r0:r1] @ H.t() + e_h[None, :]), dim=1))
        out[r0:r1] = torch.logsumexp(torch.stack(parts, 1), dim=1)
    return model.beta * e_v + out


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
        a = model.b[: model.n_visible] if isinstance(model, BM) else model.a
        return a.detach().double().clone()
    p = (0.5 * (v_data.double() + 1.0)).mean(0).clamp(eps, 1 - eps)
    return 0.5 * model.temperature * torch.log(p / (1 - p))


def _bernoulli_spins(p: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    return torch.where(torch.rand(p.shape, generator=gen, dtype=p.dtype) < p, 1.0, -1.0).to(p.dtype)


def _one_hot_draw(logits: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    y = torch.multinomial(torch.softmax(logits, 1), 1, generator=gen)[:, 0]
    return torch.nn.functional.one_hot(y, logits.shape[1]).to(logits.dtype)


class _Path:
    """The annealing path of AIS between a base model of independent units and the model:
    log f_k(x) = (1 - beta_k) log f_base(x) + beta_k log f_model(x) (an RBM's hidden spins summed
    analytically; the base has the visible biases a0, unbiased hidden spins and uniform labels),
    a heat-bath transition that leaves f_k invariant, the base's exact log Z and an exact sampler
    of the base. States: v (RBM), a (v, y) pair (ClassRBM), all spins s (BM)."""

    def __init__(self, model, a0: torch.Tensor) -> None:
        self.model = model
        self.beta = model.beta
        self.a0 = a0
        if isinstance(model, BM):
            self.J = model.coupling().detach().double()
            self.b = model.b.detach().double()
            self.b0 = torch.cat([a0, torch.zeros(model.n_hidden, dtype=torch.float64)])
            return
        self.W = model.W.detach().double()
        self.a = model.a.detach().double()
        self.b = model.b.detach().double()
        if isinstance(model, ClassRBM):
            self.U = model.U.detach().double()
            self.d = model.d.detach().double()

    def log_Z_base(self) -> float:
        m = self.model
        if isinstance(m, BM):
            return float(log2cosh(self.beta * self.b0).sum())
        out = float(log2cosh(self.beta * self.a0).sum()) + m.n_hidden * math.log(2.0)
        if isinstance(m, ClassRBM):
            out += math.log(m.n_classes)
        return out

    def sample_base(self, n: int, gen: torch.Generator | None):
        m = self.model
        if isinstance(m, BM):
            return _bernoulli_spins(torch.sigmoid(2 * self.beta * self.b0).expand(n, -1), gen)
        v = _bernoulli_spins(torch.sigmoid(2 * self.beta * self.a0).expand(n, -1), gen)
        if isinstance(m, ClassRBM):
            return v, _one_hot_draw(torch.zeros(n, m.n_classes, dtype=torch.float64), gen)
        return v

    def _hidden_pre(self, x) -> torch.Tensor:
        if isinstance(x, tuple):
            v, y = x
            return v @ self.W + y @ self.U + self.b
        return x @ self.W + self.b

    def log_f(self, x, bk: float) -> torch.Tensor:
        beta = self.beta
        if isinstance(self.model, BM):
            e_model = 0.5 * ((x @ self.J) * x).sum(-1) + x @ self.b
            return beta * ((1 - bk) * (x @ self.b0) + bk * e_model)
        v = x[0] if isinstance(x, tuple) else x
        out = beta * ((1 - bk) * (v @ self.a0) + bk * (v @ self.a))
        if isinstance(x, tuple):
            out = out + bk * beta * (x[1] @ self.d)
        return out + log2cosh(bk * beta * self._hidden_pre(x)).sum(-1)

    def transition(self, x, bk: float, gen: torch.Generator | None):
        beta = self.beta
        if isinstance(self.model, BM):
            return self.bm_sweep(x, bk, gen)
        h = _bernoulli_spins(torch.sigmoid(2 * bk * beta * self._hidden_pre(x)), gen)
        pv = torch.sigmoid(2 * beta * ((1 - bk) * self.a0 + bk * (h @ self.W.t() + self.a)))
        v = _bernoulli_spins(pv, gen)
        if isinstance(x, tuple):
            return v, _one_hot_draw(bk * beta * (h @ self.U.t() + self.d), gen)
        return v

    def bm_sweep(self, s: torch.Tensor, bk: float, gen, first: int = 0) -> torch.Tensor:
        """One sequential heat-bath sweep of a BM at annealing bk over units first.. (the units
        before `first` stay clamped), all chains at once."""
        s = s.clone()
        beta = self.beta
        u = torch.rand(s.shape[0], s.shape[1] - first, generator=gen, dtype=s.dtype)
        for j, i in enumerate(range(first, s.shape[1])):
            field = bk * (s @ self.J[:, i] + self.b[i]) + (1 - bk) * self.b0[i]
            s[:, i] = torch.where(u[:, j] < torch.sigmoid(2 * beta * field), 1.0, -1.0)
        return s


def _anneal(path: _Path, x, betas: torch.Tensor, gen: torch.Generator | None, log_f=None) -> torch.Tensor:
    """Log importance weights of the chains in `x` along the schedule `betas`."""
    log_f = log_f or path.log_f
    n = (x[0] if isinstance(x, tuple) else x).shape[0]
    log_w = torch.zeros(n, dtype=torch.float64)
    for k in range(1, len(betas)):
        log_w += log_f(x, float(betas[k])) - log_f(x, float(betas[k - 1]))
        if k < len(betas) - 1:
            x = path.transition(x, float(betas[k]), gen)
    return log_w


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
    model: RBM | ClassRBM | BM,
    n_betas: int = 10000,
    n_chains: int = 100,
    v_data: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> AISResult:
    """Forward AIS from the base-rate model to the model (Salakhutdinov & Murray 2008).

    Linear schedule of `n_betas` inverse temperatures; each step one heat-bath transition of the
    intermediate model (RBM, ClassRBM: one block-Gibbs sweep, hidden spins summed analytically in
    the weights; BM: one sequential sweep over all units). The base model has the data's
    log-odds as visible biases, unbiased hidden spins and uniform labels. Returns the estimate of
    log Z; its expectation is a stochastic lower bound (Jensen), so estimated log-likelihoods
    tend to be optimistic.
    """
    path = _Path(model, base_rate_model(model, v_data))
    betas = torch.linspace(0.0, 1.0, n_betas, dtype=torch.float64)
    log_w = _anneal(path, path.sample_base(n_chains, generator), betas, generator)
    return _summarise(log_w, path.log_Z_base(), "forward")


@torch.no_grad()
def reverse_ais_log_partition(
    model: RBM | ClassRBM | BM,
    v_start,
    n_betas: int = 10000,
    v_data: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> AISResult:
    """Reverse AIS: start from (approximate) samples of the model, `v_start` (one chain per row:
    the visible spins of an RBM, a (v, y) pair of a ClassRBM, all spins of a BM; e.g. the end of
    long persistent chains), and anneal to the base-rate model. Its weights estimate Z_base / Z,
    so log Z comes out as a stochastic upper bound when the starting samples are exact: forward
    and reverse bracket the true value."""
    path = _Path(model, base_rate_model(model, v_data))
    betas = torch.linspace(1.0, 0.0, n_betas, dtype=torch.float64)
    if isinstance(v_start, tuple):
        x = tuple(t.double().clone() for t in v_start)
    else:
        x = v_start.double().clone()
    return _summarise(_anneal(path, x, betas, generator), path.log_Z_base(), "reverse")


@torch.no_grad()
def ais_log_marginal_bm(
    model: BM,
    v: torch.Tensor,
    n_betas: int = 1000,
    generator: torch.Generator | None = None,
    chains_per_item: int = 1,
) -> torch.Tensor:
    """log sum_h p*(v, h) of a fully connected BM, per row of v: AIS over the hidden spins with v
    clamped (`chains_per_item` chains per row, from unbiased independent hidden spins; the log of
    their mean weight). For BMs with more hidden units than `log_unnormalised` enumerates (20)."""
    n_items = v.shape[0]
    v = v.repeat_interleave(chains_per_item, 0)
    nv, nh = model.n_visible, model.n_hidden
    path = _Path(model, torch.zeros(nv, dtype=torch.float64))  # base: every unit unbiased
    beta = model.beta
    v = v.double()
    J, b = path.J, path.b
    const = beta * (0.5 * ((v @ J[:nv, :nv]) * v).sum(-1) + v @ b[:nv])
    field_v = v @ J[:nv, nv:]

    def log_f(s: torch.Tensor, bk: float) -> torch.Tensor:
        h = s[:, nv:]
        return bk * beta * ((field_v * h).sum(-1) + 0.5 * ((h @ J[nv:, nv:]) * h).sum(-1) + h @ b[nv:])

    h = _bernoulli_spins(torch.full((v.shape[0], nh), 0.5, dtype=torch.float64), generator)
    s = torch.cat([v, h], 1)
    log_w = torch.zeros(v.shape[0], dtype=torch.float64)
    betas = torch.linspace(0.0, 1.0, n_betas, dtype=torch.float64)
    for k in range(1, n_betas):
        log_w += log_f(s, float(betas[k])) - log_f(s, float(betas[k - 1]))
        if k < n_betas - 1:
            s = path.bm_sweep(s, float(betas[k]), generator, first=nv)
    log_w = torch.logsumexp((const + log_w).view(n_items, chains_per_item), 1) - math.log(chains_per_item)
    return nh * math.log(2.0) + log_w


@torch.no_grad()
def model_samples(
    model: RBM | ClassRBM | BM,
    n: int,
    n_sweeps: int = 1000,
    v_init: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    y_init: torch.Tensor | None = None,
    joint: bool = False,
):
    """The end of `n` heat-bath chains of `n_sweeps` sweeps (started at `v_init` (and one-hot
    `y_init` for a ClassRBM) or at random): the visible spins, or with `joint` the state that
    reverse AIS starts from (RBM: v; ClassRBM: (v, y); BM: all spins)."""
    from labml.bm.chains import Sampler
    from labml.bm.kernels import HeatBath

    s = Sampler(model, HeatBath(generator))
    dtype = next(model.parameters()).dtype
    if v_init is None:
        state = s.random_state(n, dtype)
    else:
        state = s.state_from_data(v_init[:n], None if y_init is None else y_init[:n])
    state = s.run(state, n_sweeps)
    if isinstance(model, BM):
        return state["s"] if joint else state["s"][:, : model.n_visible]
    if joint and isinstance(model, ClassRBM):
        return state["v"], state["y"]
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
