"""RBM with 500 hidden units on the full binarised MNIST (issue 18): test log-likelihood by AIS
with the schedule of Salakhutdinov & Murray 2008, forward and reverse, against their published
-86.34 nats (CD-25, stochastic binarisation).

    PYTHONPATH=. python benchmarks/bench_mnist_rbm.py --data DIR --run-dir RUN [--binarisation stochastic]
        [--epochs 1000] [--lr 0.002] [--chains pcd|cd|pt] [--k 1] [--pt-replicas 10] [--pt-beta-min 0.5]
        [--weight-decay 0] [--hours 2.5] ...

Data: the 60k training set split into the first 50,000 images (training) and the last 10,000
(validation, for choosing settings); the 10k test set only for the final figures. With --n-train
60000 --n-val 0 the settings chosen on that split train a final model on all 60,000 images (no
validation checks; the number of epochs fixed in advance, as nothing is left to stop on). The binarised set
(labml.mnist_binarised: stochastic with --bin-seed, and the 0.5 threshold) is built once and saved
at --binarised (default RUN/mnist_binarised_seed<S>.npz), verified by its SHA-256 on every load.

Resumable: every epoch ends with a verified checkpoint in RUN/checkpoints (labml.runs.checkpoints,
read with torch.load(weights_only=True)); rerunning the same command continues where it stopped
(settings that change the result must match RUN/config.json). --hours stops a session cleanly after
the epoch that crosses the budget (and before a final evaluation that would not fit).

Per epoch (RUN/history.jsonl): seconds, reconstruction error, load average; during the first
--sklearn-epochs epochs one epoch of scikit-learn's BernoulliRBM of the same size on the same
data, interleaved (seconds per epoch in the same run); every --val-every epochs the validation
log-likelihood with forward AIS at --val-ais-scale of the S&M schedule.

At the end (RUN/final.json and one JSON line on stdout): forward AIS (S&M schedule, --ais-runs runs,
base rates from the training data) and reverse AIS from --reverse-sweeps Gibbs sweeps of as many
chains, the test, validation and training log-likelihoods in nats per image (training against test:
the generalisation gap), RUN/samples.png (the states the
reverse runs start from) and RUN/model.npz (see `write_model`).

Single-threaded by default (--threads 1): the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np

#: settings that change the result: a resumed run must have the same ones
RESULT_KEYS = ("binarisation", "bin_seed", "hidden", "epochs", "lr", "batch_size", "chains", "k",
               "pt_replicas", "pt_beta_min", "momentum", "weight_decay", "lr_decay", "seed", "n_train",
               "n_val", "n_test", "val_every", "val_ais_scale", "val_runs", "ais_scale", "ais_runs",
               "reverse_sweeps", "centering", "no_test")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, help="MNIST folder (else $LABML_DATA / the user data folder)")
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--binarised", type=Path, default=None, help="binarised-MNIST .npz (built if absent)")
    p.add_argument("--binarisation", choices=("stochastic", "threshold"), default="stochastic")
    p.add_argument("--bin-seed", type=int, default=0, help="seed of the stochastic binarisation")
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--lr", type=float, default=0.002, help="SGD step in spin units (decayed to 0)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--chains", choices=("pcd", "cd", "pt"), default="pcd",
                   help="pt: persistent chains with parallel tempering (labml.bm.chains)")
    p.add_argument("--k", type=int, default=1, help="Gibbs sweeps per update (CD-k / PCD-k; PT: per replica)")
    p.add_argument("--pt-replicas", type=int, default=10, help="--chains pt: replicas")
    p.add_argument("--pt-beta-min", type=float, default=0.5,
                   help="--chains pt: lowest inverse-temperature ratio (replicas evenly spaced up to 1)")
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--weight-decay", type=float, default=0.0,
                   help="L2 penalty on the couplings W (not the biases), spin units: SGD weight_decay")
    p.add_argument("--no-lr-decay", dest="lr_decay", action="store_false",
                   help="constant step (default: decayed linearly to 0 over the run)")
    p.add_argument("--centering", choices=("data", "bits", "none"), default="data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=50_000, help="first N training images for training")
    p.add_argument("--n-val", type=int, default=10_000,
                   help="last N training images for validation (0: none, for the final model trained "
                   "on all 60,000 with settings chosen on a split)")
    p.add_argument("--n-test", type=int, default=None, help="first N test images (default all)")
    p.add_argument("--val-every", type=int, default=10)
    p.add_argument("--val-ais-scale", type=float, default=0.1,
                   help="fraction of the S&M betas for validation")
    p.add_argument("--val-runs", type=int, default=100)
    p.add_argument("--ais-scale", type=float, default=1.0, help="1 = S&M 2008: 500/4000/10000 betas")
    p.add_argument("--ais-runs", type=int, default=100)
    p.add_argument("--reverse-sweeps", type=int, default=10_000)
    p.add_argument("--sklearn-epochs", type=int, default=3, help="epochs timed against BernoulliRBM")
    p.add_argument("--no-test", action="store_true",
                   help="final evaluation on the validation set only (for choosing settings)")
    p.add_argument("--hours", type=float, default=None, help="time budget of this session")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    _check_args(p, a)
    return a


def _check_args(p: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    if a.pt_replicas < 2 or not 0 < a.pt_beta_min < 1:
        p.error(f"--pt-replicas {a.pt_replicas} / --pt-beta-min {a.pt_beta_min}: need >= 2 replicas "
                "and a lowest ratio in (0, 1)")
    if a.n_val < 0 or (a.n_val == 0 and a.no_test):
        p.error(f"--n-val {a.n_val}: must be >= 0, and >= 1 with --no-test (it evaluates on validation)")
    for key in ("hidden", "epochs", "batch_size", "k", "n_train", "val_every", "val_runs",
                "ais_runs", "threads"):
        if getattr(a, key) < 1:
            p.error(f"--{key.replace('_', '-')} {getattr(a, key)}: must be >= 1")
    for key in ("lr", "val_ais_scale", "ais_scale"):
        if not getattr(a, key) > 0:
            p.error(f"--{key.replace('_', '-')} {getattr(a, key)}: must be > 0")
    if a.hours is not None and not a.hours > 0:
        p.error(f"--hours {a.hours}: must be > 0")
    if a.reverse_sweeps < 0 or a.sklearn_epochs < 0:
        p.error("--reverse-sweeps and --sklearn-epochs must be >= 0")
    if not a.weight_decay >= 0:
        p.error(f"--weight-decay {a.weight_decay}: must be >= 0")


# ------------------------------------------------------------------------------------------ data, run
def load_bits(a: argparse.Namespace) -> dict:
    """Training / validation / test 0/1 bits (uint8) of the chosen binarisation, and the file's hash."""
    from labml.mnist_binarised import binarised_mnist

    path = a.binarised or a.run_dir / f"mnist_binarised_seed{a.bin_seed}.npz"
    d = binarised_mnist(a.data, path, a.bin_seed)
    x, y = d[f"train_{a.binarisation}"], d["train_labels"]
    order = slice(None)
    if y.size > 1 and np.all(np.diff(y.astype(np.int64)) >= 0):
        # a set stored sorted by class (the 5k subset) would validate on the last classes only and
        # train without them: split a fixed shuffle of it instead (the full set's official order,
        # already mixed, is kept as it is, so its split stays the standard one)
        order = np.random.default_rng(0).permutation(y.size)
        x, y = x[order], y[order]
        print(f"note: the training images of {path} are sorted by class; train and validation are "
              "split from a fixed shuffle (numpy PCG64, seed 0)", file=sys.stderr)
    if a.n_train + a.n_val > len(x):
        from labml.errors import UserError

        raise UserError(f"--n-train {a.n_train} + --n-val {a.n_val} exceed the {len(x)} training "
                        f"images of {path}")
    n_test = len(d["test_labels"]) if a.n_test is None else min(a.n_test, len(d["test_labels"]))
    out = {
        "x_train": x[: a.n_train], "y_train": y[: a.n_train],
        "x_val": x[len(x) - a.n_val :], "y_val": y[len(x) - a.n_val :],
        "x_test": d[f"test_{a.binarisation}"][:n_test], "y_test": d["test_labels"][:n_test],
        "sha256": d["content_sha256"], "path": str(path),
    }
    if getattr(a, "train_draws", "fixed") == "fresh":
        out["p_train"] = training_intensities(a, d, order, path)
    return out


def training_intensities(a: argparse.Namespace, d: dict, order, path: Path) -> np.ndarray:
    """The training images' intensities in [0, 1] (float32, the binarised set's order and split),
    for drawing a fresh stochastic binarisation each epoch; checked against the saved threshold
    bits so that a --data folder with other images is refused."""
    from labml.data import DIGITS, load_mnist_arrays, resolve_data_dir
    from labml.errors import UserError

    folder = resolve_data_dir(a.data)
    if folder == DIGITS:
        raise UserError("--train-draws fresh needs the MNIST folder the set was binarised from (--data DIR)")
    images = load_mnist_arrays(folder)[0]
    p = (images.reshape(len(images), -1).astype(np.float32) / 255.0)[order]
    if p.shape != d["train_threshold"].shape or not np.array_equal(p > 0.5, d["train_threshold"][order] > 0):
        raise UserError(f"MNIST folder {folder}: its training images are not the ones binarised in {path}")
    return p[: a.n_train]


def open_run(a: argparse.Namespace, data_sha: str, keys: tuple[str, ...] = RESULT_KEYS,
             added: dict | None = None) -> dict:
    """RUN/config.json: written on the first session, checked on the others (the same `keys`).
    `added`: settings that later versions of a benchmark introduced, with the value a run folder
    written before them implicitly ran with (such a folder resumes when the value still matches)."""
    from labml.errors import UserError

    a.run_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = a.run_dir / "config.json"
    settings = {k: getattr(a, k) for k in keys}
    if cfg_path.exists():
        cfg = json.loads(cfg_path.read_text())
        stored = {**(added or {}), **cfg["settings"]}
        diff = [f"{k}: run {stored.get(k)!r}, now {settings[k]!r}" for k in keys
                if stored.get(k) != settings[k]]
        if cfg.get("data_sha256") != data_sha:
            diff.append("the binarised data differ (content SHA-256)")
        if diff:
            raise UserError(f"{a.run_dir} holds a run with other settings ({'; '.join(diff)}): "
                            "use another --run-dir or the run's settings")
        return cfg
    cfg = {"uid": uuid.uuid4().hex, "settings": settings, "data_sha256": data_sha,
           "command": " ".join(sys.argv)}
    cfg_path.write_text(json.dumps(cfg, indent=1))
    return cfg


def make_trainer(a: argparse.Namespace, bits: dict):
    from labml.bm.training import BMData, BMTrainConfig, BMTrainer

    f32 = np.float32
    data = BMData(bits["x_train"].astype(f32), bits["y_train"], bits["x_val"].astype(f32), bits["y_val"])
    cfg = BMTrainConfig(model="rbm", hidden=a.hidden, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                        chains=a.chains, k=a.k, momentum=a.momentum, lr_decay=a.lr_decay,
                        weight_decay=a.weight_decay, decay_biases=False, pt_replicas=a.pt_replicas,
                        pt_beta_min=a.pt_beta_min,
                        centering=a.centering, seed=a.seed, eval_reverse_ais=False)
    return BMTrainer(cfg, data)


# ------------------------------------------------------------------------------------------ measuring
def sklearn_epoch_seconds(x: np.ndarray, hidden: int, batch_size: int, seed: int) -> float:
    """Seconds of one epoch (n_iter=1) of scikit-learn's BernoulliRBM (PCD-1) on float32 data."""
    from sklearn.neural_network import BernoulliRBM

    rbm = BernoulliRBM(n_components=hidden, learning_rate=0.05, batch_size=batch_size, n_iter=1,
                       random_state=seed)
    t0 = time.perf_counter()
    rbm.fit(x.astype(np.float32))
    return time.perf_counter() - t0


def write_model(path: Path, model, extra: dict) -> None:
    """RUN/model.npz, readable with numpy alone (np.load(path)):

    spin form (the trained parameters): W (n_visible, n_hidden), a (n_visible,), b (n_hidden,),
    temperature T: p(s, t) = exp((s^T W t + a^T s + b^T t) / T) / Z with spins s = 2 x - 1 (visible),
    t = 2 z - 1 (hidden), x, z in {0, 1}, x = 1 for ink; log_Z = log Z (forward AIS, nats).
    bit form (the same distribution over 0/1 units, temperature folded in): W01 = 4 W / T,
    c01 = 2 (a - W 1) / T, d01 = 2 (b - W^T 1) / T, log_Z01 = log_Z - (1^T W 1 - 1^T a - 1^T b) / T, so
    log p(x) = c01 . x + sum_j softplus(d01_j + (x W01)_j) - log_Z01.
    data_sha256, binarisation: the content hash of the binarised set it was trained on
    (labml.mnist_binarised's content_sha256) and which of its two binarisations.
    """
    W = model.W.detach().double().numpy()
    a = model.a.detach().double().numpy()
    b = model.b.detach().double().numpy()
    T = float(model.temperature)
    const = (W.sum() - a.sum() - b.sum()) / T
    arrays = {
        "W": W.astype(np.float32), "a": a.astype(np.float32), "b": b.astype(np.float32),
        "temperature": np.float64(T),
        "convention": np.array("spins s = 2x - 1, x = 1 for ink; p ~ exp(-E/T)"),
        "W01": (4 * W / T), "c01": 2 * (a - W.sum(1)) / T, "d01": 2 * (b - W.sum(0)) / T,
        "doc": np.array(write_model.__doc__),
    }
    for key, value in extra.items():
        arrays[key] = np.array(value) if isinstance(value, str) else np.float64(value)
    if "log_Z" in extra:
        arrays["log_Z01"] = np.float64(extra["log_Z"] - const)
    tmp = path.with_name(f".{path.name}.part")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------ the run
class Session:
    """One session of a run: train epochs until done or out of budget, then evaluate (the RBM;
    bench_mnist_classrbm.py subclasses it)."""

    result_keys = RESULT_KEYS
    added_keys: dict = {"weight_decay": 0.0, "pt_replicas": 10, "pt_beta_min": 0.5}  # see open_run

    def __init__(self, a: argparse.Namespace) -> None:
        import torch
        from threadpoolctl import threadpool_limits

        from labml.runs import checkpoints

        torch.set_num_threads(a.threads)
        self._limits = threadpool_limits(a.threads)
        self.a = a
        self.t_start = time.perf_counter()
        self.bits = load_bits(a)
        self.cfg = open_run(a, self.bits["sha256"], self.result_keys, self.added_keys)
        self.trainer = self.make_trainer()
        self.records: list[dict] = []
        state = checkpoints.latest(a.run_dir, self.cfg["uid"])
        if state is not None:
            self.restore(state)

    def restore(self, state: dict) -> None:
        """Continue from a checkpoint's state."""
        self.trainer.load_state_dict(state["trainer"])
        self.records = list(state["records"])

    def extra_state(self) -> dict:
        """What a subclass adds to every checkpoint."""
        return {}

    def make_trainer(self):
        return make_trainer(self.a, self.bits)

    def elapsed_h(self) -> float:
        return (time.perf_counter() - self.t_start) / 3600.0

    def out_of_time(self, extra_s: float = 0.0) -> bool:
        return self.a.hours is not None and self.elapsed_h() + extra_s / 3600.0 > self.a.hours

    def epoch(self) -> dict:
        a, tr = self.a, self.trainer
        e = tr.epoch
        m = tr.run_epoch(e)
        rec = {"epoch": e + 1, "sec": m["sec"], "recon_error": m["recon_error"],
               "loadavg": os.getloadavg()[0]}
        if tr.chains.kind == "pt":  # accepted exchanges so far, per neighbouring pair of replicas
            rec["pt_swap_rates"] = tr.chains.swap_rates()
        if 1 <= e <= a.sklearn_epochs:  # epoch 1 also compiles the numba kernels: not timed
            x = self.bits["x_train"]
            rec["sklearn_sec"] = sklearn_epoch_seconds(x, a.hidden, a.batch_size, a.seed + e)
        if a.n_val and ((e + 1) % a.val_every == 0 or e + 1 == a.epochs):
            from labml.bm.ais import ais_loglik

            model = tr.model
            v = ais_loglik(model, self.bits["x_train"], {"val": self.bits["x_val"]}, a.val_ais_scale,
                           a.val_runs, seed=1000 * (e + 1))
            rec.update({f"val_{k}" if not k.startswith("val") else k: x for k, x in v.items()})
        return rec

    def checkpoint(self, rec: dict) -> None:
        from labml.runs import checkpoints

        self.records.append(rec)
        state = {"trainer": self.trainer.state_dict(), "records": self.records, **self.extra_state()}
        checkpoints.save(self.a.run_dir, self.cfg["uid"], self.trainer.epoch, state)
        lines = "".join(json.dumps(r) + "\n" for r in self.records)
        (self.a.run_dir / "history.jsonl").write_text(lines)
        print(json.dumps(rec), flush=True)

    def train(self) -> bool:
        """Epochs until the run's last one (True) or the budget ends (False)."""
        while self.trainer.epoch < self.a.epochs:
            if self.out_of_time():
                return False
            self.checkpoint(self.epoch())
        return True

    def final_cost_s(self) -> float:
        """Estimated seconds of the final evaluation: 2 AIS passes and the chains, from 20 timed sweeps."""
        import torch

        from labml.bm.ais import long_chains

        v = torch.ones(self.a.ais_runs, self.trainer.model.n_visible)
        t0 = time.perf_counter()
        long_chains(self.trainer.model, v, 20)
        per = (time.perf_counter() - t0) / 20
        from labml.bm.ais import sm_schedule

        return 1.3 * per * (2 * len(sm_schedule(self.a.ais_scale)) + self.a.reverse_sweeps)

    def final(self) -> dict:
        from labml.bm.ais import ais_loglik
        from labml.bm.evaluation import save_sample_grid

        a, b = self.a, self.bits
        model = self.trainer.model
        sets = {} if a.no_test else {"test": b["x_test"]}
        if a.n_val:
            sets["val"] = b["x_val"]
        sets["train"] = b["x_train"]  # the generalisation gap: train against test / validation
        r = ais_loglik(model, b["x_train"], sets, a.ais_scale, a.ais_runs,
                       seed=a.seed + 7, reverse_sweeps=a.reverse_sweeps)
        starts = r.pop("_starts")
        save_sample_grid(starts[:100], a.run_dir / "samples.png",
                         title=f"RBM-{a.hidden}: states after {a.reverse_sweeps} Gibbs sweeps")
        write_model(a.run_dir / "model.npz", model, {"log_Z": r["log_Z_forward"],
                                                      "log_Z_reverse": r["log_Z_reverse"],
                                                      "data_sha256": b["sha256"],
                                                      "binarisation": a.binarisation})
        sk = [x["sklearn_sec"] for x in self.records if "sklearn_sec" in x]
        ours = [x["sec"] for x in self.records if "sklearn_sec" in x]
        result = {"bench": "mnist_rbm", **{k: getattr(a, k) for k in RESULT_KEYS}, **r,
                  "epochs_done": self.trainer.epoch,
                  "sec_per_epoch_median": float(np.median([x["sec"] for x in self.records])),
                  "sklearn_sec_per_epoch_median": float(np.median(sk)) if sk else None,
                  "labml_sec_per_epoch_interleaved_median": float(np.median(ours)) if sk else None,
                  "data_sha256": b["sha256"], "run_dir": str(a.run_dir)}
        (a.run_dir / "final.json").write_text(json.dumps(result, indent=1))
        return result


def run_session(session_cls, parse, bench: str, argv=None) -> int:
    """Parse, open or resume the run, train within the budget, evaluate at the end; one JSON line.
    A user's mistake (bad data folder, other settings in the run folder) is one line on stderr, exit 2."""
    from labml.errors import UserError

    try:
        a = parse(argv)
        final = a.run_dir / "final.json"
        s = session_cls(a)
        if final.exists() and s.trainer.epoch >= a.epochs:
            print(json.dumps(json.loads(final.read_text())))
            return 0
        if not s.train() or s.out_of_time(s.final_cost_s()):
            print(json.dumps({"bench": bench, "status": "paused", "epochs_done": s.trainer.epoch,
                              "run_dir": str(a.run_dir), "resume": "rerun the same command"}))
            return 0
        print(json.dumps(s.final()))
        return 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv=None) -> int:
    return run_session(Session, parse_args, "mnist_rbm", argv)


if __name__ == "__main__":
    raise SystemExit(main())
