"""Data sets for the learning code: MNIST (IDX files) and scikit-learn's bundled 8x8 digits.

This module is the only reader of MNIST (IDX files) in the package. MNIST is read from a folder holding
the four official IDX files, gzipped or not. When both the full 60k training files and the 5k subset
(``train-5k-images-idx3-ubyte.gz`` / ``train-5k-labels-idx1-ubyte.gz``) are present, the full files win.

Which data a command uses is decided in one place, `resolve_data_dir`, for every command and run kind:

1. the explicit ``--data DIR`` option / a run's ``data`` parameter;
2. else the ``LABML_DATA`` environment variable;
3. else the user data folder, ``platformdirs.user_data_dir("labml")/mnist`` (what ``labml data download``
   fills by default), when it holds the MNIST files;
4. else a one-line UserError naming where it looked and the command to run (``labml data download``).

The value ``digits`` (as ``--data digits`` or ``LABML_DATA=digits``) selects scikit-learn's bundled 8x8
digits (1797 images, scaled to [0, 1]): no files, no download.

Preprocessing (``preprocess=``):

- ``"pool-threshold"`` (the reference protocol of Ellis et al. 2023, SCIENCE.md section 4): 2x2 max-pool
  of the 28x28 image to 14x14, then threshold at 0.5 -> 196 binary inputs. For 8x8 digits no pooling is
  done (64 binary inputs).
- ``"threshold"``: threshold at 0.5 without pooling (784 binary inputs; the Boltzmann-machine setting).
- ``"none"``: intensities scaled to [0, 1], float.

Pixel intensities are scaled to [0, 1] before thresholding (MNIST: /255, digits: /16); "> 0.5" is 1.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labml.errors import UserError

logger = logging.getLogger(__name__)

#: File names of the official MNIST distribution, keyed by (split, kind).
MNIST_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
#: The 5k-image training subset used for quick checks (same IDX format).
MNIST_SUBSET_FILES = {
    ("train", "images"): "train-5k-images-idx3-ubyte",
    ("train", "labels"): "train-5k-labels-idx1-ubyte",
}
#: md5 of the gzipped official files (as published with torchvision / yann.lecun.com).
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
#: Default download mirrors, tried in order (``labml data download --mirror URL`` overrides).
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

PREPROCESS_CHOICES = ("pool-threshold", "threshold", "none")

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


# --------------------------------------------------------------------------------------------- IDX files
def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzipped if the name ends in .gz); raise UserError naming the file if corrupt."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise UserError(f"MNIST file not found: {path}") from exc
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UserError(f"MNIST file {path} is corrupt (cannot decompress/read: {exc})") from exc
    if len(raw) < 4:
        raise UserError(f"MNIST file {path} is corrupt: only {len(raw)} bytes")
    zero1, zero2, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero1 != 0 or zero2 != 0 or code not in _IDX_DTYPES or not 1 <= ndim <= 4:
        raise UserError(f"MNIST file {path} is corrupt: bad IDX magic number {raw[:4].hex()}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"MNIST file {path} is corrupt: truncated header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise UserError(
            f"MNIST file {path} is corrupt: header says shape {shape} ({expected} bytes of data), "
            f"file holds {len(raw) - header} bytes"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped if the name ends in .gz). Used by tests and tools."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        raw = gzip.compress(raw, mtime=0)  # no time stamp: the same array gives the same bytes
    path.write_bytes(raw)


def md5sum(path: str | Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        p = folder / name
        if p.exists():
            return p
    return None


def find_mnist_files(folder: str | Path) -> dict[tuple[str, str], Path]:
    """Locate the MNIST files in `folder`: {(split, kind): path}. Full training files win over the 5k subset.

    Raises UserError naming the folder and the missing file when something is absent.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"MNIST folder {folder} does not exist (give --data DIR or set $LABML_DATA; "
                        "`labml data download --data DIR` fetches the files)")
    found: dict[tuple[str, str], Path] = {}
    full = {k: _find(folder, v) for k, v in MNIST_FILES.items() if k[0] == "train"}
    subset = {k: _find(folder, v) for k, v in MNIST_SUBSET_FILES.items()}
    if all(full.values()):
        found.update(full)  # type: ignore[arg-type]
    elif all(subset.values()):
        found.update(subset)  # type: ignore[arg-type]
    else:
        missing = [MNIST_FILES[k] + "[.gz]" for k, v in full.items() if v is None]
        raise UserError(
            f"MNIST folder {folder} lacks training files: missing {', '.join(missing)} "
            f"(nor the 5k subset {MNIST_SUBSET_FILES[('train', 'images')]}.gz); "
            "run `labml data download --data DIR`"
        )
    for k in (("test", "images"), ("test", "labels")):
        p = _find(folder, MNIST_FILES[k])
        if p is None:
            raise UserError(f"MNIST folder {folder} lacks {MNIST_FILES[k]}[.gz]")
        found[k] = p
    return found


# ------------------------------------------------------------------------------------------ preprocessing
def max_pool2(images: np.ndarray) -> np.ndarray:
    """2x2 max-pool of (N, H, W) images (H, W even): (N, H/2, W/2)."""
    n, h, w = images.shape
    if h % 2 or w % 2:
        raise ValueError(f"max_pool2 needs even image sides, got {h}x{w}")
    return images.reshape(n, h // 2, 2, w // 2, 2).max(axis=(2, 4))


def preprocess(images01: np.ndarray, mode: str = "pool-threshold", pool: bool = True) -> np.ndarray:
    """Images (N, H, W) in [0, 1] -> flat (N, D) float32 inputs.

    mode "pool-threshold": 2x2 max-pool (if `pool`) then > 0.5; "threshold": > 0.5; "none": as is.
    """
    if mode not in PREPROCESS_CHOICES:
        raise UserError(f"unknown preprocessing {mode!r}; choose one of {', '.join(PREPROCESS_CHOICES)}")
    x = images01
    if mode == "pool-threshold" and pool:
        x = max_pool2(x)
    if mode in ("pool-threshold", "threshold"):
        x = x > 0.5
    return x.reshape(len(x), -1).astype(np.float32)


# -------------------------------------------------------------------------------------------- data sets
@dataclass
class Dataset:
    """Train/validation/test arrays. X*: (N, D) float32 in [0, 1]; y*: (N,) int64 class labels."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    X_val: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    y_val: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    image_shape: tuple[int, int] = (0, 0)
    n_classes: int = 10
    source: str = ""

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    def summary(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "n_train": len(self.y_train),
            "n_val": len(self.y_val),
            "n_test": len(self.y_test),
            "n_features": self.n_features,
            "image_shape": list(self.image_shape),
        }


#: The data value that selects scikit-learn's bundled 8x8 digits instead of an MNIST folder.
DIGITS = "digits"


def user_data_dir() -> Path:
    """The per-user MNIST folder: ``platformdirs.user_data_dir("labml")/mnist`` (e.g.
    ~/.local/share/labml/mnist on Linux); the default target of `labml data download`."""
    import platformdirs

    return Path(platformdirs.user_data_dir("labml", appauthor=False)) / "mnist"


def _has_mnist(folder: Path) -> bool:
    try:
        find_mnist_files(folder)
    except UserError:
        return False
    return True


def resolve_data_dir(data: str | Path | None = None, *, for_download: bool = False) -> Path | str:
    """The data a command or run uses (the one rule of every command and run kind, see the module
    docstring): `data` (``--data`` / a run's ``data`` parameter) if given, else ``$LABML_DATA``, else
    the user data folder (`user_data_dir`) when it holds the MNIST files, else a UserError.

    Returns an absolute folder (``~`` expanded; not checked here: reading it names what is missing),
    or the string `DIGITS` for scikit-learn's 8x8 digits. `for_download`: the target of
    `labml data download`: the user data folder whether or not it holds anything yet; ``digits`` is
    refused (nothing to download).
    """
    value = str(data) if data not in (None, "") else os.environ.get("LABML_DATA") or None
    if value is not None:
        if value == DIGITS:
            if for_download:
                raise UserError("'digits' is scikit-learn's bundled data set: nothing to download; "
                                "give a folder with --data DIR")
            return DIGITS
        return Path(value).expanduser().resolve()
    user = user_data_dir()
    if for_download or _has_mnist(user):
        return user
    raise UserError(
        f"no MNIST data: no --data given, $LABML_DATA is not set and {user} holds no MNIST files; run "
        "`labml data download` (fills that folder), or pass --data DIR (or --data digits for "
        "scikit-learn's 8x8 digits)"
    )


def resolve_data(data: str | Path | None = None) -> str:
    """`resolve_data_dir` as a string for a run's parameters (an absolute folder, or "digits"), so
    that `labml resume` reads the same data whatever the environment then says."""
    return str(resolve_data_dir(data))


def load_mnist_arrays(folder: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """Raw MNIST: (train images uint8 (N,28,28), train labels, test images, test labels, description)."""
    files = find_mnist_files(folder)
    arrays = {k: read_idx(p) for k, p in files.items()}
    for split in ("train", "test"):
        im, lab = arrays[(split, "images")], arrays[(split, "labels")]
        if im.ndim != 3 or lab.ndim != 1:
            raise UserError(
                f"MNIST {split} files have shapes {im.shape} / {lab.shape}: expected (N, 28, 28) and (N,) "
                f"({files[(split, 'images')]}, {files[(split, 'labels')]})"
            )
        if len(im) != len(lab):
            raise UserError(
                f"MNIST {split} images and labels disagree: {len(im)} images in {files[(split, 'images')]}, "
                f"{len(lab)} labels in {files[(split, 'labels')]}"
            )
        if lab.size and (lab.min() < 0 or lab.max() > 9):
            raise UserError(f"MNIST labels in {files[(split, 'labels')]} outside 0..9")
    desc = f"{files[('train', 'images')].name} + {files[('test', 'images')].name} in {Path(folder)}"
    return (
        arrays[("train", "images")],
        arrays[("train", "labels")].astype(np.int64),
        arrays[("test", "images")],
        arrays[("test", "labels")].astype(np.int64),
        desc,
    )


def load_dataset(
    data: str | Path | None = None,
    *,
    preprocess_mode: str = "pool-threshold",
    val_fraction: float = 0.2,
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Load the data of `data` (resolved by `resolve_data_dir`: an MNIST folder, or "digits" for
    scikit-learn's 8x8 digits); preprocess and split.

    The training set is shuffled with `seed`; the first `train_size` images (all if None) are kept, and
    `val_fraction` of them become the validation split. The test set is the official one (MNIST) or a fixed
    25 % stratified split (digits, independent of `seed`), optionally cut to `test_size` (stratified).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"validation fraction must be in [0, 1), got {val_fraction}")
    folder = resolve_data_dir(data)
    if folder != DIGITS:
        tr_im, y_tr, te_im, y_te, desc = load_mnist_arrays(folder)
        X_tr = preprocess(tr_im.astype(np.float32) / 255.0, preprocess_mode)
        X_te = preprocess(te_im.astype(np.float32) / 255.0, preprocess_mode)
        side = tr_im.shape[1] // 2 if preprocess_mode == "pool-threshold" else tr_im.shape[1]
        name, shape = "mnist", (side, side)
    else:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        d = load_digits()
        images = d.images.astype(np.float32) / 16.0
        im_tr, im_te, y_tr, y_te = train_test_split(
            images, d.target.astype(np.int64), test_size=0.25, random_state=0, stratify=d.target
        )
        X_tr = preprocess(im_tr, preprocess_mode, pool=False)
        X_te = preprocess(im_te, preprocess_mode, pool=False)
        name, shape, desc = "digits", (8, 8), "scikit-learn load_digits (8x8), fixed 25 % test split"

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y_tr))
    if train_size is not None:
        if train_size <= 0 or train_size > len(order):
            raise UserError(
                f"--train-size {train_size} out of range: the training set holds {len(order)} images"
            )
        order = order[:train_size]
    n_val = int(round(val_fraction * len(order)))
    val_idx, tr_idx = order[:n_val], order[n_val:]
    if test_size is not None and test_size < len(y_te):
        X_te, y_te = stratified_subset(X_te, y_te, test_size, seed=0)
    logger.info("loaded %s: %d train, %d val, %d test", desc, len(tr_idx), len(val_idx), len(y_te))
    return Dataset(
        name=name,
        X_train=X_tr[tr_idx],
        y_train=y_tr[tr_idx],
        X_val=X_tr[val_idx],
        y_val=y_tr[val_idx],
        X_test=X_te,
        y_test=y_te,
        image_shape=shape,
        source=desc,
    )


def stratified_subset(
    X: np.ndarray, y: np.ndarray, size: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A class-stratified subset of `size` samples (seeded), order shuffled."""
    from sklearn.model_selection import train_test_split

    if size >= len(y):
        return X, y
    _, Xs, _, ys = train_test_split(X, y, test_size=size, random_state=seed, stratify=y)
    return Xs, ys


# ------------------------------------------------------------------------------------------------ download
def download_mnist(
    folder: str | Path,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    files: dict[str, str] | None = None,
    timeout_s: float = 60.0,
    force: bool = False,
) -> list[Path]:
    """Download the MNIST files into `folder`, trying each mirror in order; verify md5 of each file.

    A file already present with the right md5 is kept (unless `force`). A download with a wrong md5 is
    deleted and the next mirror is tried. Raises UserError when a file cannot be fetched from any mirror.
    `files` maps file name -> md5 (default: the official table `MNIST_MD5`).
    """
    import urllib.error
    import urllib.request

    files = dict(MNIST_MD5 if files is None else files)
    if not mirrors:
        raise UserError("no download mirrors given")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, md5 in files.items():
        target = folder / name
        if target.exists() and not force and md5sum(target) == md5:
            logger.info("%s present, md5 ok", target)
            out.append(target)
            continue
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            tmp = target.with_name(f".{name}.part")
            try:
                with urllib.request.urlopen(url, timeout=timeout_s) as resp, open(tmp, "wb") as fh:
                    while chunk := resp.read(1 << 16):
                        fh.write(chunk)
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
                tmp.unlink(missing_ok=True)
                continue
            got = md5sum(tmp)
            if got != md5:
                errors.append(f"{url}: md5 {got} != expected {md5}")
                tmp.unlink(missing_ok=True)
                continue
            os.replace(tmp, target)
            logger.info("downloaded %s (md5 ok)", url)
            out.append(target)
            break
        else:
            raise UserError(f"could not download {name}: " + "; ".join(errors))
    return out
