"""The base of every scripted protocol: a pymeasure Procedure that runs on a nanowire rig.

A protocol declares typed, unit-carrying pymeasure Parameters (with limits), its DATA_COLUMNS
(pymeasure Results CSV columns, units in parentheses), `check_plan(info)` which validates the whole
plan against the rig's limits before anything moves, `get_estimates()` (bench time, s), and
`execute()` which drives `self.rig` (roles and methods of instruments.rig.NanowireRig) and emits rows
with `self.emit("results", row)`. Key results go into `self.results_` (JSON-able dict), arrays into
`self.save_arrays(name, **arrays)` (the group /arrays/<name> of the run's run.h5).

A protocol is a plan of the run engine (labml.runs.plan.Plan): `open(ctx)` binds `rig`, `run`,
`emit` and `should_stop`; protocols.runner runs it and the engine records the run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labml.errors import UserError
from labml.runs.plan import Plan
from protocols._pymeasure import IntegerParameter, Procedure

log = logging.getLogger(__name__)

# Default read cycle of the shared contract (used for time estimates when the rig config has no [cycle]).
DEFAULT_CYCLE = {
    "reset_field_mT": -30.0,
    "reset_s": 2e-3,
    "pulse_duration_s": 1e-3,
    "settle_s": 2e-3,
    "read_s": 1e-3,
    "gap_s": 0.0,
}


@dataclass
class RigInfo:
    """What a protocol needs to know about a rig to validate a plan (from a live rig or a config).

    field_max_mT: largest |field| the coil may make; wire_ranges_mT[w]: fields a learning code or a
    calibration may request on wire w; cycle: read-cycle timing (s) and reset field (mT);
    slew_mT_per_s: fastest field slew of a pulse edge; ramp_mT_per_s: DC ramp rate.
    """

    name: str = "rig"
    backend: str = "sim"
    n_wires: int = 1
    field_max_mT: float = 36.0
    wire_ranges_mT: list[tuple[float, float]] = field(default_factory=list)
    cycle: dict = field(default_factory=lambda: dict(DEFAULT_CYCLE))
    slew_mT_per_s: float | None = 36000.0
    ramp_mT_per_s: float = 90.0
    mT_per_A: float = 1.8
    i_max_A: float = 20.0

    def cycle_time_s(self, duration_s: float | None = None, field_mT: float = 10.0) -> float:
        """Bench time of one read cycle (s): reset + pulse (with edges) + settle + read."""
        c = self.cycle
        dur = c.get("pulse_duration_s", 1e-3) if duration_s is None else duration_s
        edge = 0.0 if not self.slew_mT_per_s else 2 * abs(field_mT) / self.slew_mT_per_s
        reset_edge = (
            0.0 if not self.slew_mT_per_s else 2 * abs(c.get("reset_field_mT", -30.0)) / self.slew_mT_per_s
        )
        return float(
            c.get("reset_s", 2e-3)
            + c.get("gap_s", 0.0)
            + reset_edge
            + dur
            + edge
            + c.get("settle_s", 2e-3)
            + c.get("read_s", 1e-3)
        )

    def check_wire(self, protocol: str, wire: int) -> None:
        if not (0 <= wire < self.n_wires):
            raise UserError(
                f"protocol {protocol!r}: wire {wire} does not exist on rig {self.name!r} "
                f"(it has wires 0..{self.n_wires - 1})"
            )

    def check_fields(self, protocol: str, what: str, fields_mT, wire: int | None = None) -> None:
        """Every field in `fields_mT` must be inside the coil limit (and the wire's range if given)."""
        f = np.atleast_1d(np.asarray(fields_mT, dtype=float))
        if f.size == 0:
            return
        if np.max(np.abs(f)) > self.field_max_mT:
            raise UserError(
                f"protocol {protocol!r}: {what} reaches {np.max(np.abs(f)):g} mT, beyond the "
                f"rig's field limit of {self.field_max_mT:g} mT (rig {self.name!r})"
            )
        if wire is not None and self.wire_ranges_mT:
            lo, hi = self.wire_ranges_mT[wire]
            if f.min() < lo or f.max() > hi:
                raise UserError(
                    f"protocol {protocol!r}: {what} spans [{f.min():g}, {f.max():g}] mT, outside "
                    f"wire {wire}'s allowed range [{lo:g}, {hi:g}] mT (rig {self.name!r})"
                )


def rig_info(rig) -> RigInfo:
    """RigInfo of a live rig (methods and attributes of the shared NanowireRig contract)."""
    n = int(getattr(rig, "n_wires", 1))
    ranges = []
    for w in range(n):
        try:
            lo, hi = rig.field_range_mT(w)
            ranges.append((float(lo), float(hi)))
        except Exception:  # noqa: BLE001 - a rig without per-wire ranges
            ranges = []
            break
    info = RigInfo(name=str(getattr(rig, "name", "rig")), n_wires=n, wire_ranges_mT=ranges)
    cfg = getattr(rig, "config", None)
    if cfg is not None:
        fill_from_config(info, cfg)
    return info


def _get(obj, key, default=None):
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def fill_from_config(info: RigInfo, cfg) -> None:
    """Copy limits, coil and cycle settings of a rig config (instruments.config.RigConfig or a dict)."""
    info.name = str(_get(cfg, "name", info.name))
    info.backend = str(_get(cfg, "backend", info.backend))
    coil, limits, cycle = _get(cfg, "coil"), _get(cfg, "limits"), _get(cfg, "cycle")
    mT_per_A = float(_get(coil, "mT_per_A", info.mT_per_A))
    info.mT_per_A = mT_per_A
    i_max = _get(limits, "i_max_A")
    if i_max is not None:
        info.i_max_A = float(i_max)
    fmax = _get(limits, "field_max_mT")
    info.field_max_mT = float(fmax) if fmax is not None else info.i_max_A * mT_per_A
    info.field_max_mT = min(info.field_max_mT, info.i_max_A * mT_per_A)
    if _get(cfg, "field_limit_mT") is not None:
        info.field_max_mT = float(cfg.field_limit_mT)
    ramp = _get(limits, "ramp_rate_A_per_s")
    if ramp is not None:
        info.ramp_mT_per_s = float(ramp) * mT_per_A
    slew = _get(limits, "pulse_slew_max_A_per_s")
    comp, ind = _get(coil, "compliance_V"), _get(coil, "inductance_H")
    rates = []
    if slew is not None:
        rates.append(float(slew))
    if comp is not None and ind:
        rates.append(float(comp) / float(ind))
    if rates:
        info.slew_mT_per_s = min(rates) * mT_per_A
    if cycle is not None:
        for key in ("reset_field_mT", "reset_s", "gap_s", "pulse_duration_s", "settle_s", "read_s"):
            v = _get(cycle, key)
            if v is not None:
                info.cycle[key] = float(v)
    wires = _get(cfg, "wires")
    if wires is not None and not info.wire_ranges_mT:
        info.n_wires = len(wires)
        ranges = [_get(w, "field_range_mT") for w in wires]
        if all(r is not None for r in ranges):
            info.wire_ranges_mT = [(float(r[0]), float(r[1])) for r in ranges]


def offline_rig_info(rig: str | os.PathLike | None) -> RigInfo:
    """RigInfo from a rig config without connecting to anything (for --dry-run and early checks):
    "sim"/None, a built-in rig name or a TOML path, resolved by labml.rigs.rig_config."""
    from labml.rigs import rig_config

    cfg = rig_config(rig)
    info = RigInfo()
    fill_from_config(info, cfg)
    return info


class RigProcedure(Procedure, Plan):
    """Base class of the protocols: a pymeasure Procedure that IS a plan of the run engine
    (labml.runs.plan.Plan). Subclasses set NAME, DESCRIPTION, DATA_COLUMNS and Parameters and
    implement the step API:

    - `startup()`: called once per process before the first step (after a resume too);
      `self.info` (RigInfo of the live rig) is set by then.
    - `n_steps()`: the number of steps; `step(i, ctx=None)`: do step i, emitting rows with
      `self.emit("results", row)`.
    - `finalize()`: fits and key results into `self.results_` (also after a clean stop).
    - `measured_state()` / `load_measured_state()`: what was measured so far (JSON-able), the part
      of every checkpoint a resumed run continues from.
    - `safe_to_hold(i)` / `establish(i, ctx=None)`: may the field stay during a pause before step
      i; how to re-establish the magnetic state (re-saturate, re-walk a branch) after a pause or
      resume.

    As a Plan (what `labml run` and `labml resume` run on labml.runs.engine.RunEngine): run kind
    ``protocol-<NAME>`` with the parameter values as its spec; `open(ctx)` binds the rig, the run
    folder and `emit` (rows go to the run's `data` series) and calls `startup()`; `close(ctx)` calls
    `finalize()`; the checkpoint state is the measured state and the key results. `execute()`
    (pymeasure's entry point) runs the steps in order and then `finalize()`, so a protocol also
    runs under pymeasure's own Worker.
    """

    NAME: str = ""
    DESCRIPTION: str = ""
    NEEDS_RIG: bool = True
    #: the plot a sweep draws by default: (x parameter, y result key)
    SWEEP_PLOT: tuple[str, str] | None = None

    seed = IntegerParameter(
        "Seed",
        default=0,
        minimum=0,
        maximum=2**31 - 1,
        description="seed of the protocol's own random choices",
    )
    sim_seed = IntegerParameter(
        "Simulated rig seed",
        default=-1,
        minimum=-1,
        maximum=2**31 - 1,
        description="seed of the simulated world ([sim] seed: device spread, noise); "
        "-1 keeps the rig config's seed. Only for a simulated rig (backend sim).",
    )

    @property
    def needs_rig(self) -> bool:  # type: ignore[override]
        """Whether this run drives a rig (training on the model backend does not)."""
        return bool(self.NEEDS_RIG)

    @property
    def kind(self) -> str:  # type: ignore[override]
        """Run kind ``protocol-<NAME>`` (labml.runs.kinds, registered by protocols.kinds)."""
        return f"protocol-{self.NAME}"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rig = None
        self.run = None
        self.info: RigInfo | None = None
        self.results_: dict[str, Any] = {}
        self._stop_requested = False

    # --- hooks bound by the engine (open) or pymeasure's Worker ----------------------------------
    def emit(self, topic: str, record: Any) -> None:  # replaced in open() / by pymeasure's Worker
        log.debug("%s: %s", topic, record)

    def should_stop(self) -> bool:  # replaced by pymeasure's Worker
        return self._stop_requested

    def is_last(self) -> bool:
        return True

    # --- identity (Plan) ---------------------------------------------------------------------------
    def spec(self) -> dict:
        """Run kind ``protocol-<NAME>`` and the protocol's parameter values (labml.runs.kinds)."""
        return {"kind": self.kind, "params": self.parameter_values()}

    def parameters(self) -> dict:
        return {"protocol": self.NAME, **self.parameter_values()}

    @property
    def rig_overrides(self) -> dict | None:
        """Rig config tables merged over the rig file when the engine opens the rig: the simulated
        world's seed of the `sim_seed` parameter (so a sweep can vary the device spread and noise)."""
        seed = getattr(self, "sim_seed", None)
        return {"sim": {"seed": int(seed)}} if seed is not None and int(seed) >= 0 else None

    def check_backend(self, backend: str) -> None:
        """UserError if `sim_seed` is given for a rig that is not simulated."""
        seed = getattr(self, "sim_seed", -1)
        if seed is not None and int(seed) >= 0 and backend != "sim":
            raise UserError(
                f"protocol {self.NAME!r}, parameter 'sim_seed' = {seed}: only a simulated rig "
                f"(backend sim) has a world seed; this rig's backend is {backend!r}"
            )

    # --- planning --------------------------------------------------------------------------------
    def check_plan(self, info: RigInfo) -> None:
        """Raise UserError if the plan breaks the rig's limits. Called before anything moves."""

    def get_estimates(self, info: RigInfo | None = None) -> float:
        """Estimated bench time of the whole protocol (s)."""
        return 0.0

    def plan_summary(self, info: RigInfo) -> dict:
        """What the protocol will do (for --dry-run): a JSON-able dict."""
        return {"estimate_s": self.get_estimates(info), "steps": self.n_steps()}

    def validate(self, rig_config: Any) -> dict:
        """Dry run (Plan): the whole plan against the rig config's limits (`check_plan`), nothing
        opened; returns `plan_summary`."""
        info = RigInfo()
        if rig_config is not None:
            fill_from_config(info, rig_config)
            if self.needs_rig:
                self.check_backend(info.backend)
        self.check_plan(info)
        return self.plan_summary(info)

    # --- steps -----------------------------------------------------------------------------------
    def open(self, ctx: Any) -> None:
        """Plan.open: bind the rig, the run folder and the row sink, check the plan against the live
        rig, then `startup()`."""
        self.rig = ctx.rig
        self.run = ctx.run

        def emit(topic: str, record: Any) -> None:
            if topic == "results":
                ctx.emit("data", record)

        self.emit = emit  # type: ignore[method-assign]
        self.should_stop = lambda: False  # type: ignore[method-assign] # the engine decides between steps
        if self.rig is not None:
            self.info = rig_info(self.rig)
            self.check_plan(self.info)
        self.startup()

    def startup(self) -> None:
        if self.rig is not None and self.info is None:
            self.info = rig_info(self.rig)

    def n_steps(self) -> int:
        return 1

    def step(self, i: int, ctx: Any = None) -> bool | None:
        """Do step i; return True to end the protocol early (e.g. early stopping)."""
        raise NotImplementedError

    def finalize(self) -> None:
        """Compute the key results (fits) from what was measured; fill `self.results_`."""

    def close(self, ctx: Any) -> None:
        """Plan.close: `finalize()`."""
        self.finalize()

    def results(self) -> dict:
        return dict(self.results_)

    # --- state -----------------------------------------------------------------------------------
    def measured_state(self) -> dict:
        """What was measured so far (JSON-able)."""
        return {}

    def load_measured_state(self, state: dict) -> None:
        pass

    def state_dict(self) -> dict:
        """Checkpoint state (Plan): the measured state and the key results so far."""
        return {"procedure": self.measured_state(), "results": dict(self.results_)}

    def load_state_dict(self, state: dict) -> None:
        self.load_measured_state(state.get("procedure", {}))
        self.results_ = dict(state.get("results", {}))

    def safe_to_hold(self, i: int) -> bool:
        return False

    def establish(self, i: int, ctx: Any = None) -> None:
        """Re-establish the magnetic state needed before step i (default: none needed: every read
        cycle starts with its own reset)."""

    def execute(self) -> None:
        for i in range(self.n_steps()):
            if self.should_stop():
                log.info("%s: stop requested before step %d", self.NAME, i)
                break
            done = self.step(i)
            self.emit("progress", 100.0 * (i + 1) / max(1, self.n_steps()))
            if done:
                break
        self.finalize()

    def save_arrays(self, name: str, **arrays: np.ndarray) -> None:
        if self.run is not None:
            self.run.save_arrays(name, **arrays)

    def save_figure(self, name: str, draw: Any, *args: Any, **kwargs: Any) -> None:
        """RUN_DIR/figures/<name>: `draw(*args, **kwargs)` (a labml.figures function) saved as PNG. A
        figure that fails is logged, never fails the run (the data and results are already saved)."""
        if self.run is not None:
            from labml.figures import write

            write(self.run, name, draw, *args, **kwargs)


def rig_role(rig: Any, *names: str) -> Any:
    """The first of the named roles the rig has (an attribute, else an entry of ``rig.roles``), or None."""
    for n in names:
        obj = getattr(rig, n, None)
        if obj is not None:
            return obj
    roles = getattr(rig, "roles", None)
    if isinstance(roles, dict):
        for n in names:
            if roles.get(n) is not None:
                return roles[n]
    return None


class RowsProcedure(RigProcedure):
    """A rig protocol that records its measurements as rows (lists) in ``self._rows``, the state a
    resumed run continues from; at start-up it takes the rig's coil guard and its field sensor
    (``self.sensor``, None when the rig has no Hall probe)."""

    def startup(self) -> None:
        super().startup()
        if not hasattr(self, "_rows"):
            self._rows: list[list] = []
        self.guard = self.rig.guard
        self.sensor = rig_role(self.rig, "field_sensor", "hall")

    def measured_state(self) -> dict:
        return {"rows": [list(r) for r in getattr(self, "_rows", [])]}

    def load_measured_state(self, state: dict) -> None:
        self._rows = [list(r) for r in state.get("rows", [])]
