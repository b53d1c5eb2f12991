"""Opening a run for analysis: ``labml.open_run(path)`` (docs/records.md).

    >>> run = labml.open_run("runs/20261206-101010-hysteresis-abc123")
    >>> run.kind, run.status, run.parameters["field_max"], run.results
    >>> ds = run.dataset()            # xarray.Dataset, dimension "row", a "units" attribute on every variable
    >>> ds["Signal"].plot(x="Field (mT)")

`dataset()` is lazy over run.h5 for a run whose records are all merged (a finished run): each
variable is an xarray lazily indexed array over the h5py dataset (xarray's own backend-array
interface, `xarray.backends.BackendArray`), so ``ds["Signal"][::1000]`` reads only what it selects.
A running run (rows in the journal not yet merged), a run whose run.h5 is damaged and an old CSV run
folder are read eagerly (the journal and CSV files are not random-access), and a later `dataset()`
call shows the rows written since. Nothing in the folder is executed or written.

No torch import: ``import labml; labml.open_run(...)`` loads h5py, numpy and xarray only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from xarray.backends import BackendArray

from labml.errors import UserError
from labml.runs import records as rec
from labml.runs import store

DIM = "row"  # the dimension of every series variable


def open_run(path: str | os.PathLike) -> OpenedRun:
    """The run folder `path` (or a folder name under the runs root) opened for analysis."""
    return OpenedRun(store.resolve_run_dir(path))


class OpenedRun:
    """A run folder, read-only: `.path`, `.kind`, `.status`, `.parameters` and `.results` (plain
    dicts from run.json), `.series_names()`, `.dataset(series)` (xarray.Dataset), `.arrays(name)`.
    Close it (or use it as a context manager) to release run.h5 when datasets were read lazily."""

    def __init__(self, path: Path) -> None:
        self._run = store.load(path)
        self.path = self._run.path
        self._h5 = None

    # ----------------------------------------------------------------- run.json
    @property
    def meta(self) -> dict:
        return dict(self._run.meta)

    @property
    def kind(self) -> str:
        return str(self._run.meta.get("kind") or "")

    @property
    def status(self) -> str:
        return self._run.status

    @property
    def parameters(self) -> dict:
        return dict(self._run.meta.get("parameters") or {})

    @property
    def results(self) -> dict:
        return dict(self._run.meta.get("results") or {})

    @property
    def records(self) -> str:
        """"hdf5" (run.h5 + run.journal) or "csv" (a run folder written before run.h5)."""
        return self._run.records

    def series_names(self) -> list[str]:
        return self._run.series_names()

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """The arrays saved under `name` (a map, a histogram; "model": model.npz)."""
        return self._run.arrays(name)

    def __repr__(self) -> str:
        return f"OpenedRun({str(self.path)!r}, kind={self.kind!r}, status={self.status!r})"

    # ----------------------------------------------------------------- series
    def dataset(self, series: str | None = None) -> Any:
        """Series `series` (default: the run's only series) as an ``xarray.Dataset``: one variable
        per column along dimension "row", with attributes "units" (e.g. "mT"; "" where the column
        name states none), "description" and "long_name"; the run's uid, kind, status and
        parameters (JSON) as dataset attributes."""
        import xarray as xr

        names = self.series_names()
        if series is None:
            if len(names) != 1:
                raise UserError(f"{self.path} has the series {names or 'none'}; name one: dataset(NAME)")
            series = names[0]
        if series not in names:
            raise UserError(f"{self.path}: no series {series!r} (it has {names or 'none'})")
        variables = self._lazy(series)
        if variables is None:
            variables = self._eager(series)
        attrs = {"uid": self._run.uid, "kind": self.kind, "status": self.status, "series": series,
                 "run_dir": str(self.path), "parameters": json.dumps(self.parameters, sort_keys=True),
                 "records": self.records}
        return xr.Dataset(variables, attrs=attrs)

    def _eager(self, series: str) -> dict:
        import xarray as xr

        if self.records == store.RECORDS_HDF5:
            snap = rec.Snapshot(self.path, only=series)
            cols, units = snap.columns[series], snap.units.get(series, {})
        else:
            rows = store.read_series(self.path, series)
            names = list(rows[0]) if rows else []
            cols = {k: _csv_column([store._convert(r.get(k)) for r in rows]) for k in names}
            units = {}
        out = {}
        for column, data in cols.items():
            unit, description = units.get(column) or rec.units_of(column)
            out[column] = xr.Variable((DIM,), np.asarray(data), attrs=_attrs(unit, description))
        return out

    def _lazy(self, series: str) -> dict | None:
        """Variables over run.h5's datasets, when run.h5 is healthy and holds every row."""
        import xarray as xr
        from xarray.core import indexing

        if self.records != store.RECORDS_HDF5:
            return None
        f, journal = self.path / rec.RECORDS_FILE, self.path / rec.JOURNAL_FILE
        merged = rec.healthy(f)
        if merged is None or (journal.exists() and journal.stat().st_size != merged):
            return None
        if self._h5 is None:
            self._h5 = rec.open_h5(f)
        g = next((g for g in self._h5.get("series", {}).values() if g.attrs.get("series") == series), None)
        if g is None:
            return None
        out = {}
        for column in json.loads(g.attrs["columns"]):
            ds = g[rec.dataset_name(column)]
            data = indexing.LazilyIndexedArray(_H5Column(ds))
            out[column] = xr.Variable((DIM,), data, attrs=_attrs(str(ds.attrs.get("units", "")),
                                                                 str(ds.attrs.get("description", ""))))
        return out

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __enter__(self) -> OpenedRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _attrs(unit: str, description: str) -> dict:
    return {"units": unit, "description": description, "long_name": description}


def _csv_column(values: list) -> np.ndarray:
    kind, data = rec.column_array(values)
    return np.asarray(data, dtype=object if kind == "str" else None)


class _H5Column(BackendArray):
    """One run.h5 column as an xarray backend array: xarray asks for basic (slice/integer) keys and
    h5py reads only the chunks they touch."""

    def __init__(self, ds) -> None:
        self.ds = ds
        self.text = ds.attrs.get("kind") == "str"
        self.shape = ds.shape
        self.dtype = np.dtype(object) if self.text else ds.dtype

    def __getitem__(self, key):
        from xarray.core import indexing

        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._raw)

    def _raw(self, key):
        return self.ds.asstr()[key] if self.text else self.ds[key]
