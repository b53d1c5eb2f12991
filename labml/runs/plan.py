"""The run contract: one `Plan` for every run the engine (labml.runs.engine.RunEngine) runs.

A plan says WHAT to do; the engine decides HOW (records, checkpoints, pause, resume, watchdog). Its
parts, all with defaults here so a plan overrides only what it needs:

- identity: ``kind`` (a run kind of labml.runs.kinds), ``spec()`` = {"kind", "params"} (how `labml
  resume` rebuilds it), ``parameters()`` (recorded in run.json), ``needs_rig``, ``rig_overrides``;
- open: ``open(ctx)`` once per process before the first step (on resume before the checkpoint is
  restored, so `load_state_dict` finds what `open` built);
- steps: ``n_steps()``, ``step(i, ctx)`` emitting rows with ``ctx.emit(series, row)``;
- checkpoint state: ``state_dict()`` / ``load_state_dict(state)``;
- magnetic state: ``safe_to_hold(i)``, ``establish(i, ctx)``;
- close: ``close(ctx)`` at the end of a successful or stopped run;
- records: ``results()`` (run.json "results");
- checks: ``validate(rig_config)`` (dry run), ``probe(ctx)`` (health check while suspended).

The package's plans implement it directly: each protocol (protocols.base.RigProcedure) and each
training kind (labml.synapses.kind, labml.bm.kind) is a Plan; no adapter sits between contracts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from labml.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from labml.runs.engine import RunContext


class Plan:
    """Base class of a plan: WHAT to do, step by step. Subclasses override what they need.

    Attributes
    ----------
    kind : str
        Short name recorded in run.json ("train-regression", "hysteresis", ...).
    needs_rig : bool
        True if the plan drives a rig (the engine opens/records it).
    readings : dict
        Row columns that are instrument readings of the rig's live quantities, column -> quantity
        ("field_mT": a field sensor's reading in mT, "current_A": the coil supply's measured current,
        "signal": the read-out's signal). The dashboard shows them as the run's own readings; a
        column that is a commanded value (a field set, a pulse amplitude) is never one of them.
    """

    kind: str = "plan"
    needs_rig: bool = False
    readings: dict[str, str] = {}  # noqa: RUF012 - read-only class default

    # -- identity: how to rebuild the plan in another process (labml resume)
    def spec(self) -> dict:
        """{"kind": NAME, "params": {...}}: a run kind registered in labml.runs.kinds and its parameters
        (plain JSON values). ``labml resume`` rebuilds the plan only through that registry; a run
        folder never names code."""
        raise NotImplementedError(f"{type(self).__name__} cannot be resumed: it defines no spec()")

    def parameters(self) -> dict:
        """Parameters recorded in run.json (default: the spec's params)."""
        try:
            return dict(self.spec().get("params", {}))
        except NotImplementedError:
            return {}

    # -- steps
    def n_steps(self) -> int | None:
        """Total number of steps (None if unknown); the progress bar uses it."""
        return None

    def open(self, ctx: RunContext) -> None:
        """Called once per process before the first step (fresh start or resume), after state restore."""

    def step(self, i: int, ctx: RunContext) -> bool | None:
        """Do step `i`; emit rows with ``ctx.emit``. Return True to end the plan early (success)."""
        raise NotImplementedError

    def results(self) -> dict:
        """Final results recorded in run.json (e.g. final metrics)."""
        return {}

    def close(self, ctx: RunContext) -> None:
        """Called once at the end of a successful or stopped run (e.g. save arrays)."""

    # -- state
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    # -- magnetic state
    def safe_to_hold(self, i: int) -> bool:
        """May the field stay where it is while paused before step `i`? (default: no, ramp to zero)."""
        return False

    def establish(self, i: int, ctx: RunContext) -> None:
        """Re-establish the magnetic state needed before step `i` (after a pause, a fault or a resume
        on a rig whose state cannot be restored exactly): e.g. re-saturate and re-walk the branch."""

    # -- checks
    def validate(self, rig_config: Any) -> dict:
        """Dry run: check every step against the rig config (limits, waveforms, durations) without
        moving hardware; raise UserError / SafetyError on a problem; return a summary."""
        return {"steps": self.n_steps()}

    def probe(self, ctx: RunContext) -> None:
        """Health check while suspended by a fault: raise if the condition persists."""
        default_probe(ctx.rig)


def default_probe(rig: Any) -> None:
    """Health check while suspended: ``rig.probe()`` (every instrument answers, the coil current
    reads) or the identities, then one read-out signal (laser off, overload). Raises while a fault
    persists."""
    if rig is None:
        return
    if hasattr(rig, "probe"):
        rig.probe()
    elif hasattr(rig, "identities"):
        ids = rig.identities()
        bad = {k: v for k, v in (ids or {}).items() if isinstance(v, str) and v.lower().startswith("error")}
        if bad:
            from instruments.errors import InstrumentFault

            raise InstrumentFault(f"instrument(s) not answering: {bad}")
    readout = getattr(rig, "readout", None)
    if readout is not None and hasattr(readout, "signal"):
        readout.signal()


def scalar_metrics(metrics: dict) -> dict:
    """The scalar entries of a metrics dict (numbers, bools, short strings), numpy scalars unwrapped."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, np.generic):
            v = v.item()
        if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
            v = v.item()
        if isinstance(v, bool | int | float | str) or v is None:
            out[k] = v
    return out


class TrainingPlan(Plan):
    """Base of the training kinds (labml.synapses.kind, labml.bm.kind): one step = one epoch of the
    steppable trainer the kind builds (``run_epoch(epoch) -> dict``, ``state_dict()``,
    ``load_state_dict()``, ``evaluate() -> dict``).

    A subclass sets `kind` and `series`, keeps its parameters in ``self.params`` (its spec) and
    implements `build_trainer(rig)`; `summary(ctx)` adds the key results at the end of a successful
    run (the same after ``labml resume``). Rows: every scalar entry of ``run_epoch``'s dict; a dict
    with ``stop: True`` (or a trainer attribute ``stop_training_`` set true) ends the training early.
    Results: ``last_epoch``, ``final`` (the trainer's evaluation) and the summary's keys.
    """

    series = "metrics"

    def __init__(self, params: dict, epochs: Any) -> None:
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise UserError(f"{self.kind}: epochs must be an integer >= 1, got {epochs!r}")
        self.params = dict(params)
        self.epochs = epochs
        self.trainer: Any = None
        self.final_: dict = {}
        self.last_: dict = {}
        self.summary_: dict = {}

    # -- to implement
    def build_trainer(self, rig: Any) -> Any:
        raise NotImplementedError

    def summary(self, ctx: RunContext) -> dict:
        return {}

    # -- Plan
    def spec(self) -> dict:
        return {"kind": self.kind, "params": dict(self.params)}

    def parameters(self) -> dict:
        return {**self.params, "epochs": self.epochs}

    def n_steps(self) -> int:
        return self.epochs

    def open(self, ctx: RunContext) -> None:
        if self.trainer is None:
            self.trainer = self.build_trainer(ctx.rig)

    def step(self, i: int, ctx: RunContext) -> bool:
        row = scalar_metrics(self.trainer.run_epoch(i))
        row.setdefault("epoch", i)
        self.last_ = row
        ctx.emit(self.series, row)
        return bool(row.get("stop") or getattr(self.trainer, "stop_training_", False))

    def close(self, ctx: RunContext) -> None:
        if hasattr(self.trainer, "evaluate"):
            self.final_ = scalar_metrics(self.trainer.evaluate() or {})
        from labml.runs.store import model_arrays

        arrays = model_arrays(self.trainer)  # the run folder's model.npz (labml.runs.store layout)
        if arrays:
            ctx.run.save_model(model_config=self.parameters(), **arrays)
        self.summary_ = dict(self.summary(ctx) or {})

    def results(self) -> dict:
        return {"last_epoch": self.last_, "final": self.final_, **self.summary_}

    def state_dict(self) -> dict:
        return {"trainer": self.trainer.state_dict(), "last": dict(self.last_)}

    def load_state_dict(self, state: dict) -> None:
        self.trainer.load_state_dict(state["trainer"])
        self.last_ = dict(state.get("last") or {})
