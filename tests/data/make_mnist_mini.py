"""Build tests/data/mnist-mini/, the small MNIST fixture of the test suite, from a full MNIST folder.

    python tests/data/make_mnist_mini.py SOURCE_DIR [--out tests/data/mnist-mini]

SOURCE_DIR holds MNIST in the standard IDX format (read by labml.data, the package's only MNIST
reader): the official 60k training files or the 5k training subset (train-5k-*), and the official
10k test files. The fixture was made from the 5k subset and the official test set (see its README).

What it writes: the four files under their official names (gzipped IDX, gzip time stamp 0):

- train-images-idx3-ubyte.gz / train-labels-idx1-ubyte.gz: TRAIN_PER_CLASS images of each digit
  drawn from the source's training set;
- t10k-images-idx3-ubyte.gz / t10k-labels-idx1-ubyte.gz: TEST_PER_CLASS images of each digit drawn
  from the official test set (disjoint from the training images, as in MNIST itself).

Deterministic: the draw (per class, without replacement) and the final shuffle of each split come from
numpy.random.default_rng(SEED); the same source gives byte-identical files (their md5s are printed and
listed in the fixture's README).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # the repository's labml, when run as a script

from labml.data import MNIST_FILES, find_mnist_files, read_idx, write_idx  # noqa: E402

TRAIN_PER_CLASS = 80
TEST_PER_CLASS = 20
SEED = 20261205


def balanced_subset(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `per_class` items of each of the classes 0..9 (drawn without replacement), shuffled."""
    picks = []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        if len(idx) < per_class:
            raise SystemExit(f"the source holds only {len(idx)} images of digit {c}; {per_class} needed")
        picks.append(np.sort(rng.choice(idx, per_class, replace=False)))
    return rng.permutation(np.concatenate(picks))


def build(source: Path, out: Path) -> dict[str, str]:
    files = find_mnist_files(source)
    rng = np.random.default_rng(SEED)
    out.mkdir(parents=True, exist_ok=True)
    md5 = {}
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        images, labels = read_idx(files[(split, "images")]), read_idx(files[(split, "labels")])
        take = balanced_subset(labels, per_class, rng)
        for kind, array in (("images", images[take]), ("labels", labels[take])):
            path = out / (MNIST_FILES[(split, kind)] + ".gz")
            write_idx(path, array)
            md5[path.name] = hashlib.md5(path.read_bytes()).hexdigest()
    return md5


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="folder with the MNIST IDX files")
    ap.add_argument("--out", type=Path, default=HERE / "mnist-mini", help="output folder")
    args = ap.parse_args(argv)
    for name, digest in build(args.source, args.out).items():
        print(f"{digest}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
