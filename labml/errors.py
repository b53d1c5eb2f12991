"""Errors of the learning/orchestration layer, and the "did you mean" hint of their messages."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Iterable


class UserError(Exception):
    """Bad input (arguments, files, data, checkpoints): the CLI prints it without a traceback."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest of `choices` to a mistyped `word` (difflib), else ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors add a "did you mean" for a mistyped command or option (argparse
    of Python 3.11 has no such hint). Sub-commands made with add_subparsers inherit it."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        m = re.search(r"invalid choice: '([^']*)'", message)
        if m:
            choices = [c for a in self._actions if a.choices for c in a.choices]
            message += did_you_mean(m.group(1), choices)
        m = re.search(r"unrecognized arguments: (\S+)", message)
        if m and m.group(1).startswith("-"):
            message += did_you_mean(m.group(1).split("=")[0], _options(self))
        super().error(message)


def _options(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string of `parser` and of its sub-commands (argparse reports a sub-command's
    unknown option from the top parser)."""
    out = []
    for action in parser._actions:
        out += action.option_strings
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                out += _options(sub)
    return out
