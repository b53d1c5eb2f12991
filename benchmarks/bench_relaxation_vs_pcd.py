"""The learning-by-relaxation device against PCD / CD, head to head (issue 19): the same RBM (784x16
with the exact test log-likelihood, or a larger one, 784x100, with AIS), the same data items in the
same order, the same number of model-copy spin sweeps, parameter updates and chains / copies, and
the same step, in the device's three time-scale regimes (SCIENCE.md section 5;
labml/bm/relaxation.py).

    .venv/bin/python benchmarks/bench_relaxation_vs_pcd.py --data DIR --run-dir RUN
        [--updates 3000] [--eval-every 500] [--seeds 0 1 2] [--test-size N] [--hidden 16]
        [--loglik auto|exact|ais] [--ais-scale 0.1] [--ais-runs 100] [--final-ais-scale 1]
        [--reverse-sweeps 10000]

Test log-likelihood: exact (the 2^hidden hidden states summed) up to 20 hidden units; above, by
annealed importance sampling (labml.bm.ais: the schedule of Salakhutdinov & Murray 2008, base
rates fitted to the training data). Along the curves forward AIS with --ais-scale of the schedule
(0.1: 1,451 betas; the same AIS seed for both sides at the same update, so that their difference
carries less AIS noise); at the end of every run forward AIS with --final-ais-scale of it (1: the
full 14,501 betas) and reverse AIS from --reverse-sweeps Gibbs sweeps of --ais-runs chains started
at training images: the final figure is the full forward estimate, the reverse one beside it
brackets it (forward is optimistic, reverse conservative in expectation), and the curve's cheap
estimate at the same final model is recorded too, so the bias of the curve's schedule is measured.

Regimes (tau_spin = dt = 1 everywhere, so every device step is one full sweep of the model copy;
the device's step per parameter move is mu_theta * dt = dt / tau_theta):

    separated  tau_data 10, tau_theta 1000, persistent copy   vs PCD-1, lr 0.001, each batch held
               for 10 updates (the device's dwell)
    reseeded   tau_data 1, tau_theta 200, reseed=True          vs CD-1, lr 0.005
    lagging    tau_data 1, tau_theta 50, persistent copy       vs PCD-1, lr 0.02

How the budgets are equal (relaxation.py, `RelaxationDevice.present`): a data batch on the
target copies stays for S = round(tau_data / dt) steps; each step is one sweep of the target copy's
hidden spins given the data, one sweep of the model copy (visible, then hidden; each spin updates
with probability dt / tau_spin = 1) and one parameter move mu_theta * dt * (f_target - f_model).
So per batch: S model-copy sweeps and S moves. The counterpart (labml.bm.training.BMTrainer,
plain spin coordinates, heat bath) gets the same batch for S consecutive updates of k = 1 sweep and
one SGD step lr * beta * (f_target - f_model), lr = mu_theta * dt, beta = 1. The sweeps, updates,
restarts of the model copy at the data and batches are counted while the code runs (the samplers'
sweeps and the device's re-seeds are wrapped by counters), not computed, and written to
results.json beside the formula's numbers.

What stays different, by design: the device's forces are the instantaneous spins (a physical
device has nothing else), the trainer's are Rao-Blackwellised (tanh(beta h) for the hidden
layer, exact in the positive phase). Both work in plain spin coordinates (no centring: the device
has none).

Output in RUN: results.json (settings, counts, per-seed curves, final table), relaxation_vs_pcd.png
(one panel per regime, mean over seeds with the 95 % t-interval band), table.md; the Markdown
table on stdout. Resumable: every finished (regime, seed, side) unit is one synced line of
RUN/results.jsonl; rerunning the same command skips the finished units (other settings in the same
folder: an error; a line cut off by a crash is dropped and its unit run again). One thread
(torch.set_num_threads(1)). A user's mistake is one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pbit_rig_inference import append_line, read_results  # noqa: E402  (resumable JSON lines)

#: the three regimes: the device's RelaxationConfig and its gradient counterpart (chains, k)
REGIMES = (
    {
        "name": "separated",
        "title": "separated time scales (persistent) vs PCD-1",
        "relaxation": {"tau_spin": 1.0, "dt": 1.0, "tau_data": 10.0, "tau_theta": 1000.0, "reseed": False},
        "chains": "pcd",
    },
    {
        "name": "reseeded",
        "title": "re-seeded, short tau_data (CD-like) vs CD-1",
        "relaxation": {"tau_spin": 1.0, "dt": 1.0, "tau_data": 1.0, "tau_theta": 200.0, "reseed": True},
        "chains": "cd",
    },
    {
        "name": "lagging",
        "title": "lagging (tau_theta short, persistent) vs PCD-1, large step",
        "relaxation": {"tau_spin": 1.0, "dt": 1.0, "tau_data": 1.0, "tau_theta": 50.0, "reseed": False},
        "chains": "pcd",
    },
)
BATCH = 100  # data items per batch = model copies = persistent chains
FIGURE = "relaxation_vs_pcd.png"
MAX_EXACT_HIDDEN = 20  # 2^20 hidden states: the exact sum still takes seconds
MAX_HIDDEN = 1000
#: settings that change the result: a resumed run must have the same ones
RESULT_KEYS = ("updates", "eval_every", "seeds", "test_size", "hidden", "loglik", "ais_scale", "ais_runs",
               "final_ais_scale", "reverse_sweeps")


class _Parser(argparse.ArgumentParser):
    """argparse whose errors (a bad number, an unknown option) are one UserError line."""

    def error(self, message: str):
        from labml.errors import UserError

        raise UserError(message)


def parse_args(argv=None) -> argparse.Namespace:
    p = _Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, metavar="DIR",
                   help="MNIST folder (default: $LABML_DATA, else the user data folder)")
    p.add_argument("--run-dir", required=True, type=Path, metavar="RUN")
    p.add_argument("--updates", type=int, default=3000, help="parameter updates per method and seed")
    p.add_argument("--eval-every", type=int, default=500, help="exact test LL every this many updates")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--test-size", type=int, default=None, help="cut the 10k test set (stratified)")
    p.add_argument("--hidden", type=int, default=16,
                   help=f"hidden units (<= {MAX_EXACT_HIDDEN}: exact log-likelihood; at most {MAX_HIDDEN})")
    p.add_argument("--loglik", choices=("auto", "exact", "ais"), default="auto",
                   help=f"auto: exact up to {MAX_EXACT_HIDDEN} hidden units, AIS above")
    p.add_argument("--ais-scale", type=float, default=0.1,
                   help="share of the S&M 2008 schedule for the curves' forward AIS")
    p.add_argument("--ais-runs", type=int, default=100, help="AIS runs (and reverse chains)")
    p.add_argument("--final-ais-scale", type=float, default=1.0,
                   help="share of the S&M 2008 schedule at the end of each run (forward and reverse)")
    p.add_argument("--reverse-sweeps", type=int, default=10_000,
                   help="Gibbs sweeps of the chains that reverse AIS starts from")
    a = p.parse_args(argv)
    check_args(a)
    return a


def dwell_steps(regime: dict) -> int:
    """S: device steps (= moves = model-copy sweeps) per data batch, as RelaxationConfig counts them."""
    from labml.bm.relaxation import RelaxationConfig

    return RelaxationConfig(**regime["relaxation"]).steps_per_item


def step_size(regime: dict) -> float:
    """The device's parameter move per step, mu_theta * dt (= the counterpart's lr, beta = 1)."""
    from labml.bm.relaxation import RelaxationConfig

    rc = RelaxationConfig(**regime["relaxation"])
    return rc.mu_theta * rc.dt


def check_args(a: argparse.Namespace) -> None:
    from labml.checks import check_float, check_int
    from labml.errors import UserError

    check_int("--updates", a.updates, 1)
    check_int("--eval-every", a.eval_every, 1)
    check_int("--test-size", a.test_size, 1, none_ok=True)
    check_int("--hidden", a.hidden, 1, MAX_HIDDEN)
    if a.loglik == "auto":
        a.loglik = "exact" if a.hidden <= MAX_EXACT_HIDDEN else "ais"
    if a.loglik == "exact" and a.hidden > MAX_EXACT_HIDDEN:
        raise UserError(f"--loglik exact with --hidden {a.hidden}: the exact log-likelihood takes "
                        f"at most {MAX_EXACT_HIDDEN} hidden units; use --loglik ais")
    check_float("--ais-scale", a.ais_scale, 0.0, 1.0, lo_open=True)
    check_float("--final-ais-scale", a.final_ais_scale, 0.0, 1.0, lo_open=True)
    check_int("--ais-runs", a.ais_runs, 2)
    check_int("--reverse-sweeps", a.reverse_sweeps, 1)
    for s in a.seeds:
        check_int("--seeds", s, 0)
    if len(set(a.seeds)) != len(a.seeds):
        raise UserError(f"--seeds {' '.join(map(str, a.seeds))}: each seed once")
    for r in REGIMES:
        S = dwell_steps(r)
        if a.updates % S or a.eval_every % S:
            raise UserError(f"--updates {a.updates} and --eval-every {a.eval_every} must be multiples of "
                            f"{S} (the {r['name']} device moves {S} times per data batch)")
    if a.updates % a.eval_every:
        raise UserError(f"--updates {a.updates} must be a multiple of --eval-every {a.eval_every}")


def load_data(data, test_size: int | None):
    """The binarised data as labml.bm.compare loads it (BMData.load: 0.5 threshold, 784 spins), with
    data seed 0 for every run (the same training items and the same test items for all methods)."""
    from labml.bm.training import BMData
    from labml.errors import UserError

    d, ds = BMData.load(data, None, test_size, 0)
    if len(d.x_train) < BATCH:
        raise UserError(f"the training set holds {len(d.x_train)} items, fewer than one batch of {BATCH}")
    s = ds.summary()
    summary = {k: s[k] for k in ("name", "n_train", "n_test", "n_features") if k in s}
    summary["files"] = str(s.get("source", "")).split(" in ")[0]  # no machine path
    return d, summary


def make_trainer(regime: dict, side: str, data, seed: int, hidden: int):
    """BMTrainer of one side: "device" (learning="relaxation" with the regime's RelaxationConfig) or
    "gradient" (PCD / CD, k = 1, heat bath, lr = the device's mu_theta * dt); plain spin
    coordinates, visible biases at the data's log-odds, same seed = same initial model."""
    from labml.bm.training import BMTrainConfig, BMTrainer

    device = side == "device"
    cfg = BMTrainConfig(
        model="rbm", hidden=hidden, epochs=1, batch_size=BATCH, lr=step_size(regime),
        chains=regime["chains"], kernel="heatbath", k=1, seed=seed, centering="none",
        learning="relaxation" if device else "gradient",
        relaxation=dict(regime["relaxation"]) if device else {},
    )
    return BMTrainer(cfg, data)


def attach_counters(tr) -> dict:
    """Count, while it runs, what the model system does: free sweeps (the model copy / chains),
    clamped sweeps (device: target copy; trainer: chain starts at the data, where the hidden spins
    are drawn given the data) and the device's re-seeds of the model copy. Wrapping changes no draw."""
    counts = {"model_sweeps": 0, "clamped_sweeps": 0, "reseeds": 0}
    sampler = tr.relaxation.sampler if tr.relaxation is not None else tr.sampler
    sweep = sampler.sweep

    def counted_sweep(state, clamped=(), *args, **kwargs):
        counts["clamped_sweeps" if clamped else "model_sweeps"] += 1
        return sweep(state, clamped, *args, **kwargs)

    sampler.sweep = counted_sweep
    if tr.relaxation is not None:
        reseed = tr.relaxation._reseed

        def counted_reseed():
            counts["reseeds"] += 1
            reseed()

        tr.relaxation._reseed = counted_reseed
    return counts


def spins_to_bits(v) -> np.ndarray:
    """0/1 pixels of a tensor of +/-1 spins (the data as labml.bm.ais takes it)."""
    return (v.detach().cpu().numpy() > 0).astype(np.uint8)


class TestLogLik:
    """The test log-likelihood (nats per test image) of a trainer's model: "exact"
    (BMTrainer.evaluate, the hidden states summed) or "ais" (forward AIS at `scale` of the S&M 2008
    schedule, `runs` runs, base rates from the training images), cached by the parameters' bytes
    (device and counterpart of one seed start from the same model: evaluated once)."""

    def __init__(self, how: str = "exact", scale: float = 0.1, runs: int = 100) -> None:
        self.how, self.scale, self.runs = how, scale, runs
        self._cache: dict[str, float] = {}

    @staticmethod
    def _key(tr) -> str:
        h = hashlib.sha256()
        for name, p in sorted(tr.model.state_dict().items()):
            h.update(name.encode())
            h.update(p.detach().cpu().numpy().tobytes())
        h.update(tr.v_test.numpy().tobytes())
        return h.hexdigest()

    def __call__(self, tr, ais_seed: int = 0) -> float:
        key = self._key(tr)
        if key not in self._cache:
            if self.how == "exact":
                ev = tr.evaluate()
                if ev["loglik_method"] != "exact":
                    raise RuntimeError(f"expected the exact log-likelihood, got {ev['loglik_method']}")
                self._cache[key] = float(ev["test_loglik"])
            else:
                from labml.bm.ais import ais_loglik

                r = ais_loglik(tr.model, spins_to_bits(tr.v_train), {"test": spins_to_bits(tr.v_test)},
                               self.scale, self.runs, seed=ais_seed)
                self._cache[key] = float(r["test_loglik_forward"])
        return self._cache[key]

    def final(self, tr, scale: float, reverse_sweeps: int, seed: int) -> dict:
        """Forward AIS at `scale` of the schedule and reverse AIS from `reverse_sweeps` Gibbs sweeps
        (chains started at training images), with the curve's own estimate of the same model."""
        from labml.bm.ais import ais_loglik

        r = ais_loglik(tr.model, spins_to_bits(tr.v_train), {"test": spins_to_bits(tr.v_test)},
                       scale, self.runs, seed=seed, reverse_sweeps=reverse_sweeps)
        r.pop("_starts")
        return {**r, "curve_schedule_test_loglik": self(tr)}


def run_side(regime: dict, side: str, data, seed: int, hidden: int, updates: int, eval_every: int,
             loglik: TestLogLik | None = None, final_ais: dict | None = None) -> dict:
    """Train one side for `updates` parameter updates; the test LL (`loglik`, default exact) every
    `eval_every` updates (AIS seed = the number of updates: the same on both sides at each point);
    with `final_ais` ({"scale", "reverse_sweeps"}) forward and reverse AIS at the end, whose forward
    estimate is then the final figure."""
    import torch

    loglik = loglik or TestLogLik("exact")
    tr = make_trainer(regime, side, data, seed, hidden)
    counts = attach_counters(tr)
    S = dwell_steps(regime)
    n = tr.v_train.shape[0]
    perm, pos = tr.np_rng.permutation(n), 0  # the same order on both sides (same seed)
    curve = [[0, loglik(tr, 0)]]
    done = batches = 0
    wall = 0.0
    while done < updates:
        if pos + BATCH > n:
            perm, pos = tr.np_rng.permutation(n), 0
        idx = perm[pos : pos + BATCH]
        pos += BATCH
        t0 = time.perf_counter()
        if side == "device":
            with torch.no_grad():
                tr.relaxation.present(tr.v_train[idx])
            done = tr.relaxation.parameter_moves
        else:
            for _ in range(S):
                tr.train_batch(idx)
            done = tr.updates
        wall += time.perf_counter() - t0
        batches += 1
        if done % eval_every == 0:
            curve.append([done, loglik(tr, done)])
    dev = tr.relaxation
    counts.update(
        parameter_updates=done,
        data_batches=batches,
        copies=dev.n_copies if dev is not None else tr.chains.n_chains,
        restarts_at_data=counts["reseeds"] if dev is not None else counts["clamped_sweeps"],
    )
    step = dev.config.mu_theta * dev.config.dt if dev is not None else tr.config.lr * tr.model.beta
    out = {"regime": regime["name"], "side": side, "seed": seed, "curve": curve,
           "final_test_ll": curve[-1][1], "train_wall_s": round(wall, 3), "counts": counts,
           "step_per_update": step}
    if final_ais is not None:
        fin = loglik.final(tr, final_ais["scale"], final_ais["reverse_sweeps"], seed=10_000 + seed)
        out["final_ais"] = fin
        out["final_test_ll"] = fin["test_loglik_forward"]
        out["final_test_ll_reverse"] = fin["test_loglik_reverse"]
    return out


def expected_counts(regime: dict, updates: int) -> dict:
    """The counts the formula gives (relaxation.py): S moves and S model sweeps per batch."""
    S = dwell_steps(regime)
    return {"steps_per_batch": S, "parameter_updates": updates, "model_sweeps": updates,
            "data_batches": updates // S, "copies": BATCH,
            "restarts_at_data": updates // S if regime["relaxation"]["reseed"] else 1}


def t_interval(x) -> tuple[float, float | None]:
    """Mean and the half-width of its two-sided 95 % Student-t interval (None for one value)."""
    from scipy import stats

    x = np.asarray(x, float)
    if len(x) < 2:
        return float(x.mean()), None
    return float(x.mean()), float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))


def method_label(regime: dict, side: str) -> str:
    if side == "device":
        r = regime["relaxation"]
        return (f"device (tau_data {r['tau_data']:g}, tau_theta {r['tau_theta']:g}"
                f"{', reseed' if r['reseed'] else ''})")
    return f"{regime['chains'].upper()}-1, lr {step_size(regime):g}"


def summarise(runs: list[dict], seeds: list[int]) -> list[dict]:
    """Per regime and side: final LL mean and t-interval, counts (checked equal across seeds), and
    the paired difference device - counterpart over the seeds."""
    rows = []
    for regime in REGIMES:
        finals = {}
        for side in ("device", "gradient"):
            rs = [r for r in runs if r["regime"] == regime["name"] and r["side"] == side]
            rs.sort(key=lambda r: seeds.index(r["seed"]))
            finals[side] = [r["final_test_ll"] for r in rs]
            mean, half = t_interval(finals[side])
            start, _ = t_interval([r["curve"][0][1] for r in rs])
            rows.append({"regime": regime["name"], "side": side, "method": method_label(regime, side),
                         "step_per_update": rs[0]["step_per_update"], "counts": rs[0]["counts"],
                         "counts_same_every_seed": all(r["counts"] == rs[0]["counts"] for r in rs),
                         "start_test_ll_mean": start, "final_test_ll_mean": mean, "final_test_ll_ci95": half,
                         "final_test_ll_per_seed": finals[side],
                         "train_wall_s_mean": float(np.mean([r["train_wall_s"] for r in rs]))})
            if all("final_test_ll_reverse" in r for r in rs):  # AIS: the reverse bracket beside it
                rev = [r["final_test_ll_reverse"] for r in rs]
                curve_end = [r["final_ais"]["curve_schedule_test_loglik"] for r in rs]
                rows[-1].update(final_test_ll_reverse_mean=float(np.mean(rev)),
                                final_test_ll_reverse_per_seed=rev,
                                curve_schedule_final_mean=float(np.mean(curve_end)))
        diff = np.subtract(finals["device"], finals["gradient"])
        mean, half = t_interval(diff)
        rows.append({"regime": regime["name"], "side": "device - counterpart", "paired_diff_mean": mean,
                     "paired_diff_ci95": half, "paired_diff_per_seed": diff.tolist()})
    return rows


def _pm(half) -> str:
    return "" if half is None else f" ± {half:.2f}"


def table(rows: list[dict]) -> str:
    """The final table in Markdown; with AIS two more columns: the mean reverse-AIS estimate and the
    mean of the curve's cheaper forward estimate of the same final models."""
    ais = any("final_test_ll_reverse_mean" in r for r in rows)
    what = "forward AIS test LL (nats, S&M schedule)" if ais else "exact test LL (nats)"
    extra_head = " reverse AIS (mean) | curve's AIS at the end (mean) |" if ais else ""
    lines = ["| regime | method | step / update | updates | model sweeps | batches | restarts at data | "
             f"{what}, mean ± 95 % t | per seed | train s (mean) |{extra_head}",
             "|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if ais else "")]
    for r in rows:
        if "paired_diff_mean" in r:
            per = " / ".join(f"{x:+.2f}" for x in r["paired_diff_per_seed"])
            lines.append(f"| {r['regime']} | device - counterpart (paired) | | | | | | "
                         f"{r['paired_diff_mean']:+.2f}{_pm(r['paired_diff_ci95'])} | {per} | |"
                         + (" | |" if ais else ""))
            continue
        c = r["counts"]
        per = " / ".join(f"{x:.2f}" for x in r["final_test_ll_per_seed"])
        lines.append(f"| {r['regime']} | {r['method']} | {r['step_per_update']:g} | "
                     f"{c['parameter_updates']} | {c['model_sweeps']} | {c['data_batches']} | "
                     f"{c['restarts_at_data']} | "
                     f"{r['final_test_ll_mean']:.2f}{_pm(r['final_test_ll_ci95'])} | {per} | "
                     f"{r['train_wall_s_mean']:.1f} |"
                     + (f" {r['final_test_ll_reverse_mean']:.2f} | {r['curve_schedule_final_mean']:.2f} |"
                        if ais else ""))
    return "\n".join(lines) + "\n"


def plot(runs: list[dict], seeds: list[int], path: Path, loglik: str = "exact", model: str = "RBM") -> None:
    """One panel per regime: test LL against parameter updates, mean over seeds, 95 % t band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(REGIMES), figsize=(5.2 * len(REGIMES), 4.2), squeeze=False)
    for ax, regime in zip(axes[0], REGIMES, strict=True):
        for side, colour, style in (("device", "C3", "-"), ("gradient", "C0", "--")):
            rs = [r for r in runs if r["regime"] == regime["name"] and r["side"] == side]
            x = np.array([u for u, _ in rs[0]["curve"]])
            ys = np.array([[ll for _, ll in r["curve"]] for r in rs])
            stats = [t_interval(ys[:, j]) for j in range(len(x))]
            mean = np.array([m for m, _ in stats])
            ax.plot(x, mean, style, color=colour, marker="o", ms=3, label=method_label(regime, side))
            if len(rs) > 1:
                half = np.array([h for _, h in stats])
                ax.fill_between(x, mean - half, mean + half, color=colour, alpha=0.2, lw=0)
        S = dwell_steps(regime)
        ax.set_title(f"{regime['title']}\nstep {step_size(regime):g}, {S} sweep(s) + move(s) per batch",
                     fontsize=9)
        ax.set_xlabel("parameter updates (= model-copy sweeps)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[0, 0].set_ylabel("exact test log-likelihood (nats)" if loglik == "exact"
                          else "test log-likelihood, forward AIS (nats)")
    fig.suptitle(f"{model}: relaxation device vs gradient counterpart, mean of {len(seeds)} seeds, "
                 "95 % t-interval band", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(a: argparse.Namespace) -> dict:
    """The whole benchmark: every regime, both sides, every seed; results.json, the figure, table.md."""
    import torch

    from labml.errors import UserError

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    data, summary = load_data(a.data, a.test_size)
    try:
        a.run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the run folder {a.run_dir}: {exc.strerror}") from None
    settings = {**{k: getattr(a, k) for k in RESULT_KEYS}, "data": summary}
    if a.loglik == "ais" and a.ais_runs > len(data.x_train):
        raise UserError(f"--ais-runs {a.ais_runs}: reverse AIS starts its chains at as many distinct "
                        f"training images, and there are {len(data.x_train)}")
    cfg = a.run_dir / "config.json"
    try:
        stored = json.loads(cfg.read_text()) if cfg.exists() else None
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{cfg} is not a settings file of this benchmark; use another --run-dir") from None
    if stored is not None and stored != json.loads(json.dumps(settings)):
        raise UserError(f"{a.run_dir} holds a run with other settings ({cfg}); use another --run-dir "
                        "or the same command")
    cfg.write_text(json.dumps(settings, indent=1) + "\n")
    uid = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    lines_path = a.run_dir / "results.jsonl"
    done = read_results(lines_path, uid)  # finished units of this run (a cut-off last line dropped)
    loglik = TestLogLik(a.loglik, a.ais_scale, a.ais_runs)
    final_ais = ({"scale": a.final_ais_scale, "reverse_sweeps": a.reverse_sweeps}
                 if a.loglik == "ais" else None)
    units = [(regime, seed, side) for regime in REGIMES for seed in a.seeds
             for side in ("device", "gradient")]
    runs = [d["run"] for d in done]
    for k, (regime, seed, side) in enumerate(units):
        if k < len(done):
            continue
        print(f"{regime['name']} {side} seed {seed} (unit {k + 1} of {len(units)}) ...", file=sys.stderr,
              flush=True)
        t0 = time.perf_counter()
        r = run_side(regime, side, data, seed, a.hidden, a.updates, a.eval_every, loglik, final_ais)
        r["unit_wall_s"] = round(time.perf_counter() - t0, 1)
        r["unit_load_average_1min_end"] = round(os.getloadavg()[0], 2)
        append_line(lines_path, {"uid": uid, "batch": k, "run": r})
        runs.append(r)
    rows = summarise(runs, a.seeds)
    counts = {}
    for regime in REGIMES:
        by_side = {r["side"]: r["counts"] for r in rows if r["regime"] == regime["name"] and "counts" in r}
        keys = ("parameter_updates", "model_sweeps", "data_batches", "copies", "restarts_at_data")
        counts[regime["name"]] = {
            "expected": expected_counts(regime, a.updates), "device": by_side["device"],
            "counterpart": by_side["gradient"],
            "equal": all(by_side["device"][k] == by_side["gradient"][k] for k in keys),
        }
    result = {
        "bench": "relaxation_vs_pcd",
        "config": {**{k: getattr(a, k) for k in RESULT_KEYS}, "seeds": list(a.seeds), "batch": BATCH,
                   "data": summary,
                   "model": f"RBM {summary['n_features']}x{a.hidden}, T = 1, plain spin coordinates",
                   "regimes": [{**r, "device_step": step_size(r), "counterpart_lr": step_size(r),
                                "steps_per_batch": dwell_steps(r)} for r in REGIMES]},
        "counts": counts, "final": rows, "runs": runs,
        "wall_s_total": round(time.perf_counter() - t_start, 1),  # this session
        "units_run_this_session": len(units) - len(done),
        "units_wall_s_sum": round(sum(r.get("unit_wall_s", 0.0) for r in runs), 1),  # every session's
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15_min": {"start": [round(x, 2) for x in load_start],
                                    "end": [round(x, 2) for x in os.getloadavg()]},
    }
    (a.run_dir / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (a.run_dir / "table.md").write_text(table(rows))
    plot(runs, list(a.seeds), a.run_dir / FIGURE, a.loglik, f"RBM {summary['n_features']}x{a.hidden}")
    return result


def main(argv=None) -> int:
    from labml.errors import UserError

    try:
        result = run(parse_args(argv))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table(result["final"]), end="")
    bad = [name for name, c in result["counts"].items() if not c["equal"]]
    if bad:
        print(f"counts differ between device and counterpart in: {', '.join(bad)}", file=sys.stderr)
        return 1
    print(f"wall time {result['wall_s_total']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
