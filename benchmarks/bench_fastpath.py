"""Throughput of the simulated world's fast path, and the cost of the slow (SCPI) path.

    .venv/bin/python benchmarks/bench_fastpath.py [--quick]
    .venv/bin/python benchmarks/bench_fastpath.py --physics     # model numbers, no timing

Fast path: `World.read_synapses(fields, wires, n)` on the built-in simulated rig's world
(instruments/rigs/sim_default.toml: 4 wires), requests drawn uniformly over 2-8 mT on random wires,
reported as device reads per second (requests x n / wall time, median of repeats). The one-off
table build (per wire, per cycle and temperature) is reported separately.

Slow path: one full read cycle through the world's SCPI-level entry points (reset waveform, inject,
drive waveform, settle, read) and, when simulated_hw.adapter and the drivers are importable, the
wall time of one driver command over the simulated adapter (a write and a query).
Wall-clock numbers depend on the machine and its load; run it on an idle machine for the numbers
quoted in docs/ and benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np


def _median_time(fn, repeats: int, clock=time.perf_counter) -> float:
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def _times(fn, repeats: int) -> tuple[float, float]:
    """(median wall time, mean CPU time of this process) per call, s. On a shared machine the CPU
    time is the cost of the call itself; the wall time adds waiting for a core."""
    wall = _median_time(fn, repeats)
    c0 = time.process_time()
    for _ in range(repeats):
        fn()
    return wall, (time.process_time() - c0) / repeats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (smoke run)")
    ap.add_argument("--physics", action="store_true",
                    help="print the model numbers of docs/simulated_world.md instead of timings")
    args = ap.parse_args(argv)
    if args.physics:
        return physics_numbers()
    repeats = 5 if args.quick else 21

    from instruments.config import load_rig_config
    from simulated_hw import physics
    from simulated_hw.world import World

    cfg = load_rig_config("instruments/rigs/sim_default.toml")
    world = World.from_rig_config(cfg, seed=0)
    rng = np.random.default_rng(0)
    print(f"# fast path, {platform.machine()} {platform.python_version()}, numpy {np.__version__}")

    t0 = time.perf_counter()
    world.read_synapses(np.array([5.0] * 4), np.arange(4), 1)
    dt = time.perf_counter() - t0
    print(f"table build for {world.n_wires} wires: {dt:.2f} s wall (once per cycle, temperature and coil)")

    print("| requests | n | wall per call (ms) | reads/s (wall) | CPU per call (ms) | reads/s (CPU) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n_req in (1960, 125_440):
        fields = rng.uniform(2.0, 8.0, n_req)
        wires = rng.integers(0, world.n_wires, n_req)
        for n in (1, 4, 16, 64):
            tw, tc = _times(lambda f=fields, w=wires, n=n: world.read_synapses(f, w, n), repeats)
            reads = n_req * n
            cells = [n_req, n, f"{tw * 1e3:.3f}", f"{reads / tw:.3g}", f"{tc * 1e3:.3f}", f"{reads / tc:.3g}"]
            print("| " + " | ".join(str(x) for x in cells) + " |")

    # slow path: one cycle through the world's waveform entry points
    c = world.cycle
    mT_per_A = world.coil_params.mT_per_A
    tr, Ir = physics.trapezoid_program(c.reset_field_mT / mT_per_A, c.reset_s, c.edge_slew_A_per_s)
    td, Id = physics.trapezoid_program(5.0 / mT_per_A, c.pulse_duration_s, c.edge_slew_A_per_s)

    def one_cycle():
        world.play_waveform(tr, Ir)
        world.inject(duration_s=c.gap_s)
        world.play_waveform(td, Id)
        world.advance(c.settle_s)
        world.photodiode_V(0)

    one_cycle()
    t = _median_time(one_cycle, repeats * 5)
    print(f"\nworld-level slow path (waveforms + waits + MOKE read): {t * 1e3:.3f} ms per cycle "
          f"= {1 / t:.3g} reads/s")

    try:
        from instruments.drivers.kepco import KepcoBOPStrict
        from simulated_hw.adapter import SimAdapter
        from simulated_hw.instruments.sources import SimKepco
    except ImportError as exc:  # pragma: no cover - depends on engineer C's modules
        print(f"SCPI command overhead: not measured ({exc})")
        return 0
    supply = KepcoBOPStrict(SimAdapter(SimKepco(world)), i_max_A=20.0)
    supply.current_setpoint = 0.0
    tw = _median_time(lambda: setattr(supply, "current_setpoint", 0.0), repeats * 20)
    tq = _median_time(lambda: supply.current, repeats * 20)
    print(f"SCPI path over SimAdapter (Kepco driver): write {tw * 1e6:.1f} us, query {tq * 1e6:.1f} us "
          "per command (wall)")
    return 0


def physics_numbers() -> int:
    """The model numbers quoted in docs/simulated_world.md (deterministic, no timing)."""
    from instruments.calibration import Logistic
    from instruments.config import load_rig_config
    from simulated_hw.world import World

    w = World.from_rig_config(load_rig_config("instruments/rigs/sim_default.toml"), seed=0)
    H = np.linspace(3, 7, 81)
    dev = np.abs(w.exact_pass_probability(H, 0) - Logistic().p(H)).max()
    print(f"max |p - logistic| over 3-7 mT (wire 0, default cycle): {dev:.4f}")
    G = np.linspace(2, 8, 241)

    def mid(wire=0, **kw):
        return float(np.interp(0.5, w.exact_pass_probability(G, wire, **kw), G))

    print("midpoint for 0.1 / 1 / 10 ms plateau (mT): "
          + " / ".join(f"{mid(pulse_duration_s=d):.2f}" for d in (1e-4, 1e-3, 1e-2)))
    print("midpoint at 280 / 300 / 320 K (mT): " + " / ".join(f"{mid(T_K=T):.2f}" for T in (280, 300, 320)))
    print("midpoints of wires (mT): " + ", ".join(f"{mid(i):.2f}" for i in range(w.n_wires)))
    c = w.coil_params
    t5 = c.tau_s * np.log(c.i_compliance_A / (c.i_compliance_A - 5 / c.mT_per_A))
    print(f"coil time to 5 mT: {t5 * 1e3:.3f} ms")
    err = w.readout_error()
    print(f"read-out bit error ({w.cycle.readout}, {w.cycle.read_bandwidth_Hz:g} Hz): {err:.2e}")
    r = w.read_synapses(np.full(1000, 5.0), np.zeros(1000, int), 1)
    print(f"one cycle at 5 mT: {r.bench_time_s / 1000 * 1e3:.2f} ms, {r.energy_J / 1000:.3f} J, "
          f"{r.energy_J / r.bench_time_s:.1f} W mean")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
