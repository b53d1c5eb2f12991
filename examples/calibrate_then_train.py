"""A depinning calibration fed into an in-the-loop training, on one rig (docs/scripting.md).

    python examples/calibrate_then_train.py [--rig sim] [--reads 100] [--epochs 6] [--train-size 300]

1. Measure wire 0's depinning probability P_pass(H) on a field grid and fit the logistic
   p(H) = a / (1 + exp(-k (H - H0))) (kind "depinning-calibration").
2. Give the fit to the rig (`rig.set_calibration`), so the training's field planner drives the wire
   with the calibration just measured instead of the stored one.
3. Train a stochastic-synapse network whose every synapse read is a device read on that rig
   (kind "train-synapses", backend "rig"; $LABML_DATA, e.g. "digits" for scikit-learn's 8x8 digits).

Both runs are recorded in run folders under the runs root ($LABML_RUNS, else ./runs). The last
stdout line is one JSON object: the fitted H0, k, a (with errors) and the training's test accuracy.
"""

from __future__ import annotations

import argparse
import json

import labml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rig", default="sim", help="rig config TOML, or 'sim'")
    ap.add_argument("--reads", type=int, default=100, help="reads per field of the calibration")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--train-size", type=int, default=300)
    ap.add_argument("--lr", type=float, default=0.05, help="Adam learning rate")
    args = ap.parse_args()

    from instruments.calibration import Logistic

    with labml.open_rig(args.rig) as rig:
        cal = labml.run("depinning-calibration", rig=rig, wire=0, reads=args.reads, field_points=9,
                        field_start="2 mT", field_stop="8 mT", write_calibration=False)
        fit = cal.meta["results"]
        print(f"wire 0: H0 = {fit['H0']:.3f} +- {fit['H0_err']:.3f} mT, k = {fit['k']:.3f} /mT, "
              f"a = {fit['a']:.3f}  ({cal.path})")
        rig.set_calibration(0, Logistic(H0=fit["H0"], k=fit["k"], a=fit["a"]))
        epochs: list[dict] = []
        train = labml.run("train-synapses", rig=rig, backend="rig", n=1, epochs=args.epochs,
                          train_size=args.train_size, test_size=200, test_passes=2, patience=0, lr=args.lr,
                          on_row=epochs.append)
        for row in epochs:
            print(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}, "
                  f"val accuracy {row['val_accuracy']:.3f}")
    acc = train.meta["results"]["test_accuracy"]
    print(f"test accuracy {acc:.3f} after {len(epochs)} epochs on the rig  ({train.path})")
    print(json.dumps({"H0_mT": fit["H0"], "H0_err_mT": fit["H0_err"], "k_per_mT": fit["k"], "a": fit["a"],
                      "test_accuracy": acc, "epochs": len(epochs), "coil_at_zero": rig.coil_at_zero,
                      "calibration_run": str(cal.path), "training_run": str(train.path)}))


if __name__ == "__main__":
    main()
