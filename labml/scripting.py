"""The scripting API: what a notebook or a script uses, the same objects the CLI and the GUI use
(docs/scripting.md). Reached as lazy attributes of the package (labml/__init__.py), so
``import labml`` stays light:

    import labml

    with labml.open_rig("sim") as rig:            # always ends with the field at 0, outputs off
        print(rig.read())                          # one reading of every role (as `labml rig read`)
        rig.ramp("5 mT")                           # through the coil guard (as `labml rig ramp`)
        run = labml.run("hysteresis", rig=rig, field_max="12 mT", on_row=print)
    print(run.meta["results"]["coercive_field_mT"])

    runs = labml.sweep("depinning-calibration", {"reads": [50, 200]}, field_points=5)
    found = labml.find_runs("runs", kind="hysteresis", where=["coercive_field_mT>4"])

Nothing here is a second implementation: `open_rig` is labml.rigs.open_rig, `read`/`ramp` are
labml.rig_control.read_rig/ramp_field (those of `labml rig read/ramp` and the dashboard), `run`
builds the plan through the run-kind registry (labml.runs.kinds, as `labml run`) and runs it on
the run engine, `sweep` is labml.runs.sweeps (as `labml sweep`), and `find_runs` is the run
catalogue's query (as `labml runs`).
A run is returned as ``labml.runs.store.load(path)`` returns it (``.meta``, ``.parameters``,
``.series(name)``, ``.arrays(name)``); the HDF5 run file's ``labml.open_run(path).dataset()`` comes
with the records work (issue 16's other half).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from labml.errors import UserError

RECORD = ("sample", "device", "operator", "notes")


def find_runs(root: str | os.PathLike | None = None, **filters: Any) -> list:
    """Runs under `root` (default: the runs root) from the run catalogue, as run objects
    (`labml.runs.store.Run`), oldest first. Filters as `labml runs`: kind, status, sample, device,
    operator, since, until, text, where (a list: ``["n=8", "test_accuracy>0.85"]``), sort, desc,
    limit."""
    from labml.runs.store import find_runs as _find

    where = filters.get("where")
    if isinstance(where, str):
        filters["where"] = [where]
    return _find(root, **filters)


class Rig:
    """An open rig for scripts: the rig object of labml.rigs.open_rig (its attributes are this
    object's) plus `read` and `ramp` through the choke point. Use it as a context manager: the end of
    the block (normal, exception, Ctrl+C, a termination signal) is the rig's shutdown: field ramped
    to 0 A at the allowed rate, outputs off, confirmed by read-back (`coil_at_zero`)."""

    def __init__(self, rig: Any) -> None:
        from labml.termination import terminate_like_ctrl_c

        self.rig = rig
        # SIGTERM, SIGHUP, SIGQUIT unwind like Ctrl+C while the rig is open, so the end of the block
        # zeroes the field (by default they end Python at once, the coil left energised); a
        # script's own handlers are left in place
        self._signals = terminate_like_ctrl_c(only_default=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rig, name)

    def read(self, role: str | None = None) -> dict:
        """One reading of every role (or of `role`) with units: labml.rig_control.read_rig."""
        from labml.rig_control import read_rig

        return read_rig(self.rig, role)

    def ramp(self, field: float | str) -> float:
        """Ramp the DC field to `field` (mT, or "5 mT", "-0.004 T") through the coil guard, limits
        checked first; returns the field set (mT): labml.rig_control.ramp_field."""
        from labml.rig_control import ramp_field
        from labml.units import parse_quantity

        where = f"ramp to {field!r}"
        target = parse_quantity(field, "mT", where) if isinstance(field, str) else float(field)
        return ramp_field(self.rig, target, where)["field_set_mT"]

    def zero(self) -> None:
        """Ramp the field to 0 at the allowed rate (the output stays on until the block ends)."""
        self.rig.zero()

    def close(self) -> None:
        """The rig's shutdown (also what the end of the ``with`` block does)."""
        try:
            self.rig.shutdown()
        finally:
            self._give_back_signals()

    def _give_back_signals(self) -> None:
        from labml.termination import give_back_handlers

        signals, self._signals = self._signals, {}
        give_back_handlers(signals)

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: Any) -> bool:
        try:
            return bool(self.rig.__exit__(*exc))
        finally:
            self._give_back_signals()


def open_rig(spec: str | os.PathLike | None = "sim", **options: Any) -> Rig:
    """Open a rig ("sim", a built-in rig name, or a rig TOML file) with labml.rigs.open_rig (its
    lock, its limits; `options` as there, e.g. ``sim={"seed": 3}``) and return it as a `Rig`."""
    from labml.rigs import open_rig as _open

    return Rig(_open(spec, **options))


def _raw_rig(rig: Any) -> Any:
    return rig.rig if isinstance(rig, Rig) else rig


def _convert(kind: Any, params: Mapping[str, Any], where: str) -> dict:
    """Keyword parameters for the kind's plan: a protocol converts its own (units: "12 mT", "500 us");
    any other kind's text with units is converted to the declared unit (labml.units.parse_quantity)
    before its declared parameter checks it."""
    from labml.units import parse_quantity

    if kind.text is not None:
        return dict(params)
    declared = {p.name: p for p in kind.params}
    out = {}
    for name, value in params.items():
        param = declared.get(name)
        if param is None:
            kind.parse(name, value, where)  # raises the registry's one-line error with a did-you-mean
        if isinstance(value, str) and param.unit and param.type in ("int", "float"):
            value = parse_quantity(value, param.unit, f"{where}: parameter {name}")
            value = int(value) if param.type == "int" and float(value).is_integer() else value
        out[name] = value
    return out


def _row_callback(on_row: Callable[..., Any]) -> Callable[[str, dict], None]:
    """The engine subscriber that calls ``on_row(row)`` (or ``on_row(row, series)``) for every row."""
    try:
        takes_series = len(inspect.signature(on_row).parameters) >= 2
    except (TypeError, ValueError):
        takes_series = False

    def callback(event: str, payload: dict) -> None:
        if event == "row":
            if takes_series:
                on_row(dict(payload["row"]), payload["series"])
            else:
                on_row(dict(payload["row"]))

    return callback


def run(kind: str, rig: Any = None, *, on_row: Callable[..., Any] | None = None,
        run_dir: str | os.PathLike | None = None, engine: Any = None, **params: Any) -> Any:
    """Run any registered kind ("hysteresis", "depinning-calibration", "train-synapses", ...) with
    keyword parameters (numbers, or text with units: ``field_max="12 mT"``), recorded like `labml run`
    (a run folder under the runs root, or `run_dir`), and return the run (labml.runs.store.Run).

    rig: an open rig (`open_rig`; used as it is, it stays open), or a rig spec ("sim", a TOML file)
    that the engine opens and shuts down, default "sim" for a kind that needs a rig.
    on_row: called with every row as it is recorded (``on_row(row)`` or ``on_row(row, series)``).
    sample, device, operator, notes: lab-book fields in run.json. engine: a RunEngine (default: a new
    one, no progress bar). Bad input is a one-line UserError (as on the command line) before the rig
    is touched; the run's end (success, stop, abort, failure) leaves the field at zero."""
    from labml.runs import kinds
    from labml.runs.engine import RunEngine
    from labml.runs.store import load

    record = {k: params.pop(k) for k in RECORD if k in params}
    where = f"labml.run({kind!r})"
    k = kinds.find(kind)
    plan = k.plan(_convert(k, params, where), where)
    engine = engine if engine is not None else RunEngine(progress=False)
    if on_row is not None:
        engine.subscribe(_row_callback(on_row))
    live = _raw_rig(rig)
    if isinstance(live, str | os.PathLike) or live is None:
        spec = (live or "sim") if plan.needs_rig else None
        outcome = engine.run(plan, run_dir, rig_spec=spec, **record)
    else:
        outcome = engine.run(plan, run_dir, rig=live if plan.needs_rig else None, **record)
    return load(outcome.run_dir)


def sweep(kind: str, grid: Mapping[str, Sequence[Any]], *, rig: str | os.PathLike | None = "sim",
          sweep_dir: str | os.PathLike | None = None, workers: int | None = 0, cluster: str | None = None,
          **fixed: Any) -> list:
    """Run `kind` over the product of `grid`'s axes (``{"reads": [50, 200], "wire": [0, 1]}``, last
    varies fastest) with `fixed` keyword parameters, as `labml sweep` (labml.runs.sweeps: a resumable
    sweep folder, `sweep_dir` or <runs root>/sweep-<time>-<kind>; every point validated before any
    runs; each point opens its own rig from the spec `rig`). workers: 0 runs the points here, N in N
    local processes; cluster: a Dask scheduler address. Returns the points' runs in grid order
    (``labml.runs.store.load``); a point that failed is a UserError naming it."""
    import datetime as _dt

    from labml.runs.store import default_runs_root, load
    from labml.runs.sweeps import Sweep, check_run_options, plan_validator

    if rig is not None and not isinstance(rig, str | os.PathLike):
        raise UserError("labml.sweep: rig must be a rig spec (\"sim\" or a TOML file): every point opens "
                        "its own rig; run points on an open rig with labml.run")
    check_run_options(workers, cluster)
    record = {k: fixed.pop(k) for k in RECORD if k in fixed}
    grid = {name: list(values) for name, values in grid.items()}
    if sweep_dir is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        sweep_dir = default_runs_root() / f"sweep-{stamp}-{kind}"
    rig_spec = str(Path(rig).resolve()) if rig is not None and Path(rig).is_file() else rig
    s = Sweep.create(Path(sweep_dir), kind, grid, fixed=fixed, rig=rig_spec,
                     validate=plan_validator(kind, rig_spec), record=record)
    out = s.run(workers=workers, cluster=cluster)
    if out["failed"]:
        first = out["failed"][0]
        raise UserError(f"labml.sweep: {len(out['failed'])} of {out['points']} points failed in "
                        f"{s.path} (point {first['index']}: {first['error']}); run it again to retry them")
    return [load(s.path / p["run_dir"]) for p in s.points]
