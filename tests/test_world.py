"""The simulated physical world: coil, wires, read-outs, fast path and state (SCIENCE.md 1-3).

Statistical assertions use 99.9 % intervals (z = 3.29 for normal approximations of binomials,
chi-square / t quantiles elsewhere) with fixed seeds.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from instruments.calibration import DepinningMode, Logistic, NeelBrown
from instruments.errors import ConfigError
from instruments.roles import SynapseReads
from simulated_hw import physics
from simulated_hw.world import World

Z999 = stats.norm.ppf(1 - 0.001 / 2)  # two-sided 99.9 %


@pytest.fixture(scope="module")
def world1() -> World:
    return World.default(seed=3, n_wires=1)


def _cycle_scpi(world: World, H_mT: float, wire: int = 0) -> int:
    """One bench cycle the slow way: waveform pulses through the coil, waits on the clock."""
    c = world.cycle
    mT_per_A = world.coil_params.mT_per_A
    t, I = physics.trapezoid_program(c.reset_field_mT / mT_per_A, c.reset_s, c.edge_slew_A_per_s)
    world.play_waveform(np.r_[t, t[-1] + 1e-3], np.r_[I, 0.0])  # reset pulse + discharge
    world.inject(duration_s=c.gap_s)
    t, I = physics.trapezoid_program(H_mT / mT_per_A, c.pulse_duration_s, c.edge_slew_A_per_s)
    world.play_waveform(np.r_[t, t[-1] + 1e-4], np.r_[I, 0.0])
    world.advance(c.settle_s)
    return world.read_bit(wire)


def test_scpi_path_pass_probability_matches_the_analytic_neel_brown_value():
    world = World.default(seed=11, n_wires=1)
    nb = NeelBrown()
    c = world.cycle
    N = 600
    for H in (3.5, 4.6, 5.8):
        k = sum(_cycle_scpi(world, H) for _ in range(N))
        # analytic: NeelBrown.pass_probability over the real pulse + r(0) during the settle
        g, I = physics.pulse_traces(
            np.array([H / 1.8]), c.pulse_duration_s, c.edge_slew_A_per_s, world.coil_params
        )
        integ = physics.rate_integrals(g, 1.8 * I[0], nb, 300.0) + nb.rate(0.0) * c.settle_s
        p = float(nb.pass_probability_from_integral(integ))
        assert p == pytest.approx(float(nb.pass_probability(g, 1.8 * I[0])), abs=1e-3)
        half = Z999 * math.sqrt(p * (1 - p) / N)
        assert abs(k / N - p) < half, (H, k / N, p, half)


def test_fast_path_and_scpi_path_give_the_same_pass_statistics():
    world = World.default(seed=5, n_wires=1)
    world.cycle = physics.CycleSpec(read_bandwidth_Hz=1.0)  # negligible read-out error for this test
    N = 800
    k_scpi = sum(_cycle_scpi(world, 4.8) for _ in range(N))
    r = world.read_synapses(np.full(N, 4.8), np.zeros(N, int), 1)
    k_fast = int(r.counts.sum())
    table = np.array([[k_scpi, N - k_scpi], [k_fast, N - k_fast]])
    assert stats.chi2_contingency(table).pvalue > 1e-3, table


def test_fast_path_curve_of_the_nominal_wire_matches_the_published_logistic(world1):
    H = np.linspace(3.0, 7.0, 21)
    p = world1.true_pass_probability(H, np.zeros_like(H, dtype=int))
    assert np.max(np.abs(p - Logistic().p(H))) < 0.03
    # and the sampled reads follow it: 4000 reads per field, read-out error included
    n = 4000
    r = world1.read_synapses(H, np.zeros(H.size, int), n)
    e = world1.readout_error()
    q = p + (1 - 2 * p) * e
    half = Z999 * np.sqrt(q * (1 - q) / n) + 1e-12
    assert np.all(np.abs(r.fractions - q) < half)
    assert np.max(np.abs(r.fractions - Logistic().p(H))) < 0.03 + half.max()


def test_table_lookup_agrees_with_the_exact_kernel(world1):
    H = np.random.default_rng(0).uniform(0.0, 18.0, 50)
    np.testing.assert_allclose(
        world1.true_pass_probability(H, 0), world1.exact_pass_probability(H, 0), atol=1e-4
    )


def test_midpoint_moves_down_with_longer_pulses_and_higher_temperature(world1):
    H = np.linspace(2.0, 8.0, 121)

    def mid(**kw):
        p = world1.exact_pass_probability(H, 0, **kw)
        return float(np.interp(0.5, p, H))

    m01, m1, m10 = mid(pulse_duration_s=1e-4), mid(pulse_duration_s=1e-3), mid(pulse_duration_s=1e-2)
    assert m01 > m1 + 0.5 and m1 > m10 + 0.5  # ~1 mT per decade of pulse length
    cold, hot = mid(T_K=280.0), mid(T_K=320.0)
    assert cold > m1 + 0.2 and hot < m1 - 0.2


def test_dc_setpoint_ramps_no_faster_than_L_over_R_and_compliance():
    world = World.default(seed=0, n_wires=1)
    world.coil.set_output(True)
    world.coil.set_setpoint_A(8.0)
    vr, tau = world.coil_params.i_compliance_A, world.coil_params.tau_s
    t_reach = tau * math.log(vr / (vr - 8.0))
    world.advance(0.9 * t_reach)
    assert world.coil.current_A < 8.0
    assert world.coil.current_A == pytest.approx(vr * (1 - math.exp(-0.9 * t_reach / tau)), rel=1e-3)
    world.advance(0.2 * t_reach)
    assert world.coil.current_A == 8.0
    assert world.field_mT == pytest.approx(8.0 * 1.8)
    world.coil.set_output(False)
    world.advance(10 * tau)
    assert world.coil.current_A == 0.0


def test_hall_reading_agrees_with_the_calibration_within_its_noise():
    world = World.default(seed=2, n_wires=1)
    world.coil.set_output(True)
    world.coil.set_setpoint_A(2.0)
    world.advance(0.01)
    nz = world.noise
    readings = np.array([world.hall_mT() for _ in range(400)])
    sigma = nz.hall_mT_per_rtHz * math.sqrt(nz.hall_bandwidth_Hz)
    expected = 1.8 * 2.0 + nz.hall_offset_mT
    # mean within the 99.9 % t interval, spread within the 99.9 % chi-square interval
    half = stats.t.ppf(0.9995, readings.size - 1) * readings.std(ddof=1) / math.sqrt(readings.size)
    assert abs(readings.mean() - expected) < half
    chi = (readings.size - 1) * readings.var(ddof=1) / sigma**2
    assert stats.chi2.ppf(0.0005, readings.size - 1) < chi < stats.chi2.ppf(0.9995, readings.size - 1)


def test_mr_sees_the_pinned_wall_not_the_magnetisation_direction():
    world = World.default(seed=4, n_wires=1)
    p = world.wire_params[0]
    world.reset_wires()
    r_minus = world.resistance_ohm()
    world._unpin(world.wires[0], +1)  # saturated +M
    r_plus = world.resistance_ohm()
    assert r_plus == r_minus == p.R0_ohm
    # a pinned wall (not a floor-mode one): keep injecting until one stays at the notch
    for _ in range(50):
        world.reset_wires()
        world.inject()
        if world.wire_state(0).wall_pinned:
            break
    assert world.wire_state(0).wall_pinned
    assert world.resistance_ohm() == pytest.approx(p.R0_ohm + p.dR_dw_ohm)

    def delta_mode(n=20, i=1e-4):
        v = [(world.mr_voltage_V(+i) - world.mr_voltage_V(-i)) / (2 * i) for _ in range(n)]
        return np.mean(v)

    r_wall = delta_mode()
    world._unpin(world.wires[0], +1)
    r_free = delta_mode()
    # delta mode cancels the thermal EMF (a 2 uV offset would be 0.02 ohm at 100 uA)
    assert r_free == pytest.approx(p.R0_ohm, abs=5e-3)
    assert r_wall - r_free == pytest.approx(p.dR_dw_ohm, abs=5e-3)
    # a single-polarity reading carries the EMF offset
    assert world.mr_voltage_V(1e-4, bandwidth_Hz=1e-6) / 1e-4 == pytest.approx(
        p.R0_ohm + p.emf_V / 1e-4, abs=1e-3
    )


def test_moke_loop_from_a_dc_sweep_shows_pad_and_nucleation_fields():
    world = World.from_config({"seed": 1}, {}, [{"id": 0}, {"id": 1, "sim": {"has_pad": False}}])
    step = 0.25
    up = np.arange(-30.0, 30.0 + step / 2, step)
    fields = np.r_[up, up[::-1]]
    world.coil.set_output(True)
    m = np.zeros((fields.size, 2))
    for i, H in enumerate(fields):
        world.coil.set_setpoint_A(H / 1.8)
        world.advance(0.05)
        for w in (0, 1):
            v = np.mean([world.photodiode_V(w) for _ in range(4)])
            m[i, w] = (v / world.wire_params[w].V0_V - 1) / world.wire_params[w].kappa
    levels = np.sign(m)
    n = up.size
    for w, H_sw in ((0, world.wire_params[0].H_pad_mT), (1, world.wire_params[1].H_nuc_mT)):
        # up sweep: -M until the switching field, +M after it
        sw_up = up[np.argmax(levels[:n, w] > 0)]
        assert H_sw <= sw_up <= H_sw + 2 * step, (w, sw_up)
        assert np.all(levels[:n, w][up < H_sw] < 0) and np.all(levels[:n, w][up > H_sw + 2 * step] > 0)
        # down sweep: symmetric
        down = up[::-1]
        sw_down = down[np.argmax(levels[n:, w] < 0)]
        assert -H_sw - 2 * step <= sw_down <= -H_sw, (w, sw_down)
    # the padded wire switches far below the nucleation field of the wire without a pad
    assert world.wire_params[0].H_pad_mT < 6.0 and 15.0 < world.wire_params[1].H_nuc_mT < 30.0


def test_moke_levels_and_laser_off():
    world = World.default(seed=8, n_wires=1)
    p = world.wire_params[0]
    world.reset_wires()
    v_minus = np.mean([world.photodiode_V() for _ in range(200)])
    world._unpin(world.wires[0], +1)
    v_plus = np.mean([world.photodiode_V() for _ in range(200)])
    sigma = physics.moke_sigma_V(
        p.V0_V,
        world.noise.moke_rin_per_rtHz,
        world.noise.moke_detector_V_per_rtHz,
        world.noise.moke_bandwidth_Hz,
    )
    tol = Z999 * sigma / math.sqrt(200)
    assert v_minus == pytest.approx(p.V0_V * (1 - p.kappa), abs=tol)
    assert v_plus == pytest.approx(p.V0_V * (1 + p.kappa), abs=tol)
    world.laser_on = False
    assert abs(world.photodiode_V()) < 10 * sigma
    assert world.readout_error() == 0.5


def test_read_synapses_validates_and_accounts_time_and_energy(world1):
    with pytest.raises(ValueError, match="field_max_mT"):
        world1.read_synapses([40.0], [0], 1)
    with pytest.raises(ValueError, match="wires"):
        world1.read_synapses([4.0], [3], 1)
    with pytest.raises(ValueError, match=r"request 1: .* below -H_prop .*field_range_mT"):
        world1.read_synapses([4.0, -5.0], [0, 0], 1)
    with pytest.raises(ValueError, match="n must be"):
        world1.read_synapses([4.0], [0], 0)
    t0 = world1.clock.now()
    r = world1.read_synapses(np.array([[4.0, 5.0], [6.0, 30.0]]), np.zeros((2, 2), int), 10)
    assert isinstance(r, SynapseReads) and r.counts.shape == (2, 2) and r.n == 10
    assert np.all((r.counts >= 0) & (r.counts <= 10))
    c = world1.cycle
    per_cycle_min = c.reset_s + c.gap_s + c.pulse_duration_s + c.settle_s + c.read_s
    assert r.bench_time_s > 4 * 10 * per_cycle_min
    assert world1.clock.now() - t0 == pytest.approx(r.bench_time_s)
    # the default cycle keeps the coil's mean power under the 150 W budget
    r1 = world1.read_synapses(np.full(100, 6.0), np.zeros(100, int), 1)
    assert 10.0 < r1.energy_J / r1.bench_time_s < 150.0
    # larger drive pulses cost more
    lo = world1.read_synapses([2.0], [0], 1)
    hi = world1.read_synapses([10.0], [0], 1)
    assert hi.energy_J > lo.energy_J and hi.bench_time_s > lo.bench_time_s


def test_fields_above_every_depinning_field_always_pass(world1):
    world1.cycle = physics.CycleSpec(read_bandwidth_Hz=1e-3)
    try:
        r = world1.read_synapses([20.0, 30.0], [0, 0], 50)
        assert r.counts.tolist() == [50, 50]
    finally:
        world1.cycle = physics.CycleSpec()


def test_state_save_restore_continues_bit_identically():
    def script(w: World) -> list:
        out = []
        w.coil.set_output(True)
        w.coil.set_setpoint_A(1.0)
        w.advance(0.003)
        out.append(w.hall_mT())
        w.inject()
        out.append(w.photodiode_V(1))
        out.append(w.read_synapses(np.array([4.0, 4.5, 5.0]), np.array([0, 1, 1]), 7).counts.tolist())
        w.coil.set_setpoint_A(0.0)
        w.advance(0.01)
        out.append(w.mr_voltage_V(1e-4, wire=2))
        out.append((w.clock.now(), w.coil.temperature_K, [s.m_far for s in w.wires]))
        return out

    a = World.default(seed=21, n_wires=3)
    script(a)
    state = json.loads(json.dumps(a.state_dict()))  # survives JSON (run checkpoints)
    first = script(a)
    b = World.default(seed=21, n_wires=3)
    b.load_state_dict(state)
    assert script(b) == first
    with pytest.raises(ValueError, match="wires"):
        World.default(seed=21, n_wires=2).load_state_dict(state)


def test_wires_spread_around_the_nominal_wire_with_the_seed():
    a = World.default(seed=7, n_wires=4)
    b = World.default(seed=7, n_wires=4)
    c = World.default(seed=8, n_wires=4)
    assert a.wire_params[0].neel_brown == NeelBrown()
    assert [p.neel_brown for p in a.wire_params] == [p.neel_brown for p in b.wire_params]
    assert a.wire_params[1].neel_brown != c.wire_params[1].neel_brown
    hc = np.array([[m.Hc_mT for m in p.neel_brown.modes] for p in a.wire_params[1:]])
    assert np.all(np.abs(hc / [13.38, 17.04] - 1) < 0.25)


def test_bad_sim_config_is_refused_with_the_key_named():
    with pytest.raises(ConfigError, match="bogus"):
        World.from_config({"bogus": 1}, {}, [{}])
    with pytest.raises(ConfigError, match=r"\[sim.noise\].*hall_nois"):
        World.from_config({"noise": {"hall_nois": 1}}, {}, [{}])
    with pytest.raises(ConfigError, match="neel_brown"):
        World.from_config({}, {}, [{}, {"id": 1, "neel_brown": {"modes": [], "floor": 0.5}}])
    with pytest.raises(ConfigError, match=r"\[coil\]"):
        World.from_config({}, {"inductance_H": -1}, [{}])
    # a wire's true depinning can be given explicitly
    nb = NeelBrown(floor=0.1, modes=NeelBrown().modes[:1] + (DepinningMode(0.221, 17.0, 24.5),))
    w = World.from_config({"seed": 3}, {"mT_per_A": 2.0}, [{"neel_brown": nb.to_dict()}])
    assert w.wire_params[0].neel_brown == nb and w.coil_params.mT_per_A == 2.0


def test_temperature_drift_moves_the_curve_when_switched_on():
    w = World.from_config({"drift": {"drift_K": 10.0, "drift_period_s": 100.0}}, {}, [{}])
    assert w.sample_temperature_K == 300.0
    p0 = float(w.true_pass_probability(4.6, 0))
    w.advance(25.0)  # quarter period: +10 K
    assert w.sample_temperature_K == pytest.approx(310.0)
    assert float(w.true_pass_probability(4.6, 0)) > p0 + 0.05


def test_world_from_the_builtin_sim_rig_config():
    from instruments.config import load_rig_config

    cfg = load_rig_config("instruments/rigs/sim_default.toml")
    w = World.from_rig_config(cfg)
    assert w.n_wires == len(cfg.wires)
    assert w.wire_params[0].neel_brown == NeelBrown()  # the nominal wire of SCIENCE.md
    assert w.coil_params.mT_per_A == cfg.coil.mT_per_A and w.coil_params.compliance_V == cfg.coil.compliance_V
    # the fast path plays the rig's cycle: edges at 95 % of the slew limit, same gap/settle/read
    assert w.cycle.edge_slew_A_per_s == pytest.approx(0.95 * cfg.limits.pulse_slew_max_A_per_s)
    assert (w.cycle.gap_s, w.cycle.settle_s, w.cycle.read_s) == (
        cfg.cycle.gap_s,
        cfg.cycle.settle_s,
        cfg.cycle.read_s,
    )
    assert w.cycle.readout == "moke" and w.cycle.read_bandwidth_Hz == pytest.approx(250.0)


def test_an_ac_field_waveform_switches_the_wire_every_half_period():
    world = World.default(seed=9, n_wires=1)
    world.reset_wires()
    f_Hz, amp_A = 50.0, 25.0 / 1.8
    for periods, expected in ((5.25, +1), (5.75, -1), (10.25, +1)):
        t = np.linspace(0.0, periods / f_Hz, int(periods * 2000) + 1)
        world.play_waveform(t, amp_A * np.sin(2 * np.pi * f_Hz * t))
        assert world.wire_state(0).m_far == expected and not world.wire_state(0).wall_pinned
    # the field never went beyond what the coil allows
    assert abs(world.coil.current_A) < world.coil_params.i_compliance_A


def test_coil_warms_with_the_heat_of_its_real_current_while_reads_report_the_programmed_energy():
    """Reported energy_J is I^2 R of the programmed current (the bench planner's definition); the
    simulated coil heats with the real current, which lags the -30 mT reset edge (compliance)."""
    world = World.default(seed=1, n_wires=1)
    c, coil = world.cycle, world.coil_params
    n = 200_000  # 3000 s of bench time: 50 thermal time constants (C R_th = 60 s)
    r = world.read_synapses([5.0], [0], n)
    # real coil current of one cycle's two pulses, integrated independently of the fast-path table
    heat = 0.0
    for amp, plateau in (
        (c.reset_field_mT / coil.mT_per_A, c.reset_s),
        (5.0 / coil.mT_per_A, c.pulse_duration_s),
    ):
        g, I = physics.pulse_traces(np.array([amp]), plateau, c.edge_slew_A_per_s, coil)
        heat += float(physics.joule_energy_J(g, I[0], coil))
    p_real = heat * n / r.bench_time_s
    p_prog = r.energy_J / r.bench_time_s
    assert p_prog > 1.1 * p_real  # the program asks for more than the lagging coil dissipates
    th = world.thermal
    rise = world.coil.temperature_K - th.ambient_K
    assert rise == pytest.approx(p_real * th.coil_thermal_resistance_K_per_W, rel=0.01)
