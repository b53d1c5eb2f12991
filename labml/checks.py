"""Range checks of user input and a memory estimate, shared by the commands (one-line UserErrors).

Every check names the option (as the user spelled it on the command line), the value it got and the
range it allows, so that the CLI can print it as one line before anything is built or moved.
"""

from __future__ import annotations

import math
import os
from typing import Any

from labml.errors import UserError


def _range_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return "finite"


def check_int(option: str, value: Any, lo: int | None = None, hi: int | None = None,
              *, none_ok: bool = False) -> int | None:
    """`value` as an int in [lo, hi] (None allowed when `none_ok`); UserError naming `option` otherwise."""
    if value is None and none_ok:
        return None
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok and (lo is None or value >= lo) and (hi is None or value <= hi)
    if not ok:
        raise UserError(f"{option} must be an integer {_range_text(lo, hi, False, False)}, got {value!r}")
    return int(value)


def check_float(option: str, value: Any, lo: float | None = None, hi: float | None = None,
                *, lo_open: bool = False, hi_open: bool = False, unit: str = "") -> float:
    """`value` as a finite float in the range (open or closed ends); UserError naming `option` otherwise.
    NaN and infinities are always refused (a learning rate of inf trains NaN)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    ok = ok and math.isfinite(v)
    ok = ok and (lo is None or (v > lo if lo_open else v >= lo))
    ok = ok and (hi is None or (v < hi if hi_open else v <= hi))
    if not ok:
        unit_text = f" {unit}" if unit else ""
        raise UserError(
            f"{option} must be a finite number {_range_text(lo, hi, lo_open, hi_open)}{unit_text}, "
            f"got {value!r}"
        )
    return v


# --------------------------------------------------------------------------- memory
def available_memory_bytes() -> int:
    """Memory this process may still allocate (bytes): MemAvailable of /proc/meminfo (Linux), else
    the physical memory from sysconf. Hand-written: psutil is not a dependency of the project."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - no sysconf: do not refuse
        return 1 << 62


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


def check_memory(what: str, estimate_bytes: float, available: int | None = None) -> None:
    """UserError when the largest allocations a run will make (`estimate_bytes`, from its declared
    sizes) exceed the memory available now. `what` names the options that make the estimate."""
    avail = available_memory_bytes() if available is None else available
    if not math.isfinite(estimate_bytes) or estimate_bytes > avail:
        raise UserError(
            f"{what} needs about {_fmt_bytes(estimate_bytes)} of memory, but {_fmt_bytes(avail)} is "
            "available; use smaller sizes"
        )


def check_config_memory(cfg: Any, command: str, options: dict[str, str]) -> None:
    """`check_memory` of a config dataclass with a ``memory_estimate()`` method, naming the option
    to blame: the one of `options` (option -> field) whose reset to its default shrinks the estimate
    most, with its value (e.g. "train synapses --n 100000000000 needs about 7.28 TiB ...")."""
    import dataclasses

    estimate = cfg.memory_estimate()
    avail = available_memory_bytes()
    if math.isfinite(estimate) and estimate <= avail:
        return
    defaults = type(cfg)()

    def without(option: str) -> float:
        name = options[option]
        return dataclasses.replace(cfg, **{name: getattr(defaults, name)}).memory_estimate()

    blame = min(options, key=without)
    value = getattr(cfg, options[blame])
    shown = " ".join(str(v) for v in value) if isinstance(value, list | tuple) else value
    check_memory(f"{command} {blame} {shown}", estimate, available=avail)
