"""`labml data download` (MNIST with md5 checks) and `labml data info` (what a data folder holds).

labml data download                                    # into the user data folder every command reads
labml data download --data ~/mnist                     # the four official files, md5-checked
labml data download --data ~/mnist --mirror http://127.0.0.1:8000/   # own mirror(s), tried in order
labml data info --data ~/mnist --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "data", allow_abbrev=False, help="data sets: download MNIST, show what a data folder holds"
    )
    sub = p.add_subparsers(dest="data_what", metavar="WHAT")
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])

    d = sub.add_parser(
        "download",
        allow_abbrev=False,
        help="download the four official MNIST files (md5-checked) into a folder",
        description="Download train/t10k images and labels (gzipped IDX) into DIR, trying each mirror in "
        "order; each file's md5 is checked, a wrong one is deleted and the next mirror tried. Files already "
        "present with the right md5 are kept. Mirrors: --mirror (repeatable) or $LABML_MNIST_MIRRORS "
        "(comma-separated), else the built-in list.",
    )
    d.add_argument("--data", default=None, metavar="DIR",
                   help="target folder (default $LABML_DATA, else the user data folder that every command "
                   "reads by default, platformdirs.user_data_dir('labml')/mnist)")
    d.add_argument(
        "--mirror", action="append", default=None, metavar="URL", help="mirror base URL (repeatable)"
    )
    d.add_argument("--timeout", type=float, default=60.0, help="per-request timeout in s (default 60)")
    d.add_argument(
        "--force", action="store_true", help="download again even if a file with the right md5 exists"
    )
    d.add_argument("--json", action="store_true", help="print one JSON object last on stdout")
    d.set_defaults(func=cmd_download)

    i = sub.add_parser(
        "info",
        allow_abbrev=False,
        help="load a data set and print its sizes (MNIST folder or the built-in digits)"
    )
    i.add_argument(
        "--data", default=None, metavar="DIR",
        help="MNIST folder or 'digits' (default $LABML_DATA, else the user data folder)"
    )
    i.add_argument("--preprocess", choices=("pool-threshold", "threshold", "none"), default="pool-threshold")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)


def cmd_download(args: argparse.Namespace) -> int:
    from labml.checks import check_float
    from labml.data import MNIST_MIRRORS, download_mnist, resolve_data_dir

    check_float("--timeout", args.timeout, 0.0, lo_open=True, unit="s")
    folder = resolve_data_dir(args.data, for_download=True)
    mirrors = args.mirror
    if not mirrors and os.environ.get("LABML_MNIST_MIRRORS"):
        mirrors = [m.strip() for m in os.environ["LABML_MNIST_MIRRORS"].split(",") if m.strip()]
    mirrors = mirrors or list(MNIST_MIRRORS)
    paths = download_mnist(folder, mirrors=mirrors, timeout_s=args.timeout, force=args.force)
    for p in paths:
        print(f"ok {p}", file=sys.stderr)
    if args.json:
        print(json.dumps({"data": str(folder), "files": [str(p) for p in paths]}))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from labml.data import load_dataset

    ds = load_dataset(args.data, preprocess_mode=args.preprocess)
    summary = ds.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k:12s} {v}")
    return 0
