"""SCPI-path overhead: how long the simulated lab takes per bus command, per role operation and
per read cycle through the real drivers, compared with the vectorised fast path.

    .venv/bin/python benchmarks/bench_scpi.py [--repeat N] [--markdown]

Wall time on this machine (not simulated bench time). Each figure is the median of `--repeat`
runs of a timed loop.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from instruments.config import builtin_rig_path, load_rig_config
from instruments.models.kepco_bop import KepcoBOPStrict, KepcoFieldSource
from instruments.rig import NanowireRig
from simulated_hw.adapter import SimAdapter
from simulated_hw.instruments import SimKepco
from simulated_hw.rig import build_sim_rig
from simulated_hw.world import World


def timed(fn, n: int, repeat: int) -> float:
    """Median seconds per call of fn over `repeat` loops of n calls."""
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t0) / n)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args()
    rows: list[tuple[str, float, str]] = []

    world = World.default(seed=0)
    adapter = SimAdapter(SimKepco(world))
    supply = KepcoBOPStrict(adapter, i_max_A=20, v_max_V=20)
    fs = KepcoFieldSource(supply)
    rows.append(
        ("adapter write (CURR 0.5)", timed(lambda: adapter.write("CURR 0.5"), 2000, args.repeat), "1 write")
    )
    rows.append(("driver query *IDN?", timed(lambda: supply.id, 2000, args.repeat), "write + read"))
    rows.append(("driver query MEAS:CURR?", timed(lambda: supply.current, 2000, args.repeat), "write + read"))
    rows.append(
        (
            "driver set current_setpoint",
            timed(lambda: setattr(supply, "current_setpoint", 0.5), 2000, args.repeat),
            "validate + write",
        )
    )
    fs.configure()
    fs.enable_output()
    rows.append(
        (
            "role KepcoFieldSource.set_current_A",
            timed(lambda: fs.set_current_A(0.5), 1000, args.repeat),
            "write + compliance query",
        )
    )

    with tempfile.TemporaryDirectory() as tmp:  # the simulated bench's state file (labml.rigs.open_rig)
        for where, state_file in (("in this process", None), ("kept in a file", Path(tmp) / "sim.simstate")):
            r = build_sim_rig(load_rig_config(builtin_rig_path("sim_default")), state_file=state_file)
            r.guard.enable_output()
            g = r.guard
            t_step = timed(lambda g=g: (g.ramp_to_current(5.0), g.ramp_to_current(0.0)), 1, args.repeat)
            rows.append((f"guard ramp step, supply state {where}", t_step / 100, "0 -> 5 A -> 0, 0.1 A step"))
            r.shutdown()

    rig = build_sim_rig(load_rig_config(builtin_rig_path("sim_default")))
    rig.select(0)
    rig.calibrate_readout()
    n_tx0 = sum(a.n_writes + a.n_reads for a in rig.adapters.values())
    t_cycle = timed(lambda: rig.cycle(4.6), 30, args.repeat)
    n_tx = (sum(a.n_writes + a.n_reads for a in rig.adapters.values()) - n_tx0) / (30 * args.repeat)
    rows.append(("rig.cycle() (reset, inject, drive, read)", t_cycle, f"{n_tx:.0f} transactions"))
    n_tx0 = sum(a.n_writes + a.n_reads for a in rig.adapters.values())
    t_plan = (
        timed(lambda: NanowireRig.read_synapses(rig, np.array([4.6]), np.array([0]), 100), 1, args.repeat)
        / 100
    )
    n_tx = (sum(a.n_writes + a.n_reads for a in rig.adapters.values()) - n_tx0) / (100 * args.repeat)
    rows.append(("bench planner, per read (one-trigger cycles)", t_plan, f"{n_tx:.1f} transactions"))
    fields, wires = np.full(1000, 4.6), np.zeros(1000, dtype=int)
    rig.read_synapses(fields, wires, 1)  # build the world's tables first
    t_fast = timed(lambda: rig.read_synapses(fields, wires, 100), 1, args.repeat) / (1000 * 100)
    rows.append(("fast path, per read (1000 requests x n=100)", t_fast, "world.read_synapses"))
    rig.shutdown()

    if args.markdown:
        print("| operation | wall time per call | what |")
        print("|---|---|---|")
        for name, sec, what in rows:
            print(f"| {name} | {sec * 1e6:.3g} us | {what} |")
    else:
        for name, sec, what in rows:
            print(f"{name:50s} {sec * 1e6:10.3g} us   {what}")
    print(
        f"\nSCPI cycle / fast-path read: {t_cycle / t_fast:.3g}x; bench planner read / fast read: "
        f"{t_plan / t_fast:.3g}x"
    )


if __name__ == "__main__":
    main()
