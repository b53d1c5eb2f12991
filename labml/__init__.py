"""labml: hardware-in-the-loop learning with magnetic domain-wall nanowires.

The scripting API (docs/scripting.md) is reached as attributes of the package, imported on first
use, so that ``import labml`` stays light (no torch, numpy, Qt):

    labml.open_rig("sim" | path)        a rig as a context manager that always ends in the safe state
    labml.run(kind, rig=..., **params)  run any registered kind, returns the run
    labml.sweep(kind, grid, **fixed)    a grid of runs, returns the points' runs
    labml.find_runs(root, **filters)    runs from the run catalogue (as `labml runs`)
    labml.open_run(path)                one run's record: parameters, results, an xarray dataset
"""

_SCRIPTING = ("open_rig", "run", "sweep", "find_runs")
__all__ = [*_SCRIPTING, "open_run"]


def __getattr__(name: str):
    if name in _SCRIPTING:
        from labml import scripting

        return getattr(scripting, name)
    if name == "open_run":
        from labml.runs.analysis import open_run

        return open_run
    raise AttributeError(f"module 'labml' has no attribute {name!r}")
