"""Versioned calibration files ``wire<ID>-v<N>.toml``: read, list, and write the next version.

A file is never overwritten: :func:`write_calibration` always creates the next version with an
exclusive create.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

from instruments.calibration import Logistic, NeelBrown
from instruments.config.checks import _check_keys, _Ctx, _logistic, _neel_brown, load_toml_file
from instruments.errors import ConfigError

log = logging.getLogger("instruments.config")


_CAL_RE = re.compile(r"^wire(\d+)-v(\d+)\.toml$")


def load_calibration(
    path: str | os.PathLike, expected_wire: int | None = None
) -> tuple[Logistic, NeelBrown | None, dict]:
    """Read a calibration file written by :func:`write_calibration`: (logistic, neel_brown | None, meta)."""
    path = Path(path)
    ctx = _Ctx(str(path))
    raw = load_toml_file(path, "calibration")
    _check_keys(
        ctx,
        "top level",
        raw,
        {"wire_id", "version", "logistic", "neel_brown", "meta"},
        {"wire_id", "logistic"},
    )
    if expected_wire is not None and raw["wire_id"] != expected_wire:
        raise ctx.error(
            "key 'wire_id'",
            f"file is for wire {raw['wire_id']!r}, but the rig uses it for wire {expected_wire}",
        )
    cal = _logistic(ctx, "[logistic]", raw["logistic"])
    nb = _neel_brown(ctx, "[neel_brown]", raw["neel_brown"]) if "neel_brown" in raw else None
    return cal, nb, dict(raw.get("meta", {}))


def calibration_versions(directory: str | os.PathLike, wire_id: int) -> list[tuple[int, Path]]:
    """Existing calibration versions of a wire in `directory`, sorted by version."""
    d = Path(directory)
    out = []
    if d.is_dir():
        for p in d.iterdir():
            m = _CAL_RE.match(p.name)
            if m and int(m.group(1)) == int(wire_id):
                out.append((int(m.group(2)), p))
    return sorted(out)


def latest_calibration(directory: str | os.PathLike, wire_id: int) -> Path | None:
    """Path of the newest calibration of a wire, or None."""
    v = calibration_versions(directory, wire_id)
    return v[-1][1] if v else None


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, _dt.datetime | _dt.date):
        return v.isoformat()
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if hasattr(v, "item"):  # numpy scalar
        return _toml_value(v.item())
    raise TypeError(f"cannot write {type(v).__name__} value {v!r} to TOML")


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_value(str(k))


def write_calibration(
    directory: str | os.PathLike,
    wire_id: int,
    logistic: Logistic,
    neel_brown: NeelBrown | None = None,
    meta: dict | None = None,
) -> Path:
    """Write a new calibration version ``<directory>/wire<ID>-v<N>.toml`` and return its path.

    N is one more than the newest existing version; an existing file is never overwritten (the file
    is created exclusively, so two writers racing get different versions). `meta` (free-form:
    date, run uid, pulse duration, fit uncertainties...) must hold TOML-able values.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta = dict(meta or {})
    meta.setdefault("written_utc", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    versions = calibration_versions(d, wire_id)
    n = (versions[-1][0] + 1) if versions else 1
    for _ in range(1000):
        path = d / f"wire{int(wire_id)}-v{n}.toml"
        lines = [
            f"# calibration of wire {int(wire_id)}, version {n} (instruments.config.write_calibration)",
            f"wire_id = {int(wire_id)}",
            f"version = {n}",
            "",
            "[logistic]",
            *(f"{k} = {_toml_value(float(v))}" for k, v in logistic.to_dict().items()),
        ]
        if neel_brown is not None:
            nb = neel_brown.to_dict()
            lines += [
                "",
                "[neel_brown]",
                f"floor = {_toml_value(float(nb['floor']))}",
                f"f0_Hz = {_toml_value(float(nb['f0_Hz']))}",
                f"beta = {_toml_value(float(nb['beta']))}",
            ]
            for m in nb["modes"]:
                lines += [
                    "",
                    "[[neel_brown.modes]]",
                    *(f"{k} = {_toml_value(float(v))}" for k, v in m.items()),
                ]
        if meta:
            lines += ["", "[meta]", *(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in meta.items())]
        text = "\n".join(lines) + "\n"
        try:
            with open(path, "x") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        except FileExistsError:
            n += 1
            continue
        log.info("wrote calibration of wire %d version %d: %s", wire_id, n, path)
        return path
    raise ConfigError(f"{d}: could not find a free calibration version for wire {wire_id}")
