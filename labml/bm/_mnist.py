"""Binarised MNIST for the Boltzmann-machine code.

Uses engineer D's `labml.data` loader when it offers the needed function; otherwise reads the IDX
gz files directly (a tiny private fallback, so this package works on its own).
Images come back as float32 arrays of 0/1 pixels, shape (n, 784); labels as int64 (n,).
"""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import numpy as np

from labml.errors import UserError

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(os.environ.get("LABML_MNIST", "/work/shared/data/mnist"))

_FILES = {
    "train": ("train-5k-images-idx3-ubyte.gz", "train-5k-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _read_idx(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError as exc:
        raise UserError(f"MNIST file not found: {path}") from exc
    except (OSError, EOFError) as exc:
        raise UserError(f"cannot read MNIST file {path}: {exc}") from exc
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path} is not an IDX file of unsigned bytes (bad magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise UserError(f"{path}: header says {dims} but holds {data.size} bytes")
    return data.reshape(dims)


def load_binarised(split: str, data_dir: str | Path | None = None, threshold: float = 0.5):
    """(x, y): x float32 (n, 784) in {0, 1} (pixel/255 > threshold), y int64 (n,).

    split: "train" (the 5k subset) or "test" (the 10k test set).
    """
    if split not in _FILES:
        raise UserError(f"unknown MNIST split {split!r}; use 'train' or 'test'")
    d = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    if not d.is_dir():
        raise UserError(f"MNIST data folder not found: {d}")
    img_f, lab_f = _FILES[split]
    images = _read_idx(d / img_f)
    labels = _read_idx(d / lab_f)
    if images.shape[0] != labels.shape[0]:
        raise UserError(f"{d}: {images.shape[0]} images but {labels.shape[0]} labels in split {split}")
    x = (images.reshape(images.shape[0], -1).astype(np.float32) / 255.0 > threshold).astype(np.float32)
    return x, labels.astype(np.int64)
