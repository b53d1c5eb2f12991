"""`labml export RUN --csv`: a run's series as pymeasure Results CSV files (for tools that read CSV)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        allow_abbrev=False,
        help="write a run's series as pymeasure Results CSV files",
        description="Write every series of RUN (run.h5 and its journal, or an old CSV run folder) as "
        "<series>.csv in pymeasure's Results format (a '#' header naming the Procedure and the run's "
        "parameters, a column line, the rows), so that pymeasure.experiment.Results.load and other CSV "
        "tools read it. Nothing in the run folder is changed but the export folder.",
    )
    p.add_argument("run_dir", help="the run folder (a path, or a folder name under the runs root)")
    p.add_argument("--csv", action="store_true", required=True,
                   help="CSV in pymeasure's Results format (the one export format)")
    p.add_argument("--out", default=None, metavar="DIR", help="folder for the CSV files (default RUN/csv)")
    p.add_argument("--json", action="store_true", help="print the files written as a JSON list")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from labml.runs import store as runs

    files = runs.export_csv(runs.resolve_run_dir(args.run_dir), args.out)
    if args.json:
        print(json.dumps([str(f) for f in files]))
    else:
        for f in files:
            print(f)
    return 0
