"""labml package.

``labml.open_run(path)`` (labml.runs.analysis) is imported on first use, so that ``import labml``
stays light (no torch, no xarray).
"""

from __future__ import annotations

from typing import Any

_LAZY = {"open_run": ("labml.runs.analysis", "open_run")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'labml' has no attribute {name!r}")
