"""Sparse kernels of the fast RBM step (`BMTrainer._fast_rbm_grad`), compiled with numba.

Why hand-written: binarised MNIST has about 13 % of its pixels on, and so do the model's visible
samples; the products of the fast step (hidden field of a sample, the weight statistics x^T R)
then cost a fraction of a dense GEMM when they run over the on-pixels only. torch has no fused
"draw spins and index the on-pixels" operation, its sparse-dense products (COO/CSR) are slower than
a dense GEMM at this size and density (measured), and building their indices with `nonzero` costs
more than the product saved. The forward sums use torch's `embedding_bag` (fbgemm); what is left
here is the draw with its index and the transposed product.

Random numbers: the spin draws compare 32-bit integers from numpy's SFC64 bit generator with
p 2^32, so P(+1) = ceil(p 2^32) / 2^32, within 2^-32 of p (finer than a float32 uniform).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_JIT = dict(nogil=True, fastmath=True, error_model="numpy", cache=True)
# no fast-math in the draws: a NaN p (a diverged model) must give -1, as torch's
# where(u < p, 1, -1) does, not an undefined comparison
_JIT_DRAW = dict(nogil=True, error_model="numpy", cache=True)
TWO32 = 4294967296.0


@njit(**_JIT)
def gather_rows(indptr, indices, rows, out_indptr, out_indices):  # pragma: no cover - jitted
    """CSR rows `rows` of (indptr, indices), written as rows 0.. of (out_indptr, out_indices);
    returns the number of entries written."""
    k = 0
    out_indptr[0] = 0
    for r in range(rows.shape[0]):
        row = rows[r]
        for j in range(indptr[row], indptr[row + 1]):
            out_indices[k] = indices[j]
            k += 1
        out_indptr[r + 1] = k
    return k


@njit(**_JIT_DRAW)
def draw_spins(P, raw, spins):  # pragma: no cover - jitted
    """spins = +1 where raw < P 2^32, else -1 (raw: uint32 of the same shape as P)."""
    n, m = P.shape
    for r in range(n):
        pr = P[r]
        rr = raw[r]
        sr = spins[r]
        for i in range(m):
            up = rr[i] < np.float64(pr[i]) * TWO32
            sr[i] = 2.0 * np.float32(up) - 1.0


@njit(**_JIT_DRAW)
def draw_spins_indexed(P, raw, spins, indptr, indices, row0):  # pragma: no cover - jitted
    """`draw_spins`, and the columns of the +1 spins of row r appended as CSR row row0 + r of
    (indptr, indices) (indptr[row0] must hold the start). Returns the new end of `indices`."""
    n, m = P.shape
    k = indptr[row0]
    up8 = np.empty(m, np.uint8)
    for r in range(n):
        pr = P[r]
        rr = raw[r]
        sr = spins[r]
        for i in range(m):  # vectorised: draws and spins
            u = rr[i] < np.float64(pr[i]) * TWO32
            up8[i] = u
            sr[i] = 2.0 * np.float32(u) - 1.0
        for i in range(m):  # branch-free append of the +1 columns
            indices[k] = i
            k += up8[i]
        indptr[row0 + r + 1] = k
    return k


@njit(**_JIT)
def xt_r(indptr, indices, R, G):  # pragma: no cover - jitted
    """G = x^T R for the 0/1 matrix x (R.shape[0] rows, G.shape[0] columns) given by its CSR
    rows. The index is transposed first (counting sort), so that each row of G is summed once in
    cache from the rows of R it needs."""
    n_rows = R.shape[0]
    m = G.shape[0]
    H = R.shape[1]
    nnz = indptr[n_rows]
    start = np.zeros(m + 1, np.int64)
    for k in range(nnz):
        start[indices[k] + 1] += 1
    for i in range(m):
        start[i + 1] += start[i]
    pos = start[:-1].copy()
    rows_of = np.empty(nnz, np.int64)
    for r in range(n_rows):
        for k in range(indptr[r], indptr[r + 1]):
            i = indices[k]
            rows_of[pos[i]] = r
            pos[i] += 1
    for i in range(m):
        g = G[i]
        k = start[i]
        k1 = start[i + 1]
        for c in range(H):
            g[c] = 0.0
        while k + 4 <= k1:  # four source rows per pass over g
            s0 = R[rows_of[k]]
            s1 = R[rows_of[k + 1]]
            s2 = R[rows_of[k + 2]]
            s3 = R[rows_of[k + 3]]
            for c in range(H):
                g[c] += (s0[c] + s1[c]) + (s2[c] + s3[c])
            k += 4
        while k < k1:
            s0 = R[rows_of[k]]
            for c in range(H):
                g[c] += s0[c]
            k += 1


def raw_uint32(bitgen: np.random.BitGenerator, shape: tuple[int, int]) -> np.ndarray:
    """uint32 array of `shape` from the bit generator's raw 64-bit output (two draws per word)."""
    n = shape[0] * shape[1]
    return bitgen.random_raw((n + 1) // 2).view(np.uint32)[:n].reshape(shape)


@njit(**_JIT)
def x_products(indptr, indices, q, o, xtq, xo):  # pragma: no cover - jitted
    """For the 0/1 matrix x given by its CSR rows: xtq = x^T q and xo = x o (one row each)."""
    for i in range(xtq.shape[0]):
        xtq[i] = 0.0
    for r in range(q.shape[0]):
        qr = q[r]
        s = 0.0
        for k in range(indptr[r], indptr[r + 1]):
            i = indices[k]
            xtq[i] += qr
            s += o[i]
        xo[r] = s
