"""Steppable trainers of Boltzmann machines (the contract of the run controller):

    trainer = BMTrainer(BMTrainConfig(...), data)
    for epoch in range(cfg.epochs): metrics = trainer.run_epoch(epoch)
    trainer.evaluate(); trainer.state_dict(); trainer.load_state_dict(...)
    trainer.fit()   # the plain loop

Learning is either `gradient` (a torch optimiser fed with -dL/dtheta = -beta (f_target - f_model);
CD or PCD chains with any kernel, or parallel tempering with the heat-bath or Metropolis kernel;
the discriminative ClassRBM loss by autograd) or `relaxation` (the nanomagnetic learning dynamics
of labml.bm.relaxation).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from labml.bm import _sparse
from labml.bm.chains import Chains, Sampler
from labml.bm.evaluation import (
    ais_log_marginal_bm,
    ais_log_partition,
    classification_accuracy,
    exact_log_partition,
    log_unnormalised,
    model_samples,
    reverse_ais_log_partition,
)
from labml.bm.kernels import KERNELS, HeatBath, make_kernel
from labml.bm.models import BM, RBM, ClassRBM, bits_to_spins, log2cosh

logger = logging.getLogger(__name__)

MODELS = ("bm", "rbm", "classrbm")
LOSSES = ("generative", "discriminative", "hybrid")
#: the allowed values of the BMTrainConfig settings that are a choice
_CHOICES: dict[str, tuple[str, ...]] = {
    "model": MODELS, "loss": LOSSES, "chains": ("cd", "pcd", "pt"), "kernel": tuple(KERNELS),
    "learning": ("gradient", "relaxation"), "centering": ("data", "bits", "none"),
    "optimizer": ("sgd", "adam"),
}


def _bad(key: str, value: Any, why: str) -> None:
    from labml.errors import UserError

    raise UserError(f"bad BM setting {key}={value!r}: {why}")


@dataclass
class BMTrainConfig:
    """Settings of a Boltzmann-machine training run (units: temperature in energy units, kB = 1)."""

    model: str = "rbm"
    hidden: int = 16
    epochs: int = 10
    batch_size: int = 100
    lr: float = 0.01
    loss: str = "generative"
    chains: str = "pcd"
    kernel: str = "heatbath"
    learning: str = "gradient"
    k: int = 1
    pt_replicas: int = 10  # chains "pt": replicas at inverse temperatures beta * r, r from 1 down to
    pt_beta_min: float = 0.5  # pt_beta_min, evenly spaced
    temperature: float = 1.0
    optimizer: str = "sgd"  # "sgd" or "adam"
    momentum: float = 0.0
    weight_decay: float = 0.0
    decay_biases: bool = True  # False: weight_decay on the couplings (W, U) only, as Hinton 2010 advises
    hybrid_alpha: float = 0.01  # weight of the generative term in the hybrid loss
    dropout: float = 0.0  # ClassRBM discriminative/hybrid: hidden-unit dropout in training
    input_dropout: float = 0.0  # ClassRBM discriminative/hybrid: input-spin dropout in training
    pretrain_epochs: int = 0  # ClassRBM: first train generatively (SGD, pretrain_lr), then the loss
    pretrain_lr: float = 0.01
    init_std: float = 0.01
    visible_bias_init: str = "data"  # "data" (log-odds of pixel means) or "zero"
    # Coordinates of the gradient steps (a preconditioner; the model stays in +/-1 spins):
    # "data": centred at the data mean of v and a running mean of <h> (Melchior et al. 2016);
    # "bits": the 0/1 coordinates (offsets -1); "none": plain spin coordinates.
    centering: str = "data"
    centering_rate: float = 0.01
    lr_decay: bool = False  # linear decay of lr to 0 over the run
    fast: bool = True  # RBM, heat bath, k = 1, centred: the fused step (BMTrainer._fast_rbm_grad)
    seed: int = 0
    kernel_options: dict = field(default_factory=dict)  # e.g. {"dt": 0.02, "n_steps": 20}
    relaxation: dict = field(default_factory=dict)  # RelaxationConfig fields
    eval_ais_betas: int = 10000
    eval_ais_chains: int = 100
    eval_max_exact_hidden: int = 20  # RBM/ClassRBM exact log Z; BM: hidden summed exactly
    eval_max_exact_units: int = 24  # BM: exact log Z by enumerating all units
    eval_reverse_ais: bool = True
    eval_reverse_sweeps: int = 1000  # heat-bath sweeps of the chains that start reverse AIS
    n_train: int | None = None
    n_test: int | None = None
    data: str | None = None  # MNIST folder or "digits"; None: labml.data.resolve_data_dir's default

    def validate(self) -> None:
        """Raise a one-line UserError naming the first setting outside what is allowed."""
        from labml.checks import check_config_memory

        for key, choices in _CHOICES.items():
            if getattr(self, key) not in choices:
                _bad(key, getattr(self, key), f"choose one of {', '.join(choices)}")
        if self.loss != "generative" and self.model != "classrbm":
            _bad("loss", self.loss, "discriminative and hybrid losses need --model classrbm")
        if self.learning == "relaxation" and self.loss != "generative":
            _bad("loss", self.loss, "learning by relaxation is generative: use --loss generative")
        for key in ("hidden", "epochs", "batch_size", "k"):
            if getattr(self, key) < (0 if key == "hidden" and self.model == "bm" else 1):
                _bad(key, getattr(self, key), "must be >= 1")
        for key in ("lr", "temperature"):
            if not (getattr(self, key) > 0 and math.isfinite(getattr(self, key))):
                _bad(key, getattr(self, key), "must be a finite number > 0")
        self._check_evaluation_sizes()
        check_config_memory(self, "train bm", {
            "--hidden": "hidden", "--batch-size": "batch_size", "--ais-chains": "eval_ais_chains",
            "--train-size": "n_train", "--test-size": "n_test"})
        for key in ("dropout", "input_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                _bad(key, getattr(self, key), "must be in [0, 1)")
        if self.pretrain_epochs < 0:
            _bad("pretrain_epochs", self.pretrain_epochs, "must be >= 0")
        if self.chains == "pt":
            self._check_tempering()

    def _check_tempering(self) -> None:
        if self.model == "bm" or self.learning != "gradient":
            _bad("chains", "pt", "parallel tempering trains an RBM or ClassRBM by gradient")
        if self.kernel not in ("heatbath", "metropolis"):
            _bad("kernel", self.kernel, "parallel tempering (--chains pt) needs heatbath or metropolis")
        if not (isinstance(self.pt_replicas, int) and self.pt_replicas >= 2):
            _bad("pt_replicas", self.pt_replicas, "must be an integer >= 2")
        if not 0.0 < self.pt_beta_min < 1.0:
            _bad("pt_beta_min", self.pt_beta_min, "must be in (0, 1)")

    def _check_evaluation_sizes(self) -> None:
        if not (isinstance(self.eval_ais_betas, int) and self.eval_ais_betas >= 2):
            _bad("eval_ais_betas", self.eval_ais_betas, "must be an integer >= 2 (AIS runs from beta 0 to 1)")
        if not (isinstance(self.eval_ais_chains, int) and self.eval_ais_chains >= 1):
            _bad("eval_ais_chains", self.eval_ais_chains, "must be an integer >= 1")
        for key in ("n_train", "n_test"):
            v = getattr(self, key)
            if v is not None and not (isinstance(v, int) and v >= 1):
                _bad(key, v, "must be an integer >= 1 (or unset: all)")

    def memory_estimate(self) -> float:
        """Bytes of the largest allocations, from the declared sizes (784 visible units, 10 labels):
        the parameters with gradient and optimiser state (float32; a BM's couplings are (nv+nh)^2),
        the batch's and the AIS chains' states and conditional probabilities, and the data (float32)."""
        nv, nh = 784 + (10 if self.model == "classrbm" else 0), int(self.hidden)
        units = nv + nh
        params = float(units) ** 2 if self.model == "bm" else float(nv) * nh + units
        replicas = self.pt_replicas if self.chains == "pt" else 1
        chains = float(self.batch_size * replicas + self.eval_ais_chains) * units
        n_data = (self.n_train or 60_000) + (self.n_test or 10_000)
        return 4.0 * (4 * params + 6 * chains + 784.0 * n_data)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BMData:
    """Training/test data as 0/1 bits (float32) and integer labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @classmethod
    def load(
        cls, data=None, n_train: int | None = None, n_test: int | None = None, seed: int = 0
    ) -> tuple[BMData, Any]:
        """Binarised data through labml.data (the one loader of `labml train bm`, the train-bm run kind
        and protocol): pixels thresholded at 0.5 without pooling (784 inputs for MNIST), float32 0/1.

        data: an MNIST folder, "digits", or None (labml.data.resolve_data_dir: $LABML_DATA, the user
        data folder). The training set is shuffled with `seed` and cut to `n_train`; the test set is
        cut to a stratified `n_test`. Returns (BMData, the labml.data.Dataset it came from)."""
        from labml.data import load_dataset

        ds = load_dataset(data, preprocess_mode="threshold", val_fraction=0.0, train_size=n_train,
                          test_size=n_test, seed=seed)
        f32 = np.float32
        return cls(ds.X_train.astype(f32), ds.y_train, ds.X_test.astype(f32), ds.y_test), ds

    @classmethod
    def mnist(cls, data_dir=None, n_train: int | None = None, n_test: int | None = None,
              seed: int = 0) -> BMData:
        """`load` without the Dataset."""
        return cls.load(data_dir, n_train, n_test, seed)[0]


def _active_columns(X: torch.Tensor) -> torch.Tensor | None:
    """Indices of the columns of a +/-1 matrix that hold a +1 somewhere (None when that is most
    of them, so that a dense product is cheaper)."""
    S = (X.sum(0) > 0.5 - X.shape[0]).nonzero().squeeze(1)  # sums of +/-1 are exact
    return None if S.numel() > 0.85 * X.shape[1] else S


def _rows_of_product(L: torch.Tensor, R: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """L^T R where L = X - o (o a row vector) and X is +/-1: a column of X that is -1 in every
    row makes that column of L constant (-1 - o_i), so its row of L^T R is (-1 - o_i) 1^T R;
    only the other columns need the matrix product (exact algebra)."""
    S = _active_columns(X)
    if S is None:
        return L.t() @ R
    out = torch.outer(L[0], R.sum(0))  # right for the constant columns
    out.index_copy_(0, S, L.index_select(1, S).t() @ R)
    return out


class BMTrainer:
    """Trainer of a BM / RBM / ClassRBM (steppable: run_epoch, evaluate, state_dict)."""

    def __init__(self, config: BMTrainConfig, data: BMData, rig=None) -> None:
        config.validate()
        self.config = config
        self.data = data
        self.rig = rig
        # every draw (initialisation, chains, kernels, dropout, shuffling) comes from these two
        # generators, saved in state_dict(); torch's and numpy's global generators are never used
        self.generator = torch.Generator().manual_seed(config.seed)
        self.np_rng = np.random.default_rng(config.seed)
        self.v_train = bits_to_spins(torch.as_tensor(data.x_train, dtype=torch.float32))
        self.v_test = bits_to_spins(torch.as_tensor(data.x_test, dtype=torch.float32))
        top = max(np.max(data.y_train, initial=0), np.max(data.y_test, initial=0))  # a set may be empty
        self.n_classes = int(top + 1) if len(data.y_train) else 10
        self.l_train = torch.as_tensor(data.y_train, dtype=torch.int64)
        self.l_test = torch.as_tensor(data.y_test, dtype=torch.int64)
        self.y_train = torch.nn.functional.one_hot(self.l_train, self.n_classes).float()
        self.y_test = torch.nn.functional.one_hot(self.l_test, self.n_classes).float()
        nv = self.v_train.shape[1]
        c = config
        if c.model == "rbm":
            self.model = RBM(nv, c.hidden, c.temperature, c.init_std, self.generator)
        elif c.model == "classrbm":
            self.model = ClassRBM(nv, c.hidden, self.n_classes, c.temperature, c.init_std, self.generator)
        else:
            self.model = BM(nv, c.hidden, c.temperature, c.init_std, self.generator)
        if c.visible_bias_init == "data" and not isinstance(self.model, BM):
            self.model.init_visible_bias(0.5 * (self.v_train + 1))
        elif c.visible_bias_init == "data":
            p = (0.5 * (self.v_train + 1)).mean(0).clamp(1e-3, 1 - 1e-3)
            with torch.no_grad():
                self.model.b[:nv] = 0.5 * c.temperature * torch.log(p / (1 - p))
        self.kernel = make_kernel(c.kernel, self.generator, rig=rig, **c.kernel_options)
        self.sampler = Sampler(self.model, self.kernel, self.generator)
        self.chains = Chains(self.sampler, c.chains, c.k, c.batch_size, beta_ratios=self.pt_ratios(c))
        params = list(self.model.parameters())
        groups: list = params
        if not c.decay_biases:  # couplings are the parameters with two axes, biases have one
            groups = [{"params": [p for p in params if p.dim() >= 2]},
                      {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        if c.optimizer == "adam":
            self.optimizer = torch.optim.Adam(groups, lr=c.lr, weight_decay=c.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(
                groups, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay
            )
        self.pretrain_optimizer = torch.optim.SGD(params, lr=c.pretrain_lr) if c.pretrain_epochs > 0 else None
        self.relaxation = None
        if c.learning == "relaxation":
            from labml.bm.relaxation import RelaxationConfig, RelaxationDevice

            opts = {"tau_spin": 1.0, "dt": 1.0, "tau_data": float(c.k), **c.relaxation}
            if "tau_theta" not in opts and "mu_theta" not in opts:
                # equivalent PCD step per data item = tau_data / tau_theta = lr
                opts["tau_theta"] = opts["tau_data"] / c.lr
            rc = RelaxationConfig(**opts)
            self.relaxation = RelaxationDevice(
                self.model, self.kernel, rc, n_copies=c.batch_size, generator=self.generator
            )
        self._fast: dict | None = None  # sparse index, buffers and bits of the fast RBM step
        self._binary_train: bool | None = None
        self.epoch = 0
        self.updates = 0
        self.history: list[dict] = []
        # centring offsets (spin units) of visible and hidden units
        self.offset_v: torch.Tensor | None = None
        self.offset_h: torch.Tensor | None = None
        if isinstance(self.model, RBM | ClassRBM) and c.centering != "none":
            if c.centering == "bits":
                self.offset_v = -torch.ones(nv)
                self.offset_h = -torch.ones(c.hidden)
            else:
                self.offset_v = self.v_train.mean(0)
                self.offset_h = torch.zeros(c.hidden)

    def replace_training_inputs(self, x_train: np.ndarray) -> None:
        """New 0/1 training inputs for the same items (same shape, same labels), e.g. a fresh
        stochastic binarisation each epoch. Model, optimiser, chains, generators and centring
        offsets are kept."""
        v = bits_to_spins(torch.as_tensor(x_train, dtype=torch.float32))
        if v.shape != self.v_train.shape:
            raise ValueError(f"new training inputs of shape {tuple(v.shape)}, "
                             f"not {tuple(self.v_train.shape)}")
        self.v_train = v
        self._binary_train = None
        if self._fast is not None:  # keep the fast step's bit generator, index the new inputs
            self._fast.update(self._sparse_train_index())

    # ------------------------------------------------------------------ learning steps
    def _set_generative_grad(self, v: torch.Tensor, y: torch.Tensor | None, scale: float = 1.0) -> None:
        """Accumulate -scale * beta * (f_target - f_model) into .grad of every parameter."""
        m = self.model
        beta = m.beta
        with torch.no_grad():
            if isinstance(m, RBM):
                # one matrix product for both weight statistics: [v; v_m]^T [h / n; -h_m / n_m]
                hf = m.hidden_field(v)
                h_t = torch.tanh(beta * hf)
                neg = self.chains.negative(v, y, hf)
                vm, hm = neg["v"], neg["h"]
                hmean_t = h_t.mean(0)
                if self.offset_v is not None and vm.shape[0] == v.shape[0]:
                    self._centred_rbm_grad(v, h_t, vm, hm, hmean_t, -scale * beta)
                    return
                D = {
                    "W": torch.cat([v, vm]).t() @ torch.cat([h_t / v.shape[0], hm / -vm.shape[0]]),
                    "a": v.mean(0) - vm.mean(0),
                    "b": hmean_t - hm.mean(0),
                }
                self._apply_generative_grad(D, {"b": hmean_t}, scale)
                return
            if isinstance(m, ClassRBM):
                hf = m.hidden_field(v, y)
                f_t = m.forces({"v": v, "y": y}, torch.tanh(beta * hf))
            else:
                hf = None
                if m.n_hidden:
                    st = self.sampler.state_from_data(v)
                    st = self.sampler.run(st, max(self.config.k, 5), clamped=("v",))
                    f_t = m.forces(self.sampler.values(st))
                else:
                    f_t = m.forces({"s": v})
            neg = self.chains.negative(v, y, hf)
            f_m = m.forces(neg)
            D = {name: f_t[name] - f_m[name] for name in f_t}
            self._apply_generative_grad(D, f_t, scale)

    def _centred_rbm_grad(self, v, h_t, vm, hm, hmean_t, c: float) -> None:
        """The centred RBM step with the centring folded into the inputs of one matrix product.

        With L = [v; v_m] - o_v, weights w = [1/n ...; -1/n ...] (sum 0) and R = w (H - o_h):
        G_W = L^T R = D_W - o_v D_b^T - D_a o_h^T, D_a = L^T w, D_b = R^T 1, and the model-space
        steps a: D_a - G_W o_h = L^T (w - R o_h), b: D_b - G_W^T o_v = R^T (1 - L o_v); all times c.
        Identical to `_centred_step` on the force differences (tested), with no extra pass over W.
        """
        m = self.model
        ov, oh = self.offset_v, self.offset_h
        if self.config.centering == "data":
            oh.mul_(1 - self.config.centering_rate).add_(self.config.centering_rate * hmean_t)
        n = v.shape[0]
        w = torch.cat([torch.full((n,), c / n, dtype=v.dtype), torch.full((n,), -c / n, dtype=v.dtype)])
        X = torch.cat([v, vm])
        L = X - ov
        R = torch.cat([h_t, hm]).sub_(oh).mul_(w[:, None])
        grads = {"W": _rows_of_product(L, R, X), "a": L.t() @ (w - R @ oh), "b": R.t() @ (1.0 - L @ ov)}
        for name, p in m.named_parameters():
            p.grad = grads[name] if p.grad is None else p.grad + grads[name]

    @staticmethod
    def pt_ratios(c: BMTrainConfig) -> tuple[float, ...]:
        """Inverse-temperature factors of the parallel-tempering replicas (none for cd / pcd)."""
        if c.chains != "pt":
            return ()
        return tuple(1.0 - (1.0 - c.pt_beta_min) * i / (c.pt_replicas - 1) for i in range(c.pt_replicas))

    def _fast_rbm_applies(self, n_items: int | None = None) -> bool:
        """Whether the fused RBM heat-bath CD-1/PCD-1 step (`_fast_rbm_grad`) applies (to a batch
        of `n_items`: persistent chains must be as many as the items)."""
        c = self.config
        if self._binary_train is None:  # the sparse index needs +/-1 data
            self._binary_train = bool(((self.v_train == 1.0) | (self.v_train == -1.0)).all())
        return (
            c.fast
            and type(self.model) is RBM
            and type(self.kernel) is HeatBath
            and c.k == 1
            and c.chains in ("cd", "pcd")
            and self.offset_v is not None
            and self.chains.n_chains == c.batch_size
            and self._binary_train
            and (n_items is None or c.chains == "cd" or n_items == self.chains.n_chains)
        )

    def _sparse_field(
        self, indptr: np.ndarray, indices: np.ndarray, rows: slice, base: torch.Tensor
    ) -> torch.Tensor:
        """b + v W for the +/-1 rows whose +1 columns are CSR rows `rows` of (indptr, indices):
        v = 2 x - 1 with x in {0, 1}, so v W = 2 x W - colsum(W), and x W sums the rows of W of
        each item's +1 pixels (`torch.nn.functional.embedding_bag`, fbgemm). `base` must be
        b - colsum(W)."""
        ptr = indptr[rows.start : rows.stop + 1]
        xW = torch.nn.functional.embedding_bag(
            torch.from_numpy(indices[ptr[0] : ptr[-1]]),
            self.model.W,
            torch.from_numpy(ptr - ptr[0]),
            mode="sum",
            include_last_offset=True,
        )
        return xW.mul_(2.0).add_(base)

    def _sparse_train_index(self) -> dict:
        """CSR index (row pointers, +1 columns) of the training spins, for the fast step."""
        x = (self.v_train > 0).numpy()
        return {"train_indptr": np.concatenate([[0], np.cumsum(x.sum(1))]).astype(np.int64),
                "train_indices": x.nonzero()[1].astype(np.int64)}

    def _fast_buffers(self, n: int) -> dict:
        """The fast step's sparse index of the training set (built once, rebuilt by
        `replace_training_inputs`), its per-batch CSR
        buffers and its bit generator (numpy SFC64, seeded from the config's seed; saved with
        the checkpoint)."""
        if self._fast is None:
            self._fast = {"bits": np.random.SFC64(np.random.SeedSequence([self.config.seed, 0xB17])),
                          **self._sparse_train_index()}
        f = self._fast
        nv = self.v_train.shape[1]
        if f.get("n") != n:
            f["n"] = n
            f["indptr"] = np.zeros(2 * n + 1, np.int64)
            f["indices"] = np.empty(2 * n * nv, np.int64)
        return f

    def _draw(self, p: torch.Tensor, index_rows: int | None = None) -> torch.Tensor:
        """Heat-bath spins with P(+1) = p (`_sparse.draw_spins`); with `index_rows`, their +1
        columns are also appended to the batch CSR index from that row on."""
        f = self._fast
        raw = _sparse.raw_uint32(f["bits"], tuple(p.shape))
        s = torch.empty_like(p)
        if index_rows is None:
            _sparse.draw_spins(p.numpy(), raw, s.numpy())
        else:
            _sparse.draw_spins_indexed(p.numpy(), raw, s.numpy(), f["indptr"], f["indices"], index_rows)
        return s

    def _fast_rbm_grad(self, idx: np.ndarray) -> None:
        """Centred CD-1 / PCD-1 gradient of an RBM with the heat-bath kernel, fused and sparse.

        The same Markov chain and the same statistics as `_set_generative_grad`, computed with
        exact shortcuts (tested against the dense formulas on the same spins):
        - the data and the visible model samples are sparse (about 13 % of MNIST pixels are +1):
          their hidden fields sum the rows of W of each item's +1 pixels (`_sparse_field`), and
          the weight statistics L^T R (L = [v; v_m] - o_v) are 2 x^T R - (1 + o_v) colsum(R)
          with x^T R summed over the +1 pixels only (`_sparse.xt_r`);
        - the spins are drawn by one fused kernel from 32-bit integers of the trainer's own SFC64
          bit generator (`_sparse`), which also indexes the +1 pixels of the visible samples;
        - CD-1 does not draw the last hidden sample, which its statistics never use (they use
          the exact conditional mean tanh(beta h) = 2 sigmoid(2 beta h) - 1, computed from the
          probabilities already needed for the draws).
        """
        m = self.model
        beta = m.beta
        n = len(idx)
        f = self._fast_buffers(n)
        indptr, indices = f["indptr"], f["indices"]
        rows = np.asarray(idx, np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(f["train_indptr"]) - 1):
            # the numba kernels do not check bounds
            raise IndexError(f"training item index out of range 0..{len(f['train_indptr']) - 2}")
        with torch.no_grad():
            base = m.b - m.W.sum(0)
            _sparse.gather_rows(f["train_indptr"], f["train_indices"], rows, indptr, indices)
            p_t = self._sparse_field(indptr, indices, slice(0, n), base).mul_(2.0 * beta).sigmoid_()
            if self.chains.kind == "cd":
                h0 = self._draw(p_t)
            else:
                if self.chains.state is None:
                    self.chains.init_persistent(self.v_train[idx])
                h0 = self.chains.state["h"]
            p_v = torch.addmm(m.a, h0, m.W.t()).mul_(2.0 * beta).sigmoid_()
            vm = self._draw(p_v, index_rows=n)
            p_m = self._sparse_field(indptr, indices, slice(n, 2 * n), base).mul_(2.0 * beta).sigmoid_()
            if self.chains.kind == "pcd":
                self.chains.state = {"v": vm, "h": self._draw(p_m)}
            h_t = p_t.mul_(2.0).sub_(1.0)
            hm = p_m.mul_(2.0).sub_(1.0)
            self._sparse_centred_grad(n, h_t, hm, -beta)

    def _sparse_centred_grad(self, n: int, h_t, hm, c: float) -> None:
        """`_centred_rbm_grad` from the batch's sparse index (x: the 0/1 form of [v; v_m], 2n
        rows; L = 2 x - 1 - o_v): W: L^T R = 2 x^T R - (1 + o_v) 1^T R; a: L^T q =
        2 x^T q - (1 + o_v) 1^T q with q = w - R o_h; b: R^T (1 - L o_v) with
        L o_v = 2 x o_v - (1 + o_v)^T o_v."""
        m = self.model
        f = self._fast
        ov, oh = self.offset_v, self.offset_h
        if self.config.centering == "data":
            oh.mul_(1 - self.config.centering_rate).add_(self.config.centering_rate * h_t.mean(0))
        R = torch.cat([h_t, hm]).sub_(oh)
        R[:n] *= c / n
        R[n:] *= -c / n
        G = torch.empty_like(m.W)
        _sparse.xt_r(f["indptr"], f["indices"], R.numpy(), G.numpy())
        one_ov = 1.0 + ov
        G.mul_(2.0).addr_(one_ov, R.sum(0), alpha=-1.0)
        q = -(R @ oh)
        q[:n] += c / n
        q[n:] -= c / n
        xtq = torch.empty_like(ov)
        xo = torch.empty_like(q)
        _sparse.x_products(f["indptr"], f["indices"], q.numpy(), ov.numpy(), xtq.numpy(), xo.numpy())
        ga = xtq.mul_(2.0).sub_(one_ov * q.sum())
        gb = R.t() @ xo.mul_(-2.0).add_(1.0 + float(one_ov @ ov))
        grads = {"W": G, "a": ga, "b": gb}
        for name, p in m.named_parameters():
            p.grad = grads[name] if p.grad is None else p.grad + grads[name]

    def _apply_generative_grad(self, D: dict, f_t: dict, scale: float) -> None:
        """.grad += -scale * beta * D (after the centring transform when enabled)."""
        m = self.model
        if self.offset_v is not None:
            D = self._centred_step(D, f_t)
        for name, p in m.named_parameters():
            g = D[name].mul_(-scale * m.beta)
            p.grad = g if p.grad is None else p.grad + g

    def _centred_step(self, D: dict, f_t: dict) -> dict:
        """Turn the force differences into the parameter step of the centred parametrisation
        E = -(v - o_v)^T W (h - o_h) - a_c^T (v - o_v) - b_c^T (h - o_h) (- y^T U (h - o_h) - d_c^T y),
        expressed in the model's own parameters (a = a_c - W o_h, b = b_c - W^T o_v, d = d_c - U o_h)."""
        ov, oh = self.offset_v, self.offset_h
        if self.config.centering == "data":  # running mean of the data's hidden activity
            oh.mul_(1 - self.config.centering_rate).add_(self.config.centering_rate * f_t["b"])
        Gw = D["W"].addr_(ov, D["b"], alpha=-1).addr_(D["a"], oh, alpha=-1)
        out = {"W": Gw, "a": D["a"] - Gw @ oh, "b": D["b"] - Gw.t() @ ov}
        if "U" in D:
            Gu = D["U"] - torch.outer(D["d"], oh)
            out["U"] = Gu
            out["d"] = D["d"] - Gu @ oh
        return out

    def _discriminative_loss(self, v: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """-log p(y | v) averaged over the batch (exact, by autograd). With `dropout` > 0 each hidden
        unit's term of F(v, y) is dropped with that probability (inverted scaling), and with
        `input_dropout` > 0 input spins are set to 0 (neutral) with that probability: regularisers
        for small training sets, used only in training."""
        m = self.model
        c = self.config
        beta = m.beta
        if c.input_dropout > 0:
            keep = torch.rand(v.shape, generator=self.generator) >= c.input_dropout
            v = v * keep / (1 - c.input_dropout)
        if c.dropout <= 0:
            logits = -beta * m.free_energy_all_classes(v)
        else:
            pre = torch.addmm(m.b, v, m.W)[:, None, :] + m.U[None, :, :]  # (B, C, H)
            terms = log2cosh(beta * pre)
            keep = (torch.rand(v.shape[0], 1, m.n_hidden, generator=self.generator) >= c.dropout).to(v.dtype)
            logits = beta * m.d[None, :] + (terms * keep).sum(-1) / (1 - c.dropout)
        return torch.nn.functional.cross_entropy(logits, labels)

    def train_batch(self, idx: np.ndarray) -> dict:
        c = self.config
        pretraining = self.pretrain_optimizer is not None and self.epoch < c.pretrain_epochs
        loss_kind = "generative" if pretraining else c.loss
        fast = loss_kind == "generative" and self._fast_rbm_applies(len(idx))
        v = None if fast else self.v_train[idx]  # the fast step reads the sparse index instead
        y = self.y_train[idx] if isinstance(self.model, ClassRBM) else None
        opt = self.pretrain_optimizer if pretraining else self.optimizer
        opt.zero_grad(set_to_none=True)
        out = {}
        centred_disc = loss_kind in ("discriminative", "hybrid") and self.offset_v is not None
        if loss_kind in ("discriminative", "hybrid"):
            loss = self._discriminative_loss(v, self.l_train[idx])
            loss.backward()
            out["disc_loss"] = float(loss.detach())
            if centred_disc:
                # gradient in centred coordinates (b = b_c - W^T o_v): a pixel that never changes
                # then gets no weight gradient (it would otherwise duplicate the hidden bias)
                m = self.model
                m.W.grad.sub_(torch.outer(self.offset_v, m.b.grad))
                W_before = m.W.detach().clone()
        if fast:
            self._fast_rbm_grad(idx)
        elif loss_kind == "generative":
            self._set_generative_grad(v, y)
        elif loss_kind == "hybrid":
            self._set_generative_grad(v, y, scale=c.hybrid_alpha)
        opt.step()
        if centred_disc:
            with torch.no_grad():
                m.b.sub_((m.W - W_before).t() @ self.offset_v)
        if isinstance(self.model, BM):
            with torch.no_grad():  # keep the raw coupling symmetric with zero diagonal
                self.model.W.copy_(self.model.coupling())
        self.updates += 1
        return out

    def _set_lr(self, epoch: int, frac: float) -> None:
        if not self.config.lr_decay:
            return
        progress = (epoch + frac) / self.config.epochs
        for g in self.optimizer.param_groups:
            g["lr"] = self.config.lr * max(0.0, 1.0 - progress)

    def run_epoch(self, epoch: int) -> dict:
        """One pass over the training data in shuffled batches; returns metrics."""
        c = self.config
        t0 = time.perf_counter()
        n = self.v_train.shape[0]
        if self.relaxation is not None:
            y = self.y_train if isinstance(self.model, ClassRBM) else None
            out = self.relaxation.run_epoch(self.v_train, self.np_rng, y)
            self.updates += out.get("parameter_moves", 0)
        else:
            perm = self.np_rng.permutation(n)
            nb = max(1, n // c.batch_size)
            disc = []
            for i in range(nb):
                self._set_lr(epoch, i / nb)
                r = self.train_batch(perm[i * c.batch_size : (i + 1) * c.batch_size])
                if "disc_loss" in r:
                    disc.append(r["disc_loss"])
            out = {"disc_loss": float(np.mean(disc))} if disc else {}
        self.epoch = epoch + 1
        metrics = {"epoch": epoch, "updates": self.updates, "sec": time.perf_counter() - t0, **out}
        metrics["recon_error"] = self.reconstruction_error()
        self.history.append(metrics)
        logger.info("epoch %d: %s", epoch, metrics)
        return metrics

    @torch.no_grad()
    def reconstruction_error(self, n: int = 500) -> float:
        """Mean squared one-step reconstruction error of n training items (a cheap progress signal)."""
        m = self.model
        v = self.v_train[:n]
        if isinstance(m, BM):
            return float("nan")
        if isinstance(m, ClassRBM):
            mh = m.mean_hidden(v, self.y_train[:n])
        else:
            mh = m.mean_hidden(v)
        rv = torch.tanh(m.beta * torch.addmm(m.a, mh, m.W.t()))
        return float(((rv - v) ** 2).mean() / 4)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self) -> dict:
        """test_loglik (nats per test item: log p(v), or log p(v, y) for a ClassRBM) with
        loglik_method "exact" (hidden <= eval_max_exact_hidden, or a BM of <= 24 units) or "ais"
        (forward AIS for log Z, reverse AIS beside it when eval_reverse_ais; a BM with more than
        20 hidden units also gets its visible marginals by AIS), test_accuracy (ClassRBM)."""
        c = self.config
        m = self.model
        out: dict = {"test_loglik": None, "loglik_method": None}
        if len(self.v_test) == 0:  # no test set (a final model trained on every item): no figures
            return out
        exact_ok = (
            (isinstance(m, RBM | ClassRBM) and m.n_hidden <= c.eval_max_exact_hidden)
            or (isinstance(m, RBM) and m.n_visible <= c.eval_max_exact_hidden)
            or (isinstance(m, BM) and m.n_units <= min(24, c.eval_max_exact_units))
        )
        md = m.double()
        try:
            v = self.v_test.double()
            y = self.y_test.double() if isinstance(m, ClassRBM) else None
            marginal_by_ais = isinstance(m, BM) and m.n_hidden > min(20, c.eval_max_exact_hidden)
            if marginal_by_ais:
                lu = ais_log_marginal_bm(
                    md, v, c.eval_ais_betas, torch.Generator().manual_seed(c.seed + 4), 4
                )
                lu_mean = float(lu.mean())
            else:
                lu_mean = float(log_unnormalised(md, v, y).mean())
            if exact_ok:
                logZ = exact_log_partition(md)
                out["loglik_method"] = "ais" if marginal_by_ais else "exact"
            else:
                ais = ais_log_partition(
                    md,
                    c.eval_ais_betas,
                    c.eval_ais_chains,
                    self.v_train.double(),
                    torch.Generator().manual_seed(c.seed + 1),
                )
                logZ = ais.log_Z
                out["loglik_method"] = "ais"
                out["ais_log_Z"] = ais.log_Z
                out["ais_log_Z_rel_se"] = ais.log_Z_std
                if c.eval_reverse_ais:
                    n = c.eval_ais_chains
                    y0 = self.y_train[:n].double() if isinstance(m, ClassRBM) else None
                    start = model_samples(
                        md,
                        n,
                        c.eval_reverse_sweeps,
                        self.v_train[:n].double(),
                        torch.Generator().manual_seed(c.seed + 2),
                        y_init=y0,
                        joint=True,
                    )
                    rev = reverse_ais_log_partition(
                        md,
                        start,
                        c.eval_ais_betas,
                        self.v_train.double(),
                        torch.Generator().manual_seed(c.seed + 3),
                    )
                    out["reverse_ais_log_Z"] = rev.log_Z
                    out["test_loglik_reverse_ais"] = lu_mean - rev.log_Z
            out["log_Z"] = logZ
            out["test_loglik"] = lu_mean - logZ
            if isinstance(m, ClassRBM):
                out["test_accuracy"] = classification_accuracy(md, v, self.l_test)
                out["test_cond_loglik"] = float(md.class_log_prob(v).gather(1, self.l_test[:, None]).mean())
        finally:
            m.float()
        return out

    def sample_grid(self, path, n: int = 100, n_sweeps: int = 1000) -> None:
        """PNG of model samples (RBM: long heat-bath chains started at training items)."""
        from labml.bm.evaluation import save_sample_grid

        m = self.model
        if isinstance(m, RBM):
            v = model_samples(
                m,
                n,
                n_sweeps,
                self.v_train[torch.randperm(len(self.v_train), generator=self.generator)[:n]],
                self.generator,
            )
        elif isinstance(m, ClassRBM):
            s = Sampler(m, make_kernel("heatbath", self.generator), self.generator)
            idx = torch.arange(n) % self.n_classes
            y = torch.nn.functional.one_hot(idx, self.n_classes).float()
            st = s.state_from_data(
                self.v_train[torch.randperm(len(self.v_train), generator=self.generator)[:n]], y
            )
            st = s.run(st, n_sweeps, clamped=("y",))  # one class per column
            v = st["v"]
        else:
            s = Sampler(m, make_kernel("heatbath", self.generator), self.generator)
            v = s.run(s.random_state(n), min(n_sweeps, 50))["s"][:, : m.n_visible]
        side = int(round(v.shape[1] ** 0.5))
        shape = (side, side) if side * side == v.shape[1] else (1, v.shape[1])
        save_sample_grid(v, path, shape=shape, title=f"{self.config.model} samples")

    # ------------------------------------------------------------------ checkpointing
    def _optimizer_state_for_groups(self, saved: dict) -> dict:
        """A saved optimiser state with one parameter group (every parameter decayed: checkpoints
        from before `decay_biases`) for an optimiser with two (couplings, biases), or the reverse.
        The groups list the parameters in the model's order (couplings first), so the
        per-parameter state (momentum, Adam moments) keeps its indices; the hyperparameters are
        the current configuration's."""
        current = self.optimizer.state_dict()
        if len(saved["param_groups"]) == len(current["param_groups"]):
            return saved
        couplings_first = [p.dim() >= 2 for p in self.model.parameters()]
        n_saved = sum(len(g["params"]) for g in saved["param_groups"])
        if couplings_first != sorted(couplings_first, reverse=True) or n_saved != len(couplings_first):
            raise ValueError("the checkpoint's optimiser groups do not match this model's parameters")
        return {"state": saved["state"], "param_groups": current["param_groups"]}

    def state_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "model": {k: v.clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "pretrain_optimizer": (
                None if self.pretrain_optimizer is None else self.pretrain_optimizer.state_dict()
            ),
            "chains": self.chains.state_dict(),
            "kernel": self.kernel.state_dict(),
            "relaxation": None if self.relaxation is None else self.relaxation.state_dict(),
            "generator": self.generator.get_state(),
            "np_rng": self.np_rng.bit_generator.state,
            "fast_bits": None if self._fast is None else self._fast["bits"].state,
            "offset_v": None if self.offset_v is None else self.offset_v.clone(),
            "offset_h": None if self.offset_h is None else self.offset_h.clone(),
            "epoch": self.epoch,
            "updates": self.updates,
            "history": list(self.history),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(self._optimizer_state_for_groups(state["optimizer"]))
        if self.pretrain_optimizer is not None and state.get("pretrain_optimizer") is not None:
            self.pretrain_optimizer.load_state_dict(state["pretrain_optimizer"])
        self.chains.load_state_dict(state["chains"])
        self.kernel.load_state_dict(state.get("kernel", {}))
        if self.relaxation is not None and state.get("relaxation") is not None:
            self.relaxation.load_state_dict(state["relaxation"])
        self.generator.set_state(state["generator"])
        self.np_rng.bit_generator.state = state["np_rng"]
        if state.get("fast_bits") is not None:
            self._fast_buffers(self.config.batch_size)["bits"].state = state["fast_bits"]
        else:  # saved before the first fast step: start its bits afresh, as that trainer would
            self._fast = None
        for key in ("offset_v", "offset_h"):
            value = state.get(key)
            setattr(self, key, None if value is None else value.clone())
        self.epoch = int(state["epoch"])
        self.updates = int(state["updates"])
        self.history = list(state.get("history", []))

    def fit(self, callback=None) -> BMTrainer:
        """Plain loop: run_epoch from the current epoch to config.epochs; `callback(metrics)` after each."""
        for epoch in range(self.epoch, self.config.epochs):
            metrics = self.run_epoch(epoch)
            if callback is not None:
                callback(metrics)
        return self
