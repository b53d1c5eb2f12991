"""`labml gui`: the Qt dashboard (gui package), or a screenshot of one of its views."""

from __future__ import annotations

import argparse

VIEW_NAMES = ("rig", "launcher", "live", "runs", "log", "training", "histogram", "class-maps",
              "calibration", "hysteresis", "bm-samples", "samplers")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gui",
        allow_abbrev=False,
        help="the lab dashboard (rig panel, protocol launcher, live plots, run browser)",
        description="Start the Qt dashboard. With --screenshot, connect to the rig, produce real data for "
        "the chosen view (a small job on the rig where the view needs one), save it as PNG and exit.",
    )
    p.add_argument("--rig", default=None, metavar="FILE|sim",
                   help="rig to connect to at start (a rig config TOML, or 'sim': built-in simulated rig)")
    p.add_argument("--runs", default=None, metavar="DIR", help="run store shown in the run browser "
                   "(default: labml --runs-root DIR, else the one used last time, else $LABML_RUNS, "
                   "else ./runs)")
    p.add_argument("--screenshot", default=None, metavar="FILE", help="render a view to this PNG and exit")
    p.add_argument("--view", default="rig", choices=VIEW_NAMES, help="view for --screenshot (default rig)")
    p.add_argument("--size", default="1366x768", metavar="WxH",
                   help="window size for --screenshot in pixels (default 1366x768; e.g. 1920x1080)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from labml.errors import UserError

    if args.screenshot and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.screenshot and not args.screenshot.lower().endswith(".png"):
        raise UserError(f"--screenshot {args.screenshot!r}: the file name must end in .png")
    try:
        width, height = (int(v) for v in str(args.size).lower().split("x"))
        if not (320 <= width <= 10_000 and 240 <= height <= 10_000):
            raise ValueError
    except ValueError:
        raise UserError(f"--size {args.size!r}: expected WIDTHxHEIGHT in pixels, e.g. 1366x768") from None
    if args.rig:
        from labml.rigs import rig_config

        rig_config(args.rig)  # a bad rig file is a one-line error (file, key, problem) before any window
    from gui.app import main

    rc = main(rig=args.rig, screenshot=args.screenshot, view=args.view,
              runs_root=args.runs or getattr(args, "runs_root", None), size=(width, height))
    if not args.screenshot:
        # The window has shut everything down (jobs ended, field at zero, outputs off, rig closed).
        # Exit now: the interpreter's final garbage collection of the Qt objects can hang after an
        # event loop has run (seen with PySide6 6.9 on Python 3.11).
        import logging
        import sys

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc
