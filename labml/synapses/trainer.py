"""Training of stochastic-synapse networks with the reference protocol of [E23] (SCIENCE.md section 4).

`SynapseTrainer` is steppable, so the run kind train-synapses (labml.synapses.kind) runs it on the engine:
`run_epoch(epoch) -> dict`, `state_dict()` / `load_state_dict()` (model, optimiser, RNG states, cursor,
early-stopping state), `evaluate() -> dict`, and a plain `fit()` loop that uses them.

Reference protocol: softmax cross-entropy, Adam (lr 0.02), batch 64, early stopping with patience 20 on
a 20 % validation split (best validation accuracy; the best model is restored before testing), test
accuracy = mean accuracy over 16 stochastic passes over the test set. H is projected onto the allowed
field range after every optimiser step.

Backends: "model" (reads drawn by the exact sampler) or "rig" (every read a read of the attached rig
through `rig.read_synapses`, see `labml.synapses.rig`).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from labml.data import Dataset, load_dataset, stratified_subset
from labml.errors import UserError
from labml.synapses.models import (
    ACTIVATIONS,
    MODELS,
    MeanFieldNet,
    Perceptron,
    StochasticSynapseNet,
)
from labml.synapses.sampling import SAMPLERS

logger = logging.getLogger(__name__)


@dataclass
class SynapseTrainConfig:
    """Settings of one training run (all JSON-serialisable; recorded in run.json).

    n: reads per synapse per input; model: "stochastic" | "perceptron" | "meanfield"; hidden: sizes of
    hidden layers; activation between layers ("step" is the only one a rig runs in the loop); signed:
    differential pairs; variance_term: False drops the s-term of the gradient; epochs: maximum epochs;
    patience: early-stopping patience in epochs (0: off); lr: Adam learning rate; batch_size;
    val_fraction: validation split of the training set; train_size: training images before the split
    (None: all); test_size: stratified test subset (None: the full test set); test_passes: stochastic
    passes averaged for test accuracy; data: MNIST folder or "digits" (None: labml.data.resolve_data_dir);
    backend: "model" | "rig"; rig: rig spec for labml.rigs.open_rig ("sim" or a TOML path);
    field_range_mT: allowed H range of the model backend (the rig's field_range_mT(wire) on a rig);
    field_step_mT: quantisation of fields by the rig planner; calibrate: measure each wire's curve on the
    rig before training instead of using its stored calibration; sampler: "fast" (exact) or "binomial"
    (torch.binomial reference); threads: torch threads; spread_H0_mT / spread_k_rel: device-to-device
    spread of the model backend (every synapse gets its own curve: H0 + N(0, spread_H0_mT),
    k * (1 + N(0, spread_k_rel)); learning sees each synapse's own curve); rig_test_passes: stochastic
    passes of inference on a rig (labml.synapses.rig.evaluate_on_rig).
    """

    n: int = 1
    model: str = "stochastic"
    hidden: list[int] = field(default_factory=list)
    activation: str = "step"
    signed: bool = False
    variance_term: bool = True
    epochs: int = 100
    patience: int = 20
    lr: float = 0.02
    batch_size: int = 64
    val_fraction: float = 0.2
    train_size: int | None = None
    test_size: int | None = None
    test_passes: int = 16
    seed: int = 0
    data: str | None = None
    backend: str = "model"
    rig: str | None = None
    field_range_mT: list[float] = field(default_factory=lambda: [0.0, 10.0])
    field_step_mT: float = 0.01
    calibrate: bool = False
    sampler: str = "fast"
    threads: int = 1
    spread_H0_mT: float = 0.0
    spread_k_rel: float = 0.0
    rig_test_passes: int = 1

    def validate(self) -> None:
        """UserError naming the command-line option, the value and the allowed range for every
        setting out of range, and when the declared sizes cannot fit in the memory available."""
        from labml.checks import check_config_memory, check_float, check_int

        def bad(name: str, want: str) -> UserError:
            return UserError(f"train synapses: {name} must be {want}, got {getattr(self, name)!r}")

        check_int("--n", self.n, 1)
        if self.model not in MODELS:
            raise bad("model", f"one of {', '.join(MODELS)}")
        if not isinstance(self.hidden, list | tuple):
            raise bad("hidden", "a list of integers >= 1")
        for h in self.hidden:
            check_int("--hidden", h, 1)
        if self.activation not in ACTIVATIONS:
            raise bad("activation", f"one of {', '.join(ACTIVATIONS)}")
        check_int("--epochs", self.epochs, 0)
        check_int("--patience", self.patience, 0)
        check_float("--lr", self.lr, 0.0, lo_open=True)
        check_int("--batch-size", self.batch_size, 1)
        check_float("val_fraction", self.val_fraction, 0.0, 1.0, hi_open=True)
        check_int("--train-size", self.train_size, 1, none_ok=True)
        check_int("--test-size", self.test_size, 1, none_ok=True)
        check_int("--rig-test-passes", self.rig_test_passes, 1)
        check_int("--test-passes", self.test_passes, 1)
        check_int("--threads", self.threads, 1)
        check_int("--seed", self.seed)
        if self.backend not in ("model", "rig"):
            raise bad("backend", '"model" or "rig"')
        if self.backend == "rig":
            if self.model != "stochastic":
                raise UserError(f"train synapses: --backend rig needs --model stochastic, got {self.model!r}")
            if self.hidden and self.activation != "step":
                raise UserError(
                    "train synapses: on a rig hidden layers run with step activations only "
                    f"(an input only gates whether a synapse is read), got activation {self.activation!r}"
                )
        lo, hi = (check_float("field_range_mT", v) for v in self.field_range_mT)
        if not lo < hi:
            raise bad("field_range_mT", "[H_min, H_max] with H_min < H_max")
        check_float("--field-step", self.field_step_mT, 0.0, lo_open=True, unit="mT")
        check_float("--spread-H0", self.spread_H0_mT, 0.0, unit="mT")
        check_float("--spread-k", self.spread_k_rel, 0.0)
        if self.sampler not in SAMPLERS:
            raise bad("sampler", f"one of {', '.join(SAMPLERS)}")
        check_config_memory(self, "train synapses", {
            "--n": "n", "--hidden": "hidden", "--batch-size": "batch_size", "--train-size": "train_size",
            "--test-size": "test_size"})

    def memory_estimate(self) -> float:
        """Bytes of the largest allocations a training makes, from the declared sizes (inputs taken
        as 784 pixels, the largest data set): the data (uint8 images and float32 inputs), per
        layer the float64 uniforms of one batch's reads (B x N_in x N_out, binomial_sums) and its
        exact CDF table (N_out x (n + 1) float64, the numba path; three B x N_in x N_out float32
        tensors more with the torch.binomial reference sampler), the weights with Adam's state, and
        the evaluation's activations."""
        n_in, n_classes = 784, 10
        n_train = self.train_size if self.train_size is not None else 60_000
        n_test = self.test_size if self.test_size is not None else 10_000
        total = 5.0 * n_in * (n_train + n_test)  # uint8 images and their float32 inputs
        sizes = [n_in, *self.hidden, n_classes]
        devices = 2 if self.signed else 1
        layer_peak = 0.0
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            reads = 8.0 * self.batch_size * a * b + 8.0 * b * (self.n + 1)
            if self.sampler == "binomial":
                reads += 3 * 4.0 * self.batch_size * a * b
            layer_peak = max(layer_peak, reads)
            total += 4 * 4.0 * devices * a * b  # weights, gradient, Adam's two moments
        total += layer_peak + 4.0 * n_test * max(sizes) * 2
        return total

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(1) == y).float().mean())


class SynapseTrainer:
    """Steppable trainer (see module docstring). Build with a config, a data set (default: loaded from
    the config) and, for the rig backend, an open rig (default: opened from `config.rig`)."""

    def __init__(self, config: SynapseTrainConfig, dataset: Dataset | None = None, rig: Any = None) -> None:
        config.validate()
        self.config = config
        torch.set_num_threads(config.threads)
        self.dataset = dataset or load_dataset(
            config.data, val_fraction=config.val_fraction, train_size=config.train_size, seed=config.seed
        )
        ds = self.dataset
        if config.test_size is not None:
            Xt, yt = stratified_subset(ds.X_test, ds.y_test, config.test_size, seed=config.seed)
        else:
            Xt, yt = ds.X_test, ds.y_test
        self.X_train = torch.from_numpy(ds.X_train)
        self.y_train = torch.from_numpy(ds.y_train)
        self.X_val = torch.from_numpy(ds.X_val)
        self.y_val = torch.from_numpy(ds.y_val)
        self.X_test = torch.from_numpy(np.ascontiguousarray(Xt))
        self.y_test = torch.from_numpy(np.ascontiguousarray(yt))
        if len(self.y_train) == 0:
            raise UserError("train synapses: the training split is empty (raise --train-size)")

        # every draw (initialisation, reads, shuffling) comes from these two generators, saved in
        # state_dict(); torch's and numpy's global generators are never used
        self.generator = torch.Generator().manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self._owns_rig = False
        self.rig = rig
        self.reader = None
        sizes = [ds.n_features, *config.hidden, ds.n_classes]
        if config.model == "perceptron":
            self.model: nn.Module = Perceptron(sizes, activation=config.activation, generator=self.generator)
        elif config.model == "meanfield":
            self.model = MeanFieldNet(sizes, activation=config.activation, generator=self.generator)
        elif config.backend == "rig":
            self.model = self._build_rig_model(sizes)
        else:
            curves = None
            if config.spread_H0_mT > 0 or config.spread_k_rel > 0:
                from labml.synapses.curves import TorchLogistic

                n_dev = 2 if config.signed else 1
                curves = [
                    TorchLogistic.with_spread(
                        (n_dev, sizes[i + 1], sizes[i]),
                        H0_sd_mT=config.spread_H0_mT,
                        k_rel_sd=config.spread_k_rel,
                        generator=self.generator,
                    )
                    for i in range(len(sizes) - 1)
                ]
            self.model = StochasticSynapseNet(
                sizes,
                config.n,
                curves=curves,
                activation=config.activation,
                variance_term=config.variance_term,
                signed=config.signed,
                sampler=config.sampler,
                generator=self.generator,
                field_ranges_mT=[tuple(config.field_range_mT)] * (len(sizes) - 1),
            )
        if config.hidden and hasattr(self.model, "init_hidden_biases"):
            self.model.init_hidden_biases(self.X_train[:1000])
        # fused: one kernel for all parameters (same Adam update; cuts per-step overhead on CPU)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, fused=True)
        self.epoch_ = 0
        self.best_val_ = -1.0
        self.best_epoch_ = -1
        self.bad_epochs_ = 0
        self.best_state_: dict | None = None
        self.stop_training_ = False
        self.epoch_seconds_: list[float] = []

    # ------------------------------------------------------------------------------------------ rig
    def _build_rig_model(self, sizes: list[int]) -> nn.Module:
        from labml.synapses.rig import RigReader, build_rig_layers_config

        cfg = self.config
        if self.rig is None:
            from labml.rigs import open_rig

            self.rig = open_rig(cfg.rig or "sim")
            self._owns_rig = True
        curves, ranges, wire_maps = build_rig_layers_config(
            self.rig, sizes, signed=cfg.signed, calibrate=cfg.calibrate, seed=cfg.seed
        )
        model = StochasticSynapseNet(
            sizes,
            cfg.n,
            activation="step",
            curves=curves,
            field_ranges_mT=ranges,
            variance_term=cfg.variance_term,
            signed=cfg.signed,
            generator=self.generator,
        )
        self.reader = RigReader(self.rig, wire_maps, field_step_mT=cfg.field_step_mT, fields_from="H")
        self.reader.attach(model)
        return model

    def close(self) -> None:
        """Shut down a rig this trainer opened itself (field to zero, outputs off)."""
        if self._owns_rig and self.rig is not None:
            self.rig.shutdown()
            self.rig = None

    def __enter__(self) -> SynapseTrainer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -------------------------------------------------------------------------------------- training
    def _predict(self, X: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([self.model(X[s : s + batch]) for s in range(0, len(X), batch)])

    def run_epoch(self, epoch: int | None = None) -> dict:
        """One pass over the shuffled training split, then validation and early-stopping bookkeeping.

        Returns epoch, train_loss, train_accuracy, val_accuracy, frac_binary, sec (training loop only),
        best_epoch, stop, and on a rig bench_time_s / energy_J (cumulative).
        """
        cfg = self.config
        epoch = self.epoch_ if epoch is None else epoch
        self.model.train()
        order = torch.from_numpy(self.rng.permutation(len(self.y_train)))
        t0 = time.perf_counter()
        X, Yl = self.X_train[order], self.y_train[order]  # one gather; batches are contiguous views
        total_loss = torch.zeros(())
        correct = torch.zeros((), dtype=torch.long)
        seen = 0
        for s in range(0, len(order), cfg.batch_size):
            xb, yb = X[s : s + cfg.batch_size], Yl[s : s + cfg.batch_size]
            logits = self.model(xb)
            loss = nn.functional.cross_entropy(logits, yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.model.project_()
            with torch.no_grad():
                total_loss += loss * len(yb)
                correct += (logits.argmax(1) == yb).sum()
            seen += len(yb)
        total_loss, correct = float(total_loss), int(correct)
        sec = time.perf_counter() - t0
        self.epoch_seconds_.append(sec)
        self.model.eval()
        val_acc = _accuracy(self._predict(self.X_val), self.y_val) if len(self.y_val) else float("nan")
        if len(self.y_val) == 0 or val_acc > self.best_val_:
            self.best_val_ = val_acc
            self.best_epoch_ = epoch
            self.bad_epochs_ = 0
            self.best_state_ = copy.deepcopy(self.model.state_dict())
        else:
            self.bad_epochs_ += 1
        self.epoch_ = epoch + 1
        self.stop_training_ = bool(cfg.patience and self.bad_epochs_ >= cfg.patience)
        fb = self.model.frac_binary()
        metrics = {
            "epoch": epoch,
            "train_loss": total_loss / max(seen, 1),
            "train_accuracy": correct / max(seen, 1),
            "val_accuracy": val_acc,
            "frac_binary": float("nan") if fb is None else fb,
            "sec": sec,
            "best_epoch": self.best_epoch_,
            "stop": self.stop_training_,
        }
        if self.reader is not None:
            metrics.update(bench_time_s=self.reader.bench_time_s, energy_J=self.reader.energy_J)
        return metrics

    def restore_best(self) -> None:
        """Load the parameters of the epoch with the best validation accuracy."""
        if self.best_state_ is not None:
            self.model.load_state_dict(self.best_state_)

    def evaluate(
        self, passes: int | None = None, X: torch.Tensor | None = None, y: torch.Tensor | None = None
    ) -> dict:
        """Test accuracy of the best-validation model: mean over `passes` stochastic passes (16)."""
        self.restore_best()
        self.model.eval()
        X = self.X_test if X is None else X
        y = self.y_test if y is None else y
        passes = passes or self.config.test_passes
        stochastic = getattr(self.model, "stochastic", False)
        accs = [_accuracy(self._predict(X), y) for _ in range(passes if stochastic else 1)]
        fb = self.model.frac_binary()
        out = {
            "test_accuracy": float(np.mean(accs)),
            "test_accuracy_sd": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
            "test_passes": len(accs),
            "n_test": len(y),
            "frac_binary": None if fb is None else fb,
        }
        if self.reader is not None:
            out.update(
                bench_time_s=self.reader.bench_time_s,
                energy_J=self.reader.energy_J,
                device_reads=self.reader.n_reads,
                read_requests=self.reader.n_requests,
                read_groups=self.reader.n_groups,
            )
        return out

    def fit(self, run: Any = None, progress: Any = None) -> dict:
        """Train until `epochs` or early stopping; evaluate; return the summary dict.

        run: optional labml.runs.store.Run (one "epochs" row per epoch); progress: optional callable(metrics).
        """
        cfg = self.config
        while self.epoch_ < cfg.epochs and not self.stop_training_:
            m = self.run_epoch(self.epoch_)
            if run is not None:
                run.append_row("epochs", m)
            if progress is not None:
                progress(m)
        result = self.evaluate()
        result.update(
            n=cfg.n,
            model=cfg.model,
            epochs=self.epoch_,
            best_epoch=self.best_epoch_,
            best_val_accuracy=self.best_val_,
            sec_per_epoch=statistics.median(self.epoch_seconds_) if self.epoch_seconds_ else 0.0,
        )
        return result

    # ------------------------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """A deep copy of everything needed to continue exactly (safe to keep while training goes on)."""
        return copy.deepcopy(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "torch_rng": self.generator.get_state(),
                "np_rng": self.rng.bit_generator.state,
                "epoch": self.epoch_,
                "best_val": self.best_val_,
                "best_epoch": self.best_epoch_,
                "bad_epochs": self.bad_epochs_,
                "best_state": self.best_state_,
                "stop": self.stop_training_,
                "epoch_seconds": list(self.epoch_seconds_),
                "reader": None if self.reader is None else self.reader.state_dict(),
                "config": self.config.to_dict(),
            }
        )

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["torch_rng"])
        self.rng.bit_generator.state = state["np_rng"]
        self.epoch_ = int(state["epoch"])
        self.best_val_ = float(state["best_val"])
        self.best_epoch_ = int(state["best_epoch"])
        self.bad_epochs_ = int(state["bad_epochs"])
        self.best_state_ = state["best_state"]
        self.stop_training_ = bool(state["stop"])
        self.epoch_seconds_ = list(state.get("epoch_seconds", []))
        if self.reader is not None and state.get("reader"):
            self.reader.load_state_dict(state["reader"])

    def arrays_(self) -> dict:
        """Arrays saved with a run: every layer's H (mT) and p."""
        out = {}
        for i, layer in enumerate(getattr(self.model, "layers", [])):
            if hasattr(layer, "H"):
                out[f"H{i}"] = layer.H.detach().numpy()
                out[f"p{i}"] = layer.probabilities().detach().numpy()
        return out


def build_trainer(config: dict, rig: Any = None) -> SynapseTrainer:
    """The trainer of a SynapseTrainConfig dict (labml.synapses.kind.SynapseTraining builds it so)."""
    known = {f.name for f in dataclasses.fields(SynapseTrainConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise UserError(f"train synapses: unknown config keys {unknown}")
    return SynapseTrainer(SynapseTrainConfig(**config), rig=rig)
