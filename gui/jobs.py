"""The GUI's job queue: protocols and trainings run one after another in a worker thread.

The GUI is a thin client. A job is executed by `protocols.runner.run_protocol` (the same code path
as `labml run`), on the rig the GUI is connected to, in a worker QThread with torch limited to one
thread, so the event loop never starves. The worker never touches Qt widgets: rows go into the job's
`LiveBuffer` (drawn by the live views on a throttled timer) and state changes are queued Qt signals.

Controls (thread-safe, called from the GUI thread):
    pause()   the protocol stops at its next check point, the field is ramped to zero through the
              rig (CoilGuard), and the worker waits; resume() lets it go on (each read cycle of a
              protocol starts with a saturating reset, so the magnetic state is re-established).
    stop()    clean stop at the next check point (run status "stopped").
    abort()   stop at the next check point, field to zero, run recorded as "aborted".
    emergency_stop()  abort + field to zero immediately through the guard from the GUI side.
"""

from __future__ import annotations

import datetime
import functools
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

log = logging.getLogger(__name__)

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
    "loglik": "loglik", "log_likelihood": "loglik", "ll": "loglik",
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
    """One queued protocol run. `state` and `run_dir` are written by the worker, read by the GUI."""

    protocol: str
    params: dict[str, Any]
    estimate_s: float | None = None
    id: int = field(default_factory=lambda: next(_ids))
    state: str = QUEUED
    buffer: LiveBuffer = field(default_factory=LiveBuffer)
    run_dir: str | None = None
    results: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    rows: int = 0
    started_s: float | None = None
    finished_s: float | None = None
    _resume: threading.Event = field(default_factory=threading.Event, repr=False)
    _pause_requested: bool = False
    _stop_requested: bool = False
    _abort_requested: bool = False

    def __post_init__(self) -> None:
        self._resume.set()

    @property
    def label(self) -> str:
        return f"#{self.id} {self.protocol}"

    @property
    def finished(self) -> bool:
        return self.state in FINAL


class JobQueue(QtCore.QObject):
    """Queue of jobs executed one at a time on the session's rig by a worker thread.

    Parameters
    ----------
    session: gui.rig_panel.RigSession (its rig and io_lock); a job needing a rig fails cleanly if none.
    execute: callable(job, rig, should_stop, on_row) -> dict; default `protocols.runner.run_protocol`.
    """

    changed = QtCore.Signal()
    job_started = QtCore.Signal(object)
    job_finished = QtCore.Signal(object)

    def __init__(self, session: Any, execute: Callable[..., dict] | None = None,
                 runs_root: str | os.PathLike | None = None, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.runs_root = runs_root
        self.jobs: list[Job] = []
        self.current: Job | None = None
        self._execute = execute or _run_with_protocol_runner
        self._q: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._worker, name="gui-job-worker", daemon=True)
        self._thread.start()
        session.emergency_hook = self.emergency_stop

    # ---- GUI-thread API --------------------------------------------------------------------------
    def submit(self, protocol: str, params: dict[str, Any], estimate_s: float | None = None) -> Job:
        job = Job(protocol=protocol, params=dict(params), estimate_s=estimate_s)
        self.jobs.append(job)
        self._q.put(job)
        log.info("queued %s %s", job.label, params)
        self.changed.emit()
        return job

    def busy(self) -> bool:
        return self.current is not None

    def pause(self, job: Job | None = None) -> bool:
        job = job or self.current
        if job is None or job.finished:
            return False
        job._pause_requested = True
        job._resume.clear()
        log.info("pause requested for %s", job.label)
        return True

    def resume(self, job: Job | None = None) -> bool:
        job = job or self.current
        if job is None or job.finished:
            return False
        job._pause_requested = False
        job._resume.set()
        log.info("resume requested for %s", job.label)
        return True

    def stop(self, job: Job | None = None) -> bool:
        job = job or self.current
        if job is None or job.finished:
            return False
        job._stop_requested = True
        job._resume.set()
        if job.state == QUEUED:
            job.state = STOPPED
            self.changed.emit()
        log.info("stop requested for %s", job.label)
        return True

    def abort(self, job: Job | None = None) -> bool:
        job = job or self.current
        if job is None or job.finished:
            return False
        job._abort_requested = job._stop_requested = True
        job._resume.set()
        if job.state == QUEUED:
            job.state = ABORTED
            self.changed.emit()
        log.warning("abort requested for %s", job.label)
        return True

    def emergency_stop(self) -> bool:
        """Abort the running job (True if there was one); the worker zeroes the field at once."""
        return self.abort()

    def remove_queued(self, job: Job) -> bool:
        if job.state != QUEUED:
            return False
        job.state = STOPPED
        job._stop_requested = True
        self.changed.emit()
        return True

    def close(self, timeout_s: float = 30.0) -> None:
        """Abort everything and join the worker (called when the window closes)."""
        for job in self.jobs:
            if not job.finished:
                self.abort(job)
        self._q.put(None)
        self._thread.join(timeout_s)

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Block (without an event loop) until no job is queued or running (scripts; tests use qtbot)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if all(j.finished for j in self.jobs):
                return True
            time.sleep(0.01)
        return False

    # ---- worker thread ---------------------------------------------------------------------------
    def _worker(self) -> None:
        try:
            import torch

            torch.set_num_threads(1)  # the GUI thread must keep a core's share
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
        while True:
            job = self._q.get()
            if job is None:
                return
            if job.finished:  # stopped/aborted while queued
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        self.current = job
        job.state = RUNNING
        job.started_s = time.monotonic()
        job.run_dir = str(self._new_run_dir(job))
        self.job_started.emit(job)
        self.changed.emit()
        rig = self.session.rig
        series_name: list[str] = []

        def on_row(row: dict) -> None:
            if not series_name:
                series_name.append(normalise_series_name(job.protocol, row, job.protocol))
            job.buffer.append(series_name[0], normalise_row(series_name[0], row))
            job.rows += 1
            live = {k: row[k] for k in row if _ALIASES.get(_key(k)) in ("field_mT", "signal")}
            if live:
                job.buffer.set_info(last_live=dict(live))

        def should_stop() -> bool:
            if job._pause_requested and not job._stop_requested:
                self._hold(job, rig)
            return job._stop_requested

        try:
            with self.session.io_lock:
                if rig is None:
                    raise RuntimeError("no rig connected: connect to a rig in the Rig panel first")
                controlled = ControlledRig(rig, job, lambda: self._hold(job, rig))
                out = self._execute(job, controlled, should_stop, on_row)
            job.results = dict(out.get("results") or {})
            job.run_dir = out.get("run_dir") or job.run_dir
            if job._abort_requested:
                job.state = ABORTED
            elif job._stop_requested or out.get("status") == "stopped":
                job.state = STOPPED
            else:
                job.state = SUCCESS
        except JobAborted as exc:
            job.state = ABORTED
            job.error = str(exc)
        except Exception as exc:
            job.error = f"{type(exc).__name__}: {exc}"
            job.state = ABORTED if job._abort_requested else FAILED
            log.error("%s failed: %s", job.label, job.error)
        finally:
            if job._abort_requested and rig is not None:
                self._zero(rig)
            if job.run_dir and not (Path(job.run_dir) / "run.json").exists():
                job.run_dir = None  # failed before the run folder was created
            if job.state == ABORTED and job.run_dir:
                _mark_aborted(job.run_dir)
            job.finished_s = time.monotonic()
            self.current = None
            log.info("%s finished: %s%s", job.label, job.state, f" ({job.error})" if job.error else "")
            self.job_finished.emit(job)
            self.changed.emit()

    def _new_run_dir(self, job: Job) -> Path:
        """RUNS_ROOT/<date>-<time>-<protocol>-gui<id>: known before the run starts, so that a run that
        fails or is aborted can still be opened in the browser."""
        from labml.runs import default_runs_root

        root = Path(self.runs_root) if self.runs_root is not None else default_runs_root()
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = root / f"{stamp}-{job.protocol}-gui{job.id}"
        n = 1
        while path.exists():
            n += 1
            path = root / f"{stamp}-{job.protocol}-gui{job.id}-{n}"
        return path

    def _hold(self, job: Job, rig: Any) -> None:
        """Paused: field to zero through the guard, then wait for resume/stop/abort."""
        job.state = PAUSED
        self.changed.emit()
        self._zero(rig)
        log.info("%s paused (field at zero)", job.label)
        while not job._resume.wait(0.05):
            pass
        if not job._stop_requested:
            job.state = RUNNING
            log.info("%s resumed", job.label)
        self.changed.emit()

    @staticmethod
    def _zero(rig: Any) -> None:
        try:
            rig.zero()
        except Exception as exc:
            log.error("field to zero failed: %s", exc)


class JobAborted(RuntimeError):
    """Raised inside a job's thread at the next rig operation after abort was requested."""


# rig operations at which a job can be paused or aborted (each one a complete, safe step)
GATED_METHODS = frozenset({"reset", "inject", "pulse", "read_bit", "cycle", "read_synapses", "set_field_mT",
                           "ramp_field_mT", "field_mT", "sweep_field"})


class ControlledRig:
    """The rig as a job sees it: every rig operation first honours the job's pause/abort requests.

    Protocols check `should_stop()` at their own check points, which may be far apart (a whole
    field grid is one batched read). This proxy adds a check point at every rig operation: a pause
    ramps the field to zero through the rig (`zero()`, i.e. the CoilGuard) and waits; an abort raises
    JobAborted so the protocol unwinds at once. All other attributes pass through unchanged.
    """

    def __init__(self, rig: Any, job: Job, hold: Callable[[], None]) -> None:
        object.__setattr__(self, "_rig", rig)
        object.__setattr__(self, "_job", job)
        object.__setattr__(self, "_hold", hold)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._rig, name)
        if name not in GATED_METHODS or not callable(attr):
            return attr
        job, hold = self._job, self._hold

        @functools.wraps(attr)
        def gated(*args: Any, **kwargs: Any) -> Any:
            if job._pause_requested and not job._stop_requested:
                hold()
            if job._abort_requested:
                raise JobAborted(f"{job.label} aborted by the operator")
            return attr(*args, **kwargs)

        return gated

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._rig, name, value)


def _mark_aborted(run_dir: str) -> None:
    """Record an abort in run.json (the runner records a requested stop as 'stopped')."""
    try:
        from labml import runs as run_store

        run = run_store.load(run_dir)
        if run.meta.get("status") != "aborted":
            run.update(status="aborted", reason="aborted from the GUI")
    except Exception as exc:
        log.warning("could not mark %s aborted: %s", run_dir, exc)


def _run_with_protocol_runner(job: Job, rig: Any, should_stop: Callable[[], bool],
                              on_row: Callable[[dict], None]) -> dict:
    from protocols.runner import run_protocol

    return run_protocol(job.protocol, job.params, rig=rig, run_dir=job.run_dir, should_stop=should_stop,
                        on_row=on_row)
