"""Parameter sweeps: a grid over protocol parameters as one queued, resumable sequence.

A sweep is a folder (`labml sweep` default: RUNS_ROOT/sweep-<time>-<protocol>, see
labml.runs.store.runs_root; `labml runs` lists it as one entry of kind "sweep" and its points as runs):

    SWEEP_DIR/manifest.json     protocol, grid, fixed parameters, rig spec, the ordered list of points
    SWEEP_DIR/points/p0000/     one run folder per point (labml.runs layout, written by the point's run)
    SWEEP_DIR/sweep.csv         the aggregated table: point, grid parameters, scalar results, status
    SWEEP_DIR/sweep.png         a plot of one result against one grid parameter

Points run on local worker processes (concurrent.futures, spawn start method) by default, in this
process with `workers=0`, or on a Dask distributed cluster given its scheduler address
(`cluster="tcp://host:8786"`). A point counts as done when its run folder says status "success";
running the sweep again (or `resume`) runs only the points that are not done, so a sweep killed at any
moment finishes without repeating finished points.

This module knows nothing of protocols: it calls a point function named by a dotted path
("package.module:function", default `protocols.runner:run_point`) with
{"protocol", "params", "rig", "run_dir"} and expects a dict with "results" back.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import importlib
import itertools
import json
import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from labml.errors import UserError
from labml.runs.store import atomic_write_json

log = logging.getLogger(__name__)

DEFAULT_POINT_FN = "protocols.runner:run_point"
MANIFEST = "manifest.json"


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """['n=1,2,4', 'seed=0,1'] -> {'n': ['1','2','4'], 'seed': ['0','1']} (values stay strings; the
    protocol converts and validates them, units included: 'duration=0.1 ms,1 ms')."""
    grid: dict[str, list[str]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UserError(f"--grid {item!r}: expected NAME=V1,V2,...")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not vals:
            raise UserError(f"--grid {item!r}: no values for {name!r}")
        if name in grid:
            raise UserError(f"--grid: parameter {name!r} given twice")
        grid[name] = vals
    if not grid:
        raise UserError("a sweep needs at least one --grid NAME=V1,V2,...")
    return grid


_SEQ_FN = ("linspace", "arange", "logspace")


def parse_sequence(text: str, where: str = "sequence") -> list[str]:
    """The values of a parameter sequence (the GUI's sequencer, like pymeasure's), as text for the
    kind to convert and check (units included):

        "1, 2, 5"  or  "0.1 ms, 1 ms"        the values listed
        "linspace(0, 10, 6)"                   6 values from 0 to 10, both included
        "arange(0, 10, 2.5)"                   0, 2.5, 5, 7.5 (the stop excluded)
        "logspace(-1, 1, 3)"                   0.1, 1, 10

    A function's arguments are plain numbers (no expression is evaluated); its values carry no
    unit (the parameter's own). UserError (one line, naming `where`) on anything else."""
    import numpy as np

    t = str(text).strip()
    fn = next((f for f in _SEQ_FN if t.startswith(f + "(") and t.endswith(")")), None)
    if fn is None:
        values = [v.strip() for v in t.split(",") if v.strip()]
        if not values:
            raise UserError(f"{where}: no values in {text!r}; give e.g. '1, 2, 5' or 'linspace(0, 10, 6)'")
        return values
    try:
        args = [float(a) for a in t[len(fn) + 1:-1].split(",")]
    except ValueError:
        raise UserError(f"{where}: {text!r}: {fn}() takes plain numbers") from None
    if len(args) != 3 or not all(math.isfinite(a) for a in args):
        raise UserError(f"{where}: {text!r}: {fn}(start, stop, {'step' if fn == 'arange' else 'count'})")
    if fn == "arange":
        if args[2] == 0 or (args[1] - args[0]) / args[2] <= 0 or (args[1] - args[0]) / args[2] > 10_000:
            raise UserError(f"{where}: {text!r}: the step must go from start towards stop in <= 10000 steps")
        grid = np.arange(*args)
    else:
        n = int(args[2])
        if n != args[2] or not 1 <= n <= 10_000:
            raise UserError(f"{where}: {text!r}: the count must be an integer in [1, 10000]")
        grid = (np.linspace if fn == "linspace" else np.logspace)(args[0], args[1], n)
    return [f"{v:.12g}" for v in grid]


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """All combinations, the last parameter varying fastest."""
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(grid[n] for n in names))]


def _import(dotted: str) -> Callable:
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


# One point at a time per process: the run engine captures and restores process-wide RNG states
# (numpy, torch, random) in its checkpoints, so two points running in two threads of one Dask worker
# would draw from each other's generators. A worker with --nthreads > 1 therefore runs its points one
# after another (the sweep warns, since the extra threads only wait).
_POINT_LOCK = threading.Lock()


def call_point(point_fn: str, task: dict) -> dict:
    """Run one point (module-level so that worker processes and Dask can pickle it); points in the
    same process never overlap (see _POINT_LOCK)."""
    with _POINT_LOCK, _point_bench(task):
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:
            pass
        return _import(point_fn)(task)


@contextlib.contextmanager
def _point_bench(task: dict):
    """On a simulated rig every point runs on its own simulated bench (its rig lock and persisted
    coil state in ``points/.sim-benches/<point>``), so that points run side by side as on as many
    benches, and a killed point's coil is found where it left it when the point is resumed. A real
    bench (backend visa) keeps the one lock of the rig: its points never share it."""
    try:
        from labml.rigs import rig_config

        sim = rig_config(task.get("rig")).backend == "sim"
    except Exception:  # noqa: BLE001 - a bad rig spec fails the point itself, with its own message
        sim = False
    if not sim:
        yield
        return
    from labml.runs.store import environment_variable

    run_dir = Path(task["run_dir"])
    with environment_variable("LABML_LOCK_DIR", str(run_dir.parent / ".sim-benches" / run_dir.name)):
        yield


# Dask's scheduler address forms: PROTOCOL://HOST[:PORT] for its comm protocols, or HOST:PORT (tcp).
_CLUSTER_SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")
MAX_WORKERS = 1024  # more local processes than this is a typo, not a machine


def plan_validator(kind_name: str, rig: str | os.PathLike | None) -> Callable[[dict], None]:
    """`validate(params)` for `Sweep.create`: a point's plan built through the run-kind registry (a
    protocol converts its text itself, any other kind by its declared parameters) and, for a plan
    that drives the rig, checked against the rig config (backend, limits): `labml sweep` and
    ``labml.sweep``."""
    from labml.rigs import rig_config
    from labml.runs.kinds import find

    kind = find(kind_name)
    config = None if rig is None else rig_config(rig)

    def validate(params: dict) -> None:
        plan = kind.plan(params)
        if config is not None and plan.needs_rig:
            plan.validate(config)

    return validate


def check_run_options(workers: int | None, cluster: str | None) -> None:
    """UserError naming the option, its value and what is allowed, for --workers (an integer in
    [0, MAX_WORKERS]; None: the default) and --cluster (a Dask scheduler address such as
    tcp://host:8786 or host:8786); checked before any point runs or any folder is made."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or not 0 <= workers <= MAX_WORKERS):
        raise UserError(
            f"--workers {workers!r}: must be an integer >= 0 and <= {MAX_WORKERS} "
            "(0 runs the points in this process)"
        )
    if cluster is None:
        return
    from urllib.parse import urlsplit

    text = str(cluster)
    parts = urlsplit(text if "://" in text else "tcp://" + text)
    try:
        port = parts.port
    except ValueError:
        port = -1
    ok = (parts.scheme in _CLUSTER_SCHEMES and bool(parts.hostname) and port != -1
          and ("://" in text or port is not None) and not parts.path.strip("/"))
    if not ok:
        raise UserError(
            f"--cluster {cluster!r} is not a Dask scheduler address: give PROTOCOL://HOST[:PORT] "
            f"({', '.join(_CLUSTER_SCHEMES)}), e.g. tcp://10.0.0.5:8786, or HOST:PORT"
        )


def _threaded_workers(client: Any) -> dict[str, int]:
    """{worker address: nthreads} of the cluster's workers that have more than one thread."""
    try:
        workers = client.scheduler_info().get("workers", {})
    except Exception:  # noqa: BLE001 - an informational check only
        return {}
    return {addr: int(w.get("nthreads", 1)) for addr, w in workers.items() if int(w.get("nthreads", 1)) > 1}


def _flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, bool | int | float | str) or v is None:
            out[key] = v
    return out


class Sweep:
    """A sweep folder. `Sweep.create(...)` writes the manifest; `Sweep.open(dir)` resumes one."""

    def __init__(self, path: Path, manifest: dict, point_fn: str | None = None) -> None:
        # absolute, so that workers started elsewhere (Dask) write into this folder
        self.path = Path(path).absolute()
        self.manifest = manifest
        # The function that runs a point is chosen by code (Sweep.create), never read from the folder:
        # a manifest is data that may come from someone else.
        self.point_fn = point_fn

    # --- creation ---------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        protocol: str,
        grid: Mapping[str, Sequence[Any]],
        fixed: Mapping[str, Any] | None = None,
        rig: str | None = "sim",
        point_fn: str = DEFAULT_POINT_FN,
        validate: Callable[[dict], None] | None = None,
        record: Mapping[str, str | None] | None = None,
    ) -> Sweep:
        """Create (or re-open, if it holds the same sweep) the sweep folder `path`.

        `validate(params)` is called on every point before anything runs (bad input fails early).
        `record`: lab-book fields (sample, device, operator, notes) written into every point's run.json.
        """
        path = Path(path)
        fixed = dict(fixed or {})
        overlap = set(fixed) & set(grid)
        if overlap:
            raise UserError(f"parameter(s) {', '.join(sorted(overlap))} given both fixed and in --grid")
        points = expand_grid(grid)
        if validate is not None:
            for p in points:
                validate({**fixed, **p})
        manifest = {
            "protocol": protocol,
            "grid": {k: list(v) for k, v in grid.items()},
            "fixed": fixed,
            "rig": None if rig is None else str(rig),
            "point_fn": point_fn,
            "record": {k: v for k, v in (record or {}).items() if v is not None},
            "points": [
                {"index": i, "params": p, "run_dir": f"points/p{i:04d}"} for i, p in enumerate(points)
            ],
        }
        if (path / MANIFEST).exists():
            old = cls.open(path)
            same = all(
                old.manifest.get(k) == manifest[k] for k in ("protocol", "grid", "fixed", "rig", "points")
            )
            if not same:
                raise UserError(
                    f"{path} already holds a different sweep ({old.manifest['protocol']}, grid "
                    f"{old.manifest['grid']}); choose another sweep folder or resume it as it is"
                )
            old.point_fn = point_fn
            return old
        try:
            (path / "points").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create sweep folder {path}: {exc.strerror or exc}") from exc
        manifest["created"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        atomic_write_json(path / MANIFEST, manifest)
        return cls(path, manifest, point_fn)

    @classmethod
    def open(cls, path: str | os.PathLike) -> Sweep:
        path = Path(path)
        f = path / MANIFEST
        if not f.exists():
            raise UserError(f"{path} is not a sweep folder (no {MANIFEST})")
        try:
            manifest = json.loads(f.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{f} is corrupt: {exc}") from exc
        for key in ("protocol", "grid", "points"):
            if key not in manifest:
                raise UserError(f"{f}: missing key {key!r}")
        return cls(path, manifest)

    # --- state ------------------------------------------------------------------------------------
    @property
    def points(self) -> list[dict]:
        return self.manifest["points"]

    def point_status(self, point: dict) -> tuple[str, dict]:
        f = self.path / point["run_dir"] / "run.json"
        if not f.exists():
            return "pending", {}
        try:
            meta = json.loads(f.read_text())
        except json.JSONDecodeError:
            return "corrupt", {}
        return str(meta.get("status", "unknown")), meta

    def pending(self) -> list[dict]:
        """Points not finished successfully (never started, killed mid-way, failed)."""
        return [p for p in self.points if self.point_status(p)[0] != "success"]

    def task(self, point: dict) -> dict:
        return {
            "protocol": self.manifest["protocol"],
            "params": {**self.manifest.get("fixed", {}), **point["params"]},
            "rig": self.manifest.get("rig"),
            "run_dir": str(self.path / point["run_dir"]),
            "record": dict(self.manifest.get("record") or {}),
        }

    # --- running ----------------------------------------------------------------------------------
    def run(
        self,
        workers: int | None = None,
        cluster: str | None = None,
        on_done: Callable[[dict, dict], None] | None = None,
        fail_fast: bool = False,
    ) -> dict:
        """Run every pending point; returns {"ran", "reused", "failed", "table", "plot"}.

        workers: local worker processes (default min(2, CPUs); 0 runs the points in this process).
        cluster: a Dask scheduler address (tcp://...): points are submitted there instead.
        """
        check_run_options(workers, cluster)
        todo = self.pending()
        done_before = len(self.points) - len(todo)
        point_fn = self.point_fn or DEFAULT_POINT_FN
        recorded = self.manifest.get("point_fn", DEFAULT_POINT_FN)
        if recorded != point_fn:
            raise UserError(f"{self.path / MANIFEST}: point_fn {recorded!r} is not {point_fn!r}; a sweep "
                            "folder names no code to run (its points run protocols through the run engine)")
        log.info(
            "sweep %s: %d points, %d done, %d to run", self.path, len(self.points), done_before, len(todo)
        )
        failed: list[dict] = []

        def finished(point: dict, out: dict | None, exc: BaseException | None) -> None:
            if exc is not None:
                log.error("sweep point %d failed: %s", point["index"], exc)
                failed.append({"index": point["index"], "error": f"{type(exc).__name__}: {exc}"})
                if fail_fast:
                    raise exc
            elif on_done is not None:
                on_done(point, out or {})

        if todo:
            if cluster:
                self._run_dask(todo, point_fn, cluster, finished)
            elif workers == 0:
                for p in todo:
                    try:
                        out = call_point(point_fn, self.task(p))
                    except UserError as exc:
                        finished(p, None, exc)
                        continue
                    except Exception as exc:  # noqa: BLE001 - one bad point does not stop the sweep
                        finished(p, None, exc)
                        continue
                    finished(p, out, None)
            else:
                self._run_processes(todo, point_fn, workers, finished)
        table = self.write_table()
        plot = self.write_plot()
        return {
            "points": len(self.points),
            "ran": len(todo) - len(failed),
            "reused": done_before,
            "failed": failed,
            "table": str(table),
            "plot": str(plot) if plot else None,
            "sweep_dir": str(self.path),
        }

    def _run_processes(self, todo, point_fn, workers, finished) -> None:
        import multiprocessing as mp

        n = workers if workers else min(2, os.cpu_count() or 1)
        # fork (Linux) lets the workers share the modules this process has already imported (torch
        # takes seconds to import); elsewhere spawn.
        method = (
            "fork" if "fork" in mp.get_all_start_methods() and sys.platform.startswith("linux") else "spawn"
        )
        with ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context(method)) as pool:
            futs = {pool.submit(call_point, point_fn, self.task(p)): p for p in todo}
            pending = set(futs)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    exc = f.exception()
                    finished(futs[f], None if exc else f.result(), exc)

    def _run_dask(self, todo, point_fn, address, finished) -> None:
        try:
            from distributed import Client, as_completed
        except ImportError as exc:
            raise UserError("--cluster needs dask distributed: pip install 'dask[distributed]'") from exc
        try:
            client = Client(address, timeout="10s")
        except OSError as exc:
            raise UserError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        threaded = _threaded_workers(client)
        if threaded:
            names = ", ".join(f"{a}: {n}" for a, n in threaded.items())
            msg = (
                f"Dask workers with more than one thread ({names}) "
                "run their sweep points one after another (the run engine's RNG states are per process); "
                "start workers with `dask worker ADDRESS --nthreads 1 --nworkers N` for N points at once"
            )
            log.warning(msg)
            print(f"labml: {msg}", file=sys.stderr)
        try:
            futs = {}
            for p in todo:
                fut = client.submit(
                    call_point,
                    point_fn,
                    self.task(p),
                    key=f"sweep-{self.path.name}-p{p['index']}-{os.getpid()}",
                    pure=False,
                    retries=0,
                )
                futs[fut] = p
            for fut in as_completed(list(futs)):
                exc = fut.exception()
                finished(futs[fut], None if exc else fut.result(), exc)
        finally:
            client.close()

    # --- aggregation ------------------------------------------------------------------------------
    def rows(self) -> list[dict]:
        """One row per point: index, grid parameters, flattened scalar results, status."""
        rows = []
        for p in self.points:
            status, meta = self.point_status(p)
            row: dict[str, Any] = {"point": p["index"], **p["params"], "status": status}
            if status == "success":
                for key, value in _flatten(meta.get("results", {})).items():
                    # a result named like a parameter must not hide the parameter's value
                    row[f"result.{key}" if key in row else key] = value
            rows.append(row)
        return rows

    def write_table(self) -> Path:
        rows = self.rows()
        cols: list[str] = []
        for r in rows:
            for k in r:
                if k not in cols:
                    cols.append(k)
        out = self.path / "sweep.csv"
        tmp = out.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in cols})
        os.replace(tmp, out)
        return out

    def write_plot(self, x: str | None = None, y: Sequence[str] | None = None) -> Path | None:
        """Plot result(s) `y` against grid parameter `x` (one line per combination of the others)."""
        rows = [r for r in self.rows() if r["status"] == "success"]
        if not rows:
            return None
        grid = self.manifest["grid"]
        x = x or next(iter(grid))
        if y is None:
            skip = set(grid) | {"point", "status"}
            y = [k for k, v in rows[0].items() if k not in skip and _is_number(v) and not k.endswith("_err")][
                :3
            ]
        if not y:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        others = [g for g in grid if g != x]
        fig, axes = plt.subplots(len(y), 1, figsize=(6, 2.6 * len(y)), squeeze=False)
        for ax, key in zip(axes[:, 0], y, strict=True):
            groups: dict[tuple, list[tuple[float, float]]] = {}
            for r in rows:
                if not (_is_number(r.get(key)) and _is_number(r.get(x))):
                    continue
                err = float(r[f"{key}_err"]) if _is_number(r.get(f"{key}_err")) else 0.0
                groups.setdefault(tuple(r[o] for o in others), []).append((float(r[x]), float(r[key]), err))
            for label, pts in sorted(groups.items()):
                pts.sort()
                ax.errorbar(  # error bars: the result's own "<key>_err" (one standard error), if any
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    yerr=[p[2] for p in pts],
                    fmt="o-",
                    capsize=3,
                    label=", ".join(f"{o}={v}" for o, v in zip(others, label, strict=True)) or None,
                )
            ax.set_xlabel(x)
            ax.set_ylabel(key)
            if others and len(groups) <= 10:
                ax.legend(fontsize=7)
        fig.suptitle(f"{self.manifest['protocol']} sweep")
        fig.tight_layout()
        out = self.path / "sweep.png"
        fig.savefig(out, dpi=90)
        plt.close(fig)
        return out


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int | float):
        return math.isfinite(v)
    if isinstance(v, str):
        try:
            return math.isfinite(float(v))
        except ValueError:
            return False
    return False
