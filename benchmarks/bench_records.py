"""Run records at lab scale: write, reload and plot a long run through the run store's writer, against
the same rows as a CSV read by pandas (issue 16).

    PYTHONPATH=. nice -n 19 .venv/bin/python benchmarks/bench_records.py --points 16000000 --json

* write: a run folder made by `Run.create`, its series "trace" of 4 float64 columns of a realistic
  signal (time t_s at 1 MS/s, a triangular field ramp field_mT of +-20 mT, a noisy MR read-out
  signal_V switching at +-5 mT, the ramp step index) appended with `Run.append_columns` (blocks of
  --block rows: one journal record per block, the same journal and merge as `append_rows`), a merge
  into run.h5 every --commit-every rows (what a checkpoint does) and `Run.finish` (the last merge). Per-row
  `append_rows` calls are measured on --row-api-points rows and reported as rows/s (16 M Python calls
  would take minutes: that is why the block method exists).
* reload: `labml.open_run(RUN).dataset("trace")`, every value of every column into numpy arrays
  (checked equal to the rows written: sums and the last block compared exactly).
* plot: the read-out column decimated to min/max per pixel for a 2,000-pixel view
  (`labml.plotdata.decimate_minmax`), read lazily from run.h5.
* CSV: the same rows as a pymeasure Results CSV ('#' header, then the columns) written with
  `DataFrame.to_csv` block by block (the fastest CSV writer at hand; the old store's per-row
  csv.DictWriter is slower), read back with `pandas.read_csv(comment="#")`.

Both files are read --repeats times, interleaved (run.h5, CSV, plot, ...), and the fastest of each is
reported (all are in the JSON). The last stdout line
is one JSON object: points, columns, codec, block, write_s, reload_s, plot_s, bytes (run.h5),
journal_bytes, csv_write_s, csv_reload_s, csv_plot_s, csv_bytes, reload_speedup (csv_reload_s /
reload_s), the medians and every repeat, alloc_all_s (allocating and filling 4 arrays of that size
alone, before each repeat: the machine's floor), row_api_rows_per_s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RATE_HZ = 1e6  # samples per second of the simulated acquisition
RAMP_POINTS = 200_000  # points per ramp (up or down) of the triangular field
FIELD_MAX_MT = 20.0
HC_MT = 5.0
COLUMNS = ("t_s", "field_mT", "signal_V", "step")


def block(start: int, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Rows [start, start + n) of the signal: float64 columns, every value a function of its index
    (the noise from a generator seeded by the block's start)."""
    i = np.arange(start, start + n, dtype=np.int64)
    step = i // RAMP_POINTS
    frac = (i % RAMP_POINTS) / RAMP_POINTS
    up = step % 2 == 0
    field = np.where(up, -FIELD_MAX_MT + 2 * FIELD_MAX_MT * frac, FIELD_MAX_MT - 2 * FIELD_MAX_MT * frac)
    switched = np.where(up, field > HC_MT, field > -HC_MT)
    noise = np.random.default_rng([seed, start]).normal(0.0, 0.02, n)
    signal = 0.45 + 0.01 * np.where(switched, 1.0, -1.0) + noise
    return {"t_s": i / RATE_HZ, "field_mT": field, "signal_V": signal, "step": step.astype(np.float64)}


def blocks(points: int, size: int):
    for start in range(0, points, size):
        yield block(start, min(size, points - start))


def write_run(folder: Path, points: int, size: int, commit_every: int) -> tuple[float, dict]:
    from labml.runs import store

    sums = dict.fromkeys(COLUMNS, 0.0)
    t0 = time.perf_counter()
    run = store.Run.create("bench-records", {"points": points, "rate_Hz": RATE_HZ}, folder)
    since = 0
    for cols in blocks(points, size):
        run.append_columns("trace", cols)
        for c in COLUMNS:
            sums[c] += float(cols[c].sum())
        since += len(cols["t_s"])
        if since >= commit_every:
            run.series_sizes()  # what a checkpoint does: journal fsync'd and merged into run.h5
            since = 0
    run.finish("success")  # the last merge
    return time.perf_counter() - t0, sums


def write_csv(path: Path, points: int, size: int) -> float:
    import pandas as pd

    from labml.runs.store import DEFAULT_PROCEDURE, _results_header

    t0 = time.perf_counter()
    with open(path, "w", newline="") as fh:
        fh.write(_results_header(DEFAULT_PROCEDURE, {"points": points, "rate_Hz": RATE_HZ}))
        first = True
        for cols in blocks(points, size):
            pd.DataFrame(cols).to_csv(fh, index=False, header=first, lineterminator="\n")
            first = False
    return time.perf_counter() - t0


def reload_run(folder: Path) -> tuple[float, dict[str, np.ndarray]]:
    import labml

    t0 = time.perf_counter()
    with labml.open_run(folder) as run:
        ds = run.dataset("trace")
        arrays = {c: np.asarray(ds[c].values) for c in COLUMNS}
    return time.perf_counter() - t0, arrays


def plot_run(folder: Path, pixels: int) -> tuple[float, int]:
    import labml
    from labml.plotdata import decimate_minmax

    t0 = time.perf_counter()
    with labml.open_run(folder) as run:
        ds = run.dataset("trace")
        x, y = decimate_minmax(ds["t_s"].values, ds["signal_V"].values, pixels)
    return time.perf_counter() - t0, len(y)


def row_api_rate(folder: Path, points: int) -> float:
    """Rows per second through per-row `append_rows` calls (one row per call, as a protocol step)."""
    from labml.runs import store

    cols = block(0, points)
    values = zip(*(cols[c].tolist() for c in COLUMNS), strict=True)
    rows = [dict(zip(COLUMNS, r, strict=True)) for r in values]
    run = store.Run.create("bench-records-rows", {}, folder)
    t0 = time.perf_counter()
    for r in rows:
        run.append_rows("trace", [r])
    run.finish("success")
    return points / (time.perf_counter() - t0)


def alloc_floor(points: int) -> float:
    """Seconds to allocate and fill the 4 result arrays alone (no file): the machine's floor for any
    reload, and what varies most when other jobs share the memory (page faults, huge-page compaction)."""
    t0 = time.perf_counter()
    arrays = [np.ones(points) for _ in COLUMNS]
    t = time.perf_counter() - t0
    del arrays
    return t


def reload_csv(path: Path, sums: dict, args: argparse.Namespace) -> tuple[float, float]:
    """(seconds to read every column of the CSV into numpy arrays, seconds to that plus the plot)."""
    import pandas as pd

    from labml.plotdata import decimate_minmax

    t0 = time.perf_counter()
    df = pd.read_csv(path, comment="#")
    arrays = {c: df[c].to_numpy() for c in COLUMNS}
    t1 = time.perf_counter()
    decimate_minmax(arrays["t_s"], arrays["signal_V"], args.pixels)
    t2 = time.perf_counter()
    check(arrays, sums, args.points, args.block)
    return t1 - t0, t2 - t0


def check(arrays: dict[str, np.ndarray], sums: dict, points: int, size: int) -> None:
    last = (points - 1) // size * size
    want = block(last, points - last)
    for c in COLUMNS:
        a = arrays[c]
        assert a.shape == (points,) and a.dtype == np.float64, (c, a.shape, a.dtype)
        assert np.array_equal(a[last:], want[c]), f"{c}: last block differs"
        assert np.isclose(a.sum(), sums[c], rtol=1e-9, atol=1e-6), (c, a.sum(), sums[c])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--points", type=int, default=16_000_000, help="rows of the run (default 16 M)")
    ap.add_argument("--block", type=int, default=1_000_000, help="rows per append_columns call")
    ap.add_argument("--commit-every", type=int, default=4_000_000, help="rows between merges (checkpoints)")
    ap.add_argument("--codec", choices=["none", "lzf"], default=None,
                    help="run.h5 codec (default: the store's)")
    ap.add_argument("--pixels", type=int, default=2000, help="width of the plotted view")
    ap.add_argument("--row-api-points", type=int, default=100_000, help="rows written one call each")
    ap.add_argument("--repeats", type=int, default=2,
                    help="reloads of each file (interleaved; the fastest is reported)")
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp folder, removed)")
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    args = ap.parse_args(argv)

    import labml.runs.analysis  # noqa: F401 - imports (xarray, h5py) are paid once per session, not timed
    from labml.runs import records

    if args.codec is not None:
        records.CODEC = None if args.codec == "none" else args.codec
    work = Path(tempfile.mkdtemp(prefix="bench_records-", dir=args.dir))
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    try:
        run_dir, csv_file = work / "run", work / "trace.csv"
        write_s, sums = write_run(run_dir, args.points, args.block, args.commit_every)
        say(f"run.h5 written in {write_s:.2f} s")
        csv_write_s = write_csv(csv_file, args.points, args.block)
        say(f"CSV written in {csv_write_s:.2f} s")
        reloads, csv_reloads, plots, csv_plots, allocs = [], [], [], [], []
        for _ in range(args.repeats):  # interleaved, so that load from other jobs hits both alike
            allocs.append(alloc_floor(args.points))
            t, arrays = reload_run(run_dir)
            check(arrays, sums, args.points, args.block)
            del arrays
            reloads.append(t)
            t, csv_plot = reload_csv(csv_file, sums, args)
            csv_reloads.append(t)
            csv_plots.append(csv_plot)
            t, n_plotted = plot_run(run_dir, args.pixels)
            plots.append(t)
            say(f"reload run.h5 {reloads[-1]:.3f} s, CSV {csv_reloads[-1]:.3f} s; plot {plots[-1]:.3f} s; "
                f"allocating and filling the arrays alone {allocs[-1]:.3f} s")
        reload_s, csv_reload_s = min(reloads), min(csv_reloads)
        plot_s, csv_plot_s = min(plots), min(csv_plots)
        rate = row_api_rate(work / "rows", args.row_api_points)
        out = {
            "points": args.points, "columns": len(COLUMNS), "codec": records.CODEC or "none",
            "block": args.block, "commit_every": args.commit_every,
            "write_s": round(write_s, 3), "reload_s": round(reload_s, 3), "plot_s": round(plot_s, 3),
            "plot_points": n_plotted, "bytes": (run_dir / records.RECORDS_FILE).stat().st_size,
            "journal_bytes": (run_dir / records.JOURNAL_FILE).stat().st_size,
            "csv_write_s": round(csv_write_s, 3), "csv_reload_s": round(csv_reload_s, 3),
            "csv_plot_s": round(csv_plot_s, 3), "csv_bytes": csv_file.stat().st_size,
            "reload_speedup": round(csv_reload_s / reload_s, 1), "repeats": args.repeats,
            "reload_median_s": round(float(np.median(reloads)), 3),
            "csv_reload_median_s": round(float(np.median(csv_reloads)), 3),
            "reload_all_s": [round(t, 3) for t in reloads],
            "csv_reload_all_s": [round(t, 3) for t in csv_reloads],
            "plot_all_s": [round(t, 3) for t in plots], "alloc_all_s": [round(t, 3) for t in allocs],
            "row_api_rows_per_s": round(rate),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
