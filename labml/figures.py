"""The figures a run writes into its folder (RUN_DIR/figures/*.png), drawn with matplotlib's
object API (no pyplot state, so any thread or worker process may draw): one function per kind of
plot, used by the protocols and the training kinds at the end of a run, and printed by the CLI.

Every axis carries its quantity and unit; distinct branches, pulse lengths or series get distinct
colours and a legend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: The colours of the hysteresis branches, the same in the dashboard (gui.plots).
BRANCH_COLOURS = {"up branch": "#d62728", "down branch": "#1f77b4"}


def _figure(width: float = 6.0, height: float = 4.2) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def save(fig: Any, path: str | Path) -> Path:
    """Write `fig` as PNG (150 dpi) to `path` and return it."""
    fig.savefig(path, dpi=150)
    return Path(path)


def write(run: Any, name: str, draw: Callable[..., Any], *args: Any, **kwargs: Any) -> Path | None:
    """RUN_DIR/figures/<name>: `draw(*args, **kwargs)` saved as PNG. A figure that fails is logged and
    returns None: it never fails the run (its data and results are saved already)."""
    try:
        return save(draw(*args, **kwargs), run.figure_path(name))
    except Exception as exc:  # noqa: BLE001 - a plot must not lose the results
        log.warning("could not write figures/%s: %s", name, exc)
        return None


def hysteresis(field_mT: np.ndarray, signal: np.ndarray, loop: np.ndarray, up: np.ndarray,
               signal_label: str = "read-out signal") -> Any:
    """Signal against field, the up and down branches of every loop in two colours
    (`labml.plotdata.branch_curves`, as the dashboard draws them)."""
    from labml.plotdata import branch_curves

    fig, ax = _figure()
    for name, x, y in branch_curves(field_mT, signal, up, loop):
        ax.plot(x, y, ".-", color=BRANCH_COLOURS[name], ms=3, lw=1, label=name)
    ax.set_xlabel("field (mT)")
    ax.set_ylabel(signal_label)
    ax.set_title(f"Hysteresis, {len(np.unique(loop))} loop(s)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def depinning(field_mT: np.ndarray, p: np.ndarray, low: np.ndarray, high: np.ndarray, duration_s: np.ndarray,
              fit: tuple[str, Callable[[np.ndarray], np.ndarray]] | None = None, wire: int = 0) -> Any:
    """P_pass against field with its confidence interval [low, high] (the protocol's, as recorded in
    its data), one colour per pulse length, and a fitted curve `fit` = (label, p(H))."""
    from labml.plotdata import by_pulse_length

    fig, ax = _figure()
    for label, m in by_pulse_length(duration_s, len(field_mT)):
        ax.errorbar(field_mT[m], p[m], yerr=[p[m] - low[m], high[m] - p[m]], fmt="o", ms=4, capsize=2,
                    label=f"{label}, 95 % intervals")
    if fit is not None:
        h = np.linspace(field_mT.min(), field_mT.max(), 200)
        ax.plot(h, fit[1](h), "k-", lw=1, label=fit[0])
    ax.set_xlabel("field (mT)")
    ax.set_ylabel("P(pass)")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(f"Depinning, wire {wire}")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def coil(current_A: np.ndarray, field_mT: np.ndarray, slope: float, intercept: float) -> Any:
    """Hall-probe field against coil current, with the fitted line."""
    fig, ax = _figure()
    ax.plot(current_A, field_mT, "o", ms=4, label="Hall probe")
    i = np.linspace(current_A.min(), current_A.max(), 2)
    ax.plot(i, slope * i + intercept, "k-", lw=1, label=f"fit: {slope:.4g} mT/A")
    ax.set_xlabel("coil current (A)")
    ax.set_ylabel("field (mT)")
    ax.set_title("Coil calibration")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def training(rows: Sequence[Mapping[str, Any]], x: str, losses: Sequence[str], scores: Sequence[str],
             title: str) -> Any:
    """Losses (left axis) and accuracies or other scores in [0, 1] (right axis) against `x` (epoch)."""
    fig, ax = _figure()
    xs = np.array([float(r.get(x, i)) for i, r in enumerate(rows)])
    lines = []
    for key in losses:
        ys = np.array([float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows])
        if np.isfinite(ys).any():
            lines += ax.plot(xs, ys, "-", lw=1.5, label=key)
    ax.set_xlabel(x)
    ax.set_ylabel("loss")
    right = ax.twinx()
    for key, colour in zip(scores, ("tab:green", "tab:purple", "tab:olive", "tab:cyan"), strict=False):
        ys = np.array([float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows])
        if np.isfinite(ys).any():
            lines += right.plot(xs, ys, "--", lw=1.5, color=colour, label=key)
    right.set_ylabel("accuracy")
    right.set_ylim(0, 1)
    ax.set_title(title)
    if lines:  # below the axes, clear of the curves
        fig.legend(lines, [ln.get_label() for ln in lines], loc="outside lower center", ncols=len(lines))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    return fig


def accuracy_comparison(labels: Sequence[str], accuracy: Sequence[float], low: Sequence[float],
                        high: Sequence[float], title: str) -> Any:
    """Test accuracies side by side (e.g. the rig and the model on the same images) with their
    confidence intervals [low, high]."""
    fig, ax = _figure(4.8, 4.0)
    acc = np.asarray(accuracy, dtype=float)
    yerr = [acc - np.asarray(low, dtype=float), np.asarray(high, dtype=float) - acc]
    colours = ("tab:red", "tab:blue", "tab:green", "tab:purple")[: len(acc)]
    ax.bar(list(labels), acc, yerr=yerr, capsize=6, color=colours, alpha=0.8)
    for i, a in enumerate(acc):
        ax.text(i, a / 2, f"{a:.3f}", ha="center", color="white", fontweight="bold")
    ax.set_ylabel("test accuracy (95 % interval)")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    return fig


def series(xlabel: str, ylabel: str, curves: Sequence[tuple[str, np.ndarray, np.ndarray]], title: str) -> Any:
    """Any columns of a run's series (`labml plot`): curves = [(label, x, y)], already decimated;
    the axes labelled with quantity and unit (`labml.plotdata.axis_label`); hysteresis branches in
    the branch colours."""
    fig, ax = _figure()
    for label, x, y in curves:
        branch = next((b for b in BRANCH_COLOURS if label.endswith(b)), None)
        ax.plot(x, y, ".-", ms=2, lw=1, label=label, color=BRANCH_COLOURS[branch] if branch else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    if len(curves) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    return fig
