"""A Boltzmann machine of p-bits on a sparse graph a chip could wire, trained with a sampled
negative phase and classifying by sampling its label units (issue 19; after the sparse deep
Boltzmann networks of Niazi et al. 2024: 4,264 p-bits, about 30k couplings, full MNIST to about 90 %).

Units are +/-1 spins in three groups, in this order: `n_visible` pixels, `n_classes x label_copies`
label units (copy c of class k is unit ``n_visible + k * label_copies + c``), `n_hidden` hidden
units. The energy is the sparse graph's (labml.bm.sparse_graph):

    E(s) = -sum_(i<j) w_ij s_i s_j - sum_i b_i s_i,   p(s) ~ exp(-E / T)

with one coupling w_e per edge (i_e < j_e) of the graph. `chip_graph` builds the graph: the hidden
units on a grid laid over the image, each wired to a few pixels of a local window, to its grid
neighbours (lateral couplings: the graph is not bipartite) and through a few long-range links
(small world); every label unit wired to a random set of hidden units. It is sampled by colour
blocks (`GraphSampler`, heat bath: the p-bit update s_i = sgn(tanh(beta I_i) - u)).

Learning (`SparseBMTrainer`): the log-likelihood gradient of the joint p(v, y),

    dw_ij ~ <s_i s_j>_data - <s_i s_j>_model,   db_i ~ <s_i>_data - <s_i>_model,

the data term from the hidden units sampled (`k_pos` sweeps) with pixels and labels clamped to a
mini-batch, the model term from persistent chains (PCD, `k_neg` sweeps per update) run freely; the
step by torch's SGD with momentum, decayed linearly to 0. The `hybrid` objective adds `alpha` times a
conditional term for log p(y | v): its negative phase starts from the positive-phase state and
releases the labels for `k_neg` sweeps with the image still clamped (CD-k of the conditional: the
label units fall to what the hidden units support and the hidden units follow; the term
<s_i s_j>_(v, y) - <s_i s_j>_(v) reaches every coupling the released units touch, pixel-hidden
and hidden-hidden included). The conditional is over every pattern of the label units, not only
the one-of-classes codes the data use. Classification: pixels clamped to the
image, labels and hidden units sampled; the class is the argmax of the label units' spins summed
over copies and over the sweeps so far (`classify`, with the accuracy after every sweep count).

The trained model is saved as numpy arrays (`save`, `load`: ``np.load(path)`` alone reads it; the
format is in docs/boltzmann.md, "Sparse p-bit machine").
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from labml.bm.sparse_graph import GraphSampler, GraphState, SparseGraphModel, seed_streams

FORMAT = "labml-sparse-pbit-bm/1"
OBJECTIVES = ("joint", "conditional", "hybrid")


@dataclasses.dataclass(frozen=True)
class Layout:
    """How many units of each group; the groups lie in the order visible, labels, hidden."""

    n_visible: int
    n_classes: int
    label_copies: int
    n_hidden: int

    @property
    def n_labels(self) -> int:
        return self.n_classes * self.label_copies

    @property
    def n_units(self) -> int:
        return self.n_visible + self.n_labels + self.n_hidden

    @property
    def visible(self) -> slice:
        return slice(0, self.n_visible)

    @property
    def labels(self) -> slice:
        return slice(self.n_visible, self.n_visible + self.n_labels)

    @property
    def hidden(self) -> slice:
        return slice(self.n_visible + self.n_labels, self.n_units)


def _grid_shape(n: int, aspect: float = 1.0) -> tuple[int, int]:
    """Rows x columns with rows * columns == n, as close to `aspect` (rows / columns) as n allows."""
    best = (1, n)
    for r in range(1, int(math.isqrt(n)) + 1):
        if n % r == 0:
            for rows, cols in ((r, n // r), (n // r, r)):
                if abs(math.log(rows / cols / aspect)) < abs(math.log(best[0] / best[1] / aspect)):
                    best = (rows, cols)
    return best


def chip_graph(n_hidden: int = 3430, image_shape: tuple[int, int] = (28, 28), n_classes: int = 10,
               label_copies: int = 5, pixels_per_hidden: int = 4, window: int = 5,
               long_range_per_hidden: float = 0.5, hidden_per_label: int = 100,
               lateral: bool = True, seed: int = 0) -> tuple[np.ndarray, np.ndarray, Layout]:
    """The edges (i < j, sorted, no duplicates) and layout of a sparse p-bit graph a chip could wire.

    The hidden units sit on a grid of ``n_hidden`` points (rows x columns as square as n_hidden
    allows) laid over the image. Each is wired to `pixels_per_hidden` distinct pixels drawn from the
    `window` x `window` square around its place (cut at the image's edges), to its right and lower
    grid neighbours (unless `lateral` is False), and `long_range_per_hidden` x n_hidden random
    hidden pairs are added (small world). Each label unit is wired to `hidden_per_label` distinct
    random hidden units. The
    default is the size of Niazi et al. 2024: 784 + 50 + 3,430 = 4,264 units, 27,176 couplings."""
    H, W = image_shape
    n_vis = H * W
    layout = Layout(n_vis, n_classes, label_copies, n_hidden)
    if n_hidden < 2 or label_copies < 1 or n_classes < 2:
        raise ValueError(f"need >= 2 hidden units, >= 2 classes, >= 1 copy; got {n_hidden}, "
                         f"{n_classes}, {label_copies}")
    if not 1 <= pixels_per_hidden <= window * window or window < 1:
        raise ValueError(f"pixels_per_hidden must be 1..window^2 ({window * window}), "
                         f"got {pixels_per_hidden}")
    if not 1 <= hidden_per_label <= n_hidden:
        raise ValueError(f"hidden_per_label must be 1..n_hidden ({n_hidden}), got {hidden_per_label}")
    rng = np.random.default_rng(seed)
    h0 = layout.hidden.start
    rows, cols = _grid_shape(n_hidden, H / W)
    edges: set[tuple[int, int]] = set()
    half = window // 2
    for k in range(n_hidden):
        r, c = divmod(k, cols)
        y = min(H - 1, int((r + 0.5) * H / rows))
        x = min(W - 1, int((c + 0.5) * W / cols))
        ys = np.arange(max(0, y - half), min(H, y - half + window))
        xs = np.arange(max(0, x - half), min(W, x - half + window))
        pix = (ys[:, None] * W + xs[None, :]).ravel()
        for p in rng.choice(pix, size=min(pixels_per_hidden, pix.size), replace=False):
            edges.add((int(p), h0 + k))
        if lateral and c + 1 < cols:
            edges.add((h0 + k, h0 + k + 1))
        if lateral and r + 1 < rows:
            edges.add((h0 + k, h0 + k + cols))
    n_long = int(round(long_range_per_hidden * n_hidden))
    added = 0
    while added < n_long:
        a, c = (int(u) for u in rng.integers(0, n_hidden, size=2))
        e = (h0 + min(a, c), h0 + max(a, c))
        if a != c and e not in edges:
            edges.add(e)
            added += 1
    for lab in range(layout.n_labels):
        for k in rng.choice(n_hidden, size=hidden_per_label, replace=False):
            edges.add((layout.labels.start + lab, h0 + int(k)))
    ij = np.array(sorted(edges), dtype=np.int64)
    return ij[:, 0].copy(), ij[:, 1].copy(), layout


class SparseBM:
    """Couplings `w` (one per edge i < j) and biases `b` on the graph (`i`, `j`) of `layout`, at
    temperature `temperature`; `graph` is the SparseGraphModel the samplers run on (kept in step
    with w and b by `set_values`)."""

    def __init__(self, i: np.ndarray, j: np.ndarray, layout: Layout, w=None, b=None,
                 temperature: float = 1.0) -> None:
        self.i = np.asarray(i, np.int64)
        self.j = np.asarray(j, np.int64)
        self.layout = layout
        n, E = layout.n_units, self.i.size
        if (self.j.shape != (E,) or E == 0 or np.any(self.i >= self.j) or self.j.max() >= n
                or self.i.min() < 0):
            raise ValueError(f"edges must be pairs i < j of units 0..{n - 1}")
        if np.unique(self.i * n + self.j).size != E:
            raise ValueError("an edge is listed twice")
        w = np.zeros(E) if w is None else np.asarray(w, np.float64)
        b = np.zeros(n) if b is None else np.asarray(b, np.float64)
        # the CSR pattern once; `_slot_ij` / `_slot_ji`: where w_e sits in J.data as (i, j) and (j, i)
        A = sp.coo_matrix((np.arange(1, E + 1, dtype=np.float64), (self.i, self.j)), shape=(n, n)).tocsr()
        J = (A + A.T).tocsr()
        J.sort_indices()
        self._slot_ij = np.empty(E, np.int64)
        self._slot_ji = np.empty(E, np.int64)
        rows = np.repeat(np.arange(n), np.diff(J.indptr))
        e = J.data.astype(np.int64) - 1
        upper = rows < J.indices
        self._slot_ij[e[upper]] = np.flatnonzero(upper)
        self._slot_ji[e[~upper]] = np.flatnonzero(~upper)
        self.graph = SparseGraphModel(J, b, temperature, name="sparse p-bit BM")
        self.set_values(w, b)

    @property
    def n_edges(self) -> int:
        return self.i.size

    @property
    def temperature(self) -> float:
        return self.graph.temperature

    @property
    def w(self) -> np.ndarray:
        return self.graph.J.data[self._slot_ij].copy()

    @property
    def b(self) -> np.ndarray:
        return self.graph.b.copy()

    def set_values(self, w: np.ndarray, b: np.ndarray) -> None:
        """New couplings and biases on the same graph (a sampler of `graph` follows them)."""
        w = np.asarray(w, np.float64).ravel()
        if w.shape != (self.n_edges,):
            raise ValueError(f"need {self.n_edges} couplings, got {w.size}")
        data = self.graph.J.data.copy()
        data[self._slot_ij] = w
        data[self._slot_ji] = w
        self.graph.set_values(data, b)

    # --- states -----------------------------------------------------------------------------------
    def label_spins(self, y: np.ndarray) -> np.ndarray:
        """(n_labels, B) spins of class labels y: +1 on every copy of the class, -1 elsewhere."""
        y = np.asarray(y, np.int64).ravel()
        L = self.layout
        if y.size and (y.min() < 0 or y.max() >= L.n_classes):
            raise ValueError(f"labels must be 0..{L.n_classes - 1}")
        s = -np.ones((L.n_labels, y.size), np.float32)
        for c in range(L.label_copies):
            s[y * L.label_copies + c, np.arange(y.size)] = 1.0
        return s

    def clamped_state(self, sampler: GraphSampler, x01: np.ndarray, y: np.ndarray | None,
                      seed: int) -> GraphState:
        """Chains (one per image) with pixels set to the images x01 (B, n_visible) as spins 2x - 1,
        labels to y's spins (or -1 when y is None) and random hidden spins."""
        L = self.layout
        x01 = np.asarray(x01)
        state = sampler.new_state(x01.shape[0], seed=seed)
        state.s[L.visible] = (2.0 * x01.T - 1.0).astype(np.float32)
        state.s[L.labels] = -1.0 if y is None else self.label_spins(y)
        return state

    def mask(self, *groups: str) -> np.ndarray:
        """Boolean mask (n_units,) of the named groups ("visible", "labels", "hidden")."""
        m = np.zeros(self.layout.n_units, bool)
        for g in groups:
            m[getattr(self.layout, g)] = True
        return m

    def statistics(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(<s_i s_j> per edge, <s_i> per unit), averaged over the chains (columns) of s."""
        s = np.asarray(s, np.float64)
        return np.einsum("ec,ec->e", s[self.i], s[self.j]) / s.shape[1], s.mean(1)

    def class_scores(self, label_s: np.ndarray) -> np.ndarray:
        """(B, n_classes): label spins (n_labels, B) summed over each class's copies."""
        L = self.layout
        return np.asarray(label_s).reshape(L.n_classes, L.label_copies, -1).sum(1).T

    def classify(self, sampler: GraphSampler, x01: np.ndarray, sweeps: int, seed: int = 0,
                 y: np.ndarray | None = None, counts=(1, 2, 5, 10, 20, 50, 100, 200),
                 discard: float = 0.0) -> dict:
        """Pixels clamped to the images, labels and hidden units sampled for `sweeps` sweeps; the
        class after S sweeps is the argmax of the label spins summed over copies and over sweeps
        floor(discard * S) + 1 .. S (`discard` 0: every sweep; 0.5: the first half of the S sweeps
        is burn-in, left out of the sum). Returns {"pred": predictions after all sweeps,
        "accuracy_by_sweeps": {S: accuracy}} (the accuracies only when the true labels `y` are given)."""
        if not 0.0 <= discard < 1.0:
            raise ValueError(f"discard must be in [0, 1), got {discard}")
        state = self.clamped_state(sampler, x01, None, seed)
        clamp = self.mask("visible")
        sweeps = int(sweeps)
        report = sorted({int(c) for c in counts if 1 <= int(c) <= sweeps} | {sweeps})
        start = {c: int(discard * c) for c in report}  # sum over sweeps start[c] + 1 .. c
        keep = set(start.values())
        total = np.zeros((self.layout.n_labels, state.n_chains))
        kept = {0: total.copy()}  # running sums after the sweeps that start a reported window
        scores = {}
        for s in range(1, sweeps + 1):
            sampler.sweep(state, 1, clamp=clamp)
            total += state.s[self.layout.labels]
            if s in keep:
                kept[s] = total.copy()
            if s in start:
                scores[s] = self.class_scores(total - kept[start[s]])
        acc = {}
        if y is not None:
            acc = {c: float(np.mean(scores[c].argmax(1) == np.asarray(y))) for c in report}
        return {"pred": scores[sweeps].argmax(1), "accuracy_by_sweeps": acc}

    # --- files ------------------------------------------------------------------------------------
    def save(self, path: str | Path, extra: dict | None = None) -> Path:
        """The model as a numpy .npz (no pickled objects): the graph (edges i, j), couplings w,
        biases b, temperature, the layout and the conventions; `extra` as JSON text."""
        L = self.layout
        arrays = {
            "format": np.array(FORMAT),
            "convention": np.array("spins +/-1; E = -sum_e w_e s_i(e) s_j(e) - sum_i b_i s_i; "
                                   "p ~ exp(-E/T); units: visible, labels (class k copy c at "
                                   "n_visible + k*label_copies + c), hidden; pixel x in {0,1} -> s = 2x-1"),
            "i": self.i, "j": self.j, "w": self.w, "b": self.b,
            "temperature": np.float64(self.temperature),
            "n_visible": np.int64(L.n_visible), "n_classes": np.int64(L.n_classes),
            "label_copies": np.int64(L.label_copies), "n_hidden": np.int64(L.n_hidden),
            "extra": np.array(json.dumps(extra or {})),
        }
        path = Path(path)
        tmp = path.with_name(f".{path.name}.part")
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SparseBM:
        """A model saved by `save` (a foreign or damaged file: ValueError naming it)."""
        try:
            with np.load(path, allow_pickle=False) as f:
                if str(f["format"]) != FORMAT:
                    raise ValueError(f"{path} is not a sparse p-bit model (format {str(f['format'])!r})")
                layout = Layout(int(f["n_visible"]), int(f["n_classes"]), int(f["label_copies"]),
                                int(f["n_hidden"]))
                return cls(f["i"], f["j"], layout, f["w"], f["b"], float(f["temperature"]))
        except (OSError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path} cannot be read as a sparse p-bit model: {exc}") from exc


@dataclasses.dataclass
class SparseTrainConfig:
    """Settings of `SparseBMTrainer` (see the module text)."""

    epochs: int = 100
    batch_size: int = 100
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_decay: bool = True
    k_pos: int = 5
    k_neg: int = 5
    objective: str = "joint"
    alpha: float = 1.0
    chains: int = 100
    seed: int = 0
    threads: int = 1


class SparseBMTrainer:
    """PCD on colour blocks for a `SparseBM` on 0/1 images `x` (N, n_visible) with labels `y`."""

    def __init__(self, model: SparseBM, x: np.ndarray, y: np.ndarray, config: SparseTrainConfig) -> None:
        import torch

        self.model, self.x, self.y, self.cfg = model, np.asarray(x), np.asarray(y, np.int64), config
        if config.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {config.objective!r}")
        if not (math.isfinite(config.alpha) and config.alpha >= 0):
            raise ValueError(f"alpha must be finite and >= 0, got {config.alpha}")
        if self.x.shape[0] != self.y.size or self.x.shape[1] != model.layout.n_visible:
            raise ValueError(f"need images (N, {model.layout.n_visible}) and N labels, got {self.x.shape}, "
                             f"{self.y.shape}")
        self.sampler = GraphSampler(model.graph, "heatbath", threads=config.threads)
        self.chains = self.sampler.new_state(config.chains, seed=config.seed + 1)
        self.w = torch.tensor(model.w)
        self.b = torch.tensor(model.b)
        # the decay pulls the couplings only: a decayed bias would pull the pixels' marginals off
        self.optimizer = torch.optim.SGD([{"params": [self.w], "weight_decay": config.weight_decay},
                                          {"params": [self.b], "weight_decay": 0.0}],
                                         lr=config.lr, momentum=config.momentum)
        self.updates_per_epoch = math.ceil(self.y.size / config.batch_size)
        total = max(1, config.epochs * self.updates_per_epoch)
        decay = (lambda u: max(0.0, 1.0 - u / total)) if config.lr_decay else (lambda u: 1.0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, decay)
        self.epoch = 0
        self.updates = 0

    @staticmethod
    def initial_biases(model: SparseBM, x: np.ndarray) -> np.ndarray:
        """Visible biases at the data's pixel marginals (atanh of the mean spin, smoothed), the
        label biases at the one-of-classes marginal, hidden at 0."""
        L = model.layout
        b = np.zeros(L.n_units)
        p = (np.asarray(x, np.float64).sum(0) + 1.0) / (x.shape[0] + 2.0)
        b[L.visible] = np.arctanh(2 * p - 1)
        b[L.labels] = np.arctanh(2.0 / L.n_classes - 1)
        return b

    def step(self, x01: np.ndarray, y: np.ndarray) -> None:
        """One parameter update from a mini-batch."""
        import torch

        cfg, m = self.cfg, self.model
        seed = cfg.seed * 1_000_003 + self.updates
        pos = m.clamped_state(self.sampler, x01, y, seed)
        self.sampler.sweep(pos, cfg.k_pos, clamp=m.mask("visible", "labels"))
        corr_pos, mean_pos = m.statistics(pos.s)
        if cfg.objective in ("joint", "hybrid"):
            self.sampler.sweep(self.chains, cfg.k_neg)
            corr_neg, mean_neg = m.statistics(self.chains.s)
        else:  # conditional: the image clamped, labels and hidden from the start classification uses
            neg = m.clamped_state(self.sampler, x01, None, seed + 500_000)
            self.sampler.sweep(neg, cfg.k_neg, clamp=m.mask("visible"))
            corr_neg, mean_neg = m.statistics(neg.s)
        grad_w, grad_b = corr_neg - corr_pos, mean_neg - mean_pos  # the descent direction of -log p
        if cfg.objective == "hybrid":  # + alpha x (-log p(y | v))
            corr_c, mean_c = m.statistics(self.conditional_phase(pos, cfg.k_neg, seed + 500_000).s)
            grad_w = grad_w + cfg.alpha * (corr_c - corr_pos)
            grad_b = grad_b + cfg.alpha * (mean_c - mean_pos)
        self.optimizer.zero_grad()
        self.w.grad = torch.from_numpy(grad_w)
        self.b.grad = torch.from_numpy(grad_b)
        self.optimizer.step()
        self.scheduler.step()
        m.set_values(self.w.numpy(), self.b.numpy())
        self.updates += 1

    def conditional_phase(self, pos: GraphState, sweeps: int, seed: int) -> GraphState:
        """The negative phase of log p(y | v) started from the positive-phase chains `pos`: a copy
        of them with the labels released, `sweeps` sweeps of labels and hidden units with the
        images still clamped (new random streams from `seed`; `pos` is left as it was)."""
        cond = GraphState(pos.s.copy(), seed_streams(seed, pos.n_chains))
        self.sampler.sweep(cond, sweeps, clamp=self.model.mask("visible"))
        return cond

    def run_epoch(self) -> dict:
        """One pass over the training images in a shuffled order (seeded by epoch)."""
        t0 = time.perf_counter()
        order = np.random.default_rng([self.cfg.seed, self.epoch]).permutation(self.y.size)
        bs = self.cfg.batch_size
        for k in range(0, order.size, bs):
            idx = order[k:k + bs]
            self.step(self.x[idx], self.y[idx])
        self.epoch += 1
        return {"epoch": self.epoch, "sec": time.perf_counter() - t0,
                "lr": self.optimizer.param_groups[0]["lr"],
                "w_rms": float(np.sqrt(np.mean(self.model.w ** 2)))}

    def state_dict(self) -> dict:
        return {"w": self.w.clone(), "b": self.b.clone(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "chains_s": self.chains.s.copy(),
                "chains_rng": self.chains.rng.copy(), "epoch": self.epoch, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        import torch

        with torch.no_grad():
            self.w.copy_(state["w"])
            self.b.copy_(state["b"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.chains = GraphState(np.ascontiguousarray(state["chains_s"], np.float32),
                                 np.ascontiguousarray(state["chains_rng"], np.uint64))
        self.epoch, self.updates = int(state["epoch"]), int(state["updates"])
        self.model.set_values(self.w.numpy(), self.b.numpy())
