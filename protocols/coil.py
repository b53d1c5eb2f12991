"""Coil calibration: field per current (mT/A) against the Hall probe, with remanence.

Sequence (every current change through the CoilGuard): ramp to +I_max, back to 0 A and read the
remanent field B_r+; ramp to -I_max, back to 0 A and read B_r-; then step the DC current from -I_max to
+I_max reading the Hall probe (`hall_reads` readings averaged) at each point. A least-squares line
B = c I + B0 (scipy.stats.linregress) gives c (mT/A) with its standard error; the remanence is
(B_r+ - B_r-)/2 and the zero offset (B_r+ + B_r-)/2.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from labml import figures
from labml.errors import UserError
from protocols._pymeasure import FloatParameter, IntegerParameter
from protocols.base import RigInfo, RowsProcedure

log = logging.getLogger(__name__)


class CoilCalibration(RowsProcedure):
    """mT per A of the coil against the Hall probe, with remanence and offset."""

    NAME = "coil-calibration"
    DESCRIPTION = "coil field per current (mT/A) against the Hall probe, with remanence and zero offset"
    SWEEP_PLOT = ("current_max", "mT_per_A")

    current_max = FloatParameter("Maximum current", units="A", default=5.0, minimum=1e-3, maximum=1000.0)
    points = IntegerParameter("Current points", default=11, minimum=3, maximum=10_000)
    settle = FloatParameter("Settle time", units="s", default=0.05, minimum=0.0, maximum=60.0)
    hall_reads = IntegerParameter("Hall readings per point", default=5, minimum=1, maximum=10_000)

    DATA_COLUMNS = ["Kind", "Current (A)", "Field (mT)", "Field std (mT)"]

    # the first four steps measure the remanence
    _REM = [("saturate+", 1.0), ("remanence+", 0.0), ("saturate-", -1.0), ("remanence-", 0.0)]

    def currents(self) -> np.ndarray:
        return np.linspace(-self.current_max, self.current_max, int(self.points))

    def n_steps(self) -> int:
        return len(self._REM) + int(self.points)

    def check_plan(self, info: RigInfo) -> None:
        if self.current_max > info.i_max_A:
            raise UserError(
                f"protocol {self.NAME!r}: current_max {self.current_max:g} A is beyond the rig's "
                f"i_max_A = {info.i_max_A:g} A (rig {info.name!r})"
            )
        info.check_fields(
            self.NAME, f"current_max {self.current_max:g} A", [self.current_max * info.mT_per_A]
        )

    def get_estimates(self, info: RigInfo | None = None) -> float:
        info = info or RigInfo()
        ramp_A_per_s = info.ramp_mT_per_s / info.mT_per_A
        travel = 6 * self.current_max  # +I, 0, -I, 0, then -I..+I
        return float(travel / ramp_A_per_s + self.n_steps() * (self.settle + 0.01 * self.hall_reads))

    def startup(self) -> None:
        super().startup()
        if self.sensor is None:
            raise UserError(f"protocol {self.NAME!r}: rig has no field sensor (Hall probe) role")

    def establish(self, i: int, ctx: Any = None) -> None:
        """The remanence depends on the history: redo the saturation before a remanence reading;
        the sweep re-approaches from -I_max."""
        if i < len(self._REM):
            kind, sign = self._REM[i]
            if kind.startswith("remanence"):
                self._ramp_current((1 if kind.endswith("+") else -1) * self.current_max)
        else:
            self._ramp_current(-self.current_max)

    def _ramp_current(self, current_A: float) -> None:
        """DC coil current through the rig (output on; the CoilGuard validates and rate-limits)."""
        if hasattr(self.rig, "ramp_to_field"):
            self.rig.ramp_to_field(current_A * self.rig.config.coil.mT_per_A)
        else:
            self.guard.ramp_to_current(current_A)

    #: the row column that is an instrument reading (labml.runs.plan.Plan.readings): the mean Hall
    #: field; "Current (A)" is the commanded current, not a reading
    readings = {"Field (mT)": "field_mT"}  # noqa: RUF012

    def _read(self) -> tuple[float, float]:
        if self.settle > 0:
            self.rig.clock.sleep(float(self.settle))
        vals = np.array([float(self.sensor.field_mT) for _ in range(int(self.hall_reads))])
        return float(vals.mean()), float(vals.std(ddof=1)) if vals.size > 1 else 0.0

    def step(self, i: int, ctx: Any = None) -> None:
        if i < len(self._REM):
            kind, sign = self._REM[i]
            current = sign * float(self.current_max)
        else:
            kind, current = "sweep", float(self.currents()[i - len(self._REM)])
        self._ramp_current(current)
        if kind.startswith("saturate"):
            return
        B, sd = self._read()
        self._rows.append([kind, current, B, sd])
        self.emit("results", {"Kind": kind, "Current (A)": current, "Field (mT)": B, "Field std (mT)": sd})

    def finalize(self) -> None:
        from scipy import stats

        if self.rig is not None:
            self.rig.zero()
        sweep = [r for r in self._rows if r[0] == "sweep"]
        rem = {r[0]: r[2] for r in self._rows if r[0].startswith("remanence")}
        out: dict = {}
        if len(sweep) >= 3:
            I = np.array([r[1] for r in sweep])
            B = np.array([r[2] for r in sweep])
            fit = stats.linregress(I, B)
            resid = B - (fit.slope * I + fit.intercept)
            out.update(
                mT_per_A=float(fit.slope),
                mT_per_A_err=float(fit.stderr),
                intercept_mT=float(fit.intercept),
                intercept_err_mT=float(fit.intercept_stderr),
                residual_rms_mT=float(np.sqrt(np.mean(resid**2))),
            )
            cfg = self.info.mT_per_A if self.info is not None else None
            if cfg is not None:
                out["config_mT_per_A"] = float(cfg)
                out["relative_deviation"] = float(fit.slope / cfg - 1.0)
            self.save_arrays("coil_calibration", current_A=I, field_mT=B)
            self.save_figure("coil_calibration.png", figures.coil, I, B, fit.slope, fit.intercept)
        if "remanence+" in rem and "remanence-" in rem:
            out["remanence_mT"] = 0.5 * (rem["remanence+"] - rem["remanence-"])
            out["zero_offset_mT"] = 0.5 * (rem["remanence+"] + rem["remanence-"])
        self.results_.update(out)
