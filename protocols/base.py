"""The base of every scripted protocol: a pymeasure Procedure that runs on a nanowire rig.

A protocol declares typed, unit-carrying pymeasure Parameters (with limits), its DATA_COLUMNS
(pymeasure Results CSV columns, units in parentheses), `check_plan(info)` which validates the whole
plan against the rig's limits before anything moves, `get_estimates()` (bench time, s), and
`execute()` which drives `self.rig` (roles and methods of instruments.rig.NanowireRig) and emits rows
with `self.emit("results", row)`. Key results go into `self.results_` (JSON-able dict), arrays into
`self.save_arrays(name, **arrays)` (a .npz in the run folder).

The runner (protocols.runner) binds `rig`, `run`, `emit` and `should_stop` and records the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labml.errors import UserError
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


class RigProcedure(Procedure):
    """Base class of the protocols. Subclasses set NAME, DESCRIPTION, DATA_COLUMNS and Parameters and
    implement the step API:

    - `startup()`: called once per process before the first step (after a resume too);
      `self.info` (RigInfo of the live rig) is set by then.
    - `n_steps()`: the number of steps; `step(i)`: do step i, emitting rows with
      `self.emit("results", row)`.
    - `finalize()`: fits and key results into `self.results_` (also after a clean stop).
    - `state_dict()` / `load_state_dict()`: what was measured so far (JSON-able), for checkpoints.
    - `safe_to_hold(i)` / `establish(i)`: may the field stay during a pause before step i; how to
      re-establish the magnetic state (re-saturate, re-walk a branch) after a pause or resume.

    `execute()` (pymeasure's entry point) runs the steps in order and then `finalize()`, so a
    protocol also runs under pymeasure's own Worker; `labml run` runs it on labml.runs.engine.RunEngine
    (checkpoints, pause, resume, watchdog) through protocols.runner.ProcedurePlan.
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
    def needs_rig(self) -> bool:
        """Whether this run drives a rig (training on the model backend does not)."""
        return bool(self.NEEDS_RIG)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rig = None
        self.run = None
        self.info: RigInfo | None = None
        self.results_: dict[str, Any] = {}
        self._stop_requested = False

    # --- hooks bound by the runner ---------------------------------------------------------------
    def emit(self, topic: str, record: Any) -> None:  # replaced by the runner / pymeasure Worker
        log.debug("%s: %s", topic, record)

    def should_stop(self) -> bool:  # replaced by pymeasure's Worker
        return self._stop_requested

    def is_last(self) -> bool:
        return True

    # --- planning --------------------------------------------------------------------------------
    def check_plan(self, info: RigInfo) -> None:
        """Raise UserError if the plan breaks the rig's limits. Called before anything moves."""

    def get_estimates(self, info: RigInfo | None = None) -> float:
        """Estimated bench time of the whole protocol (s)."""
        return 0.0

    def plan_summary(self, info: RigInfo) -> dict:
        """What the protocol will do (for --dry-run): a JSON-able dict."""
        return {"estimate_s": self.get_estimates(info), "steps": self.n_steps()}

    # --- steps -----------------------------------------------------------------------------------
    def startup(self) -> None:
        if self.rig is not None and self.info is None:
            from protocols.runner import rig_info

            self.info = rig_info(self.rig)

    def n_steps(self) -> int:
        return 1

    def step(self, i: int) -> bool | None:
        """Do step i; return True to end the protocol early (e.g. early stopping)."""
        raise NotImplementedError

    def finalize(self) -> None:
        """Compute the key results (fits) from what was measured; fill `self.results_`."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def safe_to_hold(self, i: int) -> bool:
        return False

    def establish(self, i: int) -> None:
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

    def state_dict(self) -> dict:
        return {"rows": [list(r) for r in getattr(self, "_rows", [])]}

    def load_state_dict(self, state: dict) -> None:
        self._rows = [list(r) for r in state.get("rows", [])]
