"""Accuracy against n over seeds: the [E23] sweep (SCIENCE.md section 4), with the baselines.

`run_sweep` trains one model per (variant, n, seed) with the reference protocol, appending one row per
run to OUT/results.csv as it goes (a sweep killed midway keeps its finished rows and, run again, skips
them), then writes OUT/table.md (mean +- sd over seeds) and OUT/accuracy_vs_n.png.

Variants: "stochastic" (for every n), "no-variance" (the variance term off, for the n in
`no_variance_ns`), "perceptron" and "meanfield" (n does not apply: n = 0 in the table).
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from labml.data import Dataset, load_dataset
from labml.synapses.trainer import SynapseTrainConfig, SynapseTrainer

logger = logging.getLogger(__name__)

FIELDS = [
    "variant",
    "n",
    "seed",
    "test_accuracy",
    "test_accuracy_sd",
    "frac_binary",
    "epochs",
    "best_epoch",
    "best_val_accuracy",
    "sec_per_epoch",
]


def _done(path: Path) -> set[tuple[str, int, int]]:
    if not path.exists():
        return set()
    with open(path, newline="") as fh:
        return {(r["variant"], int(r["n"]), int(r["seed"])) for r in csv.DictReader(fh)}


def run_sweep(
    out_dir: str | Path,
    ns: Sequence[int] = (1, 2, 4, 8, 16, 32, 64),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    baselines: Sequence[str] = ("perceptron", "meanfield"),
    no_variance_ns: Sequence[int] = (1,),
    base: dict | None = None,
    data: str | None = None,
    progress: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Run the sweep (seed-major, so every variant has results after each seed); return all rows."""
    from labml.data import resolve_data

    data = resolve_data(data)  # one folder (or "digits") for every row, as labml.data resolves it
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "results.csv"
    done = _done(csv_path)
    base = dict(base or {})
    jobs: list[tuple[str, int, int]] = []
    for seed in seeds:
        jobs += [("stochastic", n, seed) for n in ns]
        jobs += [("no-variance", n, seed) for n in no_variance_ns]
        jobs += [(b, 0, seed) for b in baselines]
    datasets: dict[int, Dataset] = {}
    for variant, n, seed in jobs:
        if (variant, n, seed) in done:
            continue
        cfg = dict(base, seed=seed, data=data)
        if variant in ("stochastic", "no-variance"):
            cfg.update(model="stochastic", n=n, variance_term=(variant == "stochastic"))
        else:
            cfg.update(model=variant, n=1)
        config = SynapseTrainConfig(**cfg)
        if seed not in datasets:
            datasets[seed] = load_dataset(
                data, val_fraction=config.val_fraction, train_size=config.train_size, seed=seed
            )
        res = SynapseTrainer(config, dataset=datasets[seed]).fit()
        row = {"variant": variant, "n": n, "seed": seed, **{k: res.get(k) for k in FIELDS[3:]}}
        new = not csv_path.exists()
        with open(csv_path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=FIELDS)
            if new:
                w.writeheader()
            w.writerow(row)
            fh.flush()
            os.fsync(fh.fileno())
        logger.info("sweep row %s", row)
        if progress:
            progress(row)
    rows = read_rows(csv_path)
    write_table(rows, out / "table.md")
    plot(rows, out / "accuracy_vs_n.png")
    return rows


def read_rows(path: str | Path) -> list[dict]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["n"] = int(r["n"])
        r["seed"] = int(r["seed"])
        for k in FIELDS[3:]:
            r[k] = float(r[k]) if r[k] not in ("", "None") else float("nan")
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and sd over seeds per (variant, n)."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["variant"], r["n"]), []).append(r)
    order = {"stochastic": 0, "no-variance": 1, "perceptron": 2, "meanfield": 3}
    out = []
    for (variant, n), rs in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1])):
        acc = np.array([r["test_accuracy"] for r in rs])
        fb = np.array([r["frac_binary"] for r in rs])
        out.append(
            {
                "variant": variant,
                "n": n,
                "seeds": len(rs),
                "acc_mean": float(acc.mean()),
                "acc_sd": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                "frac_binary": float(np.nanmean(fb)) if np.isfinite(fb).any() else float("nan"),
                "epochs": float(np.mean([r["epochs"] for r in rs])),
                "sec_per_epoch": float(np.mean([r["sec_per_epoch"] for r in rs])),
            }
        )
    return out


def write_table(rows: list[dict], path: str | Path) -> str:
    lines = [
        "| model | n | seeds | test accuracy (mean +- sd) | frac. binary synapses | epochs | s/epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summarise(rows):
        n = "-" if s["n"] == 0 else str(s["n"])
        fb = "-" if not np.isfinite(s["frac_binary"]) else f"{s['frac_binary']:.3f}"
        lines.append(
            f"| {s['variant']} | {n} | {s['seeds']} | {s['acc_mean']:.4f} +- {s['acc_sd']:.4f} | {fb} "
            f"| {s['epochs']:.0f} | {s['sec_per_epoch']:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    Path(path).write_text(text)
    return text


def plot(rows: list[dict], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summ = summarise(rows)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for variant, style in (("stochastic", "o-"), ("no-variance", "s--")):
        pts = [s for s in summ if s["variant"] == variant]
        if pts:
            ax.errorbar(
                [s["n"] for s in pts],
                [s["acc_mean"] for s in pts],
                yerr=[s["acc_sd"] for s in pts],
                fmt=style,
                capsize=3,
                label=f"{variant} synapses",
            )
    for variant, color in (("perceptron", "k"), ("meanfield", "tab:gray")):
        pts = [s for s in summ if s["variant"] == variant]
        if pts:
            ax.axhline(pts[0]["acc_mean"], color=color, ls=":", label=variant)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("reads per synapse n")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
