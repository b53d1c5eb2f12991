"""The simulated rig: the same NanowireRig code over real drivers and simulated instruments, with
the world's vectorised fast path behind read_synapses. The two speeds must agree: same pass
statistics for the same wire and field (two-sample tests at fixed seeds), same bench time."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from instruments.config import builtin_rig_path, load_rig_config
from instruments.errors import SafetyError
from instruments.rig import NanowireRig
from instruments.roles import (
    ChannelSelector,
    FieldSensor,
    FieldSource,
    MagnetisationReadout,
    PulseSource,
    SynapseRig,
)
from instruments.safety import RampStopped
from labml.rigs import open_rig
from simulated_hw.rig import SimNanowireRig, build_sim_rig

#: significance of the two-sample tests: a correct simulator fails them with probability 0.1 %
ALPHA = 1e-3


@pytest.fixture(scope="module")
def rig():
    cfg = load_rig_config(builtin_rig_path("sim_default"), {"sim": {"seed": 7}})
    r = build_sim_rig(cfg)
    r.select(0)
    r.calibrate_readout()
    yield r
    r.shutdown()


def test_open_rig_sim_is_the_simulated_rig_on_the_real_drivers():
    with open_rig("sim") as r:
        assert isinstance(r, SimNanowireRig)
        assert isinstance(r, SynapseRig)  # the role learning code depends on
        assert isinstance(r.field_source, FieldSource) and isinstance(r.pulse_source, PulseSource)
        assert isinstance(r.readout, MagnetisationReadout) and isinstance(r.field_sensor, FieldSensor)
        assert isinstance(r.channel_selector, ChannelSelector)
        ids = r.identities()
        assert ids["field_source"].startswith("KEPCO") and "33522B" in ids["pulse_source"]
        assert "SR830" in ids["readout"] and "MODEL425" in ids["field_sensor"]
        assert r.clock is r.world.clock
        r.ramp_to_field(4.0)
        assert r.world.field_mT == pytest.approx(4.0, abs=0.01)
    assert r.world.coil.current_A == 0.0 and not r.world.coil.output_on  # shut down on exit


def test_fast_path_and_scpi_path_give_the_same_pass_statistics(rig):
    """cycle() repeated through the drivers, the bench planner (NanowireRig.read_synapses over
    SCPI) and the fast path (world.read_synapses) at the same wire and field: Fisher exact tests."""
    field = 4.6  # near the midpoint: the most sensitive place for a difference in p
    n_cycle, n_planner, n_fast = 120, 300, 4000
    k_cycle = sum(rig.cycle(field) for _ in range(n_cycle))
    planner = NanowireRig.read_synapses(rig, np.array([field]), np.array([0]), n_planner)
    fast = rig.read_synapses(np.array([field]), np.array([0]), n_fast)
    k_planner, k_fast = int(planner.counts[0]), int(fast.counts[0])
    for k, n in ((k_cycle, n_cycle), (k_planner, n_planner)):
        _, p_value = stats.fisher_exact([[k, n - k], [k_fast, n_fast - k_fast]])
        assert p_value > ALPHA, (k, n, k_fast, n_fast)
    # and both agree with the world's exact model probability (binomial 99.9 % interval)
    q = float(rig.world.true_pass_probability([field], [0])[0])
    lo, hi = stats.binom.interval(1 - ALPHA, n_fast, q)
    assert lo <= k_fast <= hi
    # the fast path reports the bench time of the same cycles (within 2 %)
    assert fast.bench_time_s / n_fast == pytest.approx(planner.bench_time_s / n_planner, rel=0.02)


def test_fast_and_scpi_paths_agree_along_the_curve(rig):
    """Bench planner over SCPI vs fast path at three more fields on wire 0 (Fisher exact tests,
    Bonferroni-corrected to a family-wise 0.1 %)."""
    fields = np.array([3.8, 5.4, 6.5])
    planner = NanowireRig.read_synapses(rig, fields, np.zeros(3, dtype=int), 100)
    fast = rig.read_synapses(fields, np.zeros(3, dtype=int), 3000)
    for k, kf in zip(planner.counts, fast.counts, strict=True):
        _, p_value = stats.fisher_exact([[k, 100 - k], [kf, 3000 - kf]])
        assert p_value > ALPHA / 3, (fields, planner.counts, fast.counts)
    assert np.all(np.diff(fast.counts) > 0)  # the curve rises with the field


def test_scpi_path_sees_a_different_wire_differently(rig):
    """Power check of the comparison above: wires 0 and 1 at a field where their curves differ are
    told apart by the same test on the fast path, and the SCPI planner reads wire 1 like the fast
    path does."""
    p = rig.world.true_pass_probability([4.6, 4.6], [0, 1])
    assert abs(p[0] - p[1]) > 0.1  # seed 7 spreads wire 1 away from the nominal wire 0
    fast = rig.read_synapses(np.array([4.6, 4.6]), np.array([0, 1]), 2000)
    _, p_value = stats.fisher_exact(
        [[fast.counts[0], 2000 - fast.counts[0]], [fast.counts[1], 2000 - fast.counts[1]]]
    )
    assert p_value < ALPHA
    planner = NanowireRig.read_synapses(rig, np.array([4.6]), np.array([1]), 200)
    _, p_value = stats.fisher_exact(
        [[planner.counts[0], 200 - planner.counts[0]], [fast.counts[1], 2000 - fast.counts[1]]]
    )
    assert p_value > ALPHA
    rig.select(0)


def test_fast_path_refuses_bad_requests_before_anything_moves(rig):
    t0 = rig.clock.now()
    with pytest.raises((SafetyError, ValueError)):
        rig.read_synapses(np.array([500.0]), np.array([0]), 4)
    with pytest.raises(ValueError):
        rig.read_synapses(np.array([4.0]), np.array([9]), 4)
    with pytest.raises(ValueError):
        rig.read_synapses(np.array([4.0, 5.0]), np.array([0]), 4)
    assert rig.clock.now() == t0


def test_fast_path_like_the_bench_planner_reads_nothing_while_a_stop_is_in_force(rig):
    t0 = rig.clock.now()
    rig.request_stop()
    try:
        for read in (rig.read_synapses, lambda *a: NanowireRig.read_synapses(rig, *a)):
            with pytest.raises(RampStopped):
                read(np.array([4.0]), np.array([0]), 4)
        assert rig.clock.now() == t0  # no bench time spent, no cycle played
    finally:
        rig.guard.clear_stop()
    assert rig.read_synapses(np.array([4.0]), np.array([0]), 4).n == 4


def test_state_dict_resumes_bit_identically(rig):
    state = rig.state_dict()

    def run():
        bits = [rig.cycle(5.0) for _ in range(4)]
        reads = rig.read_synapses(np.array([4.0, 5.0, 6.0]), np.array([0, 1, 2]), 32)
        return bits, reads.counts.tolist(), rig.clock.now()

    first = run()
    rig.load_state_dict(state)
    assert run() == first


def test_strict_driver_limits_and_compliance_come_from_the_rig_config():
    cfg = load_rig_config(
        builtin_rig_path("sim_default"),
        {"limits": {"i_max_A": 18.0, "field_max_mT": 32.0}, "coil": {"compliance_V": 15.0}},
    )
    with build_sim_rig(cfg) as r:
        supply = r.field_source.supply
        assert supply.i_max_A == 18.0
        with pytest.raises(ValueError):
            supply.current_setpoint = 18.5  # even bypassing the guard, the driver refuses
        assert r.world.coil.compliance_V == 15.0  # the supply's compliance is the configured one


def test_fast_path_prices_the_two_waveform_cycle_of_a_generator_without_injection_trigger():
    """A 33220A cannot fire the injection line from its trigger: the rig arms reset and drive as two
    waveforms with a software-timed injection (a 2400 on the injection line) between them. The
    fast path then reports that sequence's bench time and energy, not the one-waveform cycle's."""
    cfg = load_rig_config(
        builtin_rig_path("sim_default"),
        {
            "sim": {"seed": 2},
            "instruments": {
                "pulse_source": {
                    "class": "instruments.drivers.roles.Awg33220PulseSource",
                    "address": "SIM::33220A",
                    "amplifier_A_per_V": 4.0,  # the -30 mT reset within the 33220A's 5 V
                },
                "injector": {
                    "class": "instruments.drivers.roles.SourcemeterInjector",
                    "address": "SIM::2400",
                },
            },
        },
    )
    fields, wires = np.array([4.0, 5.5]), np.zeros(2, dtype=int)
    with build_sim_rig(cfg) as two:
        assert two.world.cycle.two_waveforms and two.world.cycle.inject_s == pytest.approx(1e-3)
        two.select(0)
        two.calibrate_readout()
        planner = NanowireRig.read_synapses(two, fields, wires, 8)
        fast = two.read_synapses(fields, wires, 8)
        # one whole-cycle waveform (what a 33500 plays) would be shorter
        one_waveform_s = sum(
            two.guard.validate_waveform(two.cycle_program(h)[0], 1e5).duration_s + 5e-3 for h in fields
        )
    assert fast.bench_time_s == pytest.approx(planner.bench_time_s, rel=2e-3)
    assert fast.energy_J == pytest.approx(planner.energy_J, rel=1e-3)
    assert fast.bench_time_s > 1.03 * 8 * one_waveform_s
