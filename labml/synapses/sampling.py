"""Exact, fast sampling of the stochastic-synapse forward sum (SCIENCE.md section 4).

For a layer with inputs x (B, N_in) and synapse probabilities p (N_out, N_in), each synapse is read n
times per input; the number of passed reads is K_bji ~ Binomial(n, p_ji), independent for every
(b, j, i). The layer needs

    S_bj = sum_i x_bi * K_bji            (so that Y_bj = S_bj / n)

The straightforward implementation (`reference_binomial_sums`) draws `torch.binomial` for the full
(B, N_out, N_in) tensor. `binomial_sums` draws exactly the same distribution with far less work:

1. Only the (b, i) with x_bi != 0 are drawn (thresholded MNIST inputs are ~20 % active).
2. Every draw is an inversion of the synapse's own exact Binomial(n, p_ji) CDF with one float64 uniform:
   K = min{k : U <= F(k)}, so P(K = k) = F(k) - F(k-1) = pmf(k). The table F of each synapse is built per
   call from the exact pmf (pmf(0) = (1-p)^n, then the ratio recursion pmf(k)/pmf(k-1) = (n-k+1)/k * p/(1-p)),
   in float64, only for inputs that are active in the batch. p > 1/2 is drawn as n - K' with
   K' ~ Binomial(n, 1-p) (the same law, better-conditioned table). The search starts at the mode, so a draw
   costs about one standard deviation of steps. No approximation is made anywhere: the only deviation from
   the exact law is float64 rounding of F (~1e-15 per bin). At n = 1 this is the uniform compare
   K = [U > 1 - p].
3. The reduction over i is fused into the same pass.

The kernel is compiled with numba when it is installed (a dependency of this package). Without numba a
pure-torch path gives the same distribution (n = 1: uniform compare on active pairs; n > 1: the same CDF
inversion with one `torch.searchsorted` over the synapses' tables laid end to end), only slower.

The uniforms (float64, one per needed draw) come from a `torch.Generator`, so results are reproducible
and the RNG state can be saved with a checkpoint.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

logger = logging.getLogger(__name__)

try:  # pragma: no cover - import guard
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    numba = None
    HAVE_NUMBA = False


def _fill_cdf(p: float, n: int, ratio: np.ndarray, cdf: np.ndarray) -> int:
    """Fill cdf[0..n] with the exact Binomial(n, p) CDF for p in [0, 1/2]; return the mode.

    pmf(0) = (1-p)^n, pmf(k) = pmf(k-1) * (n-k+1)/k * p/(1-p) (ratio[k] = (n-k+1)/k); float64.
    For n > 1000, (1-p)^n may underflow, so the pmf is started at the mode from lgamma instead.
    """
    if p <= 0.0:
        for k in range(n + 1):
            cdf[k] = 1.0
        return 0
    q = 1.0 - p
    odds = p / q
    mode = int(math.floor((n + 1) * p))
    if mode > n:
        mode = n
    if n <= 1000:
        pk = math.exp(n * math.log1p(-p))
        acc = pk
        cdf[0] = acc
        for k in range(1, n + 1):
            pk = pk * ratio[k] * odds
            acc += pk
            cdf[k] = acc
    else:
        logpm = (
            math.lgamma(n + 1.0)
            - math.lgamma(mode + 1.0)
            - math.lgamma(n - mode + 1.0)
            + mode * math.log(p)
            + (n - mode) * math.log1p(-p)
        )
        pm = math.exp(logpm)
        cdf[mode] = pm
        for k in range(mode + 1, n + 1):
            cdf[k] = cdf[k - 1] * ratio[k] * odds
        for k in range(mode - 1, -1, -1):
            cdf[k] = cdf[k + 1] / (ratio[k + 1] * odds)
        acc = 0.0
        for k in range(n + 1):
            acc += cdf[k]
            cdf[k] = acc
    cdf[n] = 1.0
    return mode


def _input_active(x, i):  # pragma: no cover - compiled
    for b in range(x.shape[0]):
        if x[b, i] != 0:
            return True
    return False


def _single_reads(x, p, i, u, c, out):  # pragma: no cover - compiled
    """n == 1: K = [U > 1 - p], no table needed. Returns the next unused uniform."""
    for b in range(x.shape[0]):
        w = x[b, i]
        if w == 0:
            continue
        for j in range(p.shape[0]):
            if u[c] > 1.0 - min(max(float(p[j, i]), 0.0), 1.0):
                out[b, j] += w
            c += 1
    return c


def _sums_kernel(x, p, n, u, out):  # pragma: no cover - compiled
    """out[b, j] = sum_i x[b, i] * K_bji for all b, j; x (B, N_in), p (N_out, N_in), out (B, N_out) zeroed.

    The N_out CDF tables of input i are built only when some x[b, i] != 0, in a small scratch buffer
    that stays in cache while that input's draws are made. u: float64 uniforms, one per (active pair,
    output), consumed in (i, b, j) order.
    """
    B, n_in = x.shape
    c = 0
    n_out = p.shape[0]
    ratio = np.empty(n + 1)
    ratio[0] = 0.0
    for k in range(1, n + 1):
        ratio[k] = (n - k + 1) / k
    cdf = np.empty((n_out, n + 1))
    mode = np.empty(n_out, dtype=np.int64)
    flip = np.empty(n_out, dtype=np.bool_)
    for i in range(n_in):
        if not _input_active(x, i):
            continue
        if n == 1:
            c = _single_reads(x, p, i, u, c, out)
            continue
        for j in range(n_out):
            pj = min(max(float(p[j, i]), 0.0), 1.0)
            flip[j] = pj > 0.5
            mode[j] = _fill_cdf(1.0 - pj if flip[j] else pj, n, ratio, cdf[j])
        for b in range(B):
            w = x[b, i]
            if w == 0:
                continue
            for j in range(n_out):
                uu = u[c]
                c += 1
                k = mode[j]  # the smallest k with uu <= cdf[j, k], searched outwards from the mode
                if uu > cdf[j, k]:
                    k += 1
                    while uu > cdf[j, k]:
                        k += 1
                else:
                    while k > 0 and uu <= cdf[j, k - 1]:
                        k -= 1
                if flip[j]:
                    k = n - k
                out[b, j] += w * k


if HAVE_NUMBA:
    _fill_cdf = numba.njit(cache=True, nogil=True)(_fill_cdf)
    # The kernel's helpers are inlined into it by numba (inline="always"); the CDF inversion, once per
    # draw, stays written out in the kernel's innermost loop: as a helper (called, or even inlined)
    # it cost 7-25 % of the kernel's time (benchmarks/README.md, "One-contract redesign: before and after").
    _input_active = numba.njit(cache=True, nogil=True, inline="always")(_input_active)
    _single_reads = numba.njit(cache=True, nogil=True, inline="always")(_single_reads)
    _sums_kernel = numba.njit(cache=True, nogil=True)(_sums_kernel)


def binomial_cdf(p: torch.Tensor, n: int) -> torch.Tensor:
    """Exact CDF table of Binomial(n, p) for every entry of p: shape p.shape + (n + 1,), float64.

    The last entry is exactly 1. (Torch version, used by the fallback path and by tests.)
    """
    pd = p.detach().to(torch.float64).clamp(0.0, 1.0)[..., None]
    k = torch.arange(n + 1, dtype=torch.float64)
    logc = (
        torch.lgamma(torch.tensor(n + 1.0, dtype=torch.float64))
        - torch.lgamma(k + 1)
        - torch.lgamma(n - k + 1)
    )
    logpmf = logc + torch.special.xlogy(k, pd) + torch.special.xlog1py(n - k, -pd)
    cdf = logpmf.exp_().cumsum_(-1)
    cdf[..., -1] = 1.0
    return cdf


def binomial_sums(
    x: torch.Tensor, p: torch.Tensor, n: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """S_bj = sum_i x_bi * K_bji with K_bji ~ Binomial(n, p_ji) independent: exact and fast.

    x: (B, N_in) inputs (any real values; zeros are skipped); p: (N_out, N_in) probabilities.
    Returns (B, N_out) float32: the number of passed reads, weighted by x.
    """
    if n < 1:
        raise ValueError(f"number of reads n must be >= 1, got {n}")
    x = x.detach()
    p = p.detach()
    B = x.shape[0]
    n_out = p.shape[0]
    if HAVE_NUMBA and x.device.type == "cpu":
        xn = x.numpy()
        u = torch.rand(int(np.count_nonzero(xn)) * n_out, generator=generator, dtype=torch.float64)
        out = np.zeros((B, n_out), dtype=np.float32)
        _sums_kernel(xn, p.numpy(), int(n), u.numpy(), out)
        return torch.from_numpy(out)
    i_idx, b_idx = torch.nonzero(x.t(), as_tuple=True)  # pairs grouped by input i
    m = b_idx.numel()
    if m == 0:
        return torch.zeros(B, n_out, dtype=torch.float32, device=x.device)
    u = torch.rand(m, n_out, generator=generator, dtype=torch.float64, device=x.device)
    return _binomial_sums_torch(b_idx, i_idx, x[b_idx, i_idx], u, p, n, B)


def _binomial_sums_torch(b_idx, i_idx, xv, u, p, n, B) -> torch.Tensor:
    """Pure-torch path of `binomial_sums` (same law, used when numba is absent or on GPU)."""
    n_out = p.shape[0]
    m = b_idx.numel()
    if n == 1:
        q_sel = 1.0 - p.t()[i_idx].to(torch.float64)  # (M, N_out)
        k = (u > q_sel).to(torch.float32)
    else:
        pt = p.t().contiguous()  # synapse s = i * N_out + j
        n_syn = pt.numel()
        cdf = binomial_cdf(pt.reshape(-1), n)
        flat = (cdf + torch.arange(n_syn, dtype=torch.float64, device=u.device)[:, None]).reshape(-1)
        syn = (i_idx * n_out)[:, None] + torch.arange(n_out, device=u.device)[None, :]
        pos = torch.searchsorted(flat, (syn.to(torch.float64) + u).reshape(-1)).reshape(m, n_out)
        k = (pos - syn * (n + 1)).clamp_(0, n).to(torch.float32)
    k = k * xv[:, None].to(torch.float32)
    out = torch.zeros(B, n_out, dtype=torch.float32, device=u.device)
    out.index_add_(0, b_idx, k)
    return out


def reference_binomial_sums(
    x: torch.Tensor, p: torch.Tensor, n: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The straightforward implementation: `torch.binomial` per element over the full (B, N_out, N_in)."""
    x = x.detach()
    p = p.detach()
    B = x.shape[0]
    probs = p.to(torch.float32).expand(B, *p.shape).contiguous()
    counts = torch.full_like(probs, float(n))
    k = torch.binomial(counts, probs, generator=generator)
    return (k * x[:, None, :].to(torch.float32)).sum(-1)


SAMPLERS = {"fast": binomial_sums, "binomial": reference_binomial_sums}
