"""The `labml` command: the composition root of the application.

Each subcommand lives in its own module under `labml.commands` (or `protocols`/`gui` for theirs) and
exposes `register(subparsers)`; heavy imports (torch, Qt, pyvisa, protocols, gui) happen inside the
command functions, never at module import, so `labml --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from labml.errors import UserError

# (module, attribute) pairs; each module's `register(subparsers)` adds its subcommands.
COMMAND_MODULES = [
    "labml.commands.demo",
    "labml.commands.rig",
    "labml.commands.train",
    "labml.commands.runs",
    "labml.commands.run",
    "labml.commands.data",
    "labml.commands.gui",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labml",
        allow_abbrev=False,  # options are spelled in full: `--epoch` is not taken for `--epochs`
        description="Hardware-in-the-loop learning with magnetic domain-wall nanowires.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
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
    except KeyboardInterrupt:
        print("labml: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
