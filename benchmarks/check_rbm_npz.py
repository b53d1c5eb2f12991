"""Check a reported RBM test log-likelihood independently: numpy alone, no labml.

    python benchmarks/check_rbm_npz.py MODEL.npz BINARISED.npz [N] [stochastic|threshold]

MODEL.npz as bench_mnist_rbm.py writes it (its `doc` entry states the convention); the bit form is
used here: log p(x) = c01 . x + sum_j softplus(d01_j + (x W01)_j) - log_Z01, with log_Z01 from the
run's forward AIS. BINARISED.npz: the saved binarised set the run names in its config.json (its
images stored bit-packed along the pixel axis, `n_pixels` per image). N: the first N test images
only, as the benchmark's --n-test (0: all). Prints the mean test log-likelihood in nats per image of
the binarisation the model was trained on (default stochastic).
"""

import sys

import numpy as np


def main(model_path: str, binarised_path: str, n: int | None = None,
         binarisation: str = "stochastic") -> float:
    m = np.load(model_path, allow_pickle=False)
    with np.load(binarised_path, allow_pickle=False) as f:
        x = np.unpackbits(f[f"test_{binarisation}"], axis=1)[:n, : int(f["n_pixels"])]
    x = x.astype(np.float64)
    logp = x @ m["c01"] + np.logaddexp(0.0, m["d01"] + x @ m["W01"]).sum(1) - float(m["log_Z01"])
    return float(logp.mean())


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4, 5):
        sys.exit(__doc__.strip().splitlines()[2].strip())
    args = sys.argv[1:3] + [int(sys.argv[3]) or None if len(sys.argv) > 3 else None] + sys.argv[4:]
    try:
        print(f"test log-likelihood {main(*args):.2f} nats per image")
    except (OSError, KeyError, ValueError) as exc:  # a missing, foreign or corrupt file: one line
        sys.exit(f"error: {' / '.join(sys.argv[1:3])}: not a model file and a binarised set ({exc})")
