"""Depinning calibration of a wire, and characterisation of every wire of a rig (SCIENCE.md section 1).

depinning-calibration: P_pass of one wire on a field grid, N reads per field, exact (Clopper-Pearson)
binomial error bars; the logistic fit at the calibration pulse length; with extra pulse lengths the
Neel-Brown fit (f0 and beta fixed) with parameter uncertainties; a new versioned calibration file.

characterise-wires: the logistic calibration of every wire, and the spread of the fitted parameters.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import numpy as np

from labml import figures
from labml.errors import UserError
from protocols._pymeasure import (
    BooleanParameter,
    FloatParameter,
    IntegerParameter,
    ListParameter,
    Parameter,
)
from protocols.base import RigInfo, RigProcedure
from protocols.fits import LogisticFit, NeelBrownFit, binomial_interval
from protocols.parameters import FloatListParameter

log = logging.getLogger(__name__)


def read_counts(
    rig, fields_mT: np.ndarray, wire: int, n: int, duration_s: float | None, method: str = "read_synapses"
) -> tuple[np.ndarray, float, float]:
    """Pass counts out of n reads at each field on one wire: (counts, bench_time_s, energy_J).

    method "read_synapses" uses the rig's batched read (a burst of cycles with buffered acquisition on
    the bench, the vectorised kernel in simulation); "cycle" runs n full cycles per field one by one
    (the slow, command-by-command path). A pulse length other than the rig's default cycle is passed
    to read_synapses when it takes `duration_s`, otherwise the cycles are run one by one.
    """
    fields = np.asarray(fields_mT, dtype=float)
    if method == "read_synapses":
        sig = inspect.signature(rig.read_synapses).parameters
        kw = {}
        if duration_s is not None:
            if "duration_s" in sig:
                kw["duration_s"] = duration_s
            else:
                default = _default_duration(rig)
                if default is None or not np.isclose(default, duration_s):
                    method = "cycle"
        if method == "read_synapses":
            reads = rig.read_synapses(fields, np.full(fields.shape, wire, dtype=int), n, **kw)
            return np.asarray(reads.counts, dtype=int), float(reads.bench_time_s), float(reads.energy_J)
    # one cycle at a time
    if hasattr(rig, "select"):
        rig.select(wire)
    t0 = rig.clock.now() if hasattr(rig, "clock") else 0.0
    counts = np.zeros(fields.shape, dtype=int)
    for i, H in enumerate(fields):
        counts[i] = sum(int(rig.cycle(float(H), duration_s)) for _ in range(n))
    t1 = rig.clock.now() if hasattr(rig, "clock") else 0.0
    return counts, float(t1 - t0), float("nan")


def _default_duration(rig) -> float | None:
    cfg = getattr(rig, "config", None)
    cycle = getattr(cfg, "cycle", None) if cfg is not None else None
    if cycle is None:
        return None
    if isinstance(cycle, dict):
        return cycle.get("pulse_duration_s")
    return getattr(cycle, "pulse_duration_s", None)


def write_calibration_file(
    wire: int, logistic: dict, neel_brown: dict | None, meta: dict, folder: Path
) -> Path:
    """Write a new versioned calibration file `folder/wire<W>-v<N>.toml` and return its path.

    Uses instruments.config.write_calibration (never overwrites: N is one more than the newest version);
    a rig config references it with `[[wires]] calibration_file = "..."`. The fit uncertainties, the
    goodness of fit and the provenance go into its [meta] table.
    """
    from instruments.calibration import Logistic, NeelBrown
    from instruments.config import write_calibration

    cal = Logistic(H0=float(logistic["H0"]), k=float(logistic["k"]), a=float(logistic["a"]))
    nb = NeelBrown.from_dict(neel_brown) if neel_brown is not None else None
    meta = dict(meta)
    for key in ("H0_err", "k_err", "a_err", "chi2", "dof"):
        if key in logistic:
            meta[key] = float(logistic[key]) if key != "dof" else int(logistic[key])
    return Path(write_calibration(folder, wire, cal, nb, meta))


class _DepinningBase(RigProcedure):
    """Parameters, planning, measurement and fits shared by the two depinning protocols."""

    NAME = "depinning-calibration"
    #: parameters that are filesystem paths (the GUI's form offers a folder picker): Param.path
    PATH_PARAMETERS = {"calibration_dir": "dir"}  # noqa: RUF012
    DESCRIPTION = (
        "P_pass of a wire on a field grid (N reads each, binomial error bars), logistic fit, "
        "Neel-Brown fit over 2-3 pulse lengths, new calibration file"
    )
    SWEEP_PLOT = ("reads", "H0")

    wire = IntegerParameter("Wire", default=0, minimum=0, maximum=4095)
    field_start = FloatParameter("Start field", units="mT", default=2.0, minimum=-100, maximum=100)
    field_stop = FloatParameter("Stop field", units="mT", default=8.0, minimum=-100, maximum=100)
    field_points = IntegerParameter("Field points", default=13, minimum=3, maximum=1000)
    reads = IntegerParameter("Reads per field", default=200, minimum=1, maximum=1_000_000)
    pulse_duration = FloatParameter(
        "Pulse length",
        units="s",
        default=1e-3,
        minimum=1e-6,
        maximum=1.0,
        description="plateau of the drive pulse of the logistic calibration",
    )
    nb_durations = FloatListParameter(
        "Extra pulse lengths",
        units="s",
        default=[],
        minimum=1e-6,
        maximum=1.0,
        description="more pulse lengths for the Neel-Brown fit, e.g. "
        "'0.1 ms, 10 ms' (empty: no Neel-Brown fit)",
    )
    nb_field_stop = FloatParameter(
        "Neel-Brown stop field",
        units="mT",
        default=0.0,
        minimum=0,
        maximum=100,
        description="stop field at the extra pulse lengths (0: 1.6 x stop field)",
    )
    f0 = FloatParameter("Attempt frequency f0", units="Hz", default=1e9, minimum=1e3, maximum=1e15)
    beta_dw = FloatParameter("Barrier exponent beta", default=1.5, minimum=1.0, maximum=3.0)
    method = ListParameter("Read method", choices=["read_synapses", "cycle"], default="read_synapses")
    order = ListParameter(
        "Field order",
        choices=["random", "ascending"],
        default="random",
        description="order of the fields at each pulse length (random: seeded by --seed)",
    )
    write_calibration = BooleanParameter("Write calibration file", default=True)
    calibration_dir = Parameter(
        "Calibration folder",
        default="",
        description="folder for the versioned calibration file (empty: the run folder)",
    )

    DATA_COLUMNS = ["Wire", "Pulse length (s)", "Field (mT)", "Reads", "Passes", "P_pass", "P low", "P high"]

    # --- planning --------------------------------------------------------------------------------
    def durations(self) -> list[float]:
        extra = [d for d in (self.nb_durations or []) if not np.isclose(d, self.pulse_duration)]
        return [float(self.pulse_duration)] + [float(d) for d in extra]

    def fields_for(self, duration: float) -> np.ndarray:
        if np.isclose(duration, self.pulse_duration):
            return np.linspace(self.field_start, self.field_stop, self.field_points)
        stop = self.nb_field_stop or 1.6 * self.field_stop
        # Short pulses need more field, long pulses less: cover a wide grid at every extra length.
        return np.linspace(min(self.field_start, 0.5 * self.field_start), stop, self.field_points)

    def check_plan(self, info: RigInfo) -> None:
        if self.field_stop <= self.field_start:
            raise UserError(
                f"protocol {self.NAME!r}: field_stop ({self.field_stop:g} mT) must be above "
                f"field_start ({self.field_start:g} mT)"
            )
        info.check_wire(self.NAME, self.wire)
        for d in self.durations():
            info.check_fields(self.NAME, f"the field grid at pulse length {d:g} s", self.fields_for(d))

    def get_estimates(self, info: RigInfo | None = None) -> float:
        info = info or RigInfo()
        total = 0.0
        for _w, d, H in self._points():
            total += info.cycle_time_s(d, H) * self.reads
        return float(total)

    def plan_summary(self, info: RigInfo) -> dict:
        return {
            "wire": self.wire,
            "pulse_lengths_s": self.durations(),
            "field_grids_mT": {f"{d:g}": self.fields_for(d).round(4).tolist() for d in self.durations()},
            "reads_per_field": self.reads,
            "total_reads": int(self.n_steps() * self.reads),
            "steps": self.n_steps(),
            "estimate_s": self.get_estimates(info),
        }

    # --- steps: one field point (N reads) of one pulse length of one wire per step ----------------
    def wires_to_measure(self) -> list[int]:
        return [int(self.wire)]

    def _points(self) -> list[tuple[int, float, float]]:
        """(wire, pulse length, field) of every step. With order "random" the fields of each pulse
        length are measured in a seeded random order, so a slow drift (coil heating, temperature)
        does not masquerade as a change with field."""
        rng = np.random.default_rng(int(self.seed))
        pts = []
        for w in self.wires_to_measure():
            for d in self.durations():
                fields = self.fields_for(d)
                if self.order == "random":
                    fields = fields[rng.permutation(fields.size)]
                pts.extend((w, d, float(H)) for H in fields)
        return pts

    def n_steps(self) -> int:
        return len(self._points())

    def startup(self) -> None:
        super().startup()
        if not hasattr(self, "_data"):
            self._data: dict[str, list] = {
                "wire": [],
                "duration_s": [],
                "field_mT": [],
                "counts": [],
                "n": [],
                "bench_time_s": [],
                "energy_J": [],
            }

    def measured_state(self) -> dict:
        return {"data": {k: list(v) for k, v in getattr(self, "_data", {}).items()}}

    def load_measured_state(self, state: dict) -> None:
        self._data = {k: list(v) for k, v in state.get("data", {}).items()}

    def step(self, i: int, ctx: Any = None) -> None:
        wire, d, H = self._points()[i]
        default = _default_duration(self.rig)
        dur_arg = None if default is not None and np.isclose(d, default) else d
        counts, t, e = read_counts(self.rig, np.array([H]), wire, int(self.reads), dur_arg, self.method)
        c = int(counts[0])
        lo, hi = binomial_interval(c, self.reads)
        self.emit(
            "results",
            {
                "Wire": wire,
                "Pulse length (s)": d,
                "Field (mT)": H,
                "Reads": int(self.reads),
                "Passes": c,
                "P_pass": c / self.reads,
                "P low": float(lo),
                "P high": float(hi),
            },
        )
        for key, v in zip(
            self._data, (wire, d, H, c, int(self.reads), t, e if np.isfinite(e) else 0.0), strict=True
        ):
            self._data[key].append(v)

    def fit_wire(self, wire: int) -> dict:
        """Logistic (and, with 2+ pulse lengths, Neel-Brown) fit of the data measured on `wire`."""
        D = {k: np.asarray(v) for k, v in self._data.items()}
        m = D["wire"] == wire
        if not m.any():
            return {}
        H, tau, k, n = D["field_mT"][m], D["duration_s"][m], D["counts"][m], D["n"][m]
        self.save_arrays(f"depinning_wire{wire}", field_mT=H, duration_s=tau, counts=k, n=n)
        main = np.isclose(tau, self.pulse_duration)
        out: dict = {
            "wire": wire,
            "bench_time_s": float(D["bench_time_s"][m].sum()),
            "energy_J": float(D["energy_J"][m].sum()),
            "total_reads": int(n.sum()),
        }
        if main.sum() < 3:
            return out
        lfit = LogisticFit().fit(H[main], k[main], n[main])
        out.update(lfit.to_dict())
        label = f"logistic fit ({self.pulse_duration * 1e3:g} ms): H0 = {lfit.params_['H0']:.3g} mT"
        low, high = binomial_interval(k, n)  # the interval of the data series' "P low" / "P high"
        self.save_figure(f"depinning_wire{wire}.png", figures.depinning, H, k / n, low, high, tau,
                         fit=(label, lfit.predict), wire=wire)
        if np.unique(tau).size >= 2:
            info = self.info or RigInfo()
            nb = NeelBrownFit(f0_Hz=self.f0, beta=self.beta_dw, slew_mT_per_s=info.slew_mT_per_s)
            nb.fit(H, k, n, tau)
            out["neel_brown"] = nb.to_dict()
        return out

    def _write(self, wire: int, res: dict) -> str | None:
        if not self.write_calibration or "H0" not in res:
            return None
        folder = (
            Path(self.calibration_dir)
            if self.calibration_dir
            else (self.run.path if self.run is not None else Path("."))
        )
        meta = {
            "protocol": self.NAME,
            "pulse_duration_s": float(self.pulse_duration),
            "reads_per_field": int(self.reads),
            "field_points": int(self.field_points),
        }
        if self.run is not None:
            meta["run_uid"] = str(self.run.meta.get("uid", ""))
            meta["run_dir"] = str(self.run.path)
        nb = res["neel_brown"]["model"] if "neel_brown" in res else None
        path = write_calibration_file(wire, res, nb, meta, folder)
        log.info("wrote calibration of wire %d to %s", wire, path)
        return str(path)


class DepinningCalibration(_DepinningBase):
    """P_pass of one wire on a field grid; logistic and Neel-Brown fits; a versioned calibration file."""

    def finalize(self) -> None:
        res = self.fit_wire(int(self.wire))
        path = self._write(int(self.wire), res)
        if path:
            res["calibration_file"] = path
        self.results_.update(res)


class CharacteriseWires(_DepinningBase):
    """The depinning calibration of every wire of the rig, and the spread of the fitted parameters."""

    NAME = "characterise-wires"
    DESCRIPTION = "logistic calibration of every wire of the rig, with the spread of H0, k, a across wires"
    SWEEP_PLOT = None

    wires = Parameter("Wires", default="all", description="'all' or a comma-separated list, e.g. '0,1,3'")

    def wire_list(self, n_wires: int) -> list[int]:
        if str(self.wires).strip().lower() == "all":
            return list(range(n_wires))
        try:
            ws = [int(s) for s in str(self.wires).split(",") if s.strip()]
        except ValueError:
            raise UserError(
                f"protocol {self.NAME!r}, parameter 'wires': {self.wires!r} is not 'all' or a "
                "list of wire numbers"
            ) from None
        if not ws:
            raise UserError(f"protocol {self.NAME!r}, parameter 'wires': empty list")
        return ws

    def wires_to_measure(self) -> list[int]:
        n = (self.info or RigInfo()).n_wires
        return self.wire_list(n)

    def check_plan(self, info: RigInfo) -> None:
        ws = self.wire_list(info.n_wires)
        for w in ws:
            info.check_wire(self.NAME, w)
        # 'all' becomes the explicit list, so the recorded plan (and a resume) measures the same wires.
        self.wires = ",".join(str(w) for w in ws)
        self._parameters["wires"]._value = self.wires
        super().check_plan(info)

    def finalize(self) -> None:
        per_wire = {}
        for w in self.wires_to_measure():
            res = self.fit_wire(w)
            if "H0" not in res:
                continue
            path = self._write(w, res)
            if path:
                res["calibration_file"] = path
            per_wire[w] = res
        if not per_wire:
            return
        spread = {}
        for p in ("H0", "k", "a"):
            vals = np.array([r[p] for r in per_wire.values()])
            spread[f"{p}_mean"] = float(vals.mean())
            spread[f"{p}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
            spread[f"{p}_min"] = float(vals.min())
            spread[f"{p}_max"] = float(vals.max())
        self.results_.update(spread)
        self.results_["n_wires"] = len(per_wire)
        self.results_["wires"] = {
            str(w): {k: v for k, v in r.items() if k != "neel_brown"} for w, r in per_wire.items()
        }
        self.results_["bench_time_s"] = float(sum(r["bench_time_s"] for r in per_wire.values()))
        if self.run is not None:
            for w, r in per_wire.items():
                self.run.append_row(
                    "wire_fits",
                    {
                        "wire": w,
                        **{k: r[k] for k in ("H0", "H0_err", "k", "k_err", "a", "a_err", "chi2", "dof")},
                    },
                )
