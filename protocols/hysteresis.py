"""Field-sweep hysteresis loop of a wire (SCIENCE.md section 1, "Hysteresis of a whole wire").

The DC field is stepped through the CoilGuard (`rig.guard.ramp_to_field`: validated, rate-limited,
stoppable) from -H_max to +H_max and back, for `loops` loops; at every field the Hall probe and the
read-out (MOKE photodiode voltage or MR resistance, `rig.readout.signal()`) are read after a settle
time. A pause ramps the field to zero; on resume the protocol re-saturates at the start of the branch
and re-walks it to where it was (`establish`), so a paused loop equals an uninterrupted one.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from instruments.models.registry import readout_unit
from labml import figures
from labml.errors import UserError
from protocols._pymeasure import FloatParameter, IntegerParameter
from protocols.base import RigInfo, RowsProcedure, rig_role

log = logging.getLogger(__name__)


def select_wire(rig, wire: int) -> None:
    """Point the read-out at `wire` (rig.select or its channel selector role)."""
    if hasattr(rig, "select"):
        rig.select(wire)
        return
    sel = rig_role(rig, "channel_selector", "selector")
    if sel is not None:
        sel.select(wire)


def crossing(fields: np.ndarray, signal: np.ndarray, mid: float | None = None, smooth: int = 5) -> float:
    """Field (mT) where `signal` crosses `mid` (default: the midpoint of its range) along the sweep.

    The signal is first smoothed with a running median of `smooth` points (scipy.signal.medfilt), so a
    single noisy reading cannot fake a switch; the field is interpolated linearly between the two
    points around the first crossing. NaN if it never crosses.
    """
    from scipy.signal import medfilt

    s = np.asarray(signal, dtype=float)
    f = np.asarray(fields, dtype=float)
    if s.size < 2:
        return float("nan")
    if smooth > 1 and s.size >= smooth:
        s = medfilt(s, smooth)
    if mid is None:
        mid = 0.5 * (np.nanmin(s) + np.nanmax(s))
    above = s > mid
    idx = np.nonzero(above[1:] != above[:-1])[0]
    if idx.size == 0:
        return float("nan")
    i = idx[0]
    s0, s1 = s[i], s[i + 1]
    t = 0.0 if s1 == s0 else (mid - s0) / (s1 - s0)
    return float(f[i] + t * (f[i + 1] - f[i]))


def _finite_mean(values) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def saturation_levels(fields: np.ndarray, signal: np.ndarray, fraction: float = 0.2) -> tuple[float, float]:
    """Median read-out signal in negative and in positive saturation (the outer `fraction` of fields)."""
    f = np.asarray(fields, dtype=float)
    s = np.asarray(signal, dtype=float)
    span = np.nanmax(np.abs(f))
    neg = s[f <= -(1 - fraction) * span]
    pos = s[f >= (1 - fraction) * span]
    return float(np.median(neg)) if neg.size else float("nan"), float(np.median(pos)) if pos.size else float(
        "nan"
    )


class Hysteresis(RowsProcedure):
    """Hysteresis loop of one wire: read-out signal and Hall field against the swept DC field."""

    NAME = "hysteresis"
    DESCRIPTION = "field-sweep hysteresis loop of a wire (MOKE or MR read-out, Hall probe), via the CoilGuard"
    SWEEP_PLOT = ("field_max", "switching_field_up_mT")

    wire = IntegerParameter("Wire", default=0, minimum=0, maximum=4095)
    field_max = FloatParameter("Maximum field", units="mT", default=20.0, minimum=0.1, maximum=1000.0)
    field_step = FloatParameter("Field step", units="mT", default=0.5, minimum=1e-3, maximum=100.0)
    loops = IntegerParameter("Loops", default=1, minimum=1, maximum=1000)
    settle = FloatParameter(
        "Settle time",
        units="s",
        default=0.02,
        minimum=0.0,
        maximum=60.0,
        description="wait at each field before reading (lock-in time constants)",
    )

    DATA_COLUMNS = ["Loop", "Branch", "Field set (mT)", "Field (mT)", "Signal"]

    # --- plan ----------------------------------------------------------------------------------------
    def branch_fields(self) -> np.ndarray:
        n = int(round(2 * self.field_max / self.field_step)) + 1
        return np.linspace(-self.field_max, self.field_max, n)

    def _points(self) -> list[tuple[int, str, float]]:
        up = self.branch_fields()
        pts = []
        for loop in range(int(self.loops)):
            pts += [(loop, "up", float(H)) for H in up]
            pts += [(loop, "down", float(H)) for H in up[::-1]]
        return pts

    def _branch_size(self) -> int:
        return int(round(2 * self.field_max / self.field_step)) + 1

    def _point(self, i: int) -> tuple[int, str, float]:
        """Step i's (loop, branch, field set in mT), computed from i (same values as `_points()[i]`)
        without building the whole list."""
        key = (self.field_max, self.field_step)
        if getattr(self, "_fields_key", None) != key:
            self._fields, self._fields_key = self.branch_fields(), key
        n = self._fields.size
        loop, j = divmod(int(i), 2 * n)
        if j < n:
            return loop, "up", float(self._fields[j])
        return loop, "down", float(self._fields[2 * n - 1 - j])

    def n_steps(self) -> int:
        return int(self.loops) * 2 * self._branch_size()

    # Bytes of memory per measured point: its row kept for the fits (a list of five Python objects)
    # and the arrays the fits make of them.
    ROW_BYTES = 250

    def check_plan(self, info: RigInfo) -> None:
        from labml.checks import check_memory

        if not self.field_step > 0:
            raise UserError(f"protocol {self.NAME!r}: field_step must be > 0 mT, got {self.field_step!r}")
        check_memory(
            f"protocol {self.NAME!r} with --field-max {self.field_max:g} mT, --field-step "
            f"{self.field_step:g} mT, --loops {self.loops} ({float(self.n_steps()):.3g} points)",
            float(self.n_steps()) * self.ROW_BYTES,
        )
        info.check_wire(self.NAME, self.wire)
        if self.field_step > self.field_max:
            raise UserError(
                f"protocol {self.NAME!r}: field_step {self.field_step:g} mT is larger than "
                f"field_max {self.field_max:g} mT"
            )
        info.check_fields(self.NAME, "the field sweep", [self.field_max])

    #: the row columns that are instrument readings (labml.runs.plan.Plan.readings): the Hall probe's
    #: field and the read-out's signal; "Field set (mT)" is the command, not a reading
    readings = {"Field (mT)": "field_mT", "Signal": "signal"}  # noqa: RUF012

    def get_estimates(self, info: RigInfo | None = None) -> float:
        info = info or RigInfo()
        n = self.n_steps()
        sweep = 4 * self.field_max * self.loops / info.ramp_mT_per_s
        return float(n * (self.settle + 0.05) + sweep + self.field_max / info.ramp_mT_per_s)

    def plan_summary(self, info: RigInfo) -> dict:
        return {
            "wire": self.wire,
            "fields_per_branch": int(self.branch_fields().size),
            "loops": self.loops,
            "steps": self.n_steps(),
            "estimate_s": self.get_estimates(info),
        }

    # --- steps ---------------------------------------------------------------------------------------
    def startup(self) -> None:
        super().startup()
        self.readout = rig_role(self.rig, "readout", "magnetisation_readout")
        if self.readout is None:
            raise UserError(f"protocol {self.NAME!r}: rig has no read-out role")
        select_wire(self.rig, int(self.wire))
        if self.run is not None:  # the read-out's unit (V, ohm) is the rig's, not in the column name
            self.run.describe_series("data", units={"Signal": readout_unit(self.readout)},
                                     descriptions={"Signal": "read-out signal"})

    def safe_to_hold(self, i: int) -> bool:
        return False

    def establish(self, i: int, ctx: Any = None) -> None:
        """Re-saturate at the start of step i's branch and re-walk the branch up to step i-1."""
        if i >= self.n_steps():
            return
        loop, branch, _H = self._point(i)
        start = -self.field_max if branch == "up" else self.field_max
        log.info("re-establishing the %s branch of loop %d before step %d", branch, loop, i)
        select_wire(self.rig, int(self.wire))
        self._ramp(start)
        if i > 0 and self._point(i - 1)[1] == branch:
            self._ramp(self._point(i - 1)[2])

    def _ramp(self, field_mT: float) -> None:
        """DC field through the rig (output on, then the CoilGuard's validated, rate-limited ramp)."""
        if hasattr(self.rig, "ramp_to_field"):
            self.rig.ramp_to_field(field_mT)
        else:
            self.guard.ramp_to_field(field_mT)

    def _wait(self) -> None:
        if self.settle > 0:
            self.rig.clock.sleep(float(self.settle))

    def step(self, i: int, ctx: Any = None) -> None:
        loop, branch, H = self._point(i)
        self._ramp(H)
        self._wait()
        measured = float(self.sensor.field_mT) if self.sensor is not None else float("nan")
        sig = float(self.readout.signal())
        self._rows.append([loop, branch, H, measured, sig])
        self.emit(
            "results",
            {"Loop": loop, "Branch": branch, "Field set (mT)": H, "Field (mT)": measured, "Signal": sig},
        )

    def finalize(self) -> None:
        if self.rig is not None:
            self.rig.zero()
        if not self._rows:
            return
        rows = self._rows
        loop = np.array([r[0] for r in rows])
        branch = np.array([r[1] for r in rows])
        Hset = np.array([r[2] for r in rows], dtype=float)
        Hmeas = np.array([r[3] for r in rows], dtype=float)
        sig = np.array([r[4] for r in rows], dtype=float)
        self.save_arrays(
            "hysteresis", loop=loop, up=(branch == "up"), field_set_mT=Hset, field_mT=Hmeas, signal=sig
        )
        x = Hmeas if np.all(np.isfinite(Hmeas)) else Hset
        unit = readout_unit(self.rig.readout) if self.rig is not None else ""
        self.save_figure("hysteresis.png", figures.hysteresis, x, sig, loop, branch == "up",
                         signal_label=f"read-out signal ({unit})" if unit else "read-out signal")
        lo, hi = saturation_levels(Hset, sig)
        mid = 0.5 * (lo + hi)
        ups = [
            crossing(x[(loop == k) & (branch == "up")], sig[(loop == k) & (branch == "up")], mid)
            for k in np.unique(loop)
        ]
        downs = [
            crossing(x[(loop == k) & (branch == "down")], sig[(loop == k) & (branch == "down")], mid)
            for k in np.unique(loop)
        ]
        up, down = _finite_mean(ups), _finite_mean(downs)
        per_loop = 0.5 * (np.asarray(ups) - np.asarray(downs))
        per_loop = per_loop[np.isfinite(per_loop)]
        if per_loop.size >= 2:  # the standard error of the mean over the loops (1 sigma)
            self.results_["coercive_field_err_mT"] = float(per_loop.std(ddof=1) / np.sqrt(per_loop.size))
        self.results_.update(
            {
                "switching_field_up_mT": up,
                "switching_field_down_mT": down,
                "coercive_field_mT": 0.5 * (up - down),
                "loop_shift_mT": 0.5 * (up + down),
                "signal_negative_saturation": lo,
                "signal_positive_saturation": hi,
                "signal_unit": unit,  # of the read-out signal: V (MOKE), ohm (MR), "" if not known
                "points": len(rows),
            }
        )
