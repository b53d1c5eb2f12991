"""numba kernels of the sparse spin-graph sampler (`labml.bm.sparse_graph`).

Why hand-written: no library samples an arbitrary sparse Ising graph by colour blocks for many
chains at once. scipy's sparse products plus numpy draws cost one pass over memory per operation
and per block (measured 5-10x slower than the fused loop below on the 4,264-spin graph), and
numba without Intel's SVML does not vectorise `exp`, so the exponential is a short polynomial here
(`_exp`, relative error below 3e-16 on the range used, tested against numpy).

Layout: spins are (n_units, n_chains) float32, chains contiguous, so every per-unit operation
(the field sum over a unit's neighbours, the draw, the update) is one vector loop over chains and
the cost per flip does not grow with the number of chains. Chains are cut into tiles of a few
dozen; each tile runs all its sweeps on its own (chains are independent), in parallel over tiles
with `prange`.

Random numbers: one xoshiro256+ stream per chain (Blackman & Vigna 2018), state (4, n_chains)
uint64, so a chain's draws do not depend on the tile width or on the number of threads: results
are reproducible per seed, whatever the thread count. A spin is +1 when the top 32 bits of a draw
are below p 2^32 (P(+1) = ceil(p 2^32) / 2^32, within 2^-32 of p, as in `_sparse.draw_spins`).
"""

from __future__ import annotations

import heapq

import numpy as np
from numba import njit, prange

# no fast-math: the vector body and the scalar remainder of a chain loop must round alike, or a
# chain's result would depend on its position in a tile (and so on the tile width)
_JIT = dict(nogil=True, error_model="numpy", cache=True)
_PAR = dict(nogil=True, error_model="numpy", cache=True, parallel=True)

TWO32 = 4294967296.0
LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # ln 2 = LN2_HI + LN2_LO (fdlibm): n * LN2_HI is exact for |n| < 2^20
LN2_LO = 1.90821492927058770002e-10
EXP_CLAMP = 700.0

HEATBATH = 0
METROPOLIS = 1
CHUNK = 64  # units per vector loop of the few-chains kernel
FEW_CHAINS = 8  # fewer chains than this: vectorise over units, not chains


@njit(**_JIT, inline="always")
def _exp_parts(x, p, bits, w):  # pragma: no cover - jitted
    """exp(x[c]) = p[c] * bits.view(float64)[c] for c < w, x clipped to +/-EXP_CLAMP: x = n ln2 + r,
    |r| <= ln2 / 2, e^r by its Taylor series to r^12 (remainder < 2e-16), 2^n written as exponent
    bits (a second loop multiplies them: with the bit cast in its own loop both loops vectorise)."""
    for c in range(np.uint64(w)):
        xc = min(max(x[c], -EXP_CLAMP), EXP_CLAMP)
        k = np.int64(xc * LOG2E + 1022.5)  # > 0, so truncation is floor(x log2 e + 1/2) + 1022
        n = np.float64(k - 1022)
        r = (xc - n * LN2_HI) - n * LN2_LO
        p[c] = 1.0 + r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (
            1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (
                1.0 / 3628800 + r * (1.0 / 39916800 + r * (1.0 / 479001600))))))))))))
        bits[c] = (k + 1) << 52  # the float64 2^(k - 1022) = 2^n


@njit(**_JIT)
def exp_array(x, out):  # pragma: no cover - jitted
    """out = exp(clip(x, -EXP_CLAMP, EXP_CLAMP)) by `_exp_parts` (for its test)."""
    w = x.shape[0]
    bits = np.empty(w, np.int64)
    _exp_parts(x, out, bits, w)
    scale = bits.view(np.float64)
    for c in range(w):
        out[c] *= scale[c]


@njit(**_JIT, inline="always")
def _rotl(x, k):  # pragma: no cover - jitted
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(**_JIT, inline="always")
def _next(s0, s1, s2, s3):  # pragma: no cover - jitted
    """One xoshiro256+ step: (output, new state)."""
    out = s0 + s3
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return out, s0, s1, s2, s3


@njit(**_JIT)
def uniforms(rng, out):  # pragma: no cover - jitted
    """out[k, c] = the top 32 bits of chain c's next draws, as floats in [0, 1) (for tests and
    the continuous kernels' noise)."""
    for k in range(out.shape[0]):
        for c in range(out.shape[1]):
            o, rng[0, c], rng[1, c], rng[2, c], rng[3, c] = _next(rng[0, c], rng[1, c], rng[2, c], rng[3, c])
            out[k, c] = np.float64(o >> np.uint64(32)) / TWO32


@njit(**_JIT, inline="always")
def _draw_top32(r0, r1, r2, r3, c):  # pragma: no cover - jitted
    """The top 32 bits of lane c's next xoshiro256+ draw, as a float64 in [0, 2^32)."""
    out, r0[c], r1[c], r2[c], r3[c] = _next(r0[c], r1[c], r2[c], r3[c])
    return np.float64(out >> np.uint64(32))


@njit(**_JIT)
def _tile_sweeps(indptr, indices, data, bias, order, s, rng, clamp, c0, w, beta2, n_sweeps, kind):
    # pragma: no cover - jitted
    """n_sweeps sweeps of chains c0 .. c0 + w - 1, units in `order` (colour blocks one after the
    other: a unit's neighbours are never in its own block, so visiting the block's units one by
    one is the block update). Each step is its own loop over chains, so that each vectorises.
    The loops index flat views with unsigned integers: numba wraps negative signed indices, and
    that select alone kept LLVM from seeing contiguous loads (measured 4.7x slower); a view per
    unit would cost reference counting in the inner loop."""
    n_chains = np.uint64(s.shape[1])
    sf = s.reshape(-1)
    cf = clamp.reshape(-1)
    uw = np.uint64(w)
    h = np.empty(w, np.float32)
    x = np.empty(w, np.float64)
    p = np.empty(w, np.float64)
    bits = np.empty(w, np.int64)
    scale = bits.view(np.float64)
    r0 = rng[0, c0 : c0 + w].copy()
    r1 = rng[1, c0 : c0 + w].copy()
    r2 = rng[2, c0 : c0 + w].copy()
    r3 = rng[3, c0 : c0 + w].copy()
    metropolis = kind == METROPOLIS
    for _ in range(n_sweeps):
        for k in range(order.shape[0]):
            i = np.uint64(order[k])
            row = i * n_chains + np.uint64(c0)
            bi = bias[i]
            for c in range(uw):
                h[c] = bi
            q = indptr[i]
            q1 = indptr[i + 1]
            while q + 4 <= q1:  # four neighbours per pass over h, added in the same order as one by one
                b0 = np.uint64(indices[q]) * n_chains + np.uint64(c0)
                b1 = np.uint64(indices[q + 1]) * n_chains + np.uint64(c0)
                b2 = np.uint64(indices[q + 2]) * n_chains + np.uint64(c0)
                b3 = np.uint64(indices[q + 3]) * n_chains + np.uint64(c0)
                j0, j1, j2, j3 = data[q], data[q + 1], data[q + 2], data[q + 3]
                for c in range(uw):
                    h[c] = (((h[c] + j0 * sf[b0 + c]) + j1 * sf[b1 + c]) + j2 * sf[b2 + c]) + j3 * sf[b3 + c]
                q += 4
            while q < q1:
                base = np.uint64(indices[q]) * n_chains + np.uint64(c0)
                jq = data[q]
                for c in range(uw):
                    h[c] += jq * sf[base + c]
                q += 1
            # the exponent: heat bath -2 beta h (P(+1) = 1 / (1 + e)); Metropolis -2 beta s h
            # clipped at 0 (P(flip) = min(1, e))
            if metropolis:
                for c in range(uw):
                    x[c] = min(-beta2 * np.float64(sf[row + c]) * np.float64(h[c]), 0.0)
            else:
                for c in range(uw):
                    x[c] = -beta2 * np.float64(h[c])
            _exp_parts(x, p, bits, uw)
            for c in range(uw):
                p[c] *= scale[c]
            if metropolis:
                for c in range(uw):
                    u = _draw_top32(r0, r1, r2, r3, c)
                    old = sf[row + c]
                    flip = (u < p[c] * TWO32) & (cf[row + c] == 0)
                    sf[row + c] = old * (np.float32(1.0) - np.float32(2.0) * np.float32(flip))
            else:
                for c in range(uw):
                    u = _draw_top32(r0, r1, r2, r3, c)
                    up = np.float32(u * (1.0 + p[c]) < TWO32)
                    keep = np.float32(cf[row + c] != 0)
                    new = np.float32(2.0) * up - np.float32(1.0)
                    sf[row + c] = keep * sf[row + c] + (np.float32(1.0) - keep) * new
    rng[0, c0 : c0 + w] = r0
    rng[1, c0 : c0 + w] = r1
    rng[2, c0 : c0 + w] = r2
    rng[3, c0 : c0 + w] = r3


@njit(**_JIT)
def _chain_sweeps(indptr, indices, data, bias, order, block_ptr, s, rng, clamp, c, beta2, n_sweeps, kind):
    # pragma: no cover - jitted
    """`_tile_sweeps` for the one chain c, vectorised over the units of a block instead of over
    chains: chunks of CHUNK units of one block (independent given the rest) get their fields,
    then their exponentials in one vector loop, then their draws in order. Same arithmetic and
    same draws as `_tile_sweeps`, so the same result."""
    n_chains = np.uint64(s.shape[1])
    uc = np.uint64(c)
    sf = s.reshape(-1)
    cf = clamp.reshape(-1)
    x = np.empty(CHUNK, np.float64)
    p = np.empty(CHUNK, np.float64)
    bits = np.empty(CHUNK, np.int64)
    scale = bits.view(np.float64)
    r0 = rng[0, c : c + 1].copy()
    r1 = rng[1, c : c + 1].copy()
    r2 = rng[2, c : c + 1].copy()
    r3 = rng[3, c : c + 1].copy()
    zero = np.uint64(0)
    metropolis = kind == METROPOLIS
    for _ in range(n_sweeps):
        for blk in range(block_ptr.shape[0] - 1):
            for k0 in range(block_ptr[blk], block_ptr[blk + 1], CHUNK):
                m = np.uint64(min(CHUNK, block_ptr[blk + 1] - k0))
                for a in range(m):
                    at = np.uint64(order[k0 + a]) * n_chains + uc
                    f = bias[order[k0 + a]]
                    for q in range(indptr[order[k0 + a]], indptr[order[k0 + a] + 1]):
                        f += data[q] * sf[np.uint64(indices[q]) * n_chains + uc]
                    if metropolis:
                        x[a] = min(-beta2 * np.float64(sf[at]) * np.float64(f), 0.0)
                    else:
                        x[a] = -beta2 * np.float64(f)
                _exp_parts(x, p, bits, m)
                for a in range(m):
                    p[a] *= scale[a]
                for a in range(m):
                    at = np.uint64(order[k0 + a]) * n_chains + uc
                    u = _draw_top32(r0, r1, r2, r3, zero)
                    if cf[at]:
                        continue
                    if metropolis:
                        if u < p[a] * TWO32:
                            sf[at] = -sf[at]
                    else:
                        sf[at] = np.float32(1.0) if u * (1.0 + p[a]) < TWO32 else np.float32(-1.0)
    rng[0, c] = r0[0]
    rng[1, c] = r1[0]
    rng[2, c] = r2[0]
    rng[3, c] = r3[0]


@njit(**_PAR)
def sweeps(indptr, indices, data, bias, order, block_ptr, s, rng, clamp, beta, n_sweeps, kind, tile):
    # pragma: no cover - jitted
    """n_sweeps heat-bath (kind 0) or Metropolis (kind 1) sweeps of every chain of s (n, C) in
    place, units in `order` (blocks order[block_ptr[k]:block_ptr[k + 1]]); units with
    clamp[i, c] != 0 keep their value. Fewer than FEW_CHAINS chains: one chain per task, vectorised
    over units; else tiles of `tile` chains, vectorised over chains; tasks run in parallel."""
    C = s.shape[1]
    if C < FEW_CHAINS:
        for c in prange(C):
            _chain_sweeps(
                indptr, indices, data, bias, order, block_ptr, s, rng, clamp, c, 2.0 * beta, n_sweeps, kind
            )
        return
    n_tiles = (C + tile - 1) // tile
    for t in prange(n_tiles):
        c0 = t * tile
        w = min(tile, C - c0)
        _tile_sweeps(indptr, indices, data, bias, order, s, rng, clamp, c0, w, 2.0 * beta, n_sweeps, kind)


@njit(**_JIT)
def check_colouring(indptr, indices, colour):  # pragma: no cover - jitted
    """-1 when no edge joins two units of one colour, else the first unit that has such an edge."""
    for i in range(indptr.shape[0] - 1):
        for p in range(indptr[i], indptr[i + 1]):
            if colour[indices[p]] == colour[i] and indices[p] != i:
                return i
    return -1


@njit(**_JIT)
def _smallest_free_colour(indptr, indices, colour, i, used):  # pragma: no cover - jitted
    """The smallest colour that no coloured neighbour of i has (`used`: scratch of size >= deg + 1)."""
    deg = indptr[i + 1] - indptr[i]
    for k in range(deg + 1):
        used[k] = False
    for p in range(indptr[i], indptr[i + 1]):
        c = colour[indices[p]]
        if 0 <= c <= deg:
            used[c] = True
    for k in range(deg + 1):
        if not used[k]:
            return k
    return deg


@njit(**_JIT)
def greedy_colouring(indptr, indices, order):  # pragma: no cover - jitted
    """Greedy colouring visiting units in `order`, each taking its smallest free colour."""
    n = indptr.shape[0] - 1
    colour = np.full(n, -1, np.int64)
    maxdeg = 0
    for i in range(n):
        maxdeg = max(maxdeg, indptr[i + 1] - indptr[i])
    used = np.zeros(maxdeg + 1, np.bool_)
    for k in range(order.shape[0]):
        i = order[k]
        colour[i] = _smallest_free_colour(indptr, indices, colour, i, used)
    return colour


@njit(**_JIT)
def dsatur_colouring(indptr, indices):  # pragma: no cover - jitted
    """DSatur (Brelaz 1979): colour next the uncoloured unit with the most distinct colours among its
    neighbours (ties: most neighbours, then lowest index), with its smallest free colour. A heap with
    lazy deletion holds (-saturation, -degree, unit)."""
    n = indptr.shape[0] - 1
    colour = np.full(n, -1, np.int64)
    sat = np.zeros(n, np.int64)
    maxdeg = 0
    heap = []
    for i in range(n):
        d = indptr[i + 1] - indptr[i]
        maxdeg = max(maxdeg, d)
        heap.append((0, -d, i))
    heapq.heapify(heap)
    used = np.zeros(maxdeg + 1, np.bool_)
    while len(heap) > 0:
        negsat, _, i = heapq.heappop(heap)
        if colour[i] >= 0 or -negsat != sat[i]:
            continue  # stale entry
        c = _smallest_free_colour(indptr, indices, colour, i, used)
        colour[i] = c
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if colour[j] >= 0 or j == i:
                continue
            seen = False  # does j already see colour c (through another neighbour)?
            for q in range(indptr[j], indptr[j + 1]):
                k = indices[q]
                if k != i and colour[k] == c:
                    seen = True
                    break
            if not seen:
                sat[j] += 1
                heapq.heappush(heap, (-sat[j], -(indptr[j + 1] - indptr[j]), j))
    return colour
