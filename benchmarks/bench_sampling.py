"""Sampling speed in flips per second (site updates per second, heat bath) of the sparse
spin-graph engine (labml.bm.sparse_graph), side by side with Extropic's thrml 0.1.4 (JAX) on the
same graph, couplings, colour blocks, chains and number of sweeps, and with this CPU's bounds
measured in the same run:

    (a) RBM 784 x 500 (two colours, 392 000 couplings), 100 and 1000 chains
    (b) 256 x 256 Ising lattice, periodic (two colours), 1 and 64 chains
    (c) random sparse graph, 4,264 spins, 30,000 couplings (DSatur colours), 1 and 100 chains

Bounds: the random-number draw rate (numpy PCG64, float32: one draw per flip) for every case;
a CSR sparse x dense product (scipy, float32: the fields of every unit of every chain, one per
sweep) for the sparse cases; for the RBM the two dense SGEMMs a sweep needs (torch). For the
RBM, the project's dense RBM sampler (labml.bm.chains.Sampler, torch GEMMs) is timed too.

One thread, everything pinned to one CPU with os.sched_setaffinity (JAX ignores thread flags; the
thrml side runs in a child process, which inherits the affinity), every variant timed
`--repeats` times interleaved, medians reported.

thrml is an optional benchmark extra (`pip install .[bench]`), never a dependency of the package:
without it (in this interpreter or in `--thrml-python`, e.g. a separate venv) the benchmark runs
the other columns and says so.

    python benchmarks/bench_sampling.py [--json] [--repeats 5] [--thrml-python PYTHON] [--cases a b c]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class ThrmlSide:
    """thrml in a child process (benchmarks/bench_sampling_thrml.py), driven line by line."""

    def __init__(self, python: str) -> None:
        env = dict(os.environ, XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
                   JAX_PLATFORMS="cpu")
        self.proc = subprocess.Popen(
            [python, str(HERE / "bench_sampling_thrml.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, env=env,
        )

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(
                "the thrml side stopped (run benchmarks/bench_sampling_thrml.py by hand to see why)"
            )
        return json.loads(line)

    def close(self) -> None:
        try:
            self.ask(op="quit")
        except (RuntimeError, BrokenPipeError, json.JSONDecodeError):
            pass
        self.proc.wait(timeout=30)


def thrml_python(arg: str | None) -> tuple[str | None, str]:
    """The interpreter that has thrml (arg, else this one), and a line saying which or why none."""
    candidates = [arg] if arg else [sys.executable]
    for py in candidates:
        code = "import importlib.metadata as m, thrml, jax; print(m.version('thrml'), jax.__version__)"
        out = subprocess.run([py, "-c", code], capture_output=True, text=True)
        if out.returncode == 0:
            thrml_v, jax_v = out.stdout.split()
            return py, f"thrml {thrml_v} (jax {jax_v}) in {py}"
    return None, ("thrml not installed (pip install .[bench], or --thrml-python PATH of a venv that has it): "
                  "thrml columns skipped")


def cases(selected: list[str]) -> list[tuple[str, str, object, object, list[int]]]:
    """(key, title, model, colouring, chain counts) of the benchmark graphs."""
    from labml.bm.models import RBM
    from labml.bm.sparse_graph import from_rbm, lattice_2d, random_graph

    out = []
    if "a" in selected:
        g = torch.Generator().manual_seed(0)
        rbm = RBM(784, 500, init_std=0.05, generator=g)
        model, col = from_rbm(rbm)
        out.append(("a", "RBM 784x500", model, col, [100, 1000], rbm))
    if "b" in selected:
        model = lattice_2d(256, coupling=0.4)  # just below the critical coupling 0.4407
        out.append(("b", "Ising lattice 256x256 periodic", model, model.colouring("dsatur"), [1, 64], None))
    if "c" in selected:
        model = random_graph(4264, 30000, seed=0, coupling_std=0.5, bias_std=0.1)
        out.append(("c", "random graph 4264 spins, 30000 couplings", model, model.colouring("dsatur"),
                    [1, 100], None))
    return out


def write_graph(model, colouring, path: Path) -> None:
    upper = sp.triu(model.J, 1).tocoo()
    np.savez(path, i=upper.row, j=upper.col, weights=upper.data, biases=model.b, beta=model.beta,
             colour=colouring.colour)


def variants_for(model, colouring, chains: int, sweeps: int, rbm) -> dict:
    """name -> a function that runs `sweeps` sweeps of `chains` chains (or the bound's work) once."""
    from labml.bm.sparse_graph import GraphSampler

    n = model.n_units
    sampler = GraphSampler(model, "heatbath", colouring=colouring, threads=1)
    state = sampler.new_state(chains, seed=0)
    sampler.sweep(state, 1)  # compile and warm
    out = {"labml GraphSampler": lambda: sampler.sweep(state, sweeps)}
    if rbm is not None:
        from labml.bm.chains import Sampler
        from labml.bm.kernels import HeatBath

        dense = Sampler(rbm, HeatBath(torch.Generator().manual_seed(0)))
        dstate = dense.random_state(chains)
        out["labml RBM Sampler (torch GEMM)"] = lambda: dense.run(dstate, sweeps)
    rng = np.random.default_rng(0)
    buf = np.empty((n, chains), np.float32)

    def draws() -> None:
        for _ in range(sweeps):
            rng.random(out=buf, dtype=np.float32)

    out["bound: random draws (numpy PCG64 float32)"] = draws
    if rbm is None:
        J32 = model.J.astype(np.float32)
        S = np.where(rng.random((n, chains)) < 0.5, -1.0, 1.0).astype(np.float32)

        def spmm() -> None:
            for _ in range(sweeps):
                J32 @ S

        out["bound: CSR SpMM (scipy float32)"] = spmm
    else:
        W = rbm.W.detach()
        V = torch.randn(chains, W.shape[0])
        H = torch.randn(chains, W.shape[1])

        def sgemm() -> None:
            for _ in range(sweeps):
                torch.mm(V, W)
                torch.mm(H, W.t())

        out["bound: 2 SGEMM per sweep (torch float32)"] = sgemm
    return out


def run_case(key, title, model, colouring, chains, rbm, thrml, tmp: Path, args) -> list[dict]:
    n = model.n_units
    sweeps = max(1, int(round(args.flips / (n * chains))))
    fns = variants_for(model, colouring, chains, sweeps, rbm)
    if thrml is not None:
        path = tmp / f"{key}.npz"
        if not path.exists():
            write_graph(model, colouring, path)
        reply = thrml.ask(op="setup", graph=str(path), chains=chains, sweeps=sweeps, seed=0)
        print(f"  thrml compiled {title}, {chains} chains in {reply['compile_s']:.1f} s", file=sys.stderr)

        def thrml_run() -> float:
            return thrml.ask(op="run")["seconds"]

        fns["thrml 0.1.4 (JAX)"] = thrml_run
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(args.repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            inner = fn()
            dt = time.perf_counter() - t0
            times[name].append(inner if isinstance(inner, float) else dt)
    flips = n * chains * sweeps
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append({"case": f"({key}) {title}", "chains": chains, "sweeps": sweeps, "variant": name,
                     "median_s": med, "flips_per_s": flips / med})
    return rows


def ratios(rows: list[dict]) -> list[dict]:
    """labml / thrml and labml / bound per case and chain count."""
    out = []
    groups: dict[tuple, dict[str, float]] = {}
    for r in rows:
        groups.setdefault((r["case"], r["chains"]), {})[r["variant"]] = r["flips_per_s"]
    for (case, chains), rates in groups.items():
        ours = max(v for k, v in rates.items() if k.startswith("labml"))
        best = max((k for k in rates if k.startswith("labml")), key=rates.get)
        entry = {"case": case, "chains": chains, "labml_best": best, "labml_flips_per_s": ours}
        if "thrml 0.1.4 (JAX)" in rates:
            entry["labml / thrml"] = ours / rates["thrml 0.1.4 (JAX)"]
            entry["GraphSampler / thrml"] = rates["labml GraphSampler"] / rates["thrml 0.1.4 (JAX)"]
        for k, v in rates.items():
            if k.startswith("bound"):
                entry[f"labml / {k}"] = ours / v
        out.append(entry)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cases", nargs="+", default=["a", "b", "c"], choices=["a", "b", "c"])
    ap.add_argument("--flips", type=float, default=4e6, help="site updates per timed call (sets the sweeps)")
    ap.add_argument("--thrml-python", default=os.environ.get("LABML_THRML_PYTHON"),
                    help="interpreter with thrml 0.1.4 (default: $LABML_THRML_PYTHON, else this one)")
    ap.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the first allowed)")
    args = ap.parse_args()
    cpu = args.cpu if args.cpu is not None else min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    torch.set_num_threads(1)
    from threadpoolctl import threadpool_limits

    py, thrml_note = thrml_python(args.thrml_python)
    print(thrml_note, file=sys.stderr)
    load0 = os.getloadavg()
    rows: list[dict] = []
    with threadpool_limits(limits=1), tempfile.TemporaryDirectory() as tmp:
        thrml = ThrmlSide(py) if py else None
        try:
            for key, title, model, col, chain_counts, rbm in cases(args.cases):
                for chains in chain_counts:
                    rows += run_case(key, title, model, col, chains, rbm, thrml, Path(tmp), args)
                    print(f"  done {title}, {chains} chains", file=sys.stderr)
        finally:
            if thrml is not None:
                thrml.close()
    report(rows, ratios(rows), thrml_note, cpu, load0, args)


def report(rows, rat, thrml_note, cpu, load0, args) -> None:
    load1 = os.getloadavg()
    print(f"flips/s (heat-bath site updates per second), 1 thread pinned to CPU {cpu}, median of "
          f"{args.repeats} interleaved; {thrml_note}")
    print(f"load average (1/5/15 min) at start {' / '.join(f'{x:.2f}' for x in load0)}, "
          f"at end {' / '.join(f'{x:.2f}' for x in load1)}")
    print("| case | chains | sweeps | variant | median s | Mflips/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['chains']} | {r['sweeps']} | {r['variant']} | {r['median_s']:.4f} | "
              f"{r['flips_per_s'] / 1e6:.1f} |")
    print()
    print("| case | chains | labml (best) Mflips/s | labml / thrml | GraphSampler / thrml | labml / bounds |")
    print("|---|---|---|---|---|---|")
    for e in rat:
        vs = f"{e['labml / thrml']:.2f}x" if "labml / thrml" in e else "n/a"
        vs += f" | {e['GraphSampler / thrml']:.2f}x" if "GraphSampler / thrml" in e else " | n/a"
        bounds = "; ".join(
            f"{k.split('bound: ')[1]} {v:.2f}" for k, v in e.items() if k.startswith("labml / bound")
        )
        best = f"{e['labml_flips_per_s'] / 1e6:.1f} ({e['labml_best']})"
        print(f"| {e['case']} | {e['chains']} | {best} | {vs} | {bounds} |")
    if args.json:
        print(json.dumps({"rows": rows, "ratios": rat, "thrml": thrml_note, "cpu": cpu,
                          "load_average_start": load0, "load_average_end": load1}))


if __name__ == "__main__":
    main()
