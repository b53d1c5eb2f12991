"""The command line of a run kind, made from its declared parameters (labml.runs.kinds.Param).

`labml run KIND`, its aliases (`labml train synapses` = `labml run train-synapses`, `labml train
bm` = `labml run train-bm`) and the listings are generated here from the registry: a kind declares
each parameter once (type, unit, range, choices, default, help, group, option name) and every
front end reads that declaration; there is no second list of options.

- `find_kind(name)`: the kind `name`, else the protocol kind ``protocol-<name>``; a one-line
  UserError naming the known protocols and kinds otherwise.
- `kind_parser(kind, prog)`: an argparse parser with one option per parameter (a bool is the pair
  ``--flag``/``--no-flag``, a list takes several values) and the run options (--rig, --run-dir,
  --dry-run, --json and the run-record options).
- `params_from_args(kind, args)`: the parameters from the parsed options.
"""

from __future__ import annotations

import argparse
from typing import Any

PROTOCOL_PREFIX = "protocol-"
RECORD = ("sample", "device", "operator", "notes")
_TYPES = {"int": int, "float": float, "str": str}


def find_kind(name: str) -> Any:
    """The run kind called `name` on the command line, in a sweep or in the GUI: a registered kind of
    that name, else the protocol kind ``protocol-<name>`` (labml.runs.kinds.find)."""
    from labml.runs import kinds

    return kinds.find(name)


def short_name(kind: Any) -> str:
    """The name `labml run` knows a kind by (a protocol kind without its prefix)."""
    return kind.name.removeprefix(PROTOCOL_PREFIX)


def takes_text(kind: Any) -> bool:
    """Whether the kind's parameters are given as text (``--name value`` with units, converted by
    the kind itself: the protocols) rather than parsed by a generated parser."""
    return kind.name.startswith(PROTOCOL_PREFIX)


def _help(p: Any) -> str:
    text = p.help or p.name
    if p.unit:
        text += f" ({p.unit})"
    if p.type != "bool" and p.default is not None and p.default != [] and not _required(p):
        text += f" (default {p.default})"
    return text.replace("%", "%%")


def _required(p: Any) -> bool:
    from labml.runs.kinds import REQUIRED

    return p.default is REQUIRED


def add_param(g: Any, p: Any) -> None:
    """One option of parameter `p` on parser (or group) `g`."""
    kw: dict[str, Any] = {"dest": p.name, "help": _help(p)}
    if p.type == "bool":
        g.add_argument(p.option, action=argparse.BooleanOptionalAction, default=p.default, **kw)
        return
    if p.choices is not None:
        kw["choices"] = p.choices
    if p.type == "list":
        kw.update(nargs="+", type=_TYPES.get(p.item or "str", str), metavar=(p.unit or p.item or "V").upper())
    elif p.type in _TYPES:
        kw["type"] = _TYPES[p.type]
        if p.unit:
            kw["metavar"] = p.unit
    if _required(p):
        kw["required"] = True
    else:
        kw["default"] = list(p.default) if isinstance(p.default, list) else p.default
    g.add_argument(p.option, **kw)


def add_run_options(parser: argparse.ArgumentParser, kind: Any) -> None:
    """--rig (unless the kind declares it), --run-dir, --dry-run, --json and the run record."""
    g = parser.add_argument_group("run")
    if not any(p.name == "rig" for p in kind.params):
        g.add_argument(
            "--rig", default=None, metavar="FILE|sim", help="rig config TOML, or 'sim' (simulated rig)"
        )
    g.add_argument(
        "--run-dir", default=None, metavar="DIR", help=f"run folder (default runs/<stamp>-{kind.name}-*)"
    )
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="validate the settings (and the rig config) without running or writing anything",
    )
    g.add_argument(
        "--json", action="store_true", help="print one JSON object with the results last on stdout"
    )
    r = parser.add_argument_group("run record (written into run.json)")
    r.add_argument("--sample", default=None, help="sample ID")
    r.add_argument("--device", default=None, help="device / wire ID")
    r.add_argument("--operator", default=None, help="operator (default $LABML_OPERATOR or $USER)")
    r.add_argument("--notes", default=None, help="free-text notes")


def kind_parser(kind: Any, prog: str, extra: Any = None) -> argparse.ArgumentParser:
    """The parser of `labml run KIND` (and its aliases): one option per declared parameter, grouped by
    `Param.group`, then the run options; `extra(parser)` adds a front end's own options."""
    from labml.errors import ArgumentParser

    parser = ArgumentParser(prog=prog, allow_abbrev=False, description=kind.help or None)
    groups: dict[str, Any] = {}
    for p in kind.params:
        g = groups.get(p.group)
        if g is None:
            g = groups[p.group] = parser.add_argument_group(p.group or "parameters")
        add_param(g, p)
    add_run_options(parser, kind)
    if extra is not None:
        extra(parser)
    return parser


def params_from_args(kind: Any, args: argparse.Namespace) -> dict:
    """The kind's parameters from options parsed by `kind_parser`."""
    out = {}
    for p in kind.params:
        v = getattr(args, p.name)
        out[p.name] = list(v) if isinstance(v, tuple | list) else v
    return out


def describe_params(kind: Any) -> list[str]:
    """Help lines of a kind's parameters as `--option  allowed values: help` (for kinds whose
    parameters are given as text)."""
    lines = []
    for p in kind.params:
        default = "" if _required(p) or p.default is None else f", default {p.default}"
        lines.append(f"  {p.option:24s} {p.allowed()}{default}")
        if p.help:
            lines.append(f"  {'':24s} {p.help}")
    return lines
