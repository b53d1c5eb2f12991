"""Check a reported ClassRBM test accuracy independently: numpy alone, no labml.

    python benchmarks/check_classrbm_npz.py MODEL.npz MNIST_DIR [N]

MODEL.npz as bench_mnist_classrbm.py writes it (its `doc` entry states the convention): W (784, H),
U (10, H), b (H,), d (10,), temperature T; pixels as spins 2x - 1 of the image thresholded at 0.5.
MNIST_DIR holds the official t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (N: the first
N test images only, as the benchmark's --n-test). Prints the test accuracy of
argmax_c [d_c + T sum_j log(2 cosh((b + v W + U_c)_j / T))].
"""

import gzip
import sys
import zipfile
from pathlib import Path

import numpy as np


def idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path) as fh:
        return np.frombuffer(fh.read(), np.uint8, offset=offset)


def main(model_path: str, mnist_dir: str, n: int | None = None) -> float:
    m = np.load(model_path, allow_pickle=False)
    d = Path(mnist_dir)
    x = idx(d / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784) / 255.0
    y = idx(d / "t10k-labels-idx1-ubyte.gz", 8)
    return accuracy(m, x[:n], y[:n])


def accuracy(m, x: np.ndarray, y: np.ndarray) -> float:
    """The model's accuracy on images x (intensities in [0, 1] or 0/1 bits) with labels y."""
    v = np.where(x > 0.5, 1.0, -1.0)
    T = float(m["temperature"])
    pre = v @ m["W"] + m["b"]
    logits = np.stack([m["d"][c] + T * np.logaddexp((pre + m["U"][c]) / T, -(pre + m["U"][c]) / T).sum(1)
                       for c in range(m["U"].shape[0])], axis=1)
    return float((logits.argmax(1) == y).mean())


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.strip().splitlines()[2].strip())
    try:
        print(f"test accuracy {main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])):.4f}")
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # a missing, foreign or corrupt file, or a bad N: one line, no traceback
        sys.exit(f"error: {' '.join(sys.argv[1:])}: {exc}")
