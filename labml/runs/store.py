"""The run store: one folder per run (DESIGN.md "Runs are records").

    RUN_DIR/run.json        uid, times, status and reason, parameters, sample/device/operator/notes,
                            rig config and calibration snapshot, instrument identities, package
                            versions, git revision (written atomically)
    RUN_DIR/<name>.csv      scalar series, one row per step/epoch, in pymeasure's Results format
                            (``#``-commented header naming a Procedure and the parameters, then a CSV
                            header line and rows), so ``pymeasure.experiment.Results.load`` reads it
    RUN_DIR/<name>.npz      arrays
    RUN_DIR/checkpoints/    checkpoints (atomic: temp file, fsync, rename; see labml.runs.checkpoints)
    RUN_DIR/run.log         the run's log, including instrument command traffic

Rows are appended and fsync'd one by one. A checkpoint records the byte length of every series, so
a resumed run truncates rows written after its last checkpoint (see `Run.truncate_series`) and
writes them again: nothing lost, nothing duplicated.

Analysis API: ``labml.runs.store.load(path)`` returns a `Run`; ``run.parameters``, ``run.series(name)``
(list of dicts with numbers converted), ``run.arrays(name)`` and ``find_runs(root, **filters)``.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import errno
import io
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labml.errors import UserError

log = logging.getLogger(__name__)

# Procedure named in the Results header of a series that has no pymeasure Procedure of its own.
DEFAULT_PROCEDURE = "labml.runs.pymeasure_series.RunSeries"
# Loggers that carry instrument command traffic (pymeasure adapters log "WRITE:..."/"READ:..." at DEBUG).
TRAFFIC_LOGGERS = ("Adapter", "pymeasure", "instruments", "simulated_hw")
FINISHED_STATUSES = ("success", "stopped", "aborted", "failed")


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


def write_bytes(path: Path, data: bytes, *, append: bool = False, exclusive: bool = False) -> None:
    """The one function through which every file of a run folder is written: rows (``append``:
    added at the end, flushed and fsync'd) and whole files (run.json, checkpoints, arrays: written
    to a temp file, fsync'd and renamed, so a reader or a crash sees either the old or the new file).

    exclusive: only create `path`, atomically (FileExistsError if it exists: of two writers only one
    succeeds).

    Any other OSError (disk full, read-only, permission) becomes a RunWriteError naming the reason
    and the file; a whole-file write that fails leaves the old file as it was and no temp file behind.
    """
    path = Path(path)
    try:
        _write_file(path, data, append, exclusive)
    except OSError as exc:
        if exclusive and isinstance(exc, FileExistsError):
            raise
        raise RunWriteError(path, exc) from exc


def _write_file(path: Path, data: bytes, append: bool, exclusive: bool = False) -> None:
    """The file-system calls of `write_bytes` (the place where tests inject OSErrors)."""
    if append:
        with open(path, "ab") as fh:
            fh.write(data)
            fh.flush()
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
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    from dataclasses import asdict, is_dataclass

    if is_dataclass(o) and not isinstance(o, type):
        return asdict(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def to_jsonable(obj: Any) -> Any:
    """A JSON-safe copy of `obj` (numpy scalars/arrays, paths, dataclasses converted; NaN and
    infinities become null so that run.json stays strict JSON for every reader)."""
    return _finite(json.loads(json.dumps(obj, default=_json_default)))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not np.isfinite(obj):
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


def default_runs_root() -> Path:
    return Path(os.environ.get("LABML_RUNS", "runs"))


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
            run_dir = default_runs_root() / f"{stamp}-{kind}-{uid[:6]}"
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
        }
        meta.update(to_jsonable(extra))
        run = cls(path=path, meta=meta)
        try:  # exclusive: of two processes creating runs in one folder at once, one gets an error
            atomic_write_json(path / "run.json", meta, exclusive=True)
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
    def finished(self) -> bool:
        return self.meta.get("status") in FINISHED_STATUSES

    def save_meta(self) -> None:
        atomic_write_json(self.path / "run.json", self.meta)

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
        self.save_meta()

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
        """Append several rows with one fsync."""
        if not rows:
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

    def columns(self, name: str) -> list[str]:
        """The column names of series `name` (its first non-comment line)."""
        with open(self.series_path(name), newline="") as fh:
            for line in fh:
                if not line.startswith("#"):
                    return next(csv.reader([line]))
        return []

    def series_sizes(self) -> dict[str, int]:
        """Byte length of every series file: what a checkpoint records."""
        return {p.stem: p.stat().st_size for p in sorted(self.path.glob("*.csv"))}

    def truncate_series(self, sizes: dict[str, int]) -> dict[str, int]:
        """Cut every series back to the byte lengths in `sizes` (a checkpoint's record).

        Series not in `sizes` (begun after the checkpoint) are removed. Returns name -> number of
        bytes dropped. A series shorter than its recorded size means data was lost: UserError.
        """
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
        return [{k: _convert(v) for k, v in r.items()} for r in read_series(self.path, name)]

    def series_names(self) -> list[str]:
        return [p.stem for p in sorted(self.path.glob("*.csv"))]

    # ----------------------------------------------------------------- arrays
    def save_arrays(self, name: str, **arrays: np.ndarray) -> Path:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        out = self.path / f"{name}.npz"
        atomic_write_bytes(out, buf.getvalue())
        return out

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """The arrays of RUN_DIR/<name>.npz."""
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


def _cell(v: Any) -> Any:
    if isinstance(v, np.generic):
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


def read_series(path: str | Path, name: str) -> list[dict]:
    """Rows of RUN_DIR/<name>.csv as dicts of strings (Results '#' header lines skipped)."""
    with open(Path(path) / f"{name}.csv", newline="") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def find_runs(root: str | Path | None = None, **filters: Any) -> list[Run]:
    """Run folders under `root` (default $LABML_RUNS or ./runs), oldest first.

    Filters (all optional, combined with AND): kind, status, sample, device, operator (exact
    match; kind also matches as a prefix, e.g. "train"), since/until (ISO dates compared with
    start_time), text (substring of the notes or reason), param=("name", value) or a list of them.
    Unreadable run.json files are skipped with a warning.
    """
    root = Path(root) if root is not None else default_runs_root()
    if not root.exists():
        return []
    folders = [root] if (root / "run.json").exists() else sorted(p.parent for p in root.glob("*/run.json"))
    out = []
    for folder in folders:
        try:
            run = load(folder)
        except UserError as exc:
            log.warning("skipping %s", exc)
            continue
        if _matches(run.meta, filters):
            out.append(run)
    out.sort(key=lambda r: str(r.meta.get("start_time") or ""))
    return out


def _matches(meta: dict, filters: dict) -> bool:
    for key, want in filters.items():
        if want is None:
            continue
        if key == "kind":
            kind = str(meta.get("kind") or "")
            if not (kind == want or kind.startswith(str(want))):
                return False
        elif key in ("status", "sample", "device", "operator"):
            if str(meta.get(key)) != str(want):
                return False
        elif key == "since":
            if str(meta.get("start_time") or "") < str(want):
                return False
        elif key == "until":
            if str(meta.get("start_time") or "") > str(want):
                return False
        elif key == "text":
            hay = " ".join(str(meta.get(k) or "") for k in ("notes", "reason", "kind"))
            if str(want).lower() not in hay.lower():
                return False
        elif key == "param":
            pairs = want if isinstance(want, list) else [want]
            params = meta.get("parameters") or {}
            for name, value in pairs:
                if name not in params or str(params[name]) != str(value):
                    return False
        else:
            raise UserError(f"unknown run filter {key!r}")
    return True
