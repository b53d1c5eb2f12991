"""Atomic, verified checkpoints of a run (RUN_DIR/checkpoints/ckpt-<step>.pt).

A checkpoint holds everything a run needs to continue exactly where it was: the plan's state
(model, optimiser, its own RNGs, the cursor), the process-wide RNG states (python `random`,
numpy's global generator, torch CPU), the torch thread count, the rig's state (the simulated
world's full state incl. its RNG via ``rig.state_dict()``; nothing for a real rig) and the byte
length of every series CSV at that moment (so rows written after it are cut on resume).

File layout: one line of magic, one line of JSON header (format version, run uid, step, payload
length and SHA-256), then the payload (``torch.save`` of the state dict). Written to a temp file,
fsync'd and renamed (labml.runs.store.atomic_write_bytes): a kill at any instant leaves either the old or
the new checkpoint. Loading checks the magic (foreign file), the run uid (checkpoint of another
run), the length and hash (truncated or corrupted file) before unpickling, each failure a UserError
naming the file.

The hash guards against damage, not against a crafted file (it sits in the same folder). So the
payload is unpickled with ``torch.load(weights_only=True)``: only tensors, plain Python data and
numpy arrays/dtypes/scalars (allow-listed for the duration of the load, `safe_load`) can come out
of it; a file that names any other global (a function to call, a class to build) is refused
before anything of it runs. labml's own model files (protocols' model.pt) load the same way.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
import re
from pathlib import Path
from typing import Any

import numpy as np

from labml.errors import UserError
from labml.runs.store import atomic_write_bytes

log = logging.getLogger(__name__)

MAGIC = b"LABML-CHECKPOINT\n"
FORMAT_VERSION = 1
KEEP = 2  # checkpoints kept per run (older ones are removed after a new one is safely on disk)
_NAME = re.compile(r"^ckpt-(\d{8})\.pt$")


def capture_rng() -> dict:
    """Process-wide RNG states (python, numpy global, torch CPU) and the torch thread count."""
    import torch

    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "torch_threads": torch.get_num_threads(),
    }


def restore_rng(state: dict) -> None:
    """Inverse of `capture_rng`."""
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("torch_threads"):
        torch.set_num_threads(int(state["torch_threads"]))


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save(run_dir: str | Path, uid: str, step: int, state: dict) -> Path:
    """Write checkpoint number `step` of run `uid` atomically; keep the newest `KEEP`. Returns its path."""
    import torch

    d = checkpoint_dir(run_dir)
    d.mkdir(exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    header = {
        "format": FORMAT_VERSION,
        "uid": uid,
        "step": int(step),
        "length": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    path = d / f"ckpt-{int(step):08d}.pt"
    atomic_write_bytes(path, MAGIC + json.dumps(header).encode() + b"\n" + payload)
    for old in list_checkpoints(run_dir)[:-KEEP]:
        try:
            old.unlink()
        except OSError as exc:  # pragma: no cover - a stale file is harmless
            log.warning("could not remove old checkpoint %s: %s", old, exc)
    return path


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Checkpoint files of a run, oldest first (temp files of an interrupted write are ignored)."""
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if _NAME.match(p.name))


def read_header(path: str | Path) -> dict:
    """The JSON header of a checkpoint file (UserError if it is not one)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(len(MAGIC))
            line = fh.readline(4096)
    except OSError as exc:
        raise UserError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from exc
    if magic != MAGIC:
        raise UserError(f"{path} is not a labml checkpoint (wrong magic bytes)")
    try:
        header = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"checkpoint {path} is corrupt (unreadable header)") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT_VERSION:
        raise UserError(f"checkpoint {path} has an unknown format {header!r}")
    return header


def load(path: str | Path, uid: str | None = None) -> dict:
    """Load and verify a checkpoint. `uid`: the run it must belong to (foreign checkpoint -> UserError)."""
    path = Path(path)
    header = read_header(path)
    if uid is not None and header.get("uid") != uid:
        raise UserError(
            f"checkpoint {path} belongs to run {header.get('uid')!r}, not to this run ({uid!r}); "
            "it was copied from another run folder"
        )
    data = path.read_bytes()
    start = len(MAGIC) + data[len(MAGIC) :].index(b"\n") + 1
    payload = data[start:]
    if len(payload) != header["length"]:
        raise UserError(
            f"checkpoint {path} is truncated ({len(payload)} of {header['length']} payload bytes)"
        )
    if hashlib.sha256(payload).hexdigest() != header["sha256"]:
        raise UserError(f"checkpoint {path} is corrupt (SHA-256 mismatch)")
    try:
        state = safe_load(io.BytesIO(payload), f"checkpoint {path}")
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other unpickling failure is a corrupt file
        raise UserError(f"checkpoint {path} is corrupt: {exc}") from exc
    if not isinstance(state, dict):
        raise UserError(f"checkpoint {path} is corrupt: it holds a {type(state).__name__}, not a state dict")
    state["_header"] = header
    return state


def _numpy_globals() -> list:
    """The numpy reconstructors an array, a dtype or a numpy scalar pickles to (building an empty
    array, a dtype or a scalar from bytes; none of them calls anything named by the file)."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    out = [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return out


def safe_load(source: Any, where: str) -> Any:
    """``torch.load(source, weights_only=True)`` with numpy's array types allowed; anything else
    (a pickle naming a function or class) is a UserError naming `where`, raised before it runs."""
    import pickle

    import torch

    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if "GLOBAL" in ln or "Unsupported" in ln]
        detail = lines[0] if lines else str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{where} refused: it holds objects other than tensors, arrays and plain data "
                        f"({detail}); it was not written by labml or was altered") from None


def latest(run_dir: str | Path, uid: str | None = None) -> dict | None:
    """The newest checkpoint of a run, verified; None if it has none."""
    files = list_checkpoints(run_dir)
    if not files:
        return None
    return load(files[-1], uid=uid)


def torch_state(obj: Any) -> Any:
    """Deep copy of a state dict (tensors cloned) so later training steps cannot change it."""
    import copy

    return copy.deepcopy(obj)
