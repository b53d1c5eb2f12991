"""How a run happens and what it leaves behind: the middle of labml (DESIGN.md "Runs are records").

    engine.py            RunEngine: the one loop every run kind goes through (pause, stop, abort,
                         faults, checkpoints, the safe end)
    kinds.py             the registry of run kinds and their declared parameters
    store.py             the run folder: run.json, series, arrays, run.log (`load`, `find_runs`)
    checkpoints.py       checkpoint files (atomic, checksummed, read without executing code)
    lock.py              one process per run folder
    sweeps.py            grids of runs (threads or a dask cluster)
    pymeasure_series.py  the Procedure named in series CSV headers, for pymeasure's Results.load

Nothing here imports protocols or gui.
"""
