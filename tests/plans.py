"""Small real plans used by the engine tests (test-local; not part of the package).

- `RegressionPlan` ("train-regression"): an MLP regression of scikit-learn's bundled diabetes data set
  on the model backend (no rig): Adam, shuffled minibatches, dropout, early stopping.
- `FieldSweepPlan` ("field-sweep"): a hysteresis loop of one wire by DC field steps on a rig.
- `RecordsPlan` ("records-stream"): no rig; blocks of acquisition rows (time, field ramp, noisy
  read-out, step index) and a histogram, all a function of the step index: the records kill test.

`register()` adds their run kinds to labml.runs.kinds (tests/conftest.py calls it), so run folders
they write resume through the registry like the package's own; a process started by a test imports
this module (tests/ on sys.path) and calls `register()` before `labml.cli.main`.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from labml.errors import UserError
from labml.runs import kinds as _kinds
from labml.runs.engine import Plan, RunContext
from labml.runs.kinds import Param, RunKind

log = logging.getLogger(__name__)


# ======================================================================================= regression
def load_diabetes() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled diabetes data (442 x 10 raw features, target), read from the files it
    ships without importing scikit-learn (seconds of import time on a loaded machine)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise UserError("the diabetes data set needs scikit-learn installed")
    folder = Path(spec.origin).parent / "datasets" / "data"
    X = np.loadtxt(folder / "diabetes_data_raw.csv.gz")
    y = np.loadtxt(folder / "diabetes_target.csv.gz")
    return X, y


class RegressionPlan(Plan):
    """MLP regression of the diabetes progression score (scikit-learn's bundled data set).

    Features and target standardised on the training split; the last `val_fraction` of a seeded
    permutation is the validation split. One step = one epoch of Adam over shuffled minibatches
    and dropout masks from one torch.Generator (part of the plan state; torch's global generator is
    never used). Early stopping after `patience` epochs without a better val_mse.
    Rows: "metrics" (epoch, train_mse, val_mse, best_val_mse) and "batches" (epoch, batch, loss).
    """

    kind = "train-regression"

    def __init__(
        self,
        epochs: int = 30,
        hidden: int = 16,
        lr: float = 0.01,
        batch_size: int = 32,
        dropout: float = 0.1,
        val_fraction: float = 0.2,
        patience: int = 0,
        seed: int = 0,
        threads: int = 1,
    ) -> None:
        checks = {
            "epochs": (epochs, isinstance(epochs, int) and epochs >= 1, "an integer >= 1"),
            "hidden": (hidden, isinstance(hidden, int) and hidden >= 1, "an integer >= 1"),
            "lr": (lr, isinstance(lr, int | float) and math.isfinite(lr) and lr > 0, "a number > 0"),
            "batch_size": (batch_size, isinstance(batch_size, int) and batch_size >= 1, "an integer >= 1"),
            "dropout": (dropout, isinstance(dropout, int | float) and 0 <= dropout < 1, "in [0, 1)"),
            "val_fraction": (val_fraction, isinstance(val_fraction, int | float) and 0 < val_fraction < 1,
                             "in (0, 1)"),
            "patience": (patience, isinstance(patience, int) and patience >= 0, "an integer >= 0 (0: off)"),
            "seed": (seed, isinstance(seed, int), "an integer"),
            "threads": (threads, isinstance(threads, int) and threads >= 1, "an integer >= 1"),
        }
        for name, (value, ok, want) in checks.items():
            if not ok or isinstance(value, bool):
                raise UserError(f"{self.kind}: parameter {name} must be {want}, got {value!r}")
        self.params = {
            "epochs": epochs, "hidden": hidden, "lr": float(lr), "batch_size": batch_size,
            "dropout": float(dropout), "val_fraction": float(val_fraction), "patience": patience,
            "seed": seed, "threads": threads,
        }
        self._built = False
        self.best_ = math.inf
        self.bad_epochs_ = 0
        self.last_: dict = {}

    def spec(self) -> dict:
        return {"kind": self.kind, "params": dict(self.params)}

    def n_steps(self) -> int:
        return self.params["epochs"]

    def _build(self) -> None:
        import torch

        p = self.params
        torch.set_num_threads(p["threads"])
        X, y = load_diabetes()
        order = np.random.default_rng(p["seed"]).permutation(len(y))
        n_val = int(round(p["val_fraction"] * len(y)))
        tr, va = order[n_val:], order[:n_val]
        mu, sd = X[tr].mean(0), X[tr].std(0)
        ymu, ysd = y[tr].mean(), y[tr].std()
        self.Xtr = torch.tensor((X[tr] - mu) / sd, dtype=torch.float32)
        self.ytr = torch.tensor((y[tr] - ymu) / ysd, dtype=torch.float32)[:, None]
        self.Xva = torch.tensor((X[va] - mu) / sd, dtype=torch.float32)
        self.yva = torch.tensor((y[va] - ymu) / ysd, dtype=torch.float32)[:, None]
        from labml.rng import Dropout, linear

        # explicit generators, never torch's global one: init from `init`, shuffling and dropout
        # masks from self.gen (saved in state_dict)
        init = torch.Generator().manual_seed(p["seed"])
        self.gen = torch.Generator().manual_seed(p["seed"] + 1)
        self.model = torch.nn.Sequential(
            linear(X.shape[1], p["hidden"], init),
            torch.nn.Tanh(),
            Dropout(p["dropout"], self.gen),
            linear(p["hidden"], 1, init),
        )
        self.opt = torch.optim.Adam(self.model.parameters(), lr=p["lr"])
        self._built = True

    def open(self, ctx: RunContext) -> None:
        if not self._built:
            self._build()

    def step(self, i: int, ctx: RunContext) -> bool:
        import torch

        p = self.params
        self.model.train()
        perm = torch.randperm(len(self.ytr), generator=self.gen)
        losses = []
        for b, start in enumerate(range(0, len(perm), p["batch_size"])):
            idx = perm[start : start + p["batch_size"]]
            self.opt.zero_grad()
            loss = torch.nn.functional.mse_loss(self.model(self.Xtr[idx]), self.ytr[idx])
            loss.backward()
            self.opt.step()
            value = loss.item()
            losses.append(value)
            ctx.emit("batches", {"epoch": i, "batch": b, "loss": value})
        self.model.eval()
        with torch.no_grad():
            val = float(torch.nn.functional.mse_loss(self.model(self.Xva), self.yva))
        if val < self.best_:
            self.best_, self.bad_epochs_ = val, 0
        else:
            self.bad_epochs_ += 1
        self.last_ = {"epoch": i, "train_mse": float(np.mean(losses)), "val_mse": val,
                      "best_val_mse": self.best_}
        ctx.emit("metrics", self.last_)
        return bool(p["patience"] and self.bad_epochs_ >= p["patience"])

    def results(self) -> dict:
        return {**self.last_, "epochs_run": self.last_.get("epoch", -1) + 1}

    def close(self, ctx: RunContext) -> None:
        ctx.save_arrays("model", **{k: v.detach().numpy() for k, v in self.model.state_dict().items()})

    def state_dict(self) -> dict:
        return {
            "model": {k: v.clone() for k, v in self.model.state_dict().items()},
            "opt": self.opt.state_dict(),
            "gen": self.gen.get_state(),
            "best": self.best_,
            "bad": self.bad_epochs_,
            "last": dict(self.last_),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])
        self.best_ = float(state["best"])
        self.bad_epochs_ = int(state["bad"])
        self.last_ = dict(state["last"])


# ======================================================================================= field sweep
def quantity(value: Any, unit: str, where: str) -> float:
    """A number in `unit`: a plain number (taken as `unit`) or a string with units ("12 mT",
    "0.012 T", "500 us") converted with pint; anything else is a UserError naming `where`."""
    if isinstance(value, bool):
        raise UserError(f"{where}: {value!r} is not a number (in {unit})")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise UserError(f"{where}: {value!r} is not a number (in {unit})")
    from pymeasure.units import ureg

    try:
        q = ureg.Quantity(value.strip())
    except Exception as exc:  # noqa: BLE001 - pint raises several kinds
        raise UserError(f"{where}: cannot read {value!r} as a quantity in {unit}") from exc
    if isinstance(q, int | float) or q.dimensionless:
        return float(q.magnitude if hasattr(q, "magnitude") else q)
    try:
        return float(q.to(unit).magnitude)
    except Exception as exc:  # noqa: BLE001 - DimensionalityError
        raise UserError(
            f"{where}: {value!r} has units {q.units:~}, which cannot be converted to {unit}"
        ) from exc


def switching_field(fields: np.ndarray, signal: np.ndarray) -> float:
    """Field (mT) of the largest step in `signal` along a branch: the change point that best splits
    the branch into two constant levels (least squares), reported midway between the two fields
    around it. NaN for fewer than 2 points."""
    s = np.asarray(signal, dtype=float)
    f = np.asarray(fields, dtype=float)
    if s.size < 2:
        return float("nan")
    csum, csq = np.cumsum(s), np.cumsum(s * s)
    n = s.size
    best, at = np.inf, 1
    for k in range(1, n):
        left = csq[k - 1] - csum[k - 1] ** 2 / k
        right = (csq[-1] - csq[k - 1]) - (csum[-1] - csum[k - 1]) ** 2 / (n - k)
        if left + right < best:
            best, at = left + right, k
    return float(0.5 * (f[at - 1] + f[at]))


class FieldSweepPlan(Plan):
    """Hysteresis loop of one wire on a rig: DC field stepped -H..+H..-H through the CoilGuard
    (``rig.ramp_to_field``: validated, rate-limited), the Hall probe and the read-out signal read at
    every field after `settle_s` (s, on the rig's clock).

    One step = one field point. A pause ramps the field to zero; `establish` re-saturates at the
    start of the current branch and re-walks it to the last field measured, so a paused loop is
    the loop an uninterrupted sweep gives. Rows: "loop" (loop, branch, field_set_mT, field_mT,
    signal). Results: switching fields of the up and down branches (mT), coercive field, shift.
    """

    kind = "field-sweep"
    needs_rig = True

    def __init__(self, wire: int = 0, field_max_mT: float | str = 12.0, step_mT: float | str = 1.0,
                 loops: int = 1, settle_s: float | str = 0.01) -> None:
        field_max_mT = quantity(field_max_mT, "mT", f"{self.kind}: parameter field_max_mT")
        step_mT = quantity(step_mT, "mT", f"{self.kind}: parameter step_mT")
        settle_s = quantity(settle_s, "s", f"{self.kind}: parameter settle_s")
        for name, v, ok in (
            ("wire", wire, isinstance(wire, int) and not isinstance(wire, bool) and wire >= 0),
            ("field_max_mT", field_max_mT, isinstance(field_max_mT, int | float) and field_max_mT > 0),
            ("step_mT", step_mT, isinstance(step_mT, int | float) and 0 < step_mT <= field_max_mT),
            ("loops", loops, isinstance(loops, int) and loops >= 1),
            ("settle_s", settle_s, isinstance(settle_s, int | float) and 0 <= settle_s <= 60),
        ):
            if not ok or not math.isfinite(float(v)):
                raise UserError(f"{self.kind}: parameter {name} = {v!r} is out of range")
        self.params = {"wire": wire, "field_max_mT": float(field_max_mT), "step_mT": float(step_mT),
                       "loops": loops, "settle_s": float(settle_s)}
        n = int(round(2 * field_max_mT / step_mT)) + 1
        up = np.linspace(-field_max_mT, field_max_mT, n)
        self.points = [(lp, br, float(H)) for lp in range(loops)
                       for br, fields in (("up", up), ("down", up[::-1])) for H in fields]
        self.rows_: list[dict] = []

    def spec(self) -> dict:
        return {"kind": self.kind, "params": dict(self.params)}

    def n_steps(self) -> int:
        return len(self.points)

    def validate(self, rig_config: Any) -> dict:
        """Every field within the config's field limit; duration of the sweep at the ramp rate (s)."""
        limits, coil = rig_config.limits, rig_config.coil
        H = self.params["field_max_mT"]
        fmax = min(limits.field_max_mT, limits.i_max_A * coil.mT_per_A)
        if H > fmax:
            raise UserError(f"{self.kind}: field_max_mT = {H:g} mT exceeds the rig's field limit {fmax:g} mT "
                            f"({rig_config.source if hasattr(rig_config, 'source') else 'rig config'})")
        n_wires = len(rig_config.wires)
        if self.params["wire"] >= n_wires:
            raise UserError(f"{self.kind}: wire {self.params['wire']} does not exist (rig has {n_wires})")
        ramp_s = 4 * H * self.params["loops"] / (limits.ramp_rate_A_per_s * coil.mT_per_A)
        return {"steps": self.n_steps(), "estimate_s": ramp_s + self.n_steps() * self.params["settle_s"]}

    def open(self, ctx: RunContext) -> None:
        ctx.rig.select(self.params["wire"])

    def step(self, i: int, ctx: RunContext) -> None:
        loop, branch, H = self.points[i]
        rig = ctx.rig
        rig.ramp_to_field(H)
        if self.params["settle_s"]:
            rig.clock.sleep(self.params["settle_s"])
        sensor = getattr(rig, "field_sensor", None)
        measured = float(sensor.field_mT) if sensor is not None else float("nan")
        row = {"loop": loop, "branch": branch, "field_set_mT": H, "field_mT": measured,
               "signal": float(rig.readout.signal())}
        self.rows_.append(row)
        ctx.emit("loop", row)

    def safe_to_hold(self, i: int) -> bool:
        return False

    def establish(self, i: int, ctx: RunContext) -> None:
        if i >= len(self.points):
            return
        loop, branch, _ = self.points[i]
        start = -self.params["field_max_mT"] if branch == "up" else self.params["field_max_mT"]
        log.info("re-establishing: saturate at %g mT, re-walk the %s branch of loop %d to step %d",
                 start, branch, loop, i)
        rig = ctx.rig
        rig.select(self.params["wire"])
        rig.ramp_to_field(start)
        for j in range(i):
            if self.points[j][:2] == (loop, branch):
                rig.ramp_to_field(self.points[j][2])

    def results(self) -> dict:
        out: dict = {"points": len(self.rows_)}
        for branch in ("up", "down"):
            sw = []
            for lp in range(self.params["loops"]):
                rows = [r for r in self.rows_ if r["loop"] == lp and r["branch"] == branch]
                if len(rows) > 1:
                    sw.append(switching_field([r["field_set_mT"] for r in rows], [r["signal"] for r in rows]))
            if sw:
                out[f"switching_field_{branch}_mT"] = float(np.mean(sw))
        if "switching_field_up_mT" in out and "switching_field_down_mT" in out:
            up, down = out["switching_field_up_mT"], out["switching_field_down_mT"]
            out["coercive_field_mT"], out["loop_shift_mT"] = 0.5 * (up - down), 0.5 * (up + down)
        return out

    def close(self, ctx: RunContext) -> None:
        ctx.rig.zero()
        if self.rows_:
            ctx.save_arrays("loop", **{k: np.array([r[k] for r in self.rows_])
                                       for k in ("loop", "field_set_mT", "field_mT", "signal")})

    def state_dict(self) -> dict:
        return {"rows": [dict(r) for r in self.rows_]}

    def load_state_dict(self, state: dict) -> None:
        self.rows_ = [dict(r) for r in state.get("rows", [])]


# ======================================================================================= run kinds
class RecordsPlan(Plan):
    """`rows` rows per step of series "trace" (t_s, field_mT, signal_V, step: a field ramp and a
    noisy read-out, each step's noise from its own seed) and every 5th step the arrays "histogram"
    (counts of the signal so far). Every value is a function of the step index (`expected_rows`),
    so a killed and resumed run can be checked row by row without a reference run."""

    kind = "records-stream"

    def __init__(self, steps: int = 100, rows: int = 200, seed: int = 0) -> None:
        self.steps, self.rows, self.seed = steps, rows, seed

    def spec(self) -> dict:
        return {"kind": self.kind, "params": {"steps": self.steps, "rows": self.rows, "seed": self.seed}}

    def n_steps(self) -> int:
        return self.steps

    @staticmethod
    def block(i: int, rows: int, seed: int) -> dict[str, np.ndarray]:
        t = (i * rows + np.arange(rows)) * 1e-3
        field = 10.0 * np.sin(2 * np.pi * t / 2.0)
        noise = np.random.default_rng([seed, i]).normal(0.0, 0.05, rows)
        return {"t_s": t, "field_mT": field, "signal_V": np.tanh(field / 3.0) + noise,
                "step": np.full(rows, i, dtype=np.int64)}

    def step(self, i: int, ctx: RunContext) -> None:
        cols = self.block(i, self.rows, self.seed)
        for k in range(self.rows):  # one row at a time, as a protocol emits them
            ctx.emit("trace", {c: v[k].item() for c, v in cols.items()})
        if i % 5 == 4:
            sig = np.concatenate([self.block(j, self.rows, self.seed)["signal_V"] for j in range(i + 1)])
            ctx.save_arrays("histogram", counts=np.histogram(sig, bins=20, range=(-1.5, 1.5))[0])

    def expected_rows(self, steps: int | None = None) -> dict[str, np.ndarray]:
        blocks = [self.block(i, self.rows, self.seed) for i in range(self.steps if steps is None else steps)]
        return {c: np.concatenate([b[c] for b in blocks]) for c in blocks[0]}


def run_kinds() -> list:
    """The run kinds of the test plans."""
    kinds = []
    kinds.append(RunKind("records-stream", RecordsPlan, (
        Param("steps", "int", low=1, default=100, help="steps"),
        Param("rows", "int", low=1, default=200, help="rows per step"),
        Param("seed", "int", default=0, help="seed of the read-out noise"),
    ), help="blocks of acquisition rows, no rig (records kill test)"))
    kinds.append(RunKind("train-regression", RegressionPlan, (
        Param("epochs", "int", low=1, default=30, help="epochs"),
        Param("hidden", "int", low=1, default=16, help="hidden units"),
        Param("lr", "float", low=0, low_open=True, default=0.01, help="Adam learning rate"),
        Param("batch_size", "int", low=1, default=32, help="minibatch size"),
        Param("dropout", "float", low=0, high=1, high_open=True, default=0.1, help="dropout probability"),
        Param("val_fraction", "float", low=0, high=1, low_open=True, high_open=True, default=0.2,
              help="validation fraction"),
        Param("patience", "int", low=0, default=0, help="early-stopping patience in epochs (0: off)"),
        Param("seed", "int", default=0, help="seed"),
        Param("threads", "int", low=1, default=1, help="torch threads"),
    ), help="MLP regression of the diabetes data set (model backend, example plan)"))
    kinds.append(RunKind("field-sweep", FieldSweepPlan, (
        Param("wire", "int", low=0, default=0, help="wire index"),
        Param("field_max_mT", "float", unit="mT", low=0, low_open=True, default=12.0, help="loop amplitude"),
        Param("step_mT", "float", unit="mT", low=0, low_open=True, default=1.0, help="field step"),
        Param("loops", "int", low=1, default=1, help="number of loops"),
        Param("settle_s", "float", unit="s", low=0, high=60, default=0.01, help="settle time per point"),
    ), help="hysteresis loop of one wire by DC field steps (example plan)"))
    return kinds


def register() -> None:
    """Register the test plans' run kinds (once per process)."""
    for kind in run_kinds():
        if kind.name not in _kinds.REGISTRY:
            _kinds.register(kind)
    # how run.json named the regression plan before run kinds existed (the legacy-spec tests)
    _kinds.LEGACY_FACTORIES.setdefault("labml.engine_plans:RegressionPlan", lambda p: ("train-regression", p))
