"""`labml plot RUN [--series NAME] [--x COL] [--y COL[,COL...]] [--out FILE]`: one series of a run
folder drawn to a PNG with matplotlib (labml.figures), whatever the run's kind.

    labml plot runs/20261206-054958-protocol-hysteresis-87f73c            # Signal against Field (mT)
    labml plot RUN --x "Field set (mT)" --y Signal --out loop.png
    labml plot RUN --series epochs --x epoch --y train_loss,val_loss

The columns default as in the dashboard's Series panel (labml.plotdata): x the field, epoch, step or
time column, y the column after it. A hysteresis series is drawn as its up and down branches. A long
series is drawn min/max-decimated per pixel column of the figure (labml.plotdata.decimate_minmax,
as the dashboard draws it), so every extreme of every pixel column is in the picture. Only the
run's CSV files are read (nothing in the folder is executed). The default output is
RUN/figures/<series>_<y>_vs_<x>.png.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from labml.errors import UserError, did_you_mean

#: Pixel columns of the figure's plot area at its default size (6 in x 150 dpi), the decimation's buckets.
PIXELS = 900
#: The series `labml plot` shows when the run has several and none is named.
PREFERRED_SERIES = ("data", "epochs", "metrics")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "plot", allow_abbrev=False, help="draw a series of a run folder to a PNG (matplotlib)",
        description="Draw one series (CSV) of a run folder to a PNG: x and y columns chosen or defaulted "
        "(field, epoch, step or time on x), SI units from the column names, long series "
        "min/max-decimated per pixel.")
    p.add_argument("run", help="run folder (a path, or a folder name under the runs root)")
    p.add_argument("--series", default=None, help="series of the run (default: data, epochs or metrics)")
    p.add_argument("--x", default=None, metavar="COL", help="x column (default: field, epoch, step or time)")
    p.add_argument("--y", default=None, metavar="COL[,COL...]", help="y column(s) (default: the one after x)")
    p.add_argument("--out", default=None, metavar="FILE.png",
                   help="output PNG (default RUN/figures/<series>_<y>_vs_<x>.png)")
    p.set_defaults(func=cmd_plot)


def _choose_series(run, name: str | None) -> str:
    names = run.series_names()
    if name is not None:
        if name not in names:
            raise UserError(f"labml plot --series {name!r}: {run.path} has no series {name!r}; series: "
                            f"{', '.join(names) or 'none'}{did_you_mean(name, names)}")
        return name
    if not names:
        raise UserError(f"labml plot: {run.path} has no series to plot")
    return next((n for n in PREFERRED_SERIES if n in names), names[0])


def _column(rows: list[dict], header: list[str], name: str, option: str, where: Path):
    import numpy as np

    if name not in header:
        raise UserError(f"labml plot {option} {name!r}: not a column of {where}; columns: "
                        f"{', '.join(header)}{did_you_mean(name, header)}")
    try:
        return np.array([float(r[name]) if r[name] not in ("", None) else np.nan for r in rows])
    except (TypeError, ValueError):
        raise UserError(f"labml plot {option} {name!r}: the column of {where} holds text, not numbers") \
            from None


def _curves(rows, header, xkey, ykey, where):
    """[(label, x, y)]: the up and down branches of a hysteresis series, else one curve."""
    from labml import plotdata

    x = _column(rows, header, xkey, "--x", where)
    y = _column(rows, header, ykey, "--y", where)
    if "Branch" in header and plotdata.column(xkey).unit == "T":
        loop = _column(rows, header, "Loop", "--x", where) if "Loop" in header else None
        up = plotdata.hysteresis_up(x, loop, [r["Branch"] for r in rows])
        return [(f"{ykey}, {name}", bx, by) for name, bx, by in plotdata.branch_curves(x, y, up, loop)]
    return [(ykey, x, y)]


def _label(name: str, meta: dict) -> str:
    """Axis label: the column's quantity and unit; a bare read-out 'Signal' gets the run's
    recorded `signal_unit` (V for MOKE, ohm for MR)."""
    from labml import plotdata

    unit = (meta.get("results") or {}).get("signal_unit")
    if name.lower() == "signal" and isinstance(unit, str) and unit:
        return f"{name} ({unit})"
    return plotdata.axis_label(name)


def _default_out(run_path: Path, series: str, xkey: str, ykeys: list[str]) -> Path:
    def slug(s: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_") or "col"

    return run_path / "figures" / f"{slug(series)}_{slug('+'.join(ykeys))}_vs_{slug(xkey)}.png"


def cmd_plot(args: argparse.Namespace) -> int:
    from labml import figures, plotdata
    from labml.runs.store import load, read_series, resolve_run_dir

    run = load(resolve_run_dir(args.run))
    series = _choose_series(run, args.series)
    where = run.path / series
    rows = read_series(run.path, series)
    header = [h for h in (list(rows[0]) if rows else []) if h]
    if not rows:
        raise UserError(f"labml plot: {where} has no rows yet")
    xkey = args.x or plotdata.default_x(header)
    ykeys = [y.strip() for y in args.y.split(",") if y.strip()] if args.y else \
        [next((h for h in header[header.index(xkey) + 1:] + header if h != xkey), xkey)]
    curves = [c for ykey in ykeys for c in _curves(rows, header, xkey, ykey, where)]
    n = max(len(c[1]) for c in curves)
    drawn = [(label, *plotdata.decimate_minmax(x, y, PIXELS)) if len(x) > 2 * PIXELS else (label, x, y)
             for label, x, y in curves]
    out = Path(args.out) if args.out else _default_out(run.path, series, xkey, ykeys)
    if out.suffix.lower() != ".png":
        raise UserError(f"labml plot --out {str(out)!r}: the file name must end in .png")
    if args.out is None:
        out.parent.mkdir(exist_ok=True)  # RUN/figures
    elif not out.parent.is_dir():
        raise UserError(f"labml plot --out {str(out)!r}: folder {str(out.parent)!r} does not exist")
    title = f"{run.path.name}: {series}" + (f" ({n} rows, min/max per pixel)" if n > 2 * PIXELS else "")
    ylabel = ", ".join(_label(y, run.meta) for y in ykeys)
    figures.save(figures.series(_label(xkey, run.meta), ylabel, drawn, title), out)
    print(f"figure: {out}")
    return 0
