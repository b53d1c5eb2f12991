"""On the built-in simulated rig, the bench planner (NanowireRig.read_synapses through the real
drivers, every command SCPI) and the simulated fast path give the same pass statistics."""

from __future__ import annotations

import numpy as np
from scipy import stats

from instruments.rig import NanowireRig
from labml.rigs import open_rig


def test_bench_planner_and_fast_path_agree_on_the_simulated_rig():
    fields = np.array([3.5, 4.6, 5.8])
    wires = np.zeros(3, dtype=int)
    n = 120
    with open_rig("sim", sim={"seed": 11}) as rig:
        bench = NanowireRig.read_synapses(rig, fields, wires, n)  # the planner a real bench runs
        fast = rig.read_synapses(fields, wires, n)  # the simulated rig's vectorised fast path
        assert rig.guard.setpoint_A == 0.0
    for kb, kf in zip(bench.counts, fast.counts, strict=True):
        table = [[kb, n - kb], [kf, n - kf]]
        assert stats.fisher_exact(table).pvalue > 1e-3, table  # same p at 99.9 % confidence
    assert np.all(np.diff(bench.counts) > 0)  # more passes at higher fields
    # both report the bench time of the same cycle sequence (within 5 %)
    assert abs(bench.bench_time_s - fast.bench_time_s) < 0.05 * fast.bench_time_s
    assert bench.energy_J > 0 and fast.energy_J > 0


def test_labml_rig_check_and_zero_on_the_builtin_simulated_rig(capsys):
    from labml.cli import main

    assert main(["rig", "check"]) == 0
    out = capsys.readouterr().out
    assert "rig sim_default (backend sim" in out and "rig check: ok" in out
    assert all(f"wire {i}:" in out for i in range(4)) and "SR830" in out
    assert main(["rig", "zero", "--rig", "sim"]) == 0
    assert "outputs off" in capsys.readouterr().out
