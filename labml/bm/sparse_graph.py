"""Sparse spin graphs: an Ising / Boltzmann model on any sparse graph, coloured into independent
blocks, sampled by every kernel of `labml.bm.kernels` for many chains at once (issue 17).

    E(s) = -1/2 s^T J s - b^T s,   p(s) ~ exp(-E(s) / T),   s_i = +/-1

J is a scipy CSR matrix, symmetric with zero diagonal (checked). A colouring cuts the units into
blocks with no coupling inside a block, so a block is updated at once given the rest; the
sampler visits the blocks in colour order (one sweep = every unit updated once).

- `SparseGraphModel(J, b, temperature)`: the model; `colouring(method)` ("dsatur" or
  "largest_first", verified, cached with the model); `energy(s)`; `local_fields(s)`;
  `forces(s)` (<s_i s_j> on the couplings' pattern and <s_i>, for training).
- `GraphSampler(model, kernel, colouring=..., threads=...)`: `new_state(n_chains, seed)`, then
  `sweep(state, n_sweeps, clamp=mask)` in place. Heat bath and Metropolis run fused in numba
  (`labml/bm/_graph_kernels.py`); sLLG, soft spins and the rig kernel run the kernel objects of
  `labml.bm.kernels` block by block on fields from a sparse product (their physics lives there).
- Clamping: `clamp` is a boolean mask over units (n,) or per chain (n, n_chains); clamped units
  never change, so the same engine serves training (data clamped) and inference (an image clamped,
  labels sampled). The rig kernel does not read a clamped unit (a read is a device cycle), so its
  `reads` count only the units sampled.
- `from_rbm(rbm)`, `from_bm(bm)`, `lattice_2d(L)`, `random_graph(n, n_edges)`: graphs of the
  project's models and of the benchmark cases. An RBM (and a ClassRBM with its label spins) is a
  two-colour graph; a dense BM is the case of n colours (every unit its own block), and its own
  `Sampler` remains the reference for it.

State layout: units by chains, (n, n_chains), chains contiguous (see `_graph_kernels`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from labml.bm import _graph_kernels as gk
from labml.bm.kernels import SLLG, HeatBath, Kernel, Metropolis, RigKernel, make_kernel

logger = logging.getLogger(__name__)

COLOURINGS = ("dsatur", "largest_first")


@dataclass(frozen=True)
class Colouring:
    """A proper colouring: `colour[i]` per unit, `blocks[k]` the sorted units of colour k."""

    method: str
    colour: np.ndarray
    blocks: tuple[np.ndarray, ...]

    @property
    def n_colours(self) -> int:
        return len(self.blocks)

    @property
    def order(self) -> np.ndarray:
        """Units block after block (the sweep order)."""
        return np.concatenate(self.blocks).astype(np.int64)


class SparseGraphModel:
    """Spins +/-1 on a sparse graph: couplings J (CSR, symmetric, zero diagonal), biases b,
    temperature T (kB = 1)."""

    def __init__(self, J, b=None, temperature: float = 1.0, name: str = "graph") -> None:
        if not sp.issparse(J):
            raise ValueError(f"{name}: couplings must be a scipy sparse matrix, got {type(J).__name__}")
        J = sp.csr_matrix(J, dtype=np.float64)
        n = J.shape[0]
        if J.shape != (n, n) or n < 1:
            raise ValueError(f"{name}: couplings must be square and non-empty, got shape {J.shape}")
        J.sum_duplicates()
        J.eliminate_zeros()
        J.sort_indices()
        if not np.all(np.isfinite(J.data)):
            raise ValueError(f"{name}: couplings hold a non-finite value")
        if J.diagonal().any():
            i = int(np.flatnonzero(J.diagonal())[0])
            raise ValueError(f"{name}: couplings need a zero diagonal, J[{i},{i}] = {J[i, i]}")
        asym = abs(J - J.T)
        if asym.nnz and asym.max() > 1e-12 * max(1.0, abs(J).max()):
            i, j = (int(x[0]) for x in asym.nonzero())
            raise ValueError(
                f"{name}: couplings must be symmetric, J[{i},{j}] = {J[i, j]} != J[{j},{i}] = {J[j, i]}"
            )
        b = np.zeros(n) if b is None else np.asarray(b, dtype=np.float64).ravel()
        if b.shape != (n,):
            raise ValueError(f"{name}: biases need {n} values (one per unit), got {b.size}")
        if not np.all(np.isfinite(b)):
            raise ValueError(f"{name}: biases hold a non-finite value")
        if not (np.isfinite(temperature) and temperature > 0):
            raise ValueError(f"{name}: temperature must be > 0, got {temperature}")
        self.name = name
        self.J = J
        self.b = b
        self.temperature = float(temperature)
        self._colourings: dict[str, Colouring] = {}
        self._kernel_arrays: tuple | None = None

    @property
    def n_units(self) -> int:
        return self.J.shape[0]

    @property
    def n_couplings(self) -> int:
        """Number of coupled pairs (edges)."""
        return self.J.nnz // 2

    @property
    def beta(self) -> float:
        return 1.0 / self.temperature

    def set_parameters(self, J=None, b=None, temperature: float | None = None) -> None:
        """New values (training). With J's pattern unchanged the cached colourings hold and a
        sampler of this model goes on with the new values; a new pattern drops the cached
        colourings (make a new sampler)."""
        new = SparseGraphModel(
            self.J if J is None else J, self.b if b is None else b,
            self.temperature if temperature is None else temperature, self.name,
        )
        if J is not None and not (
            np.array_equal(new.J.indptr, self.J.indptr) and np.array_equal(new.J.indices, self.J.indices)
        ):
            self._colourings.clear()
        self.J, self.b, self.temperature = new.J, new.b, new.temperature
        self._kernel_arrays = None

    def set_values(self, data: np.ndarray, b: np.ndarray) -> None:
        """New values on the same pattern, in place, for a training loop that updates every step:
        `data` in the order of ``J.data`` (the caller writes J[i, j] and J[j, i] alike; the full
        symmetry check of :meth:`set_parameters` is skipped), `b` one bias per unit. The cached
        colourings hold and samplers of this model go on with the new values."""
        data = np.asarray(data, np.float64).ravel()
        b = np.asarray(b, np.float64).ravel()
        if data.shape != self.J.data.shape or b.shape != self.b.shape:
            raise ValueError(f"need {self.J.data.size} coupling values and {self.b.size} biases, "
                             f"got {data.size} and {b.size}")
        if not (np.all(np.isfinite(data)) and np.all(np.isfinite(b))):
            raise ValueError("couplings and biases must be finite")
        # a new matrix object on the same pattern: samplers that cached rows of the old one see the
        # change (GraphSampler._block_rows compares the object)
        self.J = sp.csr_matrix((data, self.J.indices, self.J.indptr), shape=self.J.shape)
        self.b = b.copy()
        self._kernel_arrays = None  # the numba kernels' float32 copies are rebuilt

    # --- colouring ----------------------------------------------------------------------------
    def colouring(self, method: str = "dsatur") -> Colouring:
        """A proper colouring by `method` (cached): "dsatur" (Brelaz) or "largest_first" (greedy,
        units by decreasing degree). Verified: no coupling joins two units of one block."""
        if method not in COLOURINGS:
            raise ValueError(f"unknown colouring {method!r}; choose one of {', '.join(COLOURINGS)}")
        if method not in self._colourings:
            indptr, indices = self.J.indptr.astype(np.int64), self.J.indices.astype(np.int64)
            if method == "dsatur":
                colour = gk.dsatur_colouring(indptr, indices)
            else:
                order = np.argsort(-np.diff(indptr), kind="stable").astype(np.int64)
                colour = gk.greedy_colouring(indptr, indices, order)
            self._colourings[method] = colouring_from_labels(self, colour, method)
        return self._colourings[method]

    # --- energies and fields ------------------------------------------------------------------
    def local_fields(self, s: np.ndarray) -> np.ndarray:
        """h = J s + b for values s of shape (n, n_chains)."""
        return self.J @ s + self.b[:, None]

    def energy(self, s: np.ndarray) -> np.ndarray:
        """E(s) per chain for values s (n, n_chains)."""
        s = np.asarray(s, dtype=np.float64)
        return -0.5 * np.einsum("ic,ic->c", s, self.J @ s) - self.b @ s

    def forces(self, s: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        """Generalised forces averaged over the chains: (<s_i s_j> on J's pattern as a CSR matrix,
        <s_i>), i.e. -dE/dJ_ij per coupled pair (each pair counted once per direction, as J holds
        it) and -dE/db_i: the statistics whose difference between a clamped and a free system is
        the learning signal (SCIENCE.md section 5)."""
        s = np.asarray(s, dtype=np.float64)
        rows = np.repeat(np.arange(self.n_units), np.diff(self.J.indptr))
        corr = np.einsum("kc,kc->k", s[rows], s[self.J.indices]) / s.shape[1]
        C = sp.csr_matrix((corr, self.J.indices.copy(), self.J.indptr.copy()), shape=self.J.shape)
        return C, s.mean(1)

    def kernel_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(indptr int64, indices int64, couplings float32, biases float32) for the numba kernels."""
        if self._kernel_arrays is None:
            J = self.J
            self._kernel_arrays = (
                J.indptr.astype(np.int64), J.indices.astype(np.int64),
                J.data.astype(np.float32), self.b.astype(np.float32),
            )
        return self._kernel_arrays

    def __repr__(self) -> str:
        return (f"SparseGraphModel({self.name!r}, n_units={self.n_units}, n_couplings={self.n_couplings}, "
                f"temperature={self.temperature})")


def colouring_from_labels(model: SparseGraphModel, colour, method: str = "given") -> Colouring:
    """A `Colouring` from one colour label per unit (e.g. the two layers of an RBM); verified."""
    colour = np.asarray(colour, dtype=np.int64).ravel()
    if colour.shape != (model.n_units,) or colour.min() < 0:
        raise ValueError(f"a colouring needs one label >= 0 per unit ({model.n_units}), got {colour.size}")
    bad = gk.check_colouring(model.J.indptr.astype(np.int64), model.J.indices.astype(np.int64), colour)
    if bad >= 0:
        raise ValueError(
            f"colouring {method!r} is not proper: unit {bad} is coupled to a unit of its own colour"
        )
    labels = np.unique(colour)
    blocks = tuple(np.flatnonzero(colour == c) for c in labels)
    dense = np.searchsorted(labels, colour)
    return Colouring(method, dense, blocks)


# --- state ---------------------------------------------------------------------------------------
@dataclass
class GraphState:
    """Chains of a graph sampler: `s` (n_units, n_chains) values the couplings see (spins, or the
    soft spins' x), `vectors` (n_units, n_chains, 3) the sLLG unit vectors (None otherwise), and
    `rng` (4, n_chains) one xoshiro256+ stream per chain (heat bath and Metropolis)."""

    s: np.ndarray
    rng: np.ndarray
    vectors: np.ndarray | None = None

    @property
    def n_chains(self) -> int:
        return self.s.shape[1]

    def copy(self) -> GraphState:
        vectors = None if self.vectors is None else self.vectors.copy()
        return GraphState(self.s.copy(), self.rng.copy(), vectors)


def seed_streams(seed: int, n_chains: int) -> np.ndarray:
    """(4, n_chains) uint64 xoshiro256+ states from numpy's SeedSequence (never all zero)."""
    state = np.random.SeedSequence(seed).generate_state(4 * n_chains, np.uint64).reshape(4, n_chains)
    state[0] |= np.uint64(1)
    return state


# --- sampler -------------------------------------------------------------------------------------
class GraphSampler:
    """Block sampler of a `SparseGraphModel` with a kernel (a name of `labml.bm.kernels.KERNELS`
    or a Kernel object), by colour blocks, for many chains at once.

    `colouring`: a method name, or a `Colouring`. `threads`: numba threads for heat bath and
    Metropolis (parallel over tiles of `tile` chains; results do not depend on it). The other
    kernels draw from the kernel's torch generator (seed it for reproducible runs)."""

    def __init__(
        self,
        model: SparseGraphModel,
        kernel: str | Kernel = "heatbath",
        colouring: str | Colouring = "dsatur",
        threads: int = 1,
        tile: int = 256,
        rig=None,
        **kernel_options,
    ) -> None:
        self.model = model
        self.kernel = make_kernel(kernel, rig=rig, **kernel_options) if isinstance(kernel, str) else kernel
        self.colouring = model.colouring(colouring) if isinstance(colouring, str) else colouring
        if self.colouring.colour.shape != (model.n_units,):
            raise ValueError("the colouring is for another graph")
        if int(threads) < 1 or int(tile) < 1:
            raise ValueError(f"threads and tile must be >= 1, got {threads}, {tile}")
        self.threads = int(threads)
        self.tile = int(tile)
        self._order = self.colouring.order
        self._block_ptr = np.r_[0, np.cumsum([len(b) for b in self.colouring.blocks])].astype(np.int64)
        self._rows: list[sp.csr_matrix] | None = None
        self._rows_of = None
        self._free_rows: dict = {}

    @property
    def fused(self) -> bool:
        """Heat bath and Metropolis run in the fused numba kernel."""
        return type(self.kernel) in (HeatBath, Metropolis)

    def new_state(self, n_chains: int, seed: int = 0, init=None) -> GraphState:
        """`n_chains` chains, random +/-1 spins (or `init`, values (n,) or (n, n_chains))."""
        n = self.model.n_units
        if int(n_chains) < 1:
            raise ValueError(f"n_chains must be >= 1, got {n_chains}")
        rng = seed_streams(seed, int(n_chains))
        if init is None:
            u = np.random.default_rng(seed).random((n, int(n_chains)))
            s = np.where(u < 0.5, -1.0, 1.0).astype(np.float32)
        else:
            init = np.asarray(init, np.float32).reshape(n, -1)
            s = np.ascontiguousarray(np.broadcast_to(init, (n, n_chains)))
        state = GraphState(s, rng)
        if isinstance(self.kernel, SLLG):
            S = self.kernel.from_spins(torch.from_numpy(np.sign(s) + (s == 0)))
            state.vectors = S.numpy().astype(np.float32)
            state.s = np.ascontiguousarray(state.vectors[..., 2])
        return state

    def _clamp_mask(self, clamp, n_chains: int) -> np.ndarray:
        n = self.model.n_units
        if clamp is None:
            return np.zeros((n, n_chains), np.bool_)
        c = np.asarray(clamp, dtype=np.bool_)
        if c.shape not in ((n,), (n, n_chains)):
            raise ValueError(f"clamp mask must have shape ({n},) or ({n}, {n_chains}), got {c.shape}")
        if c.ndim == 1:
            c = c[:, None]
        return np.ascontiguousarray(np.broadcast_to(c, (n, n_chains)))

    def sweep(self, state: GraphState, n_sweeps: int = 1, clamp=None) -> GraphState:
        """`n_sweeps` sweeps in place (every block in colour order once per sweep); units where
        `clamp` is True keep their values."""
        if int(n_sweeps) < 0:
            raise ValueError(f"n_sweeps must be >= 0, got {n_sweeps}")
        mask = self._clamp_mask(clamp, state.n_chains)
        if self.fused:
            self._fused_sweeps(state, int(n_sweeps), mask)
        else:
            for _ in range(int(n_sweeps)):
                self._kernel_sweep(state, mask)
        return state

    def _fused_sweeps(self, state: GraphState, n_sweeps: int, mask: np.ndarray) -> None:
        import numba

        indptr, indices, data, bias = self.model.kernel_arrays()
        kind = gk.HEATBATH if isinstance(self.kernel, HeatBath) else gk.METROPOLIS
        if state.s.dtype != np.float32 or not state.s.flags.c_contiguous:
            raise ValueError("state.s must be a C-contiguous float32 array (units, chains)")
        before = numba.get_num_threads()
        numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
        try:
            gk.sweeps(indptr, indices, data, bias, self._order, self._block_ptr, state.s, state.rng,
                      mask.view(np.uint8),
                      self.model.beta, n_sweeps, kind, self.tile)
        finally:
            numba.set_num_threads(before)

    def _block_rows(self) -> list[sp.csr_matrix]:
        """J's rows of each block, rebuilt when the model got new couplings (set_parameters)."""
        if self._rows is None or self._rows_of is not self.model.J:
            self._rows = [self.model.J[block] for block in self.colouring.blocks]
            self._rows_of = self.model.J
            self._free_rows = {}
        return self._rows

    def _free_block(self, k: int, free: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
        """The units of block k where `free` (a mask over the block) is True and their rows of J
        (cached per mask, with the block rows)."""
        key = (k, free.tobytes())
        hit = self._free_rows.get(key)
        if hit is None:
            hit = self._free_rows[key] = (self.colouring.blocks[k][free], self._rows[k][free])
        return hit

    def _kernel_sweep(self, state: GraphState, mask: np.ndarray) -> None:
        """One sweep with a kernel object: per block, fields by a sparse product, then
        kernel.update on (chains, block units) tensors. The rig kernel reads only what is not
        clamped: units clamped in every chain are left out of the block, and a unit clamped in
        some chains only is read in the others (a read is a device cycle: a clamped unit costs none)."""
        beta = self.model.beta
        rig = isinstance(self.kernel, RigKernel)
        for k, (block, rows) in enumerate(zip(self.colouring.blocks, self._block_rows(), strict=True)):
            keep_t = mask[block]  # (block units, chains)
            if rig:
                free = ~keep_t.all(axis=1)
                if not free.any():
                    continue
                if not free.all():
                    block, rows = self._free_block(k, free)
                    keep_t = keep_t[free]
            field = torch.from_numpy((rows @ state.s + self.model.b[block, None]).T.copy())
            keep = torch.from_numpy(keep_t.T.copy())
            if state.vectors is not None:
                old = torch.from_numpy(state.vectors[block].transpose(1, 0, 2).copy()).double()
                new = self.kernel.update(old, field, beta)
                new = torch.where(keep[..., None], old, new)
                state.vectors[block] = new.numpy().transpose(1, 0, 2)
                state.s[block] = state.vectors[block][..., 2]
                continue
            old = torch.from_numpy(state.s[block].T.copy()).double()
            if rig:
                active = ~keep.numpy() if keep_t.any() else None
                new = self.kernel.update(old, field, beta, units=block, active=active)
            else:
                new = self.kernel.update(old, field, beta)
            state.s[block] = torch.where(keep, old, new).numpy().T


# --- graphs of the project's models and of the benchmark cases ---------------------------------------
def from_rbm(rbm) -> tuple[SparseGraphModel, Colouring]:
    """An RBM (or a ClassRBM, its labels as +/-1 spins: see below) as a two-colour graph: units
    (v, h), J = [[0, W], [W^T, 0]], b = (a, b); colour 0 the visible layer, 1 the hidden layer.

    A ClassRBM's one-hot label is a categorical unit, not spins: with y in {0, 1}, y_k = (t_k + 1)/2
    for a spin t_k, so E = -v^T W h - t^T (U/2) h - a^T v - (b + U^T 1 / 2)^T h - (d/2)^T t + const;
    the units are (v, t, h), colour 0 = (v, t). The graph samples the spins t freely (a label block
    of several +1 is allowed there): clamp t to a one-hot spin pattern, as for inference with a
    label given, or use the model's own Sampler, which draws y from its softmax."""
    W = rbm.W.detach().double().numpy()
    a = rbm.a.detach().double().numpy()
    bh = rbm.b.detach().double().numpy()
    blocks_v, bias_v = [W], [a]
    if hasattr(rbm, "U"):
        U = rbm.U.detach().double().numpy()
        blocks_v.append(U / 2)
        bias_v.append(rbm.d.detach().double().numpy() / 2)
        bh = bh + U.sum(0) / 2
    Wv = np.vstack(blocks_v)
    nv, nh = Wv.shape
    J = sp.bmat([[None, sp.csr_matrix(Wv)], [sp.csr_matrix(Wv.T), None]], format="csr")
    model = SparseGraphModel(J, np.concatenate(bias_v + [bh]), rbm.temperature, name=type(rbm).__name__)
    colour = np.r_[np.zeros(nv, np.int64), np.ones(nh, np.int64)]
    return model, colouring_from_labels(model, colour, "layers")


def from_bm(bm) -> SparseGraphModel:
    """A fully connected BM as a graph (every pair coupled: n colours, one unit per block)."""
    J = bm.coupling().detach().double().numpy()
    return SparseGraphModel(sp.csr_matrix(J), bm.b.detach().double().numpy(), bm.temperature, name="BM")


def lattice_2d(
    L: int, coupling: float = 1.0, bias: float = 0.0, temperature: float = 1.0
) -> SparseGraphModel:
    """L x L square lattice with periodic boundaries, unit i = row * L + col (two colours when L is even)."""
    if L < 3:
        raise ValueError(f"a periodic lattice needs L >= 3, got {L}")
    idx = np.arange(L * L).reshape(L, L)
    right, down = np.roll(idx, -1, axis=1), np.roll(idx, -1, axis=0)
    i = np.concatenate([idx.ravel(), idx.ravel()])
    j = np.concatenate([right.ravel(), down.ravel()])
    A = sp.coo_matrix((np.full(i.size, coupling), (i, j)), shape=(L * L, L * L))
    return SparseGraphModel((A + A.T).tocsr(), np.full(L * L, bias), temperature, name=f"lattice{L}x{L}")


def random_graph(
    n: int, n_edges: int, seed: int = 0, coupling_std: float = 1.0, bias_std: float = 0.0,
    temperature: float = 1.0,
) -> SparseGraphModel:
    """Erdos-Renyi-like graph: `n_edges` distinct pairs drawn uniformly, couplings N(0, std^2)."""
    if n < 2 or not 0 <= n_edges <= n * (n - 1) // 2:
        raise ValueError(f"a graph of {n} units holds 0 .. {n * (n - 1) // 2} edges, got {n_edges}")
    rng = np.random.default_rng(seed)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < n_edges:
        ij = rng.integers(0, n, size=(2 * (n_edges - len(pairs)) + 8, 2))
        for a, c in ij:
            if a != c and len(pairs) < n_edges:
                pairs.add((min(a, c), max(a, c)))
    i, j = np.array(sorted(pairs)).T
    w = rng.normal(0.0, coupling_std, size=i.size)
    A = sp.coo_matrix((w, (i, j)), shape=(n, n))
    return SparseGraphModel((A + A.T).tocsr(), rng.normal(0.0, bias_std, size=n), temperature,
                            name=f"random{n}x{n_edges}")
