"""Running a job in a separate process, and the pieces shared by both ways of running one.

A training that needs no rig runs in a child process (multiprocessing, "spawn"), so it never competes
with the GUI thread for Python's GIL: the window stays responsive however hard the training works.
The child runs exactly what the worker thread would run (the job's plan from the run-kind registry,
labml.runs.kinds.plan_for, on labml.runs.engine.RunEngine, same run folder, same records) and talks
to the GUI through two queues:

    events   child -> GUI: ("start"|"row"|"step"|"paused"|"resumed"|"arrays"|"end"|"error", payload)
    controls GUI -> child: "pause" | "resume" | "stop" | "abort" | "estop" | None (quit)

Jobs that drive the rig run in the GUI process's worker thread (the rig is open there; a real bench
cannot be shared between processes), with torch limited to one thread.

This module imports no Qt, so the child process starts without a GUI.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SNAPSHOT_EVERY_S = 0.5


def synapse_p(arrays: dict[str, Any]) -> dict[str, Any]:
    """{'p': ...} from a trainer's arrays p0, p1, ...: the first layer whose inputs form a square image
    (the per-class maps need n_in = 196 = 14 x 14), else the last layer. (copies, out, in) arrays are
    flattened to (copies*out, in)."""
    layers = sorted((k for k in arrays if k[:1] == "p" and k[1:].isdigit()), key=lambda k: int(k[1:]))
    if not layers:
        return {}
    flat = {}
    for k in layers:
        a = np.asarray(arrays[k], dtype=float)
        flat[k] = a.reshape(-1, a.shape[-1]) if a.ndim > 2 else a
    for k in layers:
        a = flat[k]
        if a.ndim == 2 and math.isqrt(a.shape[1]) ** 2 == a.shape[1]:
            return {"p": a}
    return {"p": flat[layers[-1]]}


def snapshot_arrays(plan: Any) -> dict[str, Any]:
    """Arrays of a running protocol's trainer for the live views (between steps; no RNG is used).

    Synapse trainers (labml.synapses): p of the layers from `arrays_()`. Boltzmann machines
    (labml.bm): the model system's persistent chains `chains.state["v"]` as samples.
    """
    trainer = getattr(plan, "trainer", None)
    if trainer is None:
        return {}
    out: dict[str, Any] = {}
    chains = getattr(trainer, "chains", None)
    state = getattr(chains, "state", None)
    if isinstance(state, dict):
        v = state.get("v")
        if v is None and state.get("s") is not None:
            n_vis = getattr(getattr(trainer, "model", None), "n_visible", None)
            v = state["s"][:, :n_vis] if n_vis else None
        if v is not None:
            v = v.detach().cpu().numpy() if hasattr(v, "detach") else v
            out["bm_samples"] = np.asarray(v, dtype=float)
    if hasattr(trainer, "arrays_"):
        try:
            out.update(synapse_p(trainer.arrays_()))
        except Exception as exc:  # noqa: BLE001 - a live picture is optional
            log.debug("no synapse arrays from the trainer: %s", exc)
    return out


class _Controls:
    """The child's side of the GUI's controls: the pause decision the GUI sends, and how the GUI
    asked the run to end (stop or abort) while it was paused."""

    def __init__(self, events: Any) -> None:
        self.events = events
        self.decision: queue.Queue[str] = queue.Queue()
        self.paused = threading.Event()
        self.end_how: list[str] = []

    def on_pause(self, engine: Any, step: int) -> str:
        """The engine's on_pause: report the pause, wait for resume (or the end the GUI asks for)."""
        self.paused.set()
        self.events.put(("paused", {"step": step}))
        while True:
            try:
                d = self.decision.get(timeout=0.1)
                break
            except queue.Empty:
                if self.end_how:
                    d = self.end_how[-1]
                    break
        self.paused.clear()
        if d == "resume":
            self.events.put(("resumed", {"step": step}))
        return d

    def obey(self, engine: Any, controls: Any) -> None:
        """Carry out the GUI's controls until it sends None."""
        while True:
            cmd = controls.get()
            if cmd is None:
                return
            if cmd == "pause":
                engine.request_pause()
            elif cmd == "resume":
                if self.paused.is_set():
                    self.decision.put("resume")
            elif cmd == "stop":
                self.end_how.append("stop")
                engine.request_stop("stopped from the GUI")
            elif cmd in ("abort", "estop"):
                self.end_how.append("abort")
                if cmd == "estop":
                    engine.emergency_stop()
                else:
                    engine.request_abort("aborted from the GUI")


def _reporter(plan: Any, events: Any) -> Any:
    """The engine subscriber that forwards rows, steps and (every SNAPSHOT_EVERY_S) the trainer's
    arrays to the GUI."""
    last = [0.0]

    def subscriber(event: str, payload: dict) -> None:
        if event in ("row", "start"):
            events.put((event, _plain(payload)))
        elif event == "step":
            events.put(("step", _plain(payload)))
            now = time.monotonic()
            if now - last[0] > SNAPSHOT_EVERY_S:
                last[0] = now
                arrays = snapshot_arrays(plan)
                if arrays:
                    events.put(("arrays", arrays))

    return subscriber


def child_main(protocol: str, params: dict, run_dir: str, events: Any, controls: Any,
               meta: dict | None = None) -> None:
    """Entry point of the child process: run the kind `protocol` names (a protocol or a training kind)
    on a RunEngine, report, obey controls."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    try:
        from labml.runs.engine import RunEngine
        from labml.runs.kinds import plan_for

        plan = plan_for(protocol, params)  # the kind's plan, from the registry (as in the GUI's thread)
        gui = _Controls(events)
        engine = RunEngine(progress=False, handle_sigint=False, on_pause=gui.on_pause)
        engine.subscribe(_reporter(plan, events))
        threading.Thread(target=gui.obey, args=(engine, controls), daemon=True, name="job-controls").start()
        outcome = engine.run(plan, run_dir, rig=None, **(meta or {}))
        final = snapshot_arrays(plan)
        if final:
            events.put(("arrays", final))
        events.put(("end", {"protocol": protocol, **_plain(outcome.to_dict())}))
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the GUI
        events.put(("error", f"{type(exc).__name__}: {exc}"))


def _plain(obj: Any) -> Any:
    """Something a multiprocessing queue can pickle without importing the child's classes."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return str(obj)


class ProcessController:
    """GUI side of a child-process job: the same requests as a RunEngine, sent as commands."""

    def __init__(self, controls: Any) -> None:
        self.controls = controls

    def request_pause(self) -> None:
        self.controls.put("pause")

    def resume(self) -> None:
        self.controls.put("resume")

    def request_stop(self, reason: str = "") -> None:
        self.controls.put("stop")

    def request_abort(self, reason: str = "") -> None:
        self.controls.put("abort")

    def emergency_stop(self) -> None:
        self.controls.put("estop")
