"""A sweep of depinning calibrations analysed with xarray (docs/scripting.md).

    python examples/sweep_xarray.py [--reads 20,40,80] [--field-points 7] [--workers 0]

Runs the depinning calibration of wire 0 once per number of reads per field (`labml.sweep`: one
resumable sweep folder, one run folder per point, each on its own simulated rig), then gathers every
point's measured P_pass(H) into one xarray.Dataset with dimensions (reads, field) and the fitted H0
and its error per point, and checks the statistics: the error of H0 falls like 1/sqrt(reads).

Each point's series is read as the xarray.Dataset of its run record
(``labml.open_run(path).dataset("data")``, lazy over run.h5, units as attributes). The last stdout
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import xarray as xr

import labml


def point_dataset(run) -> xr.Dataset:
    """One point's P_pass against the field, as an xarray.Dataset indexed by the field, from the
    run record's own dataset (one variable per column along "row", with units)."""
    data = labml.open_run(run.path).dataset("data")
    field = data["Field (mT)"].values.astype(float)
    passes = data["Passes"].values.astype(int)
    reads = data["Reads"].values.astype(int)
    return xr.Dataset(
        {"p_pass": ("field", passes / reads, {"units": "1", "long_name": "depinning probability"}),
         "passes": ("field", passes, {"units": "1"})},
        coords={"field": ("field", field, {"units": "mT"})},
    ).sortby("field")  # the protocol measures the fields in a shuffled order


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", default="20,40,80", help="reads per field, comma-separated")
    ap.add_argument("--field-points", type=int, default=7)
    ap.add_argument("--workers", type=int, default=0, help="local worker processes (0: here)")
    ap.add_argument("--sweep-dir", default=None)
    args = ap.parse_args()
    reads = [int(r) for r in args.reads.split(",")]

    runs = labml.sweep("depinning-calibration", {"reads": reads}, wire=0, field_points=args.field_points,
                       field_start="2 mT", field_stop="8 mT", write_calibration=False,
                       workers=args.workers, sweep_dir=args.sweep_dir)
    ds = xr.concat([point_dataset(r) for r in runs], dim=xr.DataArray(reads, dims="reads", name="reads"))
    ds["H0"] = ("reads", [r.meta["results"]["H0"] for r in runs], {"units": "mT"})
    ds["H0_err"] = ("reads", [r.meta["results"]["H0_err"] for r in runs], {"units": "mT"})
    # the estimate's error falls like 1/sqrt(reads): H0_err * sqrt(reads) is about constant
    scaled = (ds["H0_err"] * np.sqrt(ds["reads"])).values
    mean_p = ds["p_pass"].mean("reads")
    print(ds)
    print(f"H0 = {', '.join(f'{h:.3f}' for h in ds['H0'].values)} mT for reads = {reads}")
    print(f"H0_err * sqrt(reads) = {', '.join(f'{s:.3f}' for s in scaled)} mT")
    print(json.dumps({"reads": reads, "H0_mT": ds["H0"].values.tolist(),
                      "H0_err_mT": ds["H0_err"].values.tolist(),
                      "field_mT": ds["field"].values.tolist(), "mean_p_pass": mean_p.values.tolist(),
                      "dims": dict(ds.sizes), "field_units": ds["field"].attrs["units"],
                      "err_ratio_max_min": (float(max(scaled) / min(scaled)) if min(scaled) > 0
                                            else math.inf)}))


if __name__ == "__main__":
    main()
