"""Binarised MNIST as the Boltzmann-machine literature uses it, saved once so that others can reuse
exactly the same bits (issue 18).

Two binarisations of the same images (the official 60k training and 10k test sets, read by
`labml.data.load_mnist_arrays`):

- ``stochastic``: every pixel drawn once, 1 with probability intensity / 255 (the "stochastically
  binarised MNIST" of Salakhutdinov & Murray 2008); numpy's PCG64 generator,
  ``np.random.SeedSequence(seed).spawn(2)``: the first child draws the training set, the second
  the test set, each as ``rng.random(images.shape) < images / 255`` in the files' image order;
- ``threshold``: 1 where intensity / 255 > 0.5 (labml.data's "threshold" preprocessing).

The file (numpy ``.npz``, no pickled objects: ``np.load(path)`` reads it, ``allow_pickle`` off):

| key | content |
|---|---|
| format | "labml-binarised-mnist/1" |
| description | this table in one line |
| seed | the seed of the stochastic binarisation (int64 scalar) |
| n_pixels | 784 (the rows are packed: `np.unpackbits(a, axis=1)[:, :n_pixels]` gives 0/1 uint8) |
| train_stochastic, test_stochastic | (N, 98) uint8, `np.packbits(bits, axis=1)` (big-endian bit order) |
| train_threshold, test_threshold | the same for the 0.5 threshold |
| train_labels, test_labels | (N,) uint8 digit labels |
| source_pixels_md5 | md5 of the raw uint8 pixels of the training and of the test images (the IDX payloads) |
| content_sha256 | SHA-256 of the eight arrays above in this order (their raw bytes), checked on every load |

Bit convention: 1 = ink (pixel on), 0 = background; models map x to spins s = 2x - 1.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from labml.errors import UserError

FORMAT = "labml-binarised-mnist/1"
KINDS = ("stochastic", "threshold")
_ARRAYS = ("train_stochastic", "test_stochastic", "train_threshold", "test_threshold", "train_labels",
           "test_labels")
_DESCRIPTION = ("MNIST binarised: *_stochastic each pixel 1 with probability intensity/255 (numpy PCG64, "
                "SeedSequence(seed).spawn(2): train, test), *_threshold intensity/255 > 0.5; rows packed by "
                "np.packbits(axis=1), unpack with np.unpackbits(a, axis=1)[:, :n_pixels]; 1 = ink")


def binarise_stochastic(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """0/1 uint8 bits, each pixel 1 with probability images / 255 (images uint8, any shape)."""
    return (rng.random(images.shape) < images.astype(np.float64) / 255.0).astype(np.uint8)


def _content_hash(arrays: dict) -> str:
    h = hashlib.sha256()
    for key in _ARRAYS:
        h.update(np.ascontiguousarray(arrays[key]).tobytes())
    return h.hexdigest()


def build(data, seed: int = 0) -> dict:
    """The packed arrays of the file (see the module docstring) from the MNIST folder `data`."""
    from labml.data import DIGITS, load_mnist_arrays, resolve_data_dir

    folder = resolve_data_dir(data)
    if folder == DIGITS:
        raise UserError("binarised MNIST needs an MNIST folder (--data DIR), not 'digits'")
    tr_im, y_tr, te_im, y_te, _ = load_mnist_arrays(folder)
    rng_train, rng_test = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    flat = {"train": tr_im.reshape(len(tr_im), -1), "test": te_im.reshape(len(te_im), -1)}
    out = {
        "train_stochastic": np.packbits(binarise_stochastic(flat["train"], rng_train), axis=1),
        "test_stochastic": np.packbits(binarise_stochastic(flat["test"], rng_test), axis=1),
        "train_threshold": np.packbits(flat["train"] / 255.0 > 0.5, axis=1),
        "test_threshold": np.packbits(flat["test"] / 255.0 > 0.5, axis=1),
        "train_labels": y_tr.astype(np.uint8),
        "test_labels": y_te.astype(np.uint8),
    }
    out["source_pixels_md5"] = np.array([hashlib.md5(flat[s].tobytes()).hexdigest()
                                         for s in ("train", "test")])
    out.update(format=np.array(FORMAT), description=np.array(_DESCRIPTION), seed=np.int64(seed),
               n_pixels=np.int64(flat["train"].shape[1]))
    out["content_sha256"] = np.array(_content_hash(out))
    return out


def save(arrays: dict, path: str | Path) -> Path:
    """Write the file atomically (a temp file renamed over `path`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    os.replace(tmp, path)
    return path


def load(path: str | Path, seed: int | None = None) -> dict:
    """Read and verify a binarised-MNIST file: {"train_stochastic": (N, 784) uint8 0/1, ...,
    "train_labels": ..., "seed", "content_sha256"}. A foreign, corrupt or other-seed file is a
    one-line UserError."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            raw = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"binarised MNIST file {path} is unreadable or corrupt ({exc})") from None
    if str(raw.get("format", "")) != FORMAT or any(k not in raw for k in _ARRAYS):
        raise UserError(f"{path} is not a binarised-MNIST file of format {FORMAT}")
    if _content_hash(raw) != str(raw["content_sha256"]):
        raise UserError(f"binarised MNIST file {path} is corrupt (content SHA-256 mismatch)")
    if seed is not None and int(raw["seed"]) != seed:
        raise UserError(f"binarised MNIST file {path} was drawn with seed {int(raw['seed'])}, not {seed}")
    n = int(raw["n_pixels"])
    out = {k: np.unpackbits(raw[k], axis=1)[:, :n] for k in _ARRAYS if not k.endswith("labels")}
    out.update(train_labels=raw["train_labels"].astype(np.int64),
               test_labels=raw["test_labels"].astype(np.int64),
               seed=int(raw["seed"]), content_sha256=str(raw["content_sha256"]))
    return out


def binarised_mnist(data, path: str | Path, seed: int = 0) -> dict:
    """The binarised set at `path` (verified), built from `data` and saved there first if absent."""
    path = Path(path)
    if not path.exists():
        save(build(data, seed), path)
    return load(path, seed)
