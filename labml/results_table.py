"""A run's results as a short table for people (the end of `labml run`, `labml train`, `labml
resume`): each quantity with its unit and SI prefix, its +/- uncertainty where a fit gives one (the
result `X_err`, or `X_err_mT` beside `X_mT`), durations as min/h/d. The unit of a result comes from
its name (`coercive_field_mT`, `bench_time_s`, `energy_J`, `mT_per_A`), from `UNITS` for the few
names that carry none (a logistic fit's H0, k), and `signal_unit` for the read-out's signal levels.
--json prints the results unchanged."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from labml.units import format_quantity

#: Units of results whose names carry none (the logistic fit of a depinning calibration).
UNITS = {"H0": "mT", "k": "1/mT", "H0_mean": "mT", "H0_std": "mT", "k_mean": "1/mT", "k_std": "1/mT"}
_UNIT_SUFFIX = re.compile(r"^(?P<name>.+?)_(?P<unit>[kMGmunp]?(?:T|A|V|s|Hz|J|W|ohm|K)|sec)$")
_PER = re.compile(r"^(?:(?P<name>.+)_)?(?P<num>[kmun]?[A-Za-z]+)_per_(?P<den>[kmun]?[A-Za-z]+)$")
_SIGNAL = re.compile(r"^signal_")


def result_unit(key: str, results: Mapping[str, Any]) -> tuple[str, str]:
    """(label, unit) of a result: 'coercive_field_mT' -> ('coercive field', 'mT'),
    'config_mT_per_A' -> ('config mT per A', 'mT/A'), 'H0' -> ('H0', 'mT'), 'P_pass' -> ('P_pass', '')."""
    if key in UNITS:
        return key, UNITS[key]
    per = _PER.match(key)
    if per and per.group("num") in ("mT", "T", "A", "V", "s", "J", "sec"):
        unit = f"{'s' if per.group('num') == 'sec' else per.group('num')}/{per.group('den')}"
        return key.replace("_", " "), unit
    m = _UNIT_SUFFIX.match(key)
    if m:
        unit = "s" if m.group("unit") == "sec" else m.group("unit")
        return m.group("name").replace("_", " "), unit
    if _SIGNAL.match(key) and isinstance(results.get("signal_unit"), str):
        return key.replace("_", " "), results["signal_unit"]
    return key, ""


def _uncertainty(key: str, results: Mapping[str, Any]) -> float | None:
    """`X_err` of `X`, or `X_err_<unit>` of `X_<unit>`."""
    cands = [f"{key}_err"]
    m = _UNIT_SUFFIX.match(key)
    if m:
        cands.append(f"{m.group('name')}_err_{m.group('unit')}")
    for c in cands:
        v = results.get(c)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return None


def _is_uncertainty(key: str) -> bool:
    return key.endswith("_err") or "_err_" in key


def result_rows(results: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value text) per result shown: numbers with units and uncertainties, text as is;
    nested results (dicts, lists), uncertainties shown beside their value and `signal_unit` (shown
    as the signal's unit) are left out."""
    rows = []
    for key, v in results.items():
        if isinstance(v, dict | list | tuple) or _is_uncertainty(key) or key == "signal_unit" or v is None:
            continue
        label, unit = result_unit(key, results)
        if isinstance(v, bool) or not isinstance(v, int | float):
            rows.append((label, str(v)))
        elif isinstance(v, int) and not unit:
            rows.append((label, str(v)))
        elif not math.isfinite(float(v)):
            rows.append((label, f"{v} (not found)" if unit else str(v)))
        else:
            rows.append((label, format_quantity(float(v), unit, _uncertainty(key, results))))
    return rows


def results_table(results: Mapping[str, Any], indent: str = "  ") -> list[str]:
    """The lines of the table: label column padded to the longest label."""
    rows = result_rows(results)
    if not rows:
        return []
    width = max(len(label) for label, _ in rows)
    return [f"{indent}{label:<{width}}  {text}" for label, text in rows]
