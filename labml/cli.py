"""The `labml` command: the composition root of the application.

Each subcommand lives in its own module under `labml.commands` and exposes `register(subparsers)`;
heavy imports (torch, Qt, pyvisa) happen inside the command functions, never at module import, so
`labml --help` stays fast. labml never imports the protocols or the GUI: `labml run` finds protocols
and every other run kind through the registry (labml.runs.kinds, filled from the ``labml.kinds``
entry points); only `labml gui` imports the dashboard, inside its command function.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys

from labml.errors import UserError
from labml.termination import give_back_handlers, terminate_like_ctrl_c

# (module, attribute) pairs; each module's `register(subparsers)` adds its subcommands.
COMMAND_MODULES = [
    "labml.commands.demo",
    "labml.commands.rig",
    "labml.commands.train",
    "labml.commands.runs",
    "labml.commands.export",
    "labml.commands.run",
    "labml.commands.plot",
    "labml.commands.data",
    "labml.commands.gui",
    "labml.commands.doctor",
]


def build_parser() -> argparse.ArgumentParser:
    from labml.errors import ArgumentParser

    parser = ArgumentParser(
        prog="labml",
        allow_abbrev=False,  # options are spelled in full: `--epoch` is not taken for `--epochs`
        description="Hardware-in-the-loop learning with magnetic domain-wall nanowires.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output on stderr (-v: INFO, one line per coil ramp; -vv: DEBUG, "
                        "every ramp step)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="log only errors on stderr (results and DANGER lines are still printed)")
    parser.add_argument("--runs-root", default=None, metavar="DIR",
                        help="folder of every run folder made or listed (default $LABML_RUNS, else ./runs)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a command module not written yet
            if exc.name == name:
                continue
            raise
        mod.register(sub)
    return parser


#: Exit code of a command after which a coil could not be confirmed at zero.
EXIT_COIL_NOT_ZERO = 4


def _coil_alerts(rc: int, since: int) -> int:
    """If any coil of this command ended NOT confirmed at zero, say so loudly and return
    EXIT_COIL_NOT_ZERO; else `rc`."""
    safety = sys.modules.get("instruments.safety")
    alerts = safety.unconfirmed_zero_alerts(since) if safety is not None else []
    for msg in alerts:
        print(f"labml: DANGER: {msg}. Check the bench; run `labml rig zero`.", file=sys.stderr)
    return EXIT_COIL_NOT_ZERO if alerts else rc


_NEGATIVE_QUANTITY = re.compile(r"^-(\d|\.\d)")
_PLAIN_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _negative_quantities(argv: list[str]) -> list[str]:
    """`--to -4mT` as `--to=-4mT`: argparse takes a value that starts with "-" for an option unless it
    is a plain number, so a negative quantity with a unit ("-4mT", "-0.5 T") is joined to the option
    before it (written by hand: argparse has no setting for this)."""
    out: list[str] = []
    for token in argv:
        prev = out[-1] if out else ""
        if (_NEGATIVE_QUANTITY.match(token) and prev.startswith("--") and "=" not in prev
                and not _PLAIN_NUMBER.match(token)):
            out[-1] = f"{prev}={token}"
        else:
            out.append(token)
    return out


def main(argv: list[str] | None = None) -> int:
    # A command that never loads the coil guard (`labml runs`, `--help`) cannot raise a coil alert:
    # it is not imported for it (it imports numpy); one loaded during the command counts from -1.
    safety = sys.modules.get("instruments.safety")
    mark = safety.alert_mark() if safety is not None else -1
    rc = 1
    try:
        rc = _main(argv)
    finally:
        rc = _coil_alerts(rc, mark)  # also printed when an error propagates
    return rc


def _main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_negative_quantities(sys.argv[1:] if argv is None else argv))
    from labml.runs.store import using_runs_root

    previous = terminate_like_ctrl_c()
    try:
        with using_runs_root(args.runs_root):  # every command and its workers see one runs root
            return _run_command(parser, args)
    finally:
        give_back_handlers(previous)


def _run_command(parser, args) -> int:
    logging.basicConfig(
        level=logging.ERROR if args.quiet else logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except UserError as exc:
        print(f"labml: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # Config and safety errors of the instrument layer are user errors too.
        from instruments.errors import ConfigError, RigLockedError, SafetyError

        if isinstance(exc, ConfigError | SafetyError | RigLockedError):
            print(f"labml: error: {exc}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt as exc:
        print(f"labml: interrupted{f' ({exc})' if str(exc) else ''}", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
