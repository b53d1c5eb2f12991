"""Check a reported RBM test log-likelihood independently: numpy alone, no labml.

    python benchmarks/check_rbm_npz.py MODEL.npz BINARISED.npz [N]

MODEL.npz as bench_mnist_rbm.py writes it (its `doc` entry states the convention); the bit form is
used here: log p(x) = c01 . x + sum_j softplus(d01_j + (x W01)_j) - log_Z01, with log_Z01 from the
run's forward AIS. BINARISED.npz: the saved binarised set the run was trained on (its images stored
bit-packed along the pixel axis, `n_pixels` per image); the model's `data_sha256` must match the
set's `content_sha256`, and the model's `binarisation` picks the test images (a model written
before these entries existed: stochastic, unchecked, said on stderr). N: the first N test images
only, as the benchmark's --n-test. Prints the mean test log-likelihood in nats per image.
"""

import sys
import zipfile

import numpy as np


def main(model_path: str, binarised_path: str, n: int | None = None) -> float:
    m = np.load(model_path, allow_pickle=False)
    missing = sorted({"W01", "c01", "d01", "log_Z01"} - set(m.files))
    if missing:
        raise KeyError(f"not an RBM model of bench_mnist_rbm.py (no {', '.join(missing)})")
    with np.load(binarised_path, allow_pickle=False) as f:
        if "data_sha256" in m.files:
            if str(m["data_sha256"]) != str(f["content_sha256"]):
                raise ValueError(f"the model was trained on the binarised set {str(m['data_sha256'])[:12]}"
                                 f"..., {binarised_path} is {str(f['content_sha256'])[:12]}...")
            binarisation = str(m["binarisation"])
        else:
            binarisation = "stochastic"
            print(f"note: {model_path} names no data set; its training set is not checked", file=sys.stderr)
        x = np.unpackbits(f[f"test_{binarisation}"], axis=1)[:n, : int(f["n_pixels"])]
    x = x.astype(np.float64)
    logp = x @ m["c01"] + np.logaddexp(0.0, m["d01"] + x @ m["W01"]).sum(1) - float(m["log_Z01"])
    return float(logp.mean())


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.strip().splitlines()[2].strip())
    try:
        n = int(sys.argv[3]) if len(sys.argv) == 4 else None
        print(f"test log-likelihood {main(sys.argv[1], sys.argv[2], n):.2f} nats per image")
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # a missing, foreign, corrupt or mismatched file, or a bad N: one line, no traceback
        sys.exit(f"error: {' '.join(sys.argv[1:])}: {exc}")
