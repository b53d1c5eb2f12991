"""The run store: one folder per run, one layout for every kind (DESIGN.md "Runs are records").

The layout (run.json ``"schema_version": 2``, `SCHEMA_VERSION`), written only through `Run`:

    RUN_DIR/run.json        schema_version, uid, kind, times, status and reason, parameters,
                            sample/device/operator/notes, rig config and calibration snapshot,
                            instrument identities, package versions, git revision; "model" names the
                            model file when the run saved one (written atomically)
    RUN_DIR/run.h5          every series, one row per step/epoch (`Run.append_row(series, row)`,
                            `append_columns` for blocks), one chunked dataset per column with units,
                            every array (`Run.save_arrays(name, **arrays)`), the parameters and the
                            rig snapshot as attributes (labml.runs.records; docs/records.md)
    RUN_DIR/run.journal     the append-only journal rows and arrays go through first: merged into
                            run.h5 at each checkpoint and at the end, it rebuilds a damaged run.h5
    RUN_DIR/csv/            only after ``labml export RUN --csv`` (`export_csv`): each series in
                            pymeasure's Results format
    RUN_DIR/model.npz       the trained model (`Run.save_model(**arrays)`): numpy arrays only, loaded
                            with ``np.load(..., allow_pickle=False)``; run.json ``"model": "model.npz"``
                            and ``"model_config"`` (the settings that rebuild it)
    RUN_DIR/figures/        figures (`Run.figure_path(name)`), e.g. figures/samples.png
    RUN_DIR/checkpoints/    checkpoints (atomic: temp file, fsync, rename; see labml.runs.checkpoints)
    RUN_DIR/run.log         the run's log, including instrument command traffic

Series and arrays go through one writer interface (`append_row`/`append_rows`/`append_columns`,
`save_arrays`, `save_model`, `figure_path`), so the storage format changed (CSV + npz before, run.h5
now) without touching any run kind. Run folders written before run.h5 (run.json without
``"records": "hdf5"``; `records_format`) keep <series>.csv (pymeasure Results format) and
<name>.npz: they load, and resume writing CSV as before.

Folders written before this layout have no "schema_version" in run.json (`LEGACY_SCHEMA` = 1). They
came in three layouts (`legacy_layout`), all listed and loaded read-only:

    "train"     `labml train synapses|bm` on the run engine: epochs.csv (synapses) or metrics.csv
                (bm), model.npz (synapses: H<i>/p<i> arrays; bm: the model's parameters),
                samples.png at the top (bm), checkpoints/, run.log
    "protocol"  `labml run`, `labml demo`, sweep points and the GUI: data.csv, <name>.npz (e.g.
                synapses.npz, depinning_wire0.npz), model.pt (torch.save of {protocol, config,
                state}: train-synapses / train-bm protocols), checkpoints/, run.log
    "bm-cli"    labml.bm.cli before the run engine: run.json without a plan, metrics.csv,
                model.npz, samples.png at the top

Resuming such a folder is refused with a one-line error; ``labml runs --migrate RUN_DIR`` converts it
in place (`migrate`: new files written first and atomically, run.json last; model.pt is read with
``torch.load(weights_only=True)`` only, never executed, and kept as it was).

Runs root: `runs_root(explicit)` = explicit ``--runs-root`` > ``$LABML_RUNS`` > ``./runs``. Every command
creates its runs under it (demo folders, sweep folders with their points/, trainings, protocols) and
`find_runs` lists every run under it, at any depth up to `MAX_DEPTH` (demo steps, sweep points), plus
one entry per sweep folder (its manifest.json).

A checkpoint records what the records held (`Run.series_sizes`: run.h5's journal length and row
counts; a CSV folder's byte lengths), so a resumed run cuts rows written after its last checkpoint
(`Run.truncate_series`) and writes them again: nothing lost, nothing duplicated.

Analysis API: ``labml.runs.store.load(path)`` returns a `Run`; ``run.parameters``, ``run.series(name)``
(list of dicts with numbers converted), ``run.arrays(name)``, ``run.model()`` and
``find_runs(root, **filters)`` (through the run catalogue, labml.runs.catalogue).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import errno
import io
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labml.errors import UserError
from labml.runs.lazy import lazy_module

# run.h5 and its journal (labml.runs.records) need numpy and h5py: loaded on first use, so that
# listing runs (`labml runs`, the catalogue) imports neither
rec = lazy_module("labml.runs.records")

if TYPE_CHECKING:  # numpy is imported where arrays are read or written: `labml runs` lists without it
    import numpy as np

log = logging.getLogger(__name__)

# Procedure named in the Results header of a series that has no pymeasure Procedure of its own.
DEFAULT_PROCEDURE = "labml.runs.pymeasure_series.RunSeries"
# Loggers that carry instrument command traffic (pymeasure adapters log "WRITE:..."/"READ:..." at DEBUG).
TRAFFIC_LOGGERS = ("Adapter", "pymeasure", "instruments", "simulated_hw")
FINISHED_STATUSES = ("success", "stopped", "aborted", "failed")

# ------------------------------------------------------------------ the run folder layout
SCHEMA_VERSION = 2  # run.json "schema_version" of the layout in this module's docstring
LEGACY_SCHEMA = 1  # what a run.json without "schema_version" is: one of LEGACY_LAYOUTS
LEGACY_LAYOUTS = ("train", "protocol", "bm-cli")
RUN_JSON = "run.json"
MODEL_FILE = "model.npz"
FIGURES_DIR = "figures"
CHECKPOINTS_DIR = "checkpoints"
RUN_LOG = "run.log"
SWEEP_MANIFEST = "manifest.json"
EXPORT_DIR = "csv"  # `labml export RUN --csv` writes RUN_DIR/csv/<series>.csv
# How deep `find_runs` looks under a runs root (root/demo-x/02-train = 2, root/sweep-x/points/p0000 = 3).
MAX_DEPTH = 4
# Folders that never hold runs (skipped by `find_runs`).
_NOT_RUN_FOLDERS = frozenset({CHECKPOINTS_DIR, FIGURES_DIR, EXPORT_DIR, "calibration", "__pycache__"})


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


# errno -> what a user is told when a write into a run folder fails for that reason
_WRITE_ERRORS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "input/output error",
}


class RunWriteError(UserError):
    """A write into a run folder failed (disk full, read-only file system, permission, I/O error).

    The run engine ends the run as status "failed" with this as its reason and marks it resumable:
    its last checkpoint is intact, so ``labml resume`` continues it once the cause is fixed.
    ``path`` is the file being written, ``errno`` the OSError's number.
    """

    def __init__(self, path: str | os.PathLike, exc: OSError) -> None:
        self.path = Path(path)
        self.errno = exc.errno
        name = errno.errorcode.get(exc.errno or 0, "")
        what = _WRITE_ERRORS.get(exc.errno or 0) or (exc.strerror or str(exc))
        super().__init__(f"{what}{f' ({name})' if name else ''} writing {self.path}")


def write_bytes(path: Path, data: bytes, *, append: bool = False, exclusive: bool = False,
                sync: bool = True) -> None:
    """The one function through which every file of a run folder is written: rows (``append``:
    added at the end, flushed and fsync'd) and whole files (run.json, checkpoints, arrays: written
    to a temp file, fsync'd and renamed, so a reader or a crash sees either the old or the new file).

    exclusive: only create `path`, atomically (FileExistsError if it exists: of two writers only one
    succeeds). sync=False: an append is not fsync'd (the run's journal, fsync'd at most once a second).

    Any other OSError (disk full, read-only, permission) becomes a RunWriteError naming the reason
    and the file; a whole-file write that fails leaves the old file as it was and no temp file behind.
    """
    path = Path(path)
    try:
        _write_file(path, data, append, exclusive, sync=sync)
    except OSError as exc:
        if exclusive and isinstance(exc, FileExistsError):
            raise
        raise RunWriteError(path, exc) from exc


def _write_file(path: Path, data: bytes, append: bool, exclusive: bool = False, sync: bool = True) -> None:
    """The file-system calls of `write_bytes` (the place where tests inject OSErrors)."""
    if append:
        with open(path, "ab") as fh:
            fh.write(data)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            try:
                os.link(tmp, path)  # atomic create-if-absent, with the whole content already in place
            except FileExistsError:
                raise
            except OSError as exc:  # no hard links here (FAT/exFAT, some SMB): O_EXCL, then write
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS):
                    raise
                with open(path, "xb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def atomic_write_bytes(path: Path, data: bytes, exclusive: bool = False) -> None:
    """Write `data` to `path` so that a reader (or a crash) sees either the old or the new file
    (through `write_bytes`; RunWriteError when it cannot be written)."""
    write_bytes(path, data, exclusive=exclusive)


def atomic_write_json(path: Path, obj: Any, exclusive: bool = False) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    atomic_write_bytes(path, text.encode(), exclusive)


def _json_default(o: Any) -> Any:
    np = sys.modules.get("numpy")  # an object of numpy's exists only once numpy is imported
    if np is None:
        return _json_other(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return _json_other(o)


def _json_other(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    from dataclasses import asdict, is_dataclass

    if is_dataclass(o) and not isinstance(o, type):
        return asdict(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def to_jsonable(obj: Any, *, other_as_str: bool = False) -> Any:
    """A JSON-safe copy of `obj` (numpy scalars/arrays, paths, dataclasses converted; NaN and
    infinities become null so that run.json stays strict JSON for every reader). Any other object is
    a TypeError, or with `other_as_str` its str (for printing a result, never for run.json)."""

    def default(o: Any) -> Any:
        try:
            return _json_default(o)
        except TypeError:
            if other_as_str:
                return str(o)
            raise

    return _finite(json.loads(json.dumps(obj, default=default)))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in ("nanowire-labml", "numpy", "scipy", "torch", "pymeasure", "pyvisa", "scikit-learn"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def runs_root(explicit: str | os.PathLike | None = None) -> Path:
    """The runs root: `explicit` (``labml --runs-root DIR``) > ``$LABML_RUNS`` > ``./runs``."""
    if explicit not in (None, ""):
        return Path(explicit)
    return Path(os.environ.get("LABML_RUNS") or "runs")


def default_runs_root() -> Path:
    """`runs_root()` without an explicit folder ($LABML_RUNS, else ./runs)."""
    return runs_root()


@contextlib.contextmanager
def using_runs_root(root: str | os.PathLike | None) -> Iterator[None]:
    """While the block runs, $LABML_RUNS is `root` (when given), so that every command, its run
    folders and the worker processes it starts (sweeps, GUI jobs) use that one runs root."""
    if root in (None, ""):
        yield
        return
    with environment_variable("LABML_RUNS", str(root)):
        yield


@contextlib.contextmanager
def environment_variable(name: str, value: str) -> Iterator[None]:
    """While the block runs, $`name` is `value`; afterwards it is what it was (unset if it was)."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def resolve_run_dir(name: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """A run folder named on the command line: the path as given when it exists, else the same
    relative name under the runs root (``labml resume 20261205-101010-train-synapses-abc123``)."""
    path = Path(name)
    if path.exists() or path.is_absolute():
        return path
    under = runs_root(root) / path
    return under if under.exists() else path


def _results_header(procedure: str, params: dict) -> str:
    """The commented header of a pymeasure Results file (same layout as Results.header())."""
    lines = [f"Procedure: <{procedure}>", "Parameters:"]
    for key, value in params.items():
        if isinstance(value, dict | list):
            value = json.dumps(value, default=_json_default, sort_keys=True)
        text = str(value).encode("unicode_escape").decode("utf-8")
        lines.append(f"\t{key}: {text}")
    lines.append("Data:")
    return "".join(f"#{line}\n" for line in lines)


def _convert(value: str) -> Any:
    """CSV cell -> int, float, bool or str (the row as it was written, for analysis)."""
    if value is None or value == "":
        return value
    for conv in (int, float):
        try:
            return conv(value)
        except ValueError:
            pass
    if value in ("True", "False"):
        return value == "True"
    return value


@dataclass
class Run:
    """A run folder. Create with `Run.create(kind, params)`; finish with `finish(status, reason)`."""

    path: Path
    meta: dict = field(default_factory=dict)
    _writer: rec.Writer | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def create(
        cls,
        kind: str,
        params: dict,
        run_dir: str | Path | None = None,
        *,
        sample: str | None = None,
        device: str | None = None,
        operator: str | None = None,
        notes: str | None = None,
        **extra: Any,
    ) -> Run:
        """Make a new run folder (never reuses one that holds a run).

        `params` are the run's parameters (JSON-serialisable); `sample`, `device`, `operator` and
        `notes` are recorded for the lab book (operator defaults to $LABML_OPERATOR or $USER);
        `extra` keys go into run.json as they are.
        """
        uid = uuid.uuid4().hex[:12]
        if run_dir is None:
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            run_dir = runs_root() / f"{stamp}-{kind}-{uid[:6]}"
        path = Path(run_dir)
        if (path / "run.json").exists():
            raise UserError(f"{path} already holds a run (run.json exists); choose another --run-dir")
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"cannot write run folder {path}: {exc.strerror or exc}") from exc
        meta = {
            "schema_version": SCHEMA_VERSION,
            "uid": uid,
            "kind": kind,
            "status": "running",
            "reason": None,
            "start_time": _now(),
            "stop_time": None,
            "parameters": to_jsonable(params),
            "sample": sample,
            "device": device,
            "operator": operator or os.environ.get("LABML_OPERATOR") or os.environ.get("USER"),
            "notes": notes,
            "argv": sys.argv,
            "package_versions": package_versions(),
            "git_revision": git_revision(),
            "host": platform.node(),
            "records": RECORDS_HDF5,
        }
        meta.update(to_jsonable(extra))
        run = cls(path=path, meta=meta)
        try:  # exclusive: of two processes creating runs in one folder at once, one gets an error
            run._write_meta(exclusive=True)
        except FileExistsError:
            raise UserError(
                f"{path} already holds a run (run.json exists); choose another --run-dir"
            ) from None
        return run

    # ----------------------------------------------------------------- metadata
    @property
    def uid(self) -> str:
        return str(self.meta.get("uid"))

    @property
    def status(self) -> str:
        return str(self.meta.get("status"))

    @property
    def parameters(self) -> dict:
        return dict(self.meta.get("parameters") or {})

    @property
    def schema_version(self) -> int:
        """run.json's "schema_version" (`LEGACY_SCHEMA` when absent)."""
        v = self.meta.get("schema_version")
        return int(v) if isinstance(v, int) and not isinstance(v, bool) else LEGACY_SCHEMA

    @property
    def layout(self) -> str:
        """"current" (`SCHEMA_VERSION`), else the old layout: "train", "protocol" or "bm-cli"."""
        return legacy_layout(self.path, self.meta)

    @property
    def records(self) -> str:
        """How the run's series and arrays are stored: "hdf5" (run.h5 + run.journal, runs made by
        this version) or "csv" (<series>.csv + <name>.npz, runs made before; resumed as they were)."""
        return records_format(self.path, self.meta)

    @property
    def finished(self) -> bool:
        return self.meta.get("status") in FINISHED_STATUSES

    def save_meta(self) -> None:
        self._write_meta()

    def _write_meta(self, exclusive: bool = False) -> None:
        """The one place run.json is written: atomically first (the source of truth), then the run
        catalogue of the runs root that holds it is updated (labml.runs.catalogue.index_run; a
        catalogue that cannot be written never fails the run)."""
        atomic_write_json(self.path / RUN_JSON, self.meta, exclusive)
        from labml.runs.catalogue import index_run

        index_run(self.path, self.meta)

    def update(self, **fields: Any) -> None:
        self.meta.update(to_jsonable(fields))
        self.save_meta()

    def finish(self, status: str = "success", reason: str | None = None, *, resumable: bool = False,
               **results: Any) -> None:
        """Record the end of the run. `resumable`: a "failed" run that `labml resume` may continue
        (its cause, e.g. a full disk, is outside the run and its last checkpoint is intact)."""
        self.meta.update(status=status, reason=reason, stop_time=_now(), resumable=bool(resumable))
        if results:
            self.meta.setdefault("results", {}).update(to_jsonable(results))
        self._close_records()
        self.save_meta()

    def _close_records(self) -> None:
        """At the end of a run: merge the journal into run.h5. A failure (disk full) is logged, not
        raised: the journal holds every row, and the next resume or merge rebuilds run.h5 from it."""
        if self.records != RECORDS_HDF5 or self._writer is None:
            return
        try:
            self.series_sizes()
        except Exception as exc:  # noqa: BLE001 - never in the way of recording the end
            log.warning("run.h5 not updated at the end of the run (the journal holds every row; the "
                        "next resume or merge rebuilds it): %s", exc)

    def add_event(self, event: str, **info: Any) -> None:
        """Append a timestamped event (pause, resume, fault, ...) to run.json's `events` list."""
        self.meta.setdefault("events", []).append({"time": _now(), "event": event, **to_jsonable(info)})
        self.save_meta()

    # ----------------------------------------------------------------- series
    def series_path(self, name: str) -> Path:
        return self.path / f"{name}.csv"

    def append_row(self, name: str, row: dict) -> None:
        """Append one row to RUN_DIR/<name>.csv (Results header and column line written on first row).

        Every row of a series has the columns of its first row; a missing value is written empty,
        an unknown column is an error.
        """
        self.append_rows(name, [row])

    def append_rows(self, name: str, rows: list[dict]) -> None:
        """Append several rows (HDF5 records: one journal record; CSV: one fsync)."""
        if not rows:
            return
        if self.records == RECORDS_HDF5:
            self.writer.append_rows(name, rows)
            return
        path = self.series_path(name)
        new = not path.exists() or path.stat().st_size == 0
        if new:
            fieldnames = list(rows[0])
            procedure = self.meta.get("procedure_class") or DEFAULT_PROCEDURE
            params = dict(self.meta.get("parameters") or {})
            header = _results_header(procedure, params)
        else:
            fieldnames = self.columns(name)
            header = ""
        extra = [k for r in rows for k in r if k not in fieldnames]
        if extra:
            raise ValueError(f"{path}: row has column(s) {sorted(set(extra))} not in the header {fieldnames}")
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\n")
        if new:
            buf.write(header)
            w.writeheader()
        for r in rows:
            w.writerow({k: _cell(v) for k, v in r.items()})
        write_bytes(path, buf.getvalue().encode("utf-8"), append=True)

    def append_columns(self, name: str, columns: dict[str, Any]) -> None:
        """Append a block of rows given column-wise ({column: 1-d array}, all of one length): one
        journal record for the whole block, for fast acquisitions (millions of points) where one
        Python call per row would dominate. Same series, same journal, same merge as `append_rows`."""
        if self.records == RECORDS_HDF5:
            self.writer.append_columns(name, columns)
            return
        keys = list(columns)
        values = [np.asarray(columns[k]).tolist() for k in keys]
        self.append_rows(name, [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)])

    def describe_series(self, name: str, units: dict[str, str] | None = None,
                        descriptions: dict[str, str] | None = None) -> None:
        """Optional: the units (and descriptions) of columns of series `name` whose names do not
        state them (run.h5 attributes "units", "description"; "Field (mT)" states mT by itself)."""
        if self.records == RECORDS_HDF5:
            self.writer.describe(name, units, descriptions)

    @property
    def writer(self) -> rec.Writer:
        """The run's records writer (journal + run.h5), made on first use."""
        if self._writer is None:
            self._writer = rec.Writer(
                self.path, self.uid,
                lambda path, data, sync: write_bytes(path, data, append=True, sync=sync),
                lambda: self.meta)
        return self._writer

    def columns(self, name: str) -> list[str]:
        """The column names of series `name` (its first non-comment line)."""
        if self.records == RECORDS_HDF5:
            return list(rec.Snapshot(self.path, only=name).columns.get(name, {}))
        with open(self.series_path(name), newline="") as fh:
            for line in fh:
                if not line.startswith("#"):
                    return next(csv.reader([line]))
        return []

    def series_sizes(self) -> dict:
        """What a checkpoint records of the series. HDF5 records: the journal is fsync'd and merged
        into run.h5 first, then {"format": "hdf5", "journal_bytes", "rows": {series: rows}}; CSV:
        the byte length of every series file."""
        if self.records == RECORDS_HDF5:
            try:
                return self.writer.commit()
            except (OSError, RuntimeError) as exc:  # h5py: disk full, I/O error while merging
                cause = exc if isinstance(exc, OSError) else OSError(errno.EIO, str(exc))
                raise RunWriteError(self.path / rec.RECORDS_FILE, cause) from exc
        return {p.stem: p.stat().st_size for p in sorted(self.path.glob("*.csv"))}

    def truncate_series(self, sizes: dict[str, int]) -> dict[str, int]:
        """Cut every series back to the byte lengths in `sizes` (a checkpoint's record).

        Series not in `sizes` (begun after the checkpoint) are removed. Returns name -> number of
        bytes dropped. A series shorter than its recorded size means data was lost: UserError.
        HDF5 records: the journal is cut back to the recorded length and run.h5 rebuilt from it when
        it holds more or is damaged (`records.Writer.truncate`); returns series -> rows dropped.
        """
        if self.records == RECORDS_HDF5:
            return self.writer.truncate(sizes)
        dropped: dict[str, int] = {}
        for p in sorted(self.path.glob("*.csv")):
            keep = int(sizes.get(p.stem, 0))
            size = p.stat().st_size
            if size < keep:
                raise UserError(
                    f"{p} is shorter ({size} bytes) than at its checkpoint ({keep} bytes): the run folder "
                    "was changed outside labml; cannot resume safely"
                )
            if size > keep:
                if keep == 0:
                    p.unlink()
                else:
                    with open(p, "r+b") as fh:
                        fh.truncate(keep)
                        fh.flush()
                        os.fsync(fh.fileno())
                dropped[p.stem] = size - keep
        missing = [n for n, s in sizes.items() if s and not self.series_path(n).exists()]
        if missing:
            raise UserError(f"{self.path}: series {missing} recorded in the checkpoint are missing")
        return dropped

    def series(self, name: str) -> list[dict]:
        """Rows of series `name` as dicts, numbers converted to int/float."""
        if self.records == RECORDS_HDF5:
            return series_rows(self.path, name)
        return [{k: _convert(v) for k, v in r.items()} for r in _read_csv_series(self.path, name)]

    def series_names(self) -> list[str]:
        if self.records == RECORDS_HDF5:
            return rec.series_names(self.path)
        return [p.stem for p in sorted(self.path.glob("*.csv"))]

    # ----------------------------------------------------------------- arrays, model, figures
    def save_arrays(self, name: str, **arrays: np.ndarray) -> Path:
        """Write RUN_DIR/<name>.npz (atomically; numeric/string arrays only, never pickles). The
        name "model" is the run's model: `save_model`."""
        if f"{name}.npz" == MODEL_FILE:
            return self.save_model(**arrays)
        if self.records == RECORDS_HDF5:
            self.writer.save_arrays(name, {k: _numpy(v) for k, v in arrays.items()})
            return self.path / rec.RECORDS_FILE
        out = self.path / f"{name}.npz"
        atomic_write_bytes(out, _npz_bytes(out, arrays))
        return out

    def save_model(self, model_config: dict | None = None, **arrays: Any) -> Path:
        """Write the trained model to RUN_DIR/model.npz (numpy arrays only: ``np.load(f,
        allow_pickle=False)`` reads it, nothing in it is code) and name it in run.json ("model");
        `model_config`, when given, is recorded as run.json "model_config" (what rebuilds it)."""
        out = self.path / MODEL_FILE
        atomic_write_bytes(out, _npz_bytes(out, {k: _numpy(v) for k, v in arrays.items()}))
        fields: dict[str, Any] = {"model": MODEL_FILE}
        if model_config is not None:
            fields["model_config"] = model_config
        self.update(**fields)
        return out

    def model_path(self) -> Path | None:
        """The model file run.json names (or model.npz of an old folder), None if there is none."""
        name = self.meta.get("model")
        if isinstance(name, str) and name and "/" not in name and "\\" not in name and name != "..":
            return self.path / name
        f = self.path / MODEL_FILE
        return f if f.is_file() else None

    def model(self) -> dict[str, np.ndarray]:
        """The arrays of the run's model.npz (UserError if the run saved no model)."""
        import numpy as np

        f = self.model_path()
        if f is None or not f.is_file() or f.suffix != ".npz":
            raise UserError(f"{self.path}: no model.npz (the run saved no model)")
        with np.load(f, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def figure_path(self, name: str) -> Path:
        """RUN_DIR/figures/<name> (the folder is made): where a figure of the run is written."""
        d = self.path / FIGURES_DIR
        try:
            d.mkdir(exist_ok=True)
        except OSError as exc:
            raise RunWriteError(d, exc) from exc
        return d / name

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """The arrays saved as `name` (run.h5 /arrays/<name>, or RUN_DIR/<name>.npz: model.npz and
        the arrays of CSV run folders)."""
        import numpy as np

        if self.records == RECORDS_HDF5 and not (self.path / f"{name}.npz").is_file():
            found = rec.Snapshot(self.path, only="").arrays
            if name not in found:
                raise UserError(f"{self.path}: no arrays named {name!r} (saved: {sorted(found)})")
            return found[name]
        with np.load(self.path / f"{name}.npz", allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    # ----------------------------------------------------------------- log
    @contextlib.contextmanager
    def log_to_file(self, level: int = logging.INFO) -> Iterator[Path]:
        """Write the process's log to RUN_DIR/run.log while the block runs (appending on resume).

        Records of `level` and above go to the file, and instrument command traffic (pymeasure
        adapters' WRITE/READ debug records, the drivers' and simulated instruments' loggers) at
        DEBUG. The console keeps its verbosity: existing root handlers are raised to the level the
        root logger had, for the duration of the block.
        """
        path = self.path / "run.log"
        try:
            fh: logging.FileHandler = _RunLogHandler(path, encoding="utf-8")
        except OSError as exc:
            raise RunWriteError(path, exc) from exc
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        fh.setLevel(logging.DEBUG)
        root = logging.getLogger()
        old_root_level = root.level
        console_level = root.getEffectiveLevel()
        saved_handlers = [(h, h.level) for h in root.handlers]
        for h, lvl in saved_handlers:
            if lvl < console_level:
                h.setLevel(console_level)
        root.setLevel(min(level, console_level))
        root.addHandler(fh)
        saved = []
        for name in TRAFFIC_LOGGERS:
            lg = logging.getLogger(name)
            saved.append((lg, lg.level))
            lg.setLevel(logging.DEBUG)
        try:
            yield path
        finally:
            for lg, lvl in saved:
                lg.setLevel(lvl)
            root.removeHandler(fh)
            root.setLevel(old_root_level)
            for h, lvl in saved_handlers:
                h.setLevel(lvl)
            fh.close()


class _RunLogHandler(logging.FileHandler):
    """run.log's handler: when a record cannot be written (disk full, read-only), one warning on
    stderr and the log stops, instead of logging's traceback on every record; the run itself ends
    through the RunWriteError of its next row or checkpoint."""

    broken = False

    def handleError(self, record: logging.LogRecord) -> None:
        if not self.broken:
            self.broken = True
            exc = sys.exc_info()[1]
            text = str(RunWriteError(self.baseFilename, exc)) if isinstance(exc, OSError) else str(exc)
            sys.stderr.write(f"labml: warning: run.log is no longer written: {text}\n")

    def emit(self, record: logging.LogRecord) -> None:
        if not self.broken:
            super().emit(record)


def _numpy(v: Any) -> np.ndarray:
    """A tensor (torch: detached, on the CPU) or array-like as a numpy array."""
    import numpy as np

    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def _npz_bytes(path: Path, arrays: dict) -> bytes:
    import numpy as np

    bad = [k for k, v in arrays.items() if np.asarray(v).dtype.hasobject]
    if bad:
        raise ValueError(f"{path}: arrays {bad} hold Python objects; a run folder holds numbers and text")
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def model_arrays(trainer: Any) -> dict[str, np.ndarray]:
    """What a trained model's model.npz holds: the parameters and buffers of ``trainer.model``
    (its state dict, as numpy arrays) and the trainer's ``arrays_()`` (e.g. the synapses' H<i>, p<i>)."""
    out: dict[str, np.ndarray] = {}
    model = getattr(trainer, "model", None)
    if model is not None and hasattr(model, "state_dict"):
        out.update({k: _numpy(v) for k, v in model.state_dict().items()})
    extra = getattr(trainer, "arrays_", None)
    if callable(extra):
        extra = extra()
    if isinstance(extra, dict):
        out.update({k: _numpy(v) for k, v in extra.items()})
    return out


def _cell(v: Any) -> Any:
    np = sys.modules.get("numpy")
    if np is not None and isinstance(v, np.generic):
        return v.item()
    return v


def is_resumable(meta: dict) -> bool:
    """May `labml resume` continue this run? Running (killed), paused and aborted runs (a stop
    request, Ctrl+C or a termination signal: the coil was zeroed and the last checkpoint is whole),
    and failed runs whose failure was outside them (a write into the folder that failed: disk full,
    read-only, permission)."""
    status = meta.get("status")
    return status in ("running", "paused", "aborted") or (
        status == "failed" and meta.get("resumable") is True
    )


def load(path: str | Path) -> Run:
    """Load a run folder: `run.meta` (run.json), `run.parameters`, `run.series(name)`, `run.arrays(name)`."""
    path = Path(path)
    f = path / "run.json"
    if not f.exists():
        raise UserError(f"{path} is not a run folder (no run.json)")
    try:
        meta = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{f} is corrupt: {exc}") from exc
    if not isinstance(meta, dict):
        raise UserError(f"{f} is corrupt: not a JSON object")
    return Run(path=path, meta=meta)


RECORDS_HDF5 = "hdf5"
RECORDS_CSV = "csv"


def records_format(path: str | Path, meta: dict | None = None) -> str:
    """"hdf5" when the run folder holds run.h5 or run.journal (or run.json says "records": "hdf5"),
    else "csv" (a run folder written before HDF5 records)."""
    path = Path(path)
    if (meta or {}).get("records") in (RECORDS_HDF5, RECORDS_CSV):
        return str(meta["records"])
    if (path / rec.RECORDS_FILE).exists() or (path / rec.JOURNAL_FILE).exists():
        return RECORDS_HDF5
    return RECORDS_CSV


def row_count(path: str | Path, name: str) -> int:
    """How many rows of series `name` a run folder holds now (0 when none), for a running run too:
    the rows its journal has (run.h5 when there is no journal), or the data lines of an old <name>.csv."""
    path = Path(path)
    if records_format(path) == RECORDS_HDF5:
        journal = path / rec.JOURNAL_FILE
        if journal.exists():
            return rec.scan_journal(journal)[1].get(name, 0)
        cols = rec.Snapshot(path, only=name).columns.get(name) or {}
        return len(next(iter(cols.values()))) if cols else 0
    try:
        with open(path / f"{name}.csv") as fh:
            return max(0, sum(1 for line in fh if not line.startswith("#")) - 1)
    except FileNotFoundError:
        return 0


def series_rows(path: str | Path, name: str) -> list[dict]:
    """Rows of series `name` of an HDF5-records run as dicts of Python values (a running run: the
    rows of run.h5 and of the journal after it). UserError when the run has no such series."""
    cols = rec.Snapshot(path, only=name).columns.get(name)
    if cols is None:
        raise UserError(f"{path}: no series {name!r}")
    keys = list(cols)
    values = [cols[k].tolist() for k in keys]
    return [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)]


def all_series(path: str | Path) -> dict[str, list[dict]]:
    """Every series of any run folder (HDF5 records or CSV): name -> rows (dicts; CSV cells as str)."""
    path = Path(path)
    if records_format(path) == RECORDS_HDF5:
        snap = rec.Snapshot(path)
        out = {}
        for name, cols in snap.columns.items():
            keys = list(cols)
            out[name] = [dict(zip(keys, row, strict=True))
                         for row in zip(*[cols[k].tolist() for k in keys], strict=True)]
        return out
    return {p.stem: _read_csv_series(path, p.stem) for p in sorted(path.glob("*.csv"))}


def export_csv(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write every series of a run as a pymeasure Results CSV (``#`` header naming the Procedure and
    the run's parameters, a column line, the rows: what runs wrote before HDF5 records, so that
    ``pymeasure.experiment.Results.load`` and other CSV tools read it) into `out_dir` (default
    RUN_DIR/csv/), one <series>.csv each (written atomically). Returns the files written."""
    run = load(run_dir)
    out = Path(out_dir) if out_dir is not None else run.path / EXPORT_DIR
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write export folder {out}: {exc.strerror or exc}") from None
    header = _results_header(run.meta.get("procedure_class") or DEFAULT_PROCEDURE, run.parameters)
    written = []
    for name, rows in all_series(run.path).items():
        buf = io.StringIO()
        buf.write(header)
        if rows:
            w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow({k: _cell(v) for k, v in r.items()})
        atomic_write_bytes(out / f"{name}.csv", buf.getvalue().encode("utf-8"))
        written.append(out / f"{name}.csv")
    return written


def read_series(path: str | Path, name: str) -> list[dict]:
    """Rows of series `name` of any run folder as dicts: from run.h5 and its journal (typed values),
    or an old folder's <name>.csv (strings)."""
    if records_format(Path(path)) == RECORDS_HDF5:
        return series_rows(Path(path), name)
    return _read_csv_series(path, name)


def _read_csv_series(path: str | Path, name: str) -> list[dict]:
    """Rows of RUN_DIR/<name>.csv as dicts of strings (Results '#' header lines skipped)."""
    with open(Path(path) / f"{name}.csv", newline="") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def model_file_of(model_run: str | Path) -> Path:
    """The model file of a run folder (the one its run.json names, else model.npz, else an old
    folder's model.pt; model.npz when there is none) or `model_run` itself when it is a file."""
    path = Path(model_run)
    if not path.is_dir():
        return path
    try:
        named = load(path).model_path()
    except UserError:
        named = None
    for f in (named, path / MODEL_FILE, path / "model.pt"):
        if f is not None and f.is_file():
            return f
    return path / MODEL_FILE


def load_model_for(model_run: str | Path, kind: str) -> dict:
    """The trained model of a run of `kind` (e.g. "train-synapses"): {"file", "config", "arrays"}
    from model.npz and run.json "model_config", or, from an old folder's model.pt, {"file",
    "config", "state"} read with ``torch.load(weights_only=True)`` (a file holding anything but
    tensors and plain data is refused before it runs). UserError when there is no such model."""
    f = model_file_of(model_run)
    if not f.is_file():
        raise UserError(f"{f}: no trained model (run `labml run {kind}` first; it writes {MODEL_FILE})")
    if f.suffix == ".pt":
        saved = _read_model_pt(f, "cannot read the trained model")
        if not isinstance(saved, dict) or saved.get("protocol") != kind:
            raise UserError(f"{f}: not a model written by {kind}")
        return {"file": f, "config": dict(saved.get("config") or {}), "state": saved.get("state")}
    try:
        meta = load(f.parent).meta
    except UserError:
        meta = {}
    if str(meta.get("kind") or "").removeprefix("protocol-") != kind:
        raise UserError(f"{f}: not a model written by {kind} (run kind {meta.get('kind')!r})")
    config = meta.get("model_config")
    if not isinstance(config, dict):
        raise UserError(f"{f.parent / RUN_JSON}: no model_config for {f.name}; the model cannot be rebuilt")
    import numpy as np

    try:
        with np.load(f, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise UserError(f"{f}: cannot read the trained model: {exc}") from None
    return {"file": f, "config": dict(config), "arrays": arrays}


def legacy_layout(path: str | Path, meta: dict) -> str:
    """"current" for a run.json of `SCHEMA_VERSION`; for one without "schema_version" (written
    before it), which of the three old layouts (see the module docstring) the folder holds."""
    v = meta.get("schema_version")
    if v is not None:
        return "current" if v == SCHEMA_VERSION else f"schema_version {v}"
    path = Path(path)
    kind = str(meta.get("kind") or "")
    if kind.startswith("protocol-") or (path / "model.pt").exists() or (path / "data.csv").exists():
        return "protocol"
    if kind == "train-bm" and meta.get("plan") is None:
        return "bm-cli"
    return "train"


def check_current_layout(run: Run) -> None:
    """UserError (one line) unless `run` is in the current layout: what `labml resume` asks before
    it writes anything into a folder."""
    layout = run.layout
    if layout != "current":
        raise UserError(
            f"run {run.path} is in the old {layout!r} run folder layout (no schema_version "
            f"{SCHEMA_VERSION} in run.json); it lists and loads read-only: convert it with "
            f"`labml runs --migrate {run.path}` to resume it"
        )


def migrate(path: str | Path) -> dict:
    """Convert an old-layout run folder (`legacy_layout`) in place to the current layout, so that
    `labml resume` can continue it; returns {"run_dir", "from", "changes"}.

    New files are written first (atomically), run.json last (``"schema_version"``, ``"model"``,
    ``"model_config"``, ``"migrated"``), and only then are moved figures removed from the top: a
    migration cut short leaves a folder that still loads, and running it again finishes it. Nothing
    in the folder is executed: model.npz is opened with ``allow_pickle=False``, an old model.pt only
    with ``torch.load(weights_only=True)`` (tensors and plain data) and is kept as it was. Series,
    arrays, checkpoints and run.log keep their names and bytes.
    """
    import numpy as np

    run = load(path)
    layout = run.layout
    if layout == "current":
        return {"run_dir": str(run.path), "from": "current", "changes": []}
    if layout not in LEGACY_LAYOUTS:
        raise UserError(f"{run.path}: run.json has {layout}, which this labml does not know; not migrated")
    _check_not_running(run)
    changes: list[str] = []
    fields: dict[str, Any] = {}
    model = run.path / MODEL_FILE
    legacy_pt = run.path / "model.pt"
    if model.is_file():
        try:
            with np.load(model, allow_pickle=False) as data:
                data.files  # noqa: B018 - readable as plain arrays (no pickled objects)
        except (OSError, ValueError) as exc:
            raise UserError(f"{model}: not a plain numpy archive ({exc}); not migrated") from None
        fields["model"] = MODEL_FILE
        changes.append(f"run.json names {MODEL_FILE}")
    elif legacy_pt.is_file():
        arrays, config = _legacy_model_pt(run.path, legacy_pt)
        atomic_write_bytes(model, _npz_bytes(model, arrays))
        fields.update(model=MODEL_FILE, model_config=config)
        changes.append(f"{MODEL_FILE} written from model.pt (kept as it was; read with weights_only)")
    moved = []
    for png in sorted(run.path.glob("*.png")):
        target = run.path / FIGURES_DIR / png.name
        if not target.exists():
            run.figure_path(png.name)  # makes figures/
            atomic_write_bytes(target, png.read_bytes())
        moved.append(png)
        changes.append(f"{png.name} -> {FIGURES_DIR}/{png.name}")
    fields["migrated"] = {"time": _now(), "from_schema_version": LEGACY_SCHEMA, "from_layout": layout,
                          "changes": list(changes)}
    fields["schema_version"] = SCHEMA_VERSION
    run.update(**fields)
    for png in moved:
        with contextlib.suppress(FileNotFoundError):
            png.unlink()
    return {"run_dir": str(run.path), "from": layout, "changes": changes}


def _check_not_running(run: Run) -> None:
    """UserError if a process still runs `run` (its folder lock is held, or run.json names a live
    process on this host)."""
    import socket

    from labml.runs.lock import run_lock_holder

    holder = run_lock_holder(run.path)
    alive = holder.locked if holder is not None and holder.locked is not None else None
    if alive is None and run.meta.get("status") == "running":
        pid, host = run.meta.get("pid"), run.meta.get("pid_host")
        if pid and host == socket.gethostname():
            from instruments.lock import pid_alive

            alive = pid_alive(int(pid))
    if alive:
        raise UserError(f"run {run.path} is still running; stop it before migrating it")


def _read_model_pt(f: Path, failure: str, consequence: str = "") -> Any:
    """An old model.pt, read with ``torch.load(weights_only=True)``: a model file from someone else's
    run folder can hold only data, never code. A corrupt or foreign file is a one-line UserError."""
    from labml.runs.checkpoints import safe_load

    try:
        return safe_load(f, f"model file {f}")
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file
        raise UserError(f"{f}: {failure}: {exc}{consequence}") from None


def _legacy_model_pt(folder: Path, f: Path) -> tuple[dict[str, np.ndarray], dict | None]:
    """The model arrays and config of an old protocol model.pt ({"protocol", "config", "state"}),
    read with ``torch.load(weights_only=True)``; the synapse arrays of synapses.npz join them."""
    import numpy as np

    saved = _read_model_pt(f, "cannot read the old model file", "; not migrated")
    state = saved.get("state") if isinstance(saved, dict) else None
    weights = state.get("model") if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise UserError(f"{f}: not a model file written by a training protocol; not migrated")
    arrays = {str(k): _numpy(v) for k, v in weights.items()}
    extra = folder / "synapses.npz"
    if extra.is_file():
        with np.load(extra, allow_pickle=False) as data:
            arrays.update({k: data[k] for k in data.files if k not in arrays})
    config = saved.get("config")
    return arrays, (to_jsonable(config) if isinstance(config, dict) else None)


def find_runs(root: str | Path | None = None, **filters: Any) -> list[Run]:
    """Run folders under `root` (default: `runs_root()`), oldest first, from the run catalogue
    (labml.runs.catalogue.query: reconciled with the folders first; its filters, e.g. kind="train",
    status="aborted", sample="S1", since="2026-11-24", where=["n=8", "test_accuracy>0.85"],
    param=("n", 4), sort="test_accuracy", desc=True, limit=10).

    Every run.json at most `MAX_DEPTH` folders below `root` (demo steps, sweep points and run
    folders of every kind, old layouts included), and every sweep folder (manifest.json) as one
    entry of kind "sweep" (`sweep_entry`). Unreadable run.json files are skipped with a warning.
    """
    from labml.runs.catalogue import query

    out = []
    for entry in query(root, **filters):
        try:
            out.append(sweep_entry(entry["path"]) if entry["sweep"] else load(entry["path"]))
        except UserError as exc:  # removed or damaged since the catalogue was reconciled
            log.warning("skipping %s", exc)
    return out


#: a folder listing of `_discover`'s cache: (mtime_ns of the folder, marker, subfolders) with marker
#: 0 (none), 1 (run.json) or 2 (manifest.json) and each subfolder as (name, device, inode)
FolderListing = tuple[int, int, tuple[tuple[str, int, int], ...]]
#: a folder changed less than this long before it was listed is listed again next time (a change in
#: the same tick of the file system's clock would not change its modification time: "racy" entries)
RACY_NS = 2_000_000_000
_MARKERS = {1: (RUN_JSON, True), 2: (SWEEP_MANIFEST, False)}


def _discover(root: Path, cache: dict[str, FolderListing] | None = None
              ) -> Iterator[tuple[str, bool, os.stat_result]]:
    """(rel, True, stat of its run.json) for every run folder and (rel, False, stat of its
    manifest.json) for every sweep folder at most `MAX_DEPTH` levels below `root` (root itself
    included, rel "."; rel uses "/"); hidden folders and the folders of `_NOT_RUN_FOLDERS` are not
    entered, and a folder reached twice (symlinks) is listed once (told apart by device and inode).

    cache: rel -> `FolderListing`, read and updated in place (the run catalogue keeps it): a folder
    whose modification time is the one cached is not listed again (a folder's time changes when an
    entry is added, removed or renamed, so also when run.json is replaced atomically), which makes a
    walk over 10,000 unchanged run folders two stats per folder. Folders not reached are removed."""
    try:
        top = os.stat(root)
    except OSError:
        return
    cache = {} if cache is None else cache
    visited: set[str] = set()
    seen = {(top.st_dev, top.st_ino)}
    base = str(root)
    stack = [(".", 0)]
    now = time.time_ns()
    while stack:
        rel, depth = stack.pop()
        folder = base if rel == "." else f"{base}/{rel}"
        listing = _listing(folder, top.st_dev, cache.get(rel), now)
        if listing is None:
            continue
        cache[rel] = listing
        visited.add(rel)
        marker = _MARKERS.get(listing[1])
        if marker is not None:
            try:
                yield rel, marker[1], os.stat(f"{folder}/{marker[0]}")
            except OSError:
                cache[rel] = (-1, *listing[1:])
        if depth < MAX_DEPTH:
            for name, dev, ino in listing[2]:
                if (dev, ino) not in seen:
                    seen.add((dev, ino))
                    stack.append((name if rel == "." else f"{rel}/{name}", depth + 1))
    for rel in set(cache) - visited:
        del cache[rel]


def _listing(folder: str, dev: int, cached: FolderListing | None, now: int) -> FolderListing | None:
    """The folder's listing: the cached one while its modification time is unchanged, else read."""
    try:
        mtime = os.stat(folder).st_mtime_ns
    except OSError as exc:
        log.warning("cannot list %s: %s", folder, exc.strerror or exc)
        return None
    if cached is not None and cached[0] == mtime:
        return cached
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError as exc:
        log.warning("cannot list %s: %s", folder, exc.strerror or exc)
        return None
    marker = 0
    names = {e.name for e in entries}
    for code, (name, _is_run) in _MARKERS.items():
        if name in names and os.path.isfile(f"{folder}/{name}"):
            marker = code
            break
    subs = tuple(_subfolders(entries, dev))
    return (mtime if now - mtime > RACY_NS else -1), marker, subs


def _subfolders(entries: list[os.DirEntry], dev: int) -> Iterator[tuple[str, int, int]]:
    for e in entries:
        if e.name.startswith(".") or e.name in _NOT_RUN_FOLDERS:
            continue
        try:
            if not e.is_dir():
                continue
            if e.is_symlink():
                st = e.stat()
                yield e.name, st.st_dev, st.st_ino
            else:
                yield e.name, dev, e.inode()
        except OSError:
            continue


def sweep_entry(path: str | Path) -> Run:
    """A sweep folder as a read-only `Run` for listings: kind "sweep", the protocol and grid as
    parameters, start time = its creation, status "success" when every point succeeded, "failed"
    when one failed, else "incomplete"."""
    path = Path(path)
    f = path / SWEEP_MANIFEST
    try:
        manifest = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{f} is corrupt: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("points"), list):
        raise UserError(f"{f} is corrupt: not a sweep manifest")
    statuses = []
    for point in manifest["points"]:
        rel = str(point.get("run_dir") or "") if isinstance(point, dict) else ""
        try:
            meta = json.loads((path / rel / RUN_JSON).read_text()) if rel else {}
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            meta = {}
        statuses.append(meta.get("status") if isinstance(meta, dict) else None)
    if statuses and all(s == "success" for s in statuses):
        status = "success"
    elif "failed" in statuses:
        status = "failed"
    else:
        status = "incomplete"
    meta = {
        "kind": "sweep", "status": status, "reason": None, "start_time": manifest.get("created"),
        "stop_time": None, "uid": None, "sweep": True, "points": len(statuses),
        "points_done": statuses.count("success"),
        "parameters": {"protocol": manifest.get("protocol"), "grid": manifest.get("grid"),
                       "fixed": manifest.get("fixed")},
        **{k: v for k, v in (manifest.get("record") or {}).items()
           if k in ("sample", "device", "operator", "notes")},
    }
    return Run(path=path, meta=meta)


def figures_of(run_dir: str | os.PathLike) -> list[Path]:
    """The figures a run wrote (RUN_DIR/figures/*.png and *.svg), sorted by name."""
    folder = Path(run_dir) / FIGURES_DIR
    return sorted(p for p in folder.glob("*") if p.suffix in (".png", ".svg")) if folder.is_dir() else []

