"""Physics kernels of the simulated lab: the coil, the depinning integral, the binomial sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from instruments.calibration import Logistic, NeelBrown
from simulated_hw import physics
from simulated_hw.physics import CoilParams

COIL = CoilParams()  # contract coil: 1.8 mT/A, 1 mH, 1 ohm, 20 V


def _max_rate_up(I):
    return (COIL.compliance_V - I * COIL.resistance_ohm) / COIL.inductance_H


def test_coil_never_slews_faster_than_L_over_R_and_compliance_allow():
    # a step program from 0 to 5 A and back: the real current must lag it
    t = np.array([0.0, 1e-9, 1e-3, 1e-3 + 1e-9, 2e-3])
    prog = np.array([0.0, 5.0, 5.0, 0.0, 0.0])
    g, I = physics.coil_follow(t, prog, 0.0, COIL)
    dt = np.diff(g)
    dI = np.diff(I)
    # exact bound over a step at full compliance: I_up = Vr + (I - Vr) exp(-dt/tau)
    vr, e = COIL.i_compliance_A, np.exp(-dt / COIL.tau_s)
    assert np.all(I[1:] <= vr + (I[:-1] - vr) * e + 1e-12)
    assert np.all(I[1:] >= -vr + (I[:-1] + vr) * e - 1e-12)
    assert np.max(dI / dt) <= _max_rate_up(0.0) * (1 + 1e-9)
    # it reaches 5 A no earlier than the analytic L/R charging time tau ln(Vr / (Vr - 5))
    t_reach = COIL.tau_s * math.log(vr / (vr - 5.0))
    first = g[np.argmax(I >= 5.0 - 1e-12)]
    assert t_reach - 1e-12 <= first <= t_reach + 2 * physics.DT_S
    # the contract: about 0.15 ms to 5 mT
    assert 0.10e-3 < COIL.tau_s * math.log(vr / (vr - 5.0 / COIL.mT_per_A)) < 0.20e-3


def test_coil_cannot_exceed_compliance_current():
    t = np.array([0.0, 1e-9, 20e-3])
    g, I = physics.coil_follow(t, np.array([0.0, 25.0, 25.0]), 0.0, COIL)
    assert I.max() < COIL.i_compliance_A  # 20 A = 20 V / 1 ohm is only approached
    # after 20 tau it is within 1e-8 of it
    assert I[-1] == pytest.approx(COIL.i_compliance_A, abs=20 * math.exp(-20))


def test_coil_follows_a_slow_program_exactly():
    t = np.linspace(0, 10e-3, 11)
    prog = 100.0 * t  # 100 A/s, far below the 2e4 A/s the compliance allows
    g, I = physics.coil_follow(t, prog, 0.0, COIL)
    np.testing.assert_allclose(I, 100.0 * g, atol=1e-12)


def test_nearly_ideal_coil_gives_the_rectangle_neel_brown_probability():
    fast = CoilParams(inductance_H=1e-9, compliance_V=1e4)  # edges of ~ns
    nb = NeelBrown()
    H = np.array([2.0, 4.0, 4.6, 5.5, 7.0])
    p = physics.cycle_pass_probability(H, nb, fast, 1e-3, 1e9, 0.0, 300.0)
    np.testing.assert_allclose(p, nb.rectangle_pass_probability(H, 1e-3), atol=2e-3)


def test_default_pulse_curve_matches_the_published_logistic():
    H = np.linspace(3.0, 7.0, 81)
    p = physics.cycle_pass_probability(H, NeelBrown(), COIL, 1e-3, 2e4, 2e-3, 300.0)
    assert np.max(np.abs(p - Logistic().p(H))) < 0.03


def test_readout_error_from_snr():
    assert physics.bit_error_probability(2.0, 1e-12) == 0.0
    assert physics.bit_error_probability(0.0, 1.0) == pytest.approx(0.5)
    # levels 2 sigma apart, threshold half way: Phi(-1)
    assert physics.bit_error_probability(2.0, 1.0) == pytest.approx(stats.norm.cdf(-1.0))


@pytest.mark.parametrize("n", [1, 3, 8, 20])
def test_binomial_sampler_has_the_binomial_distribution(n):
    rng = np.random.default_rng(12)
    q = 0.37
    counts = physics.sample_binomial(rng, n, np.full(40_000, q))
    obs = np.bincount(counts, minlength=n + 1)
    exp = stats.binom.pmf(np.arange(n + 1), n, q) * counts.size
    keep = exp >= 5  # pool the rare tails into one cell
    f_obs = np.r_[obs[keep], obs[~keep].sum()] if (~keep).any() else obs[keep]
    f_exp = np.r_[exp[keep], exp[~keep].sum()] if (~keep).any() else exp[keep]
    # chi-square goodness of fit, rejected only at 99.9 %
    assert stats.chisquare(f_obs, f_exp * f_obs.sum() / f_exp.sum()).pvalue > 1e-3


def test_binomial_sampler_edges():
    rng = np.random.default_rng(0)
    for n in (1, 4, 50):
        c = physics.sample_binomial(rng, n, np.array([0.0, 1.0, 0.0, 1.0]))
        assert c.tolist() == [0, n, 0, n]
