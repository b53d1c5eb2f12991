"""pymeasure glue for the run store's CSV series.

Every series CSV written by `labml.runs.store.Run.append_row` carries a pymeasure Results header naming a
Procedure class. A series with no Procedure of its own names `RunSeries`, so that
``pymeasure.experiment.Results.load("RUN_DIR/metrics.csv")`` opens it (its ``.data`` is a pandas
DataFrame of the rows). Imported only when a file is loaded that way (pymeasure.experiment pulls in
pandas and pint).
"""

from __future__ import annotations

from pymeasure.experiment import Procedure


class RunSeries(Procedure):
    """Placeholder Procedure of a labml series (the run's parameters are in run.json)."""

    DATA_COLUMNS: list[str] = []

    def execute(self) -> None:  # pragma: no cover - a record, never executed
        raise RuntimeError("RunSeries describes a recorded series; it cannot be executed")
