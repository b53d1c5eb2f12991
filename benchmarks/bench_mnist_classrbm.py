"""Classification RBM on the full binarised MNIST with the three objectives of Larochelle & Bengio
2008 ("Classification using discriminative restricted Boltzmann machines"), issue 18:

- generative: maximise log p(v, y) (CD-k / PCD-k on the joint, labml.bm's generative step);
- discriminative: maximise log p(y | v), exact (the ClassRBM's free energies of the 10 classes,
  gradient by autograd);
- hybrid: log p(y | v) + alpha log p(v, y) (alpha = --hybrid-alpha; L&B's best: 0.01).

Targets (test accuracy): generative >= 96.3 %, discriminative >= 98.0 %, hybrid >= 98.5 % (L&B
2008 report 3.39 %, 1.81 % and 1.28 % error with 6000, 500 and 1500 hidden units).

    PYTHONPATH=. python benchmarks/bench_mnist_classrbm.py --data DIR --run-dir RUN --loss hybrid
        [--hidden 1500] [--epochs 50] [--lr ...] [--hours 2.5]

Same data and run folder rules as bench_mnist_rbm.py (50k training / last 10k validation, the saved
binarised set, resumable checkpoints every epoch, --hours). Default binarisation: the 0.5
threshold (--binarisation stochastic for the stochastic set); --train-draws fresh trains on a new
stochastic binarisation of the training images each epoch (validation and test stay on the saved
set). Early stopping on validation: the model of the epoch with the best validation accuracy is
kept (in the checkpoint) and is the one tested at the end (with --n-val 0, a final model trained on
every training image for the number of epochs chosen on validation: the last epoch's model); the
last epoch's test accuracy and the kept model's accuracy on the training images
(`train_accuracy`) are reported beside it. RUN/model.npz holds
W, U, a, b, d and the temperature (see `write_classrbm`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_mnist_rbm as common  # noqa: E402  (the shared data, run-folder and session code)

KEYS = ("binarisation", "bin_seed", "loss", "hidden", "epochs", "lr", "optimizer", "batch_size", "chains",
        "k", "hybrid_alpha", "lr_decay", "seed", "n_train", "n_val", "n_test", "centering", "dropout",
        "input_dropout", "weight_decay", "train_draws")
#: per objective: (hidden units of L&B 2008, optimizer, lr) when not given
DEFAULTS = {"generative": (6000, "sgd", 0.002), "discriminative": (500, "adam", 0.001),
            "hybrid": (1500, "adam", 0.001)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None)
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--binarised", type=Path, default=None)
    p.add_argument("--binarisation", choices=("stochastic", "threshold"), default="threshold")
    p.add_argument("--bin-seed", type=int, default=0)
    p.add_argument("--train-draws", choices=("fixed", "fresh"), default="fixed",
                   help="fresh: the training images are drawn anew each epoch (each pixel 1 with "
                        "probability intensity/255, needs --data); validation and test stay on the "
                        "saved --binarisation")
    p.add_argument("--loss", choices=tuple(DEFAULTS), required=True)
    p.add_argument("--hidden", type=int, default=None)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--optimizer", choices=("sgd", "adam"), default=None)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--chains", choices=("cd", "pcd"), default="cd", help="generative part: CD-k or PCD-k")
    p.add_argument("--k", type=int, default=1)
    p.add_argument("--hybrid-alpha", type=float, default=0.01)
    p.add_argument("--no-lr-decay", dest="lr_decay", action="store_false")
    p.add_argument("--centering", choices=("data", "bits", "none"), default="data")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--input-dropout", type=float, default=0.0)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=50_000)
    p.add_argument("--n-val", type=int, default=10_000)
    p.add_argument("--n-test", type=int, default=None)
    p.add_argument("--hours", type=float, default=None)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    hidden, opt, lr = DEFAULTS[a.loss]
    a.hidden = hidden if a.hidden is None else a.hidden
    a.optimizer = opt if a.optimizer is None else a.optimizer
    a.lr = lr if a.lr is None else a.lr
    for key in ("hidden", "epochs", "batch_size", "k", "n_train", "threads"):
        if getattr(a, key) < 1:
            p.error(f"--{key.replace('_', '-')} {getattr(a, key)}: must be >= 1")
    if a.n_val < 0:
        p.error(f"--n-val {a.n_val}: must be >= 0 (0: no validation, the last epoch's model is tested)")
    if not a.lr > 0 or (a.hours is not None and not a.hours > 0):
        p.error(f"--lr {a.lr} and --hours {a.hours} must be > 0")
    return a


def write_classrbm(path: Path, model, extra: dict) -> None:
    """RUN/model.npz, readable with numpy alone: W (784, H), U (10, H), a (784,), b (H,), d (10,),
    temperature T. Visible and hidden units are spins s = 2 x - 1 (x = 1 for ink), the label y is
    one-hot 0/1 over the digits 0..9; E(v, y, h) = -v^T W h - y^T U h - a^T v - b^T h - d^T y,
    p ~ exp(-E / T). Classify: logit_c = d_c + T sum_j log(2 cosh((b + v W + U_c)_j / T)), up to the
    class-independent a^T v; the prediction is argmax_c logit_c (= argmin_y F(v, y))."""
    arrays = {k: p.detach().float().numpy() for k, p in model.named_parameters()}
    arrays.update(temperature=np.float64(model.temperature), doc=np.array(write_classrbm.__doc__),
                  classes=np.arange(model.n_classes))
    arrays.update({k: np.float64(v) for k, v in extra.items()})
    tmp = path.with_name(f".{path.name}.part")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    tmp.replace(path)


class ClassSession(common.Session):
    """A ClassRBM run: validation accuracy every epoch, the best-validation model kept."""

    result_keys = KEYS
    added_keys = {**common.Session.added_keys, "train_draws": "fixed"}  # see common.open_run

    def __init__(self, a: argparse.Namespace) -> None:
        self.best: dict = {"epoch": 0, "val_accuracy": -1.0, "model": None}
        super().__init__(a)

    def make_trainer(self):
        from labml.bm.training import BMData, BMTrainConfig, BMTrainer

        a, b = self.a, self.bits
        f32 = np.float32
        data = BMData(b["x_train"].astype(f32), b["y_train"], b["x_val"].astype(f32), b["y_val"])
        cfg = BMTrainConfig(model="classrbm", loss=a.loss, hidden=a.hidden, epochs=a.epochs,
                            batch_size=a.batch_size, lr=a.lr, optimizer=a.optimizer, chains=a.chains, k=a.k,
                            hybrid_alpha=a.hybrid_alpha, lr_decay=a.lr_decay, centering=a.centering,
                            dropout=a.dropout, input_dropout=a.input_dropout, weight_decay=a.weight_decay,
                            seed=a.seed, eval_reverse_ais=False)
        return BMTrainer(cfg, data)

    def restore(self, state: dict) -> None:
        super().restore(state)
        self.best = state["best"]

    def extra_state(self) -> dict:
        return {"best": self.best}

    def accuracy(self, x: np.ndarray, y: np.ndarray, model=None) -> float:
        import torch

        from labml.bm.evaluation import classification_accuracy
        from labml.bm.models import bits_to_spins

        v = bits_to_spins(torch.as_tensor(x, dtype=torch.float32))
        return classification_accuracy(model or self.trainer.model, v, torch.as_tensor(y))

    def epoch(self) -> dict:
        tr = self.trainer
        t0 = time.perf_counter()
        if self.a.train_draws == "fresh":  # this epoch's draw: numpy PCG64 seeded by (seed, epoch)
            rng = np.random.default_rng([self.a.seed, 0xD8A7, tr.epoch])
            p = self.bits["p_train"]
            tr.replace_training_inputs((rng.random(p.shape, dtype=np.float32) < p).astype(np.float32))
        draw_sec = time.perf_counter() - t0
        m = tr.run_epoch(tr.epoch)
        rec = {"epoch": tr.epoch, "sec": m["sec"]}
        if self.a.train_draws == "fresh":
            rec["draw_sec"] = draw_sec
        rec.update({k: m[k] for k in ("disc_loss", "recon_error") if k in m})
        if not self.a.n_val:  # a final model on every training image: the last epoch's is tested
            self.best = {"epoch": tr.epoch, "val_accuracy": None, "model": None}
            return rec
        t0 = time.perf_counter()
        acc = self.accuracy(self.bits["x_val"], self.bits["y_val"])
        rec.update(val_accuracy=acc, eval_sec=time.perf_counter() - t0)
        if acc > self.best["val_accuracy"]:
            self.best = {"epoch": tr.epoch, "val_accuracy": acc,
                         "model": {k: v.clone() for k, v in tr.model.state_dict().items()}}
        return rec

    def final_cost_s(self) -> float:
        return 0.0

    def final(self) -> dict:
        import copy

        a, b = self.a, self.bits
        last = self.accuracy(b["x_test"], b["y_test"])
        best_model = copy.deepcopy(self.trainer.model)
        if self.best["model"] is not None:  # None without validation: the last epoch's model
            best_model.load_state_dict(self.best["model"])
        test = self.accuracy(b["x_test"], b["y_test"], best_model)
        # on the training images too: the gap to validation is the overfitting
        train = self.accuracy(b["x_train"], b["y_train"], best_model)
        write_classrbm(a.run_dir / "model.npz", best_model,
                       {"test_accuracy": test, "epoch": self.best["epoch"]})
        result = {"bench": "mnist_classrbm", **{k: getattr(a, k) for k in KEYS},
                  "test_accuracy": test, "test_error_percent": 100 * (1 - test),
                  "train_accuracy": train, "best_epoch": self.best["epoch"],
                  "best_val_accuracy": self.best["val_accuracy"],
                  "test_accuracy_last_epoch": last, "epochs_done": self.trainer.epoch,
                  "sec_per_epoch_median": float(np.median([r["sec"] for r in self.records])),
                  "data_sha256": b["sha256"], "run_dir": str(a.run_dir)}
        (a.run_dir / "final.json").write_text(json.dumps(result, indent=1))
        return result


def main(argv=None) -> int:
    return common.run_session(ClassSession, parse_args, "mnist_classrbm", argv)


if __name__ == "__main__":
    raise SystemExit(main())
