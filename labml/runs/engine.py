"""The run engine: one controller for every run, protocol or training (DESIGN.md, in the spirit of
bluesky's RunEngine).

A *plan* (the run contract, labml.runs.plan.Plan) says WHAT to do: a sequence of steps with a cursor
(``step(i, ctx)``), its state (``state_dict``/``load_state_dict``), whether its magnetic state may be
held during a pause (``safe_to_hold(i)``) and how to re-establish it (``establish(i, ctx)``). The engine
decides HOW:

- start / resume: a run folder (labml.runs) with run.json, series CSVs, arrays, run.log and
  checkpoints; ``resume(run_dir)`` rebuilds the plan from run.json and continues from the newest
  checkpoint, cutting rows written after it (nothing lost, nothing duplicated). On the model
  backend and the simulated rig the resumed run ends bit-exactly where an uninterrupted one would.
- pause: at the next step boundary: checkpoint, field to zero unless the step declares its state
  safe to hold, then ask `on_pause` what to do (resume / stop / abort / suspend = leave the run
  resumable with ``labml resume``). On resume the plan re-establishes its magnetic state.
- stop (clean, status "stopped"), abort (clean, status "aborted", resumable), emergency stop
  (``rig.guard.emergency_zero()`` at once, then the rig's shutdown).
- Ctrl+C once pauses safely, twice aborts; SIGTERM, SIGHUP (terminal closed, ssh dropped) and SIGQUIT
  abort (field to zero, outputs off, status "aborted", resumable with ``labml resume``).
- every end brings the coil to zero and confirms it by a read-back; if it cannot, the run ends
  "failed" with COIL_NOT_ZERO as its reason and ``coil_at_zero: false`` in run.json.
- watchdog (suspender): instrument faults and timeouts put the rig in its safe state; the step is
  retried with exponential backoff; if the fault persists the run is suspended, the engine probes
  the rig every `poll_s` and continues when the condition clears (from the last checkpoint, after
  re-establishing the magnetic state) or aborts cleanly after `suspend_timeout_s`.
- progress bar with time remaining on stderr.
- dry run: ``dry_run(plan, rig_spec)`` validates the whole plan against the rig config without
  opening the rig.

Rows a step emits (``ctx.emit(series, row)``) are buffered and written when the step completes, so
a fault in the middle of a step never leaves half a step on disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from instruments.lock import pid_alive
from instruments.roles import WallClock
from labml.errors import UserError
from labml.progress import ProgressBar  # the CLI's one progress style (tqdm on stderr)
from labml.progress import enabled as progress_enabled
from labml.runs import checkpoints as ckpt
from labml.runs.live_readings import LiveReadbackWriter
from labml.runs.lock import holding_run_folder, locks_run_folder
from labml.runs.plan import Plan, default_probe  # noqa: F401 - the run contract, re-exported
from labml.runs.store import Run, RunWriteError, check_current_layout, is_resumable, load

log = logging.getLogger(__name__)

# Statuses a run can end in (run.json "status"); "running" and "paused" runs can be resumed.
SUCCESS, STOPPED, ABORTED, FAILED = "success", "stopped", "aborted", "failed"
PAUSED, RUNNING = "paused", "running"
# An aborted run (Ctrl+C twice, SIGTERM, SIGHUP, SIGQUIT, an abort request) continues from its last
# checkpoint as a paused one does.
#: The reason a run ends "failed" with when its coil could not be confirmed at zero.
COIL_NOT_ZERO = ("coil NOT confirmed at 0 A by read-back: the magnet may still be energised; "
                 "check the bench and run `labml rig zero`")


#: Signals that end a run the safe way (field to zero, outputs off, status "aborted", resumable)
#: and the reason recorded for each.
TERMINATION_REASONS = {
    sig: reason
    for name, reason in (
        ("SIGTERM", "terminated (SIGTERM)"),
        ("SIGHUP", "terminal closed or connection lost (SIGHUP)"),
        ("SIGQUIT", "quit (SIGQUIT)"),
    )
    if (sig := getattr(signal, name, None)) is not None
}


class _Abort(Exception):
    """Raised inside the engine to end a run (abort or emergency stop)."""

    def __init__(self, reason: str, emergency: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.emergency = emergency


def _default_fault_types() -> tuple[type[BaseException], ...]:
    from instruments.errors import InstrumentFault

    return (InstrumentFault, TimeoutError)


def build_plan(spec: dict, where: str = "run.json", allow_plugins: Any = ()) -> Plan:
    """Rebuild a plan from its spec (run.json "plan": {"kind", "params"}) through the run-kind
    registry (labml.runs.kinds): an unknown kind, a spec naming a factory or parameters outside their
    declared type or range are a one-line UserError; nothing named in the folder is imported. A kind
    of a plugin (another distribution's entry point) is refused unless its entry point's name is in
    `allow_plugins` (``labml resume --allow-plugin NAME``)."""
    from labml.runs import kinds

    kind, _ = kinds.kind_and_params(spec, where)
    kinds.check_trusted(kind.name, allow_plugins, where)
    return kinds.plan_from_spec(spec, where)


def _comparable_spec(spec: Any) -> Any:
    """A spec in the form two specs compare in: kind and validated params when the kind is
    registered, else the spec as JSON."""
    from labml.runs import kinds
    from labml.runs.store import to_jsonable

    try:
        return to_jsonable(kinds.normal_spec(spec))
    except UserError:
        return to_jsonable(spec)


def check_plan_fits(run: Run, plan: Plan, state: dict | None) -> None:
    """UserError unless `plan` is the plan that wrote `run` and its checkpoint `state`: the run's
    kind, the plan spec the checkpoint recorded, and a step within the plan (so a foreign plan in
    run.json is refused, never resumed and recorded as a success with rows missing)."""
    where = f"{run.path / 'run.json'}"
    if run.meta.get("kind") is not None and run.meta.get("kind") != plan.kind:
        raise UserError(f"{where}: the plan is of kind {plan.kind!r} but the run is of kind "
                        f"{run.meta.get('kind')!r}; the run folder was altered, it cannot be resumed")
    if state is None:
        return
    recorded = state.get("spec")
    if recorded is not None:
        try:
            mine = plan.spec()
        except NotImplementedError:
            mine = None
        a, b = _comparable_spec(recorded), _comparable_spec(mine)
        if a != b:
            if isinstance(a, dict) and isinstance(b, dict) and a.get("kind") == b.get("kind"):
                pa, pb = a.get("params") or {}, b.get("params") or {}
                diff = sorted(k for k in set(pa) | set(pb) if pa.get(k) != pb.get(k)) or ["params"]
            else:
                diff = ["kind"]
            raise UserError(f"{where}: the plan does not match the one that wrote its checkpoint of step "
                            f"{state.get('step')} (differs in {', '.join(diff)}); it cannot be resumed")
    n = plan.n_steps()
    step = state.get("step")
    if not isinstance(step, int) or step < 0 or (n is not None and step > n):
        raise UserError(f"{where}: its checkpoint is at step {step!r} but the plan has {n} steps; "
                        "the run folder was altered, it cannot be resumed")


def _rig_safety_view(cfg: Any) -> dict[str, Any]:
    """The settings of a rig config that bound what the coil may do or where commands go: every
    [limits] and [coil] key, each instrument's class and address, each wire's field range."""
    from labml.runs.store import to_jsonable

    d = cfg if isinstance(cfg, dict) else dataclasses.asdict(cfg)
    out: dict[str, Any] = {}
    for table in ("limits", "coil"):
        for k, v in (d.get(table) or {}).items():
            out[f"{table}.{k}"] = v
    for role, inst in (d.get("instruments") or {}).items():
        if isinstance(inst, dict):
            out[f"instruments.{role}.address"] = inst.get("address")
            out[f"instruments.{role}.class"] = inst.get("cls")
    for i, wire in enumerate(d.get("wires") or []):
        if isinstance(wire, dict):
            out[f"wires.{i}.field_range_mT"] = wire.get("field_range_mT")
    return to_jsonable(out)


def rig_changes(snapshot: Any, config: Any) -> list[str]:
    """Keys (e.g. "limits.i_max_A") whose value in a run's rig_config snapshot differs from the local
    rig config. The snapshot is never applied: limits and addresses always come from `config`."""
    if not isinstance(snapshot, dict) or config is None:
        return []
    old, new = _rig_safety_view(snapshot), _rig_safety_view(config)
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


# ======================================================================================= context
class RunContext:
    """What a plan sees while it runs: the rig, the run folder, emit/save helpers, the clock."""

    def __init__(self, engine: RunEngine, run: Run, rig: Any) -> None:
        self.engine = engine
        self.run = run
        self.rig = rig
        self._pending: list[tuple[str, dict]] = []

    @property
    def clock(self) -> Any:
        clock = getattr(self.rig, "clock", None)
        return clock if clock is not None else WallClock()

    def emit(self, series: str, row: dict) -> None:
        """Record one row of `series` (written when the step completes)."""
        self._pending.append((series, dict(row)))
        self.engine._notify("row", {"series": series, "row": row})

    def save_arrays(self, name: str, **arrays: np.ndarray) -> Path:
        return self.run.save_arrays(name, **arrays)

    def check(self) -> None:
        """Inside a long step: raise at once if an abort or emergency stop was requested."""
        self.engine._check_abort()

    def _flush(self) -> None:
        by_series: dict[str, list[dict]] = {}
        for series, row in self._pending:
            by_series.setdefault(series, []).append(row)
        for series, rows in by_series.items():
            self.run.append_rows(series, rows)
        self._pending.clear()

    def _discard(self) -> None:
        self._pending.clear()


# ======================================================================================= watchdog
@dataclasses.dataclass
class Watchdog:
    """Suspender settings: what counts as an instrument fault and how to ride it out.

    retries : immediate retries of a failed step (transient read errors), with a delay of
        backoff_s, 2*backoff_s, 4*backoff_s, ... (s, on the rig's clock) and the field at zero
        between tries only once the retries are used up.
    poll_s : while suspended, seconds between probes of the rig.
    suspend_timeout_s : abort cleanly if the fault has not cleared after this long (s; the time
        redone steps ran between faults of a streak does not count).
    """

    retries: int = 2
    backoff_s: float = 0.2
    poll_s: float = 1.0
    suspend_timeout_s: float = 60.0
    fault_types: tuple[type[BaseException], ...] = dataclasses.field(default_factory=_default_fault_types)

    def faults(self) -> tuple[type[BaseException], ...]:
        """The exception types treated as instrument faults, plus pyvisa's VisaIOError (timeouts,
        lost connections) when pyvisa is loaded (never imported here)."""
        types = tuple(self.fault_types)
        pyvisa_errors = sys.modules.get("pyvisa.errors")
        visa_io = getattr(pyvisa_errors, "VisaIOError", None)
        return types + (visa_io,) if visa_io is not None else types

    def __post_init__(self) -> None:
        for name in ("retries", "backoff_s", "poll_s", "suspend_timeout_s"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise UserError(f"watchdog {name} must be a finite number >= 0, got {v!r}")
        if self.poll_s <= 0:
            raise UserError(f"watchdog poll_s must be > 0 s, got {self.poll_s}")


# ======================================================================================= outcome
@dataclasses.dataclass
class Outcome:
    """What a run ended as: status ("success", "stopped", "aborted", "failed", "paused"), reason,
    the run folder, the number of steps done and the plan's results."""

    status: str
    reason: str | None
    run_dir: Path
    steps_done: int
    results: dict
    #: whether the coil was confirmed at 0 A by a read-back when the run ended (None: no rig)
    coil_at_zero: bool | None = None

    def to_dict(self) -> dict:
        """The outcome as plain data, with the figures the run wrote ("figures": paths)."""
        from labml.runs.store import figures_of

        d = dataclasses.asdict(self)
        d["run_dir"] = str(self.run_dir)
        d["figures"] = [str(p) for p in figures_of(self.run_dir)]
        return d


# ======================================================================================= engine
@dataclasses.dataclass
class _Cursor:
    """Where a run's loop is: the next step, the steps done since the last checkpoint, the total."""

    step: int = 0
    since_ckpt: int = 0
    total: int | None = None


class RunEngine:
    """Runs plans: recorded, checkpointed, pausable, resumable, watched.

    Parameters
    ----------
    checkpoint_every : int
        Write a checkpoint after every this many steps (and at every pause, and at the end).
    checkpoint_interval_s : float or None
        Also write one when this many seconds (wall time) have passed since the last one; use with a
        large `checkpoint_every` for plans with many fast steps. Rows after the last checkpoint are
        redone on resume either way.
    watchdog : Watchdog or None
        Fault handling settings (default Watchdog()).
    progress : bool or None
        Progress bar on stderr; None: only when stderr is a terminal.
    on_pause : callable(engine, step) -> "resume" | "stop" | "abort" | "suspend", or None
        Decides what a pause becomes. Default: ask on the terminal if stdin is one, else
        "suspend" (the run stays resumable with ``labml resume``).
    handle_sigint : bool
        Install the Ctrl+C handler (once: pause, twice: abort) while a run is going, when called
        from the main thread.
    log_level : int
        Level of the per-run log file (instrument traffic is always recorded at DEBUG).
    """

    def __init__(
        self,
        *,
        checkpoint_every: int = 1,
        checkpoint_interval_s: float | None = None,
        watchdog: Watchdog | None = None,
        progress: bool | None = None,
        on_pause: Callable[[RunEngine, int], str] | None = None,
        handle_sigint: bool = True,
        log_level: int = logging.INFO,
    ) -> None:
        if not (isinstance(checkpoint_every, int) and checkpoint_every >= 1):
            raise UserError(f"checkpoint_every must be an integer >= 1, got {checkpoint_every!r}")
        self.checkpoint_every = checkpoint_every
        if checkpoint_interval_s is not None and not (
            isinstance(checkpoint_interval_s, int | float) and checkpoint_interval_s > 0
        ):
            raise UserError(f"checkpoint_interval_s must be > 0 s or None, got {checkpoint_interval_s!r}")
        self.checkpoint_interval_s = checkpoint_interval_s
        self._last_ckpt_t = time.monotonic()
        self.watchdog = watchdog or Watchdog()
        self.progress = progress
        self.on_pause = on_pause
        self.paused_run_dir: Path | None = None  # the run folder of the pause in progress
        self.handle_sigint = handle_sigint
        self.log_level = log_level
        self.state = "idle"
        self._lock = threading.Lock()
        self._pause_requested = False
        self._stop_requested: str | None = None
        self._abort_requested: str | None = None
        self._estop = False
        self._fault_since: float | None = None
        self._fault_left_at: float | None = None
        self._fault_retries = 0
        self._sigint_count = 0
        self._critical = False
        self._subscribers: list[Callable[[str, dict], None]] = []
        self.rig: Any = None
        self.run_record: Run | None = None

    # ----------------------------------------------------------------- requests (any thread)
    def request_pause(self) -> None:
        """Pause at the next step boundary."""
        self._pause_requested = True

    def request_stop(self, reason: str = "stop requested") -> None:
        """End cleanly after the current step (status "stopped")."""
        self._stop_requested = reason

    def request_abort(self, reason: str = "abort requested") -> None:
        """End as soon as possible, field to zero (status "aborted"). A ramp in progress is stopped
        (the guard ramps to zero at the allowed rate)."""
        self._abort_requested = reason
        rig = self.rig
        if rig is not None and hasattr(rig, "request_stop"):
            try:
                rig.request_stop()
            except Exception:  # noqa: BLE001 - the loop still aborts at the next check
                log.exception("rig.request_stop failed")

    def emergency_stop(self) -> None:
        """Stop now: the guard's emergency zero (stop set, stepped ramp to zero with retries and a
        read-back) from this thread; the run then ends "aborted" and the rig is shut down."""
        self._estop = True
        self._abort_requested = "emergency stop"
        rig = self.rig
        guard = getattr(rig, "guard", None)
        if guard is not None:
            try:
                if hasattr(guard, "request_stop"):
                    guard.request_stop()  # a ramp in another thread stops at its next step
                guard.emergency_zero()
            except Exception:  # noqa: BLE001 - nothing else may be tried; report it
                log.exception("emergency_zero failed")

    def subscribe(self, callback: Callable[[str, dict], None]) -> None:
        """callback(event, payload) for "start", "step", "row", "pause", "resume", "fault", "end"."""
        self._subscribers.append(callback)

    def _notify(self, event: str, payload: dict) -> None:
        for cb in list(self._subscribers):
            try:
                cb(event, payload)
            except Exception:  # noqa: BLE001 - subscribers never reach into the engine
                log.exception("subscriber %r failed on %s", cb, event)

    def _signal_while_opening(self, signum: int) -> None:
        """A signal held back while the rig opened: what its handler in the loop would have done."""
        if signum == signal.SIGINT:
            self._sigint_count += 1
            self._pause_requested = True
        else:
            self._abort_requested = TERMINATION_REASONS.get(signum, f"terminated by signal {signum}")

    def _check_abort(self) -> None:
        if self._abort_requested:
            raise _Abort(self._abort_requested, emergency=self._estop)

    # ----------------------------------------------------------------- SIGINT
    @contextlib.contextmanager
    def _sigint(self) -> Iterator[None]:
        """Ctrl+C once: pause; twice: abort. SIGTERM, SIGHUP, SIGQUIT: abort (safe shutdown,
        resumable). Inside a critical section (writing rows or a checkpoint) the abort waits for the
        section to end, so no file is left half-written."""
        if not self.handle_sigint or threading.current_thread() is not threading.main_thread():
            yield
            return

        def abort(reason: str) -> None:
            self._abort_requested = reason
            if not self._critical:
                raise KeyboardInterrupt

        def on_sigint(signum: int, frame: Any) -> None:
            self._sigint_count += 1
            if self._sigint_count == 1:
                self._pause_requested = True
                sys.stderr.write(
                    "\nlabml: pausing at the next safe point (field to zero); Ctrl+C again to abort\n"
                )
                sys.stderr.flush()
            else:
                abort("interrupted (Ctrl+C twice)")

        def on_terminate(signum: int, frame: Any) -> None:
            abort(TERMINATION_REASONS.get(signum, f"terminated by signal {signum}"))

        old = {signal.SIGINT: signal.signal(signal.SIGINT, on_sigint)}
        for sig in TERMINATION_REASONS:
            old[sig] = signal.signal(sig, on_terminate)
        try:
            yield
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    @contextlib.contextmanager
    def _critical_section(self) -> Iterator[None]:
        self._critical = True
        try:
            yield
        finally:
            self._critical = False

    # ----------------------------------------------------------------- public entry points
    def run(
        self,
        plan: Plan,
        run_dir: str | os.PathLike | None = None,
        *,
        rig: Any = None,
        rig_spec: str | os.PathLike | None = None,
        sample: str | None = None,
        device: str | None = None,
        operator: str | None = None,
        notes: str | None = None,
    ) -> Outcome:
        """Start `plan` in a new run folder and run it to the end (or pause/stop/abort).

        rig : an open rig object, used as is (the caller owns it), or
        rig_spec : "sim" or a rig TOML path: the engine opens it (labml.rigs.open_rig) and
            shuts it down at the end; recorded in run.json so ``resume`` can reopen it.
        """
        try:
            spec = plan.spec()
        except NotImplementedError:
            spec = None
        if plan.needs_rig:
            # Bad rig config or a plan outside the rig's limits: an error before any folder is made
            # and before anything connects.
            config = (getattr(rig, "config", None) if rig is not None
                      else rig_config_of(rig_spec, _rig_overrides(plan)))
            if config is not None:
                plan.validate(config)
        run = Run.create(
            plan.kind,
            plan.parameters(),
            run_dir,
            sample=sample,
            device=device,
            operator=operator,
            notes=notes,
            plan=spec,
            pid=os.getpid(),  # a resume of this folder before its lock is taken sees a live process
            pid_host=socket.gethostname(),
            rig_spec=None if rig_spec is None else str(rig_spec),
            rig_overrides=_rig_overrides(plan),
            engine={"checkpoint_every": self.checkpoint_every,
                    "checkpoint_interval_s": self.checkpoint_interval_s,
                    "watchdog": {k: getattr(self.watchdog, k)
                                 for k in ("retries", "backoff_s", "poll_s", "suspend_timeout_s")}},
        )
        return self._execute(plan, run, rig, rig_spec, state=None)

    @locks_run_folder
    def resume(
        self,
        run_dir: str | os.PathLike,
        *,
        rig: Any = None,
        plan: Plan | None = None,
        checkpoint: int | None = None,
        accept_rig_change: bool = False,
        allow_plugins: Any = (),
    ) -> Outcome:
        """Continue the run in `run_dir` from its newest checkpoint (same folder, same uid), or from
        the kept checkpoint of step `checkpoint` (e.g. when the newest one was damaged).

        The plan is rebuilt through the run-kind registry (see `prepare_resume`); limits and
        instrument addresses come from the local rig config, never from run.json. If the run's
        rig snapshot differs from it in those keys, UserError unless `accept_rig_change` (then a
        "rig-change" event records the old values and the snapshot is replaced)."""
        prep = prepare_resume(run_dir, rig=rig, plan=plan, checkpoint=checkpoint,
                              accept_rig_change=accept_rig_change, allow_plugins=allow_plugins)
        run, plan, state = prep.run, prep.plan, prep.state
        if prep.rig_changes:
            run.add_event("rig-change", accepted=True, keys=prep.rig_changes,
                          old={k: _rig_safety_view(run.meta["rig_config"]).get(k) for k in prep.rig_changes})
            run.update(rig_config=dataclasses.asdict(prep.rig_config))
        run.add_event("resume", from_step=0 if state is None else int(state["step"]), pid=os.getpid())
        return self._execute(plan, run, rig, prep.rig_spec if rig is None else None, state=state)

    # ----------------------------------------------------------------- the loop
    def _execute(self, plan: Plan, run: Run, rig: Any, rig_spec: Any, state: dict | None) -> Outcome:
        # One process at a time runs a run folder (labml.runs.lock): taken before anything is written.
        with holding_run_folder(self, run.path):
            return self._execute_locked(plan, run, rig, rig_spec, state)

    def _execute_locked(self, plan: Plan, run: Run, rig: Any, rig_spec: Any, state: dict | None) -> Outcome:
        self.run_record = run
        self._sigint_count = 0
        self._pause_requested = False
        self._stop_requested = None
        self._abort_requested = None
        self._estop = False
        self._fault_since, self._fault_retries, self._fault_left_at = None, 0, None
        run.update(status=RUNNING, reason=None, pid=os.getpid(), pid_host=socket.gethostname())
        with run.log_to_file(self.log_level), self._sigint():
            if not plan.needs_rig or rig is not None:
                return self._loop(plan, run, rig if plan.needs_rig else None, state)
            spec = rig_spec if rig_spec is not None else "sim"
            if rig_spec is None:
                run.update(rig_spec=spec)
            from instruments.rig import DeferSignals
            from labml.rigs import open_rig

            # A signal while the rig opens (its connect may be ramping down a coil left energised)
            # is held back until it is open, then acted on as in the loop: the run ends the safe way.
            held = DeferSignals("opening of the rig", active=self.handle_sigint)
            try:
                with held:
                    cm = open_rig(spec, **(_rig_overrides(plan) or {}))
                    live = cm.__enter__()
            except KeyboardInterrupt:
                if held.received is None:
                    raise
                self._signal_while_opening(held.received)
            except Exception as exc:
                # nothing of the run has moved: once the rig answers (or its config is fixed) the run
                # continues from its last checkpoint, so it stays resumable
                run.finish(FAILED, f"cannot open rig {spec!r}: {type(exc).__name__}: {exc}", resumable=True)
                raise
            try:
                outcome = self._loop(plan, run, live, state)
            except BaseException:
                cm.__exit__(*sys.exc_info())
                raise
            # the rig's shutdown (also after an emergency stop): zero confirmed, outputs off
            cm.__exit__(None, None, None)
            if getattr(live, "coil_at_zero", None) is False and outcome.coil_at_zero is not False:
                run.update(coil_at_zero=False)
                run.finish(FAILED, f"{outcome.reason + '; ' if outcome.reason else ''}{COIL_NOT_ZERO}",
                           **outcome.results)
                outcome = dataclasses.replace(outcome, status=FAILED, coil_at_zero=False,
                                              reason=run.meta.get("reason"))
            return outcome

    def _loop(self, plan: Plan, run: Run, rig: Any, state: dict | None) -> Outcome:
        self.rig = rig
        ctx = RunContext(self, run, rig)
        self._prepare_rig(run, rig)
        readbacks = self._publish_readbacks(run, rig)
        cur = _Cursor(total=plan.n_steps())
        bar = self._make_bar()
        self.state = RUNNING
        try:
            self._begin(plan, run, ctx, state, cur, bar)
            status, reason = self._run_steps(plan, run, ctx, cur, bar)
            outcome = self._end(plan, run, ctx, cur.step, status, reason)
        except (_Abort, KeyboardInterrupt) as exc:
            outcome = self._end_aborted(plan, run, ctx, cur.step, exc)
        except RunWriteError as exc:  # disk full, read-only, permission: resumable once fixed
            outcome = self._end_on_write_error(plan, run, ctx, cur.step, exc)
        except BaseException as exc:
            self._end_crashed(plan, run, ctx, cur.step, exc, bar)
            raise
        finally:
            self.rig = None
            if readbacks is not None:
                with contextlib.suppress(ValueError):
                    rig.guard.listeners.remove(readbacks)
                readbacks.close()
        self.state = outcome.status
        if bar:
            bar.close(cur.step, outcome.status)
        self._notify("end", outcome.to_dict())
        log.info("run %s ended: %s %s", run.path, outcome.status, outcome.reason or "")
        return outcome

    @staticmethod
    def _publish_readbacks(run: Run, rig: Any) -> LiveReadbackWriter | None:
        """The guard's supply read-backs go to RUN/live.json while the run holds the rig, for a
        dashboard in another process (labml.runs.live_readings); None without a guard."""
        listeners = getattr(getattr(rig, "guard", None), "listeners", None)
        if not isinstance(listeners, list):
            return None
        writer = LiveReadbackWriter(run.path)
        listeners.append(writer)
        return writer

    def _prepare_rig(self, run: Run, rig: Any) -> None:
        guard = getattr(rig, "guard", None)
        if guard is not None and hasattr(guard, "clear_stop"):
            guard.clear_stop()  # a stop left over from an earlier run must not stop this one
        if rig is not None and "rig_identities" not in run.meta:
            self._record_rig(run, rig)

    def _begin(self, plan: Plan, run: Run, ctx: RunContext, state: dict | None, cur: _Cursor,
               bar: ProgressBar | None) -> None:
        """Open the plan; on a resume restore the checkpoint's state (and the magnetic state where the
        rig's could not be restored exactly); on a fresh start write the checkpoint of step 0."""
        plan.open(ctx)
        restored_exactly = False
        if state is not None:
            cur.step, restored_exactly = self._restore_on_resume(plan, run, ctx, state)
        elif run.series_names():  # a run killed before its first checkpoint: start it afresh
            run.truncate_series({})
        if state is not None and ctx.rig is not None and not restored_exactly:
            plan.establish(cur.step, ctx)
        if state is None:
            self._checkpoint(plan, run, ctx.rig, cur.step)  # step 0: a resume before any step is exact
        self._notify("start", {"run_dir": str(run.path), "step": cur.step, "total": cur.total})
        if bar:
            bar.start(cur.step, cur.total, plan.kind)

    def _run_steps(self, plan: Plan, run: Run, ctx: RunContext, cur: _Cursor,
                   bar: ProgressBar | None) -> tuple[str, str | None]:
        """The steps, with stop and pause requests honoured between them and checkpoints when due.
        Returns the status and reason the run ends with (success, stopped or paused)."""
        while cur.total is None or cur.step < cur.total:
            self._check_abort()
            if self._stop_requested:
                return STOPPED, self._stop_requested
            if self._pause_requested:
                ended = self._pause_between_steps(plan, run, ctx, cur)
                if ended is not None:
                    return ended
            finished = self._one_step(plan, run, ctx, cur, bar)
            if finished is None:  # a fault ridden out: continue from the restored step
                continue
            due = cur.since_ckpt >= self.checkpoint_every or (
                self.checkpoint_interval_s is not None
                and time.monotonic() - self._last_ckpt_t >= self.checkpoint_interval_s
            )
            if due or finished or (cur.total is not None and cur.step >= cur.total):
                self._checkpoint(plan, run, ctx.rig, cur.step)
                cur.since_ckpt = 0
            if finished:
                break
        return SUCCESS, None

    def _pause_between_steps(self, plan: Plan, run: Run, ctx: RunContext,
                             cur: _Cursor) -> tuple[str, str] | None:
        """A pause before step cur.step: checkpoint, then what `on_pause` decides. Returns the status
        and reason the run ends with, or None to go on."""
        if cur.since_ckpt:
            self._checkpoint(plan, run, ctx.rig, cur.step)
            cur.since_ckpt = 0
        decision = self._pause(plan, run, ctx, cur.step)
        if decision == "suspend":
            return PAUSED, "paused; continue with `labml resume`"
        if decision == "stop":
            return STOPPED, "stopped while paused"
        if decision == "abort":
            raise _Abort(self._abort_requested or "aborted while paused")
        return None

    def _one_step(self, plan: Plan, run: Run, ctx: RunContext, cur: _Cursor,
                  bar: ProgressBar | None) -> bool | None:
        """Step cur.step, its rows written when it completes. Returns whether the plan ended early; None
        when an instrument fault was ridden out (the cursor is back at the last checkpoint)."""
        try:
            finished = plan.step(cur.step, ctx)
        except _Abort:
            raise
        except Exception as exc:
            if self._abort_requested:  # e.g. the guard's RampStopped after request_abort
                raise _Abort(self._abort_requested, emergency=self._estop) from exc
            if not isinstance(exc, self.watchdog.faults()):
                raise
            ctx._discard()
            cur.step = self._ride_out_fault(plan, run, ctx, cur.step, exc)
            cur.since_ckpt = 0
            return None
        with self._critical_section():
            ctx._flush()
        self._fault_since, self._fault_retries = None, 0  # a step went through: streak over
        cur.step += 1
        cur.since_ckpt += 1
        self._notify("step", {"step": cur.step, "total": cur.total})
        if bar:
            bar.update(cur.step)
        return bool(finished)

    def _end(self, plan: Plan, run: Run, ctx: RunContext, step: int, status: str,
             reason: str | None) -> Outcome:
        """The end of a run that was not aborted: close the plan (success, stopped), the field to zero
        (confirmed), the results and status recorded."""
        if status in (SUCCESS, STOPPED):
            self._close_plan(plan, run, ctx, step)
        # every end leaves the field at zero, confirmed (outputs: the rig's owner)
        zeroed = self._end_safe(run, ctx.rig)
        results = _safe_results(plan)
        if zeroed is False:
            status, reason = FAILED, COIL_NOT_ZERO
        if status == PAUSED:
            run.update(status=PAUSED, reason=reason, results=results)
            run.add_event("suspend", step=step)
        else:
            run.finish(status, reason, **results)
        return Outcome(status, reason, run.path, step, results, coil_at_zero=zeroed)

    def _end_aborted(self, plan: Plan, run: Run, ctx: RunContext, step: int,
                     exc: BaseException) -> Outcome:
        """An abort (request, emergency stop, Ctrl+C twice, a termination signal): field to zero,
        status "aborted" (resumable), or "failed" when the coil could not be confirmed at zero."""
        ctx._discard()
        reason = exc.reason if isinstance(exc, _Abort) else (self._abort_requested or "interrupted")
        zeroed = self._end_safe(run, ctx.rig)
        status = FAILED if zeroed is False else ABORTED
        reason = f"{reason}; {COIL_NOT_ZERO}" if zeroed is False else reason
        results = _safe_results(plan)
        run.finish(status, reason, **results)
        return Outcome(status, reason, run.path, step, results, coil_at_zero=zeroed)

    def _end_crashed(self, plan: Plan, run: Run, ctx: RunContext, step: int, exc: BaseException,
                     bar: ProgressBar | None) -> None:
        """An unexpected error: field to zero, status "failed" with the error as reason (the caller
        raises it again)."""
        ctx._discard()
        zeroed = self._end_safe(run, ctx.rig)
        why = f"{type(exc).__name__}: {exc}" + (f"; {COIL_NOT_ZERO}" if zeroed is False else "")
        run.finish(FAILED, why, **_safe_results(plan))
        self.state = FAILED
        if bar:
            bar.close(step, FAILED)
        self._notify("end", {"status": FAILED, "reason": str(exc)})

    # ----------------------------------------------------------------- pieces
    def _end_on_write_error(self, plan: Plan, run: Run, ctx: RunContext, step: int,
                            exc: RunWriteError) -> Outcome:
        """A write into the run folder failed: field to zero, the run ends "failed" with the reason
        (recorded in run.json when it can still be written) and stays resumable from its last
        checkpoint, which a failed write never touches (whole files are replaced atomically)."""
        ctx._discard()
        zeroed = None
        if ctx.rig is not None:
            with self._critical_section():
                zeroed = self._safe_state(ctx.rig)
        reason = str(exc) + (f"; {COIL_NOT_ZERO}" if zeroed is False else "")
        log.error("run %s failed: %s; `labml resume %s` continues it once fixed", run.path, reason, run.path)
        results = _safe_results(plan)
        try:
            run.meta["coil_at_zero"] = zeroed
            run.finish(FAILED, reason, resumable=True, **results)
        except RunWriteError as again:
            log.error("could not record the failure in run.json either: %s", again)
        return Outcome(FAILED, reason, run.path, step, results, coil_at_zero=zeroed)

    def _make_bar(self) -> ProgressBar | None:
        show = self.progress if self.progress is not None else progress_enabled()
        return ProgressBar() if show else None

    def _record_rig(self, run: Run, rig: Any) -> None:
        extra: dict[str, Any] = {}
        source = getattr(getattr(rig, "config", None), "source", None)
        if not run.meta.get("rig_spec") and isinstance(source, str) and Path(source).is_file():
            extra["rig_spec"] = str(Path(source).resolve())  # so `labml resume` can reopen it
        try:
            extra["rig_identities"] = rig.identities()
        except Exception as exc:  # noqa: BLE001 - a record, not a requirement
            extra["rig_identities"] = {"error": str(exc)}
        try:
            extra["calibrations"] = {str(w): rig.calibration(w) for w in range(int(rig.n_wires))}
        except Exception:  # noqa: BLE001
            pass
        cfg = getattr(rig, "config", None)
        if cfg is not None:
            try:
                extra["rig_config"] = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
            except Exception:  # noqa: BLE001
                extra["rig_config"] = str(cfg)
        try:
            run.update(**extra)
        except TypeError:
            run.update(**{k: str(v) for k, v in extra.items()})

    def _checkpoint(self, plan: Plan, run: Run, rig: Any, step: int) -> None:
        state = {
            "step": step,
            "spec": _spec_or_none(plan),  # resume checks that run.json names this same plan
            "plan": plan.state_dict(),
            "rng": ckpt.capture_rng(),
            "rig": rig.state_dict() if rig is not None and hasattr(rig, "state_dict") else None,
            "series": run.series_sizes(),
            "time": time.time(),
        }
        with self._critical_section():
            path = ckpt.save(run.path, run.uid, step, state)
        self._last_ckpt_t = time.monotonic()
        log.debug("checkpoint %s", path)

    def _restore(self, plan: Plan, run: Run, rig: Any, state: dict, restore_rig: bool) -> tuple[int, bool]:
        """Load a checkpoint into plan/RNG/rig and cut the series back. Returns (step, rig restored?)."""
        dropped = run.truncate_series(state.get("series") or {})
        if dropped:
            log.info("cut rows written after checkpoint %s: %s bytes", state["step"], dropped)
        plan.load_state_dict(state["plan"])
        ckpt.restore_rng(state["rng"])
        exact = False
        can = rig is not None and hasattr(rig, "load_state_dict")
        if restore_rig and can and state.get("rig") is not None:
            rig.load_state_dict(state["rig"])
            exact = True
        return int(state["step"]), exact

    def _end_safe(self, run: Run, rig: Any) -> bool | None:
        """The safe state at the end of a run, with termination signals held back meanwhile (a
        second Ctrl+C or SIGTERM cannot cut the ramp to zero short). Records ``coil_at_zero`` in
        run.json; None without a rig."""
        if rig is None:
            return None
        with self._critical_section():
            zeroed = self._safe_state(rig)
        run.update(coil_at_zero=zeroed)
        if not zeroed:
            log.critical("run %s: %s", run.path, COIL_NOT_ZERO)
        return zeroed

    def _safe_state(self, rig: Any) -> bool:
        """Field to zero at the allowed rate, confirmed by a read-back (the guard retries failed
        steps); if that fails, once more through the guard's emergency zero (the same ramp, with the
        stop set). Returns whether the coil was confirmed at zero."""
        if rig is None:
            return True
        try:
            rig.zero()
            return True
        except Exception as exc:  # noqa: BLE001 - fall through to the emergency path
            log.error("zeroing the field failed (%s); trying emergency zero", exc)
        guard = getattr(rig, "guard", None)
        if guard is not None:
            try:
                guard.emergency_zero()
                return True
            except Exception:  # noqa: BLE001
                log.exception("emergency zero failed too: the coil may be energised")
        return False

    def _fault_safe_state(self, run: Run, rig: Any, step: int) -> bool:
        """Safe state after an instrument fault; records a "safe-state" event once it is reached."""
        zeroed = self._safe_state(rig)
        if zeroed:
            run.add_event("safe-state", step=step)
            self._notify("safe", {"step": step})
        return zeroed

    def _pause(self, plan: Plan, run: Run, ctx: RunContext, step: int) -> str:
        self._pause_requested = False
        self.state = PAUSED
        hold = plan.safe_to_hold(step)
        if not hold:
            self._safe_state(ctx.rig)
        run.add_event("pause", step=step, field_held=hold)
        self._notify("pause", {"step": step, "field_held": hold})
        decide = self.on_pause or _default_on_pause
        self.paused_run_dir = run.path  # what `labml resume` is to be given (the default prompt says it)
        try:
            decision = decide(self, step)
        except KeyboardInterrupt:
            decision = "abort"
        if decision not in ("resume", "stop", "abort", "suspend"):
            raise UserError(f"on_pause returned {decision!r}; expected resume, stop, abort or suspend")
        self._sigint_count = 0
        if decision == "resume":
            if self._abort_requested:
                return "abort"
            if not hold and ctx.rig is not None:
                guard = getattr(ctx.rig, "guard", None)
                if guard is not None and hasattr(guard, "clear_stop"):
                    guard.clear_stop()  # left set if the pause's safe state needed an emergency zero
                plan.establish(step, ctx)
            run.add_event("resume", step=step)
            self._notify("resume", {"step": step})
            self.state = RUNNING
        return decision

    def _close_plan(self, plan: Plan, run: Run, ctx: RunContext, step: int) -> None:
        """plan.close(ctx) (e.g. the final evaluation of an in-the-loop training on the rig); an
        instrument fault in it is ridden out like one in a step (its plan state is restored from the
        last checkpoint, written after the last step), then close runs again."""
        while True:
            try:
                plan.close(ctx)
                return
            except _Abort:
                raise
            except Exception as exc:
                if self._abort_requested:
                    raise _Abort(self._abort_requested, emergency=self._estop) from exc
                if not isinstance(exc, self.watchdog.faults()):
                    raise
                ctx._discard()
                self._ride_out_fault(plan, run, ctx, step, exc)

    def _ride_out_fault(self, plan: Plan, run: Run, ctx: RunContext, step: int, exc: BaseException) -> int:
        """Retry with backoff; then suspend (safe state, probe every poll_s) until the fault clears or
        suspend_timeout_s (counted from the first fault of a streak of steps that keep faulting)
        passes: then abort. Returns the step to continue from: that of the last checkpoint, whose plan
        state has been restored and whose magnetic state has been re-established."""
        wd = self.watchdog
        clock = ctx.clock
        self._count_fault(run, step, exc)
        if self._fault_since is None:
            self._fault_since = clock.now()
        elif self._fault_left_at is not None:
            # a redone step that faults again: its run time was no fault time (a long step, e.g. an
            # epoch of in-the-loop training, must not use up suspend_timeout_s by itself)
            self._fault_since += clock.now() - self._fault_left_at
        delay = wd.backoff_s * 2 ** self._fault_retries
        suspended = False
        zeroed = False
        while True:
            self._check_abort()
            if clock.now() - self._fault_since >= wd.suspend_timeout_s:
                raise _Abort(
                    f"instrument fault did not clear within {wd.suspend_timeout_s:g} s: "
                    f"{type(exc).__name__}: {exc}"
                )
            if self._fault_retries < wd.retries:
                self._fault_retries += 1
                clock.sleep(delay)
                delay *= 2
            else:
                if not suspended:
                    zeroed = self._fault_safe_state(run, ctx.rig, step)
                    suspended = True
                    self.state = "suspended"
                    run.update(reason=f"suspended by fault: {type(exc).__name__}: {exc}")
                    run.add_event("suspend-fault", step=step)
                    self._notify("suspend", {"step": step, "error": str(exc)})
                elif not zeroed:  # the faulty instrument refused the ramp down: keep trying while suspended
                    zeroed = self._fault_safe_state(run, ctx.rig, step)
                clock.sleep(wd.poll_s)
            try:
                plan.probe(ctx)
                new_step = self._recover(plan, run, ctx, safe_state_done=suspended and zeroed)
            except wd.faults() as again:
                log.info("fault persists (%s); %s", again,
                         "suspended" if suspended else f"retry {self._fault_retries}/{wd.retries}")
                continue
            self.state = RUNNING
            if suspended:
                run.update(reason=None)
            log.info("fault cleared; continuing from step %d", new_step)
            self._fault_left_at = clock.now()
            return new_step

    def _count_fault(self, run: Run, step: int, exc: BaseException) -> None:
        """Log and record one fault ridden out: a "fault" event and the counts in run.json."""
        log.warning("instrument fault at step %d: %s: %s", step, type(exc).__name__, exc)
        kind = getattr(exc, "kind", None) or type(exc.__cause__ or exc).__name__
        counts = dict(run.meta.get("faults") or {})  # faults ridden out, in total and per kind
        counts["total"] = int(counts.get("total", 0)) + 1
        counts[kind] = int(counts.get(kind, 0)) + 1
        run.meta["faults"] = counts  # saved with the event below
        run.add_event("fault", step=step, kind=kind, error=f"{type(exc).__name__}: {exc}")
        self._notify("fault", {"step": step, "error": str(exc)})

    def _restore_on_resume(self, plan: Plan, run: Run, ctx: RunContext, state: dict) -> tuple[int, bool]:
        """The checkpoint's state into plan and rig at a resume. Restoring the rig does I/O (the
        simulated supply is ramped to its saved setpoint through the guard), so an instrument
        fault there is ridden out like one in a step: field to zero, backoff, then the same exact
        restore again, until suspend_timeout_s passes (then the run is aborted, resumable)."""
        wd = self.watchdog
        clock = ctx.clock
        t_first, delay, tries = clock.now(), wd.backoff_s, 0
        while True:
            try:
                return self._restore(plan, run, ctx.rig, state, restore_rig=True)
            except _Abort:
                raise
            except Exception as exc:
                if ctx.rig is None or not isinstance(exc, wd.faults()):
                    raise
                self._count_fault(run, int(state["step"]), exc)
                if not self._fault_safe_state(run, ctx.rig, int(state["step"])):
                    from instruments.safety import CoilNotZeroError

                    raise CoilNotZeroError("coil not confirmed at zero after a fault during the resume") \
                        from exc
                if clock.now() - t_first >= wd.suspend_timeout_s:
                    raise _Abort(f"instrument fault during the resume did not clear within "
                                 f"{wd.suspend_timeout_s:g} s: {type(exc).__name__}: {exc}") from exc
                self._check_abort()
                tries += 1
                clock.sleep(delay if tries <= wd.retries else wd.poll_s)
                delay *= 2

    def _recover(self, plan: Plan, run: Run, ctx: RunContext, safe_state_done: bool) -> int:
        state = ckpt.latest(run.path, uid=run.uid)
        if state is None:  # pragma: no cover - a checkpoint is written before the first step
            raise _Abort("fault before the first checkpoint")
        new_step, _ = self._restore(plan, run, ctx.rig, state, restore_rig=False)
        if ctx.rig is not None:
            if not safe_state_done and not self._fault_safe_state(run, ctx.rig, new_step):
                # never re-establish a field on a coil that could not be confirmed at zero
                from instruments.safety import CoilNotZeroError

                raise CoilNotZeroError("coil not confirmed at zero after the fault; staying in safe state")
            self._check_abort()
            guard = getattr(ctx.rig, "guard", None)
            if guard is not None and hasattr(guard, "clear_stop"):
                # an emergency zero of the safe-state fallback leaves the guard's stop set
                guard.clear_stop()
            plan.establish(new_step, ctx)
        run.add_event("fault-cleared", step=new_step, redo_from=new_step)
        self._notify("resume", {"step": new_step})
        return new_step


def _spec_or_none(plan: Plan) -> dict | None:
    try:
        return plan.spec()
    except NotImplementedError:
        return None


def load_checkpoint(run: Run, step: int | None = None) -> dict | None:
    """The newest verified checkpoint of `run` (or that of `step`); UserError naming the file and the
    steps that are kept when it is damaged or missing."""
    files = ckpt.list_checkpoints(run.path)
    kept = [int(f.stem.split("-")[1]) for f in files]
    if step is None:
        if not files:
            return None
        try:
            return ckpt.load(files[-1], uid=run.uid)
        except UserError as exc:
            older = kept[:-1]
            hint = f"; resume from an older one with --checkpoint {older[-1]}" if older else ""
            raise UserError(f"{exc}{hint}") from exc
    if step not in kept:
        raise UserError(f"run {run.path} keeps no checkpoint of step {step}; kept: {kept or 'none'}")
    return ckpt.load(files[kept.index(step)], uid=run.uid)


@dataclasses.dataclass
class ResumePlan:
    """What `prepare_resume` found: the run, its rebuilt plan, the checkpoint state to continue from,
    the local rig spec and config, and the keys where the run's rig snapshot differs from them."""

    run: Run
    plan: Plan
    state: dict | None
    rig_spec: str | None
    rig_config: Any
    rig_changes: list[str]


def prepare_resume(
    run_dir: str | os.PathLike,
    *,
    rig: Any = None,
    plan: Plan | None = None,
    checkpoint: int | None = None,
    accept_rig_change: bool = False,
    allow_plugins: Any = (),
) -> ResumePlan:
    """Every check of a resume, without opening the rig or changing the folder (``labml resume``
    and its ``--dry-run``): the run is resumable and not running; its checkpoint verifies and
    unpickles only tensors, arrays and plain data; its plan is a registered run kind with valid
    parameters (nothing in the folder is imported or called) that matches the checkpoint; the rig
    spec is a local config (not a file inside the run folder), its limits and addresses agree with
    the run's snapshot (or `accept_rig_change`), and the plan fits the local limits."""
    run = load(run_dir)
    status = run.meta.get("status")
    if not is_resumable(run.meta):
        raise UserError(
            f"run {run.path} has finished (status {status!r}, reason {run.meta.get('reason')!r}); "
            "nothing to resume. Start a new run instead."
        )
    check_current_layout(run)  # an old run folder layout lists and loads, but is resumed only migrated
    pid, host = run.meta.get("pid"), run.meta.get("pid_host")
    here = host == socket.gethostname()
    if status == RUNNING and pid and here and pid != os.getpid() and pid_alive(int(pid)):
        raise UserError(f"run {run.path} is still running in process {pid}; stop it first")
    where = str(run.path / "run.json")
    if plan is None:
        if run.meta.get("plan") is None:
            raise UserError(f"run {run.path} records no plan spec; it cannot be resumed")
        plan = build_plan(run.meta["plan"], where, allow_plugins)
    state = load_checkpoint(run, checkpoint)
    check_plan_fits(run, plan, state)
    recorded = run.meta.get("rig_overrides")
    if (recorded or None) != (_rig_overrides(plan) or None):
        raise UserError(f"{where}: rig_overrides {recorded!r} are not those of its plan "
                        f"({_rig_overrides(plan)!r}); the run folder was altered, it cannot be resumed")
    rig_spec = run.meta.get("rig_spec")
    config, changes = None, []
    if plan.needs_rig:
        if rig is None and not rig_spec:
            raise UserError(
                f"run {run.path} was made on a rig that run.json does not name (no rig_spec); "
                "resume it from Python with RunEngine().resume(run_dir, rig=open_rig(...))"
            )
        if rig is None and rig_spec not in ("sim", None):
            spec_path = Path(rig_spec).resolve()
            if spec_path == run.path.resolve() or run.path.resolve() in spec_path.parents:
                raise UserError(f"{where}: rig_spec {rig_spec!r} lies inside the run folder; a rig config "
                                "must be a local file, not part of a run folder")
        config = (getattr(rig, "config", None) if rig is not None
                  else rig_config_of(rig_spec, _rig_overrides(plan)))
        changes = rig_changes(run.meta.get("rig_config"), config)
        if changes and not accept_rig_change:
            raise UserError(f"{where}: the local rig config differs from the run's snapshot in "
                            f"{', '.join(changes)}; resume with --accept-rig-change to continue under "
                            "the local config")
        if config is not None:
            plan.validate(config)
    return ResumePlan(run, plan, state, rig_spec, config, changes)


def _safe_results(plan: Plan) -> dict:
    try:
        return dict(plan.results() or {})
    except Exception as exc:  # noqa: BLE001 - results are a record
        log.warning("plan results unavailable: %s", exc)
        return {}


def _default_on_pause(engine: RunEngine, step: int) -> str:
    """Ask on the terminal; without one, suspend (resumable later)."""
    if not sys.stdin or not sys.stdin.isatty():
        where = getattr(engine, "paused_run_dir", None) or "RUN_DIR"
        sys.stderr.write(f"labml: paused; run saved. Continue with `labml resume {where}`.\n")
        return "suspend"
    while True:
        sys.stderr.write(
            f"labml: paused before step {step} (field at zero unless held). "
            "[r]esume, [s]top, [a]bort, [l]eave for `labml resume`? "
        )
        sys.stderr.flush()
        answer = sys.stdin.readline().strip().lower()[:1]
        choice = {"r": "resume", "s": "stop", "a": "abort", "l": "suspend", "": "suspend"}.get(answer)
        if choice:
            return choice


# ======================================================================================= dry run
def dry_run(
    plan: Plan, rig_spec: str | os.PathLike | None = "sim", run_dir: str | os.PathLike | None = None
) -> dict:
    """Validate `plan` against the rig config (limits, waveforms, durations) without opening the rig,
    and check that `run_dir` could be written. Returns a summary; raises UserError/SafetyError/ConfigError."""
    config = None
    if plan.needs_rig:
        config = rig_config_of(rig_spec, _rig_overrides(plan))
    summary = {"kind": plan.kind, "parameters": plan.parameters(), "steps": plan.n_steps()}
    summary.update(plan.validate(config) or {})
    if run_dir is not None:
        check_writable(Path(run_dir))
    return summary


#: the only rig config keys a plan may override: the simulated world's seed (never a limit, the
#: coil, an address or a wire)
ALLOWED_RIG_OVERRIDES = {"sim": {"seed"}}


def _rig_overrides(plan: Plan) -> dict | None:
    """Config tables a plan merges over its rig file when the engine opens the rig (e.g. the
    simulated world's seed, {"sim": {"seed": 3}}); None for none. Anything outside
    ALLOWED_RIG_OVERRIDES is a UserError: no plan can loosen a limit of the rig config."""
    overrides = getattr(plan, "rig_overrides", None) or None
    if overrides is None:
        return None
    bad = [f"{t}.{k}" for t, table in overrides.items()
           for k in (table if isinstance(table, dict) else {None: None})
           if k not in ALLOWED_RIG_OVERRIDES.get(t, set())]
    if bad:
        raise UserError(f"plan {plan.kind!r} overrides rig config key(s) {bad}; only "
                        f"{[f'{t}.{k}' for t, ks in ALLOWED_RIG_OVERRIDES.items() for k in ks]} may be")
    return overrides


def rig_config_of(rig_spec: str | os.PathLike | None, overrides: dict | None = None) -> Any:
    """The RigConfig of a rig spec ("sim"/None -> the built-in simulated rig, or a TOML path), with
    `overrides` (config tables) merged before validation."""
    from labml.rigs import rig_config

    return rig_config(rig_spec, overrides)


def check_writable(run_dir: Path) -> None:
    """UserError unless `run_dir` is a new folder that could be created and written."""
    if (run_dir / "run.json").exists():
        raise UserError(f"{run_dir} already holds a run (run.json exists); choose another --run-dir")
    probe_dir = run_dir
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir() or not os.access(probe_dir, os.W_OK | os.X_OK):
        raise UserError(f"cannot write run folder {run_dir}: {probe_dir} is not a writable folder")
