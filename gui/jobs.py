"""The GUI's job queue: protocols and trainings run one after another in a worker thread.

The GUI is a thin client. A job names a run kind (a protocol by its name, or a training kind:
train-synapses, train-bm) and its parameters; its plan is built through the run-kind registry
(`labml.runs.kinds.plan_for`, the same code path as `labml run` and `labml sweep`) and run on the run
engine (`labml.runs.engine.RunEngine`: recorded, checkpointed, pausable), on
the rig the GUI is connected to, in a worker thread with torch limited to one thread, so the event
loop never starves. The worker never touches Qt widgets: rows the engine reports go into the job's
`LiveBuffer` (drawn by the live views on a throttled timer); state changes are queued Qt signals.

Controls (thread-safe, called from the GUI thread), all delegated to the job's RunEngine:
    pause()   the engine pauses at the next step boundary: checkpoint, field to zero (unless the
              protocol declares its state safe to hold), then waits for the operator's decision;
    resume()  the protocol re-establishes its magnetic state and goes on;
    stop()    clean stop (run status "stopped");
    abort()   ends at once, field to zero (run status "aborted");
    emergency_stop()  the engine's emergency stop: `guard.emergency_zero()` now, run "aborted".
"""

from __future__ import annotations

import datetime
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtpy import QtCore

from gui.buffers import LiveBuffer
from gui.child import ProcessController, child_main, snapshot_arrays

log = logging.getLogger(__name__)

#: the run record a job may carry into run.json (as `labml run --sample/--device/--operator/--notes`)
RECORD = ("sample", "device", "operator", "notes")

QUEUED, RUNNING, PAUSED, SUCCESS, STOPPED, ABORTED, FAILED = (
    "queued", "running", "paused", "success", "stopped", "aborted", "failed")
FINAL = {SUCCESS, STOPPED, ABORTED, FAILED}

_ids = itertools.count(1)


# ---- mapping of protocol rows to the live-view conventions of gui.plots -------------------------------
_ALIASES = {
    "field": "field_mT", "h": "field_mT", "h_mt": "field_mT", "field_mt": "field_mT",
    "drive_field": "field_mT",
    "applied_field": "field_mT", "p": "p", "p_pass": "p", "pass_probability": "p", "fraction": "p",
    "p_low": "p_low", "p_high": "p_high",
    "p_err": "p_err", "error": "p_err", "p_std": "p_err", "stderr": "p_err",
    "epoch": "epoch", "loss": "loss", "train_loss": "loss",
    "accuracy": "train_acc", "train_acc": "train_acc", "train_accuracy": "train_acc",
    "val_acc": "val_acc", "val_accuracy": "val_acc", "validation_accuracy": "val_acc",
    "test_acc": "test_acc", "test_accuracy": "test_acc",
    "signal": "signal", "signal_v": "signal", "signal_ohm": "signal", "moke": "signal", "mr": "signal",
    "m": "signal", "magnetisation": "signal", "time": "time_s", "time_s": "time_s", "t": "time_s",
    "loglik": "loglik", "log_likelihood": "loglik", "ll": "loglik", "test_loglik": "loglik",
    "exact_loglik": "loglik", "ais_loglik": "loglik",
}


def _key(name: str) -> str:
    """'Field (mT)' -> 'field_mt'; 'p_pass' -> 'p_pass'."""
    base = str(name).strip()
    unit = ""
    if "(" in base and base.endswith(")"):
        base, unit = base[: base.index("(")].strip(), base[base.index("(") + 1 : -1].strip()
    k = base.lower().replace(" ", "_").replace("-", "_")
    if unit and k + "_" + unit.lower() in _ALIASES:
        return k + "_" + unit.lower()
    return k


def normalise_row(series: str, row: dict[str, Any]) -> dict[str, Any]:
    """Rename a row's columns to the live-view names (keeping the originals too)."""
    out = dict(row)
    for name, value in row.items():
        alias = _ALIASES.get(_key(name))
        if alias and alias not in out:
            out[alias] = value
    if series == "calibration" and "p" not in out:
        counts = next((out[k] for k in out if _key(k) in ("counts", "passes", "k")), None)
        n = next((out[k] for k in out if _key(k) in ("n", "reads", "n_reads")), None)
        try:
            c, nn = float(counts), float(n)
            out["p"] = c / nn
            out.setdefault("p_err", (out["p"] * (1 - out["p"]) / nn) ** 0.5)
        except (TypeError, ValueError, ZeroDivisionError):
            pass
    return out


def normalise_series_name(name: str, first_row: dict[str, Any], protocol: str = "") -> str:
    """Which live series a CSV / protocol feeds: 'calibration', 'hysteresis', 'train' or its own name."""
    keys = {_ALIASES.get(_key(k), _key(k)) for k in first_row}
    text = f"{protocol} {name}".lower()
    if "hysteresis" in text or ("field_mT" in keys and "signal" in keys and "p" not in keys):
        return "hysteresis"
    if "calibration" in text or "depinning" in text or "characterise" in text or (
            "field_mT" in keys and ("p" in keys or "counts" in keys)):
        return "calibration"
    if "epoch" in keys or "train" in text or "loss" in keys:
        return "train"
    if "sampler" in keys or "loglik" in keys:
        return "sampler:" + name
    return name


# ---- jobs ------------------------------------------------------------------------------------------------
@dataclass
class Job:
    """One queued protocol run. `state`, `step`, `run_dir` are written by the worker, read by the GUI."""

    protocol: str
    params: dict[str, Any]
    estimate_s: float | None = None
    meta: dict[str, str] = field(default_factory=dict)  # run record: sample, device, operator, notes
    id: int = field(default_factory=lambda: next(_ids))
    state: str = QUEUED
    buffer: LiveBuffer = field(default_factory=LiveBuffer)
    run_dir: str | None = None
    results: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    reason: str | None = None
    rows: int = 0
    step: int = 0
    total_steps: int | None = None
    started_s: float | None = None
    finished_s: float | None = None
    engine: Any = field(default=None, repr=False)
    plan: Any = field(default=None, repr=False)
    _last_snapshot_s: float = 0.0
    _decision: queue.Queue = field(default_factory=queue.Queue, repr=False)
    _want_pause: bool = False
    _cancelled: str | None = None  # "stop"/"abort" requested before the engine existed
    _end_how: str | None = None  # "stop"/"abort" once requested
    uses_rig: bool = True  # False for a job running in a child process without the rig
    exit_code: int | None = None  # of a job process that ended without a result
    coil_alert: str | None = None  # set when the job ended with the coil NOT confirmed at 0 A

    @property
    def label(self) -> str:
        return f"#{self.id} {self.protocol}"

    @property
    def finished(self) -> bool:
        return self.state in FINAL

    @property
    def progress(self) -> float | None:
        """Fraction of steps done (None if the total is unknown)."""
        if not self.total_steps:
            return None
        return min(1.0, self.step / self.total_steps)


class JobQueue(QtCore.QObject):
    """Queue of jobs executed one at a time on the session's rig by a worker thread.

    Parameters
    ----------
    session: gui.rig_panel.RigSession (its rig and io_lock); a job needing a rig fails cleanly if none.
    execute: callable(job, rig, engine) -> dict with "status", "reason", "run_dir", "results";
        default: `protocols.runner.run_protocol(job.protocol, job.params, rig, job.run_dir, engine=engine)`.
    runs_root: folder for new run folders (default $LABML_RUNS or ./runs).
    use_processes: run jobs that need no rig (model-backend trainings) in a child process (gui.child),
        so they never compete with the GUI thread for the GIL; rig jobs always run in the worker thread.
    """

    changed = QtCore.Signal()
    job_started = QtCore.Signal(object)
    job_finished = QtCore.Signal(object)

    def __init__(self, session: Any, execute: Callable[..., dict] | None = None,
                 runs_root: str | os.PathLike | None = None, use_processes: bool = True,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.runs_root = runs_root
        self.use_processes = use_processes
        self.jobs: list[Job] = []  # in the order they run: the worker takes the first queued one
        self.current: Job | None = None
        self._execute = execute or _run_with_protocol_runner
        self._wake = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._worker, name="gui-job-worker", daemon=True)
        self._thread.start()
        session.emergency_hook = self.emergency_stop
        session.holder = self.holder

    # ---- GUI-thread API --------------------------------------------------------------------------
    def submit(self, protocol: str, params: dict[str, Any], estimate_s: float | None = None,
               meta: dict[str, str] | None = None) -> Job:
        """Queue a run of kind `protocol`; `meta` is its run record (sample, device, operator,
        notes: run.json)."""
        unknown = set(meta or {}) - set(RECORD)
        if unknown:
            raise ValueError(f"unknown run record keys {sorted(unknown)}; allowed: {', '.join(RECORD)}")
        job = Job(protocol=protocol, params=dict(params), estimate_s=estimate_s, meta=dict(meta or {}))
        with self._wake:
            self.jobs.append(job)
            self._wake.notify_all()
        log.info("queued %s %s", job.label, params)
        self.changed.emit()
        return job

    def submit_sequence(self, protocol: str, params: dict[str, Any], name: str, values: list[Any],
                        estimate_s: float | None = None, meta: dict[str, str] | None = None) -> list[Job]:
        """A parameter sequence (as pymeasure's sequencer): one queued job per value of parameter
        `name`, the other parameters as given; they run one after another, unattended."""
        jobs = [self.submit(protocol, {**params, name: v}, estimate_s, meta) for v in values]
        log.info("queued a sequence of %d %s runs over %s = %s", len(jobs), protocol, name, values)
        return jobs

    def move(self, job: Job, delta: int) -> bool:
        """Move a queued job `delta` places in the queue (negative: earlier), among the queued jobs
        only (a running or finished job keeps its place). False if the job is not queued."""
        with self._wake:
            if job.state != QUEUED or job not in self.jobs:
                return False
            queued = [j for j in self.jobs if j.state == QUEUED]
            i = queued.index(job)
            k = max(0, min(len(queued) - 1, i + delta))
            if k == i:
                return False
            queued.insert(k, queued.pop(i))
            slots = iter(queued)
            self.jobs = [next(slots) if j.state == QUEUED else j for j in self.jobs]
        log.info("moved %s to place %d of the queued jobs", job.label, k + 1)
        self.changed.emit()
        return True

    def holder(self) -> str | None:
        """The label of the job holding the rig now (None when none does)."""
        job = self.current
        return job.label if job is not None and job.uses_rig and not job.finished else None

    def busy(self) -> bool:
        """True while a job holds the rig (a training in a child process does not)."""
        job = self.current
        return job is not None and job.uses_rig

    def pause(self, job: Job | None = None) -> bool:
        """Pause at the next step boundary (a queued job pauses before its first step)."""
        job = job or self.current
        if job is None or job.finished:
            return False
        job._want_pause = True
        if job.engine is not None:
            job.engine.request_pause()
        log.info("pause requested for %s", job.label)
        return True

    def resume(self, job: Job | None = None) -> bool:
        job = job or self.current
        if job is None or job.finished:
            return False
        job._want_pause = False
        if job.state == PAUSED:
            if isinstance(job.engine, ProcessController):
                job.engine.resume()
            else:
                job._decision.put("resume")
        log.info("resume requested for %s", job.label)
        return True

    def stop(self, job: Job | None = None) -> bool:
        return self._end(job, "stop")

    def abort(self, job: Job | None = None) -> bool:
        return self._end(job, "abort")

    def _end(self, job: Job | None, how: str) -> bool:
        job = job or self.current
        if job is None or job.finished:
            return False
        job._want_pause = False
        job._end_how = "abort" if job._end_how == "abort" else how
        if job.state == QUEUED:
            job._cancelled = how
            job.state = STOPPED if how == "stop" else ABORTED
            job.reason = f"{how} requested before the job started"
            self.changed.emit()
            return True
        engine = job.engine
        if engine is None:
            job._cancelled = how
        elif how == "stop":
            engine.request_stop("stopped from the GUI")
        else:
            engine.request_abort("aborted from the GUI")
        if job.state == PAUSED and not isinstance(engine, ProcessController):
            job._decision.put(how)
        (log.info if how == "stop" else log.warning)("%s requested for %s", how, job.label)
        return True

    def emergency_stop(self) -> bool:
        """The running rig job's emergency stop (guard.emergency_zero() now); True if there was one.

        A job that does not use the rig (a model training in a child process) is left running: the
        caller zeroes the rig itself."""
        job = self.current
        if job is None or job.finished or not job.uses_rig:
            return False
        engine = job.engine
        job._end_how = "abort"
        if engine is not None:
            engine.emergency_stop()
        else:
            job._cancelled = "abort"
        if job.state == PAUSED and not isinstance(engine, ProcessController):
            job._decision.put("abort")
        log.warning("EMERGENCY STOP of %s", job.label)
        return True

    def remove_queued(self, job: Job) -> bool:
        """Take a job that has not started out of the queue."""
        with self._wake:
            if job.state != QUEUED or job not in self.jobs:
                return False
            self.jobs.remove(job)
            job.state, job.reason = STOPPED, "removed from the queue before it started"
        log.info("removed %s from the queue", job.label)
        self.changed.emit()
        return True

    def close(self, timeout_s: float = 30.0) -> None:
        """Abort everything and join the worker (called when the window closes)."""
        for job in list(self.jobs):
            if not job.finished:
                self.abort(job)
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        self._thread.join(timeout_s)

    # ---- worker thread ---------------------------------------------------------------------------
    def _worker(self) -> None:
        try:
            import torch

            torch.set_num_threads(1)  # the GUI thread must keep its share of the CPU
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
        while True:
            job = self._next()
            if job is None:
                return
            self._run(job)

    def _next(self) -> Job | None:
        """The first queued job in the queue's order (waits for one); None when closing."""
        with self._wake:
            while not self._closing:
                job = next((j for j in self.jobs if j.state == QUEUED), None)
                if job is not None:
                    job.state = RUNNING  # taken: no longer movable or removable
                    return job
                self._wake.wait(0.5)
        return None

    def _make_engine(self, job: Job) -> Any:
        from labml.runs.engine import RunEngine

        def on_pause(engine: Any, step: int) -> str:
            job.state = PAUSED
            self.changed.emit()
            log.info("%s paused before step %d (field at zero unless held)", job.label, step)
            while True:
                try:
                    decision = job._decision.get(timeout=0.1)
                    break
                except queue.Empty:
                    if job._end_how:  # stop/abort that raced with the pause
                        decision = job._end_how
                        break
            if decision == "resume":
                job.state = RUNNING
                self.changed.emit()
            return decision

        engine = RunEngine(progress=False, handle_sigint=False, on_pause=on_pause)
        engine.subscribe(lambda event, payload: self._on_event(job, event, payload))
        return engine

    def _on_event(self, job: Job, event: str, payload: dict) -> None:
        """Engine events (worker thread): rows into the buffer, progress, pause requests."""
        if event == "row":
            row = payload.get("row") or {}
            series = payload.get("series") or "data"
            name = normalise_series_name(series, row, job.protocol)
            job.buffer.append(name, normalise_row(name, row))
            job.rows += 1
            # the columns the plan declares as instrument readings are the run's own readings of the
            # rig: the rig panel shows them (a commanded field or a pulse amplitude is not one)
            readings = getattr(self.session, "readings", None)
            if readings is not None and job.uses_rig:
                for column, key in (getattr(job.plan, "readings", None) or {}).items():
                    if column in row:
                        readings.put(key, row[column], "run", f"{job.label}: {column}")
        elif event == "start":
            job.step = int(payload.get("step") or 0)
            job.total_steps = payload.get("total")
            if payload.get("run_dir"):
                job.run_dir = str(payload["run_dir"])
            if job._want_pause and job.engine is not None:
                job.engine.request_pause()
            if job._end_how and job.engine is not None:  # stop/abort that raced with the start
                if job._end_how == "stop":
                    job.engine.request_stop("stopped from the GUI")
                else:
                    job.engine.request_abort("aborted from the GUI")
            self.changed.emit()
        elif event == "step":
            job.step = int(payload.get("step") or 0)
            job.total_steps = payload.get("total", job.total_steps)
            now = time.monotonic()
            if job.plan is not None and now - job._last_snapshot_s > 0.5:
                job._last_snapshot_s = now
                for k, v in snapshot_arrays(job.plan).items():
                    job.buffer.set_array(k, v)

    def _run(self, job: Job) -> None:
        from instruments.safety import alert_mark

        mark = alert_mark()
        out: dict = {}
        self.current = job
        job.state = RUNNING
        job.started_s = time.monotonic()
        job.run_dir = str(self._new_run_dir(job))
        in_process = self.use_processes and self._execute is _run_with_protocol_runner and not _needs_rig(job)
        job.uses_rig = not in_process
        self.job_started.emit(job)
        self.changed.emit()
        rig = self.session.rig
        try:
            if in_process:
                out = self._run_in_process(job)
            else:
                job.engine = self._make_engine(job)
                with self.session.io_lock:
                    out = self._execute(job, rig, job.engine)
            job.results = dict(out.get("results") or {})
            job.run_dir = str(out.get("run_dir") or job.run_dir)
            job.reason = out.get("reason")
            status = out.get("status", SUCCESS)
            job.state = status if status in FINAL else STOPPED
            if status == PAUSED:  # suspended: resumable with `labml resume`
                job.reason = (job.reason or "") + " (resumable with `labml resume`)"
        except Exception as exc:
            job.error = f"{type(exc).__name__}: {exc}"
            job.state = FAILED
            log.error("%s failed: %s", job.label, job.error)
        finally:
            if job.run_dir and not (Path(job.run_dir) / "run.json").exists():
                job.run_dir = None  # failed before the run folder was created
            job.finished_s = time.monotonic()
            job.coil_alert = _coil_alert(job, out, mark, getattr(self.session.rig, "config", None))
            self.current = None
            log.info("%s finished: %s%s", job.label, job.state,
                     f" ({job.error or job.reason})" if (job.error or job.reason) else "")
            self.job_finished.emit(job)
            self.changed.emit()

    def _run_in_process(self, job: Job) -> dict:
        """Run a job that needs no rig in a child process (gui.child); relay its events to the job."""
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        events, controls = ctx.Queue(), ctx.Queue()
        job.engine = ProcessController(controls)
        proc = ctx.Process(target=child_main, name=f"labml-job-{job.id}", daemon=True,
                           args=(job.protocol, dict(job.params), job.run_dir, events, controls,
                                 dict(job.meta)))
        proc.start()
        log.info("%s runs in process %s", job.label, proc.pid)
        try:
            while True:
                try:
                    event, payload = events.get(timeout=0.2)
                except queue.Empty:
                    if not proc.is_alive():
                        code = job.exit_code = proc.exitcode
                        raise RuntimeError(f"the job process ended without a result (exit code {code})"
                                           ) from None
                    continue
                if event == "end":
                    return payload
                if event == "error":
                    raise RuntimeError(payload)
                if event == "paused":
                    job.state = PAUSED
                    self.changed.emit()
                elif event == "resumed":
                    job.state = RUNNING
                    self.changed.emit()
                elif event == "arrays":
                    for k, v in payload.items():
                        job.buffer.set_array(k, v)
                else:
                    self._on_event(job, event, payload)
        finally:
            controls.put(None)
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)

    def _new_run_dir(self, job: Job) -> Path:
        """RUNS_ROOT/<date>-<time>-<protocol>-gui<id>: known before the run starts."""
        from labml.runs.store import default_runs_root

        root = Path(self.runs_root) if self.runs_root is not None else default_runs_root()
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = root / f"{stamp}-{job.protocol}-gui{job.id}"
        n = 1
        while path.exists():
            n += 1
            path = root / f"{stamp}-{job.protocol}-gui{job.id}-{n}"
        return path


def _coil_alert(job: Job, out: dict, since: int, rig_config: Any = None) -> str | None:
    """What the banner says when this job ended with the coil NOT confirmed at 0 A (None when
    nothing says so): the guards' own alerts raised in this process while it ran (rig, last known
    setpoint, cause), else its outcome's or run.json's ``coil_at_zero: false``, else a job process
    that exited with the CLI's EXIT_COIL_NOT_ZERO. run.json is read as plain JSON."""
    import json

    from instruments.safety import unconfirmed_zero_alerts
    from labml.cli import EXIT_COIL_NOT_ZERO

    alerts = unconfirmed_zero_alerts(since)
    recorded = out.get("coil_at_zero")
    if recorded is None and job.run_dir:
        try:
            recorded = json.loads((Path(job.run_dir) / "run.json").read_text("utf-8")).get("coil_at_zero")
        except (OSError, ValueError, AttributeError):
            recorded = None
    if not alerts and recorded is not False and job.exit_code != EXIT_COIL_NOT_ZERO:
        return None
    rig = f"rig {rig_config.name}, " if getattr(rig_config, "name", None) and job.uses_rig else ""
    why = alerts or [job.reason or job.error or f"job process exited with code {job.exit_code}"]
    folder = f" [run folder {job.run_dir}]" if job.run_dir else ""
    return f"{rig}job {job.label}: " + "; ".join(why) + folder


def _needs_rig(job: Job) -> bool:
    """Does this kind with these parameters drive the rig (the plan's `needs_rig`: a training on the
    model backend does not)? Unknown kind or bad parameters: yes, the worker thread reports it."""
    try:
        from labml.runs.kinds import plan_for

        plan = plan_for(job.protocol, job.params)
    except Exception:  # noqa: BLE001 - the worker thread reports the error properly
        return True
    return bool(plan.needs_rig)


def _run_with_protocol_runner(job: Job, rig: Any, engine: Any) -> dict:
    """What `protocols.runner.run_protocol(..., engine=engine)` does, keeping a handle on the plan so
    that the live views can show the trainer's arrays (synapse p, BM samples) after each step. The
    plan comes from the run-kind registry (labml.runs.kinds.plan_for): a protocol through its kind
    ``protocol-<name>``, a training through its own kind (train-synapses, train-bm)."""
    from labml.errors import UserError
    from labml.runs.kinds import plan_for

    plan = plan_for(job.protocol, job.params)  # every kind's plan is a plan of the run engine
    needs_rig = bool(plan.needs_rig)
    if needs_rig and rig is None:
        raise UserError(f"{job.protocol} needs a rig: connect to one in the Rig panel first")
    job.plan = plan
    outcome = engine.run(plan, job.run_dir, rig=rig if needs_rig else None, **job.meta)
    return {"protocol": job.protocol, **outcome.to_dict()}


