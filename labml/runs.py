"""The run store: one folder per run (DESIGN.md "Runs are records").

    RUN_DIR/run.json        uid, times, status, parameters, environment (written atomically)
    RUN_DIR/<name>.csv      scalar series (one row per step/epoch)
    RUN_DIR/<name>.npz      arrays
    RUN_DIR/checkpoints/    checkpoints (atomic: temp file, fsync, rename)

This module starts small (create, write metadata, save series and arrays, load); the run
controller grows it into the full store.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labml.errors import UserError


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a reader (or a crash) sees either the old or the new file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


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


@dataclass
class Run:
    """A run folder. Create with `Run.create(kind, params)`; finish with `finish(status, reason)`."""

    path: Path
    meta: dict = field(default_factory=dict)

    @classmethod
    def create(cls, kind: str, params: dict, run_dir: str | Path | None = None, **extra: Any) -> Run:
        uid = uuid.uuid4().hex[:12]
        if run_dir is None:
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            run_dir = default_runs_root() / f"{stamp}-{kind}-{uid[:6]}"
        path = Path(run_dir)
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"cannot write run folder {path}: {exc.strerror or exc}") from exc
        if (path / "run.json").exists():
            raise UserError(f"{path} already holds a run (run.json exists); choose another --run-dir")
        meta = {
            "uid": uid,
            "kind": kind,
            "status": "running",
            "reason": None,
            "start_time": _now(),
            "stop_time": None,
            "parameters": params,
            "argv": sys.argv,
            "package_versions": package_versions(),
            "git_revision": git_revision(),
            "host": platform.node(),
        }
        meta.update(extra)
        run = cls(path=path, meta=meta)
        run.save_meta()
        return run

    def save_meta(self) -> None:
        atomic_write_json(self.path / "run.json", self.meta)

    def update(self, **fields: Any) -> None:
        self.meta.update(fields)
        self.save_meta()

    def finish(self, status: str = "success", reason: str | None = None, **results: Any) -> None:
        self.meta.update(status=status, reason=reason, stop_time=_now())
        if results:
            self.meta.setdefault("results", {}).update(results)
        self.save_meta()

    def append_row(self, name: str, row: dict) -> None:
        """Append one row to RUN_DIR/<name>.csv (header written on first row)."""
        path = self.path / f"{name}.csv"
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
            fh.flush()
            os.fsync(fh.fileno())

    def save_arrays(self, name: str, **arrays: np.ndarray) -> Path:
        import io

        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        out = self.path / f"{name}.npz"
        atomic_write_bytes(out, buf.getvalue())
        return out


def load(path: str | Path) -> Run:
    """Load a run folder's metadata (`run.meta`); series with `read_series`."""
    path = Path(path)
    f = path / "run.json"
    if not f.exists():
        raise UserError(f"{path} is not a run folder (no run.json)")
    try:
        meta = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{f} is corrupt: {exc}") from exc
    return Run(path=path, meta=meta)


def read_series(path: str | Path, name: str) -> list[dict]:
    with open(Path(path) / f"{name}.csv", newline="") as fh:
        return list(csv.DictReader(fh))
