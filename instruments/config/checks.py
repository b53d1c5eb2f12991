"""Checks shared by the rig config parser and the calibration files: the error context (which file),
key and number checks, and the readers of a logistic / Neel-Brown calibration table.
Every error is a ConfigError naming the file, the key and the problem."""

from __future__ import annotations

import difflib
import math
import tomllib
from pathlib import Path
from typing import Any

from instruments.calibration import Logistic, NeelBrown
from instruments.errors import ConfigError


class _Ctx:
    """Error context: which file we are reading."""

    def __init__(self, source: str):
        self.source = source

    def error(self, where: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}: {problem}")


def _suggest(key: str, known: set[str] | dict) -> str:
    known = set(known)
    unit_hits = [k for k in known if k.startswith(key + "_")]
    if unit_hits:
        return (
            f" (missing unit? quantities carry their unit in the key: did you mean {sorted(unit_hits)[0]!r}?)"
        )
    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(sorted(known))})"


def _check_keys(
    ctx: _Ctx, table: str, d: dict, known: set[str] | dict, required: set[str] = frozenset()
) -> None:
    for key in d:
        if key not in known:
            raise ctx.error(f"[{table}] key {key!r}", "unknown key" + _suggest(key, known))
    for key in sorted(required):
        if key not in d:
            raise ctx.error(f"[{table}] key {key!r}", "missing (required)")


def _number(ctx: _Ctx, where: str, value: Any, *, positive: bool = False, nonneg: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ctx.error(where, f"must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ctx.error(where, f"must be finite, got {value!r}")
    if positive and v <= 0:
        raise ctx.error(where, f"must be > 0, got {value!r}")
    if nonneg and v < 0:
        raise ctx.error(where, f"must be >= 0, got {value!r}")
    return v


def _table(ctx: _Ctx, raw: dict, key: str, required: bool = True) -> dict:
    if key not in raw:
        if required:
            raise ctx.error(f"[{key}]", "missing table (required)")
        return {}
    t = raw[key]
    if not isinstance(t, dict):
        raise ctx.error(f"[{key}]", f"must be a table, got {type(t).__name__}")
    return t


def load_toml_file(path: Path, what: str) -> dict:
    """The parsed TOML file at `path`; ConfigError naming the file when it is missing ("<what> file
    not found"), unreadable, not UTF-8 (:func:`read_toml_text`) or not valid TOML."""
    if not path.is_file():
        raise ConfigError(f"{path}: {what} file not found")
    try:
        return tomllib.loads(read_toml_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def read_toml_text(path: Path) -> str:
    """The text of a TOML file (TOML is UTF-8 by definition); ConfigError naming the file and the
    first byte that is not UTF-8 (e.g. a file saved as Latin-1), or why it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}: not UTF-8 text: byte {exc.start} (line {line}) is 0x{data[exc.start]:02x}; "
            "save the file as UTF-8"
        ) from None


def _logistic(ctx: _Ctx, where: str, d: Any) -> Logistic:
    if not isinstance(d, dict):
        raise ctx.error(where, f"must be a table {{H0 = , k = , a = }}, got {d!r}")
    _check_keys(ctx, where.strip("[]"), d, {"H0", "k", "a"}, {"H0", "k", "a"})
    vals = {k: _number(ctx, f"{where} key {k!r}", d[k]) for k in ("H0", "k", "a")}
    try:
        return Logistic(**vals)
    except ValueError as exc:
        raise ctx.error(where, str(exc)) from None


def _neel_brown(ctx: _Ctx, where: str, d: Any) -> NeelBrown:
    if not isinstance(d, dict):
        raise ctx.error(where, "must be a table in NeelBrown.to_dict() layout")
    _check_keys(ctx, where.strip("[]"), d, {"modes", "floor", "f0_Hz", "beta"}, {"modes"})
    modes = d["modes"]
    if not isinstance(modes, list) or not modes:
        raise ctx.error(f"{where} key 'modes'", "must be a non-empty list of {weight, Hc_mT, E0_kT300}")
    for i, m in enumerate(modes):
        if not isinstance(m, dict):
            raise ctx.error(f"{where} modes[{i}]", "must be a table")
        _check_keys(
            ctx,
            f"{where.strip('[]')} modes[{i}]",
            m,
            {"weight", "Hc_mT", "E0_kT300"},
            {"weight", "Hc_mT", "E0_kT300"},
        )
        for k in ("weight", "Hc_mT", "E0_kT300"):
            _number(ctx, f"{where} modes[{i}] key {k!r}", m[k], nonneg=True)
    try:
        return NeelBrown.from_dict(d)
    except (ValueError, TypeError) as exc:
        raise ctx.error(where, str(exc)) from None
