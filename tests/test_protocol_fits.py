"""The depinning fits recover the curves of instruments.calibration from binomial data, and their
uncertainties are honest (coverage checked with a binomial test)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from instruments.calibration import DepinningMode, Logistic, NeelBrown
from protocols.fits import LogisticFit, NeelBrownFit, binomial_interval, trapezoid_pulse


def test_binomial_interval_is_the_exact_clopper_pearson_interval():
    for k, n in [(0, 20), (3, 20), (10, 20), (20, 20), (57, 200)]:
        lo, hi = binomial_interval(k, n)
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        assert lo == pytest.approx(ci.low, abs=1e-9)
        assert hi == pytest.approx(ci.high, abs=1e-9)


def test_logistic_fit_recovers_the_e23_curve_within_its_own_uncertainty():
    rng = np.random.default_rng(7)
    truth = Logistic()
    H = np.linspace(2.0, 8.0, 13)
    n = 300
    k = rng.binomial(n, truth.p(H))
    fit = LogisticFit().fit(H, k, n)
    for name in ("H0", "k", "a"):
        # 3.3 sigma: a correct fit fails this with probability < 0.1 % per parameter.
        assert abs(fit.params_[name] - getattr(truth, name)) < 3.3 * fit.stderr_[name], name
    assert fit.stderr_["H0"] < 0.1  # 3900 reads pin the midpoint to better than 0.1 mT
    assert fit.goodness_.dof == 13 - 4  # H0, k, a and the read-out error
    assert fit.goodness_.p_value > 0.001
    assert isinstance(fit.logistic_, Logistic)


def test_logistic_fit_separates_the_read_out_error_ceiling_from_the_curve():
    """Read bits flip with probability e: the measured curve tops out at 1 - e. The fit recovers e and
    the pass-probability curve underneath it."""
    rng = np.random.default_rng(11)
    truth, e = Logistic(), 0.01
    H = np.linspace(2.0, 9.0, 15)
    p = truth.p(H)
    k = rng.binomial(400, p + (1 - 2 * p) * e)
    fit = LogisticFit().fit(H, k, 400)
    assert abs(fit.params_["readout_error"] - e) < 3.3 * fit.stderr_["readout_error"]
    for name in ("H0", "k", "a"):
        assert abs(fit.params_[name] - getattr(truth, name)) < 3.3 * fit.stderr_[name], name
    assert fit.goodness_.p_value > 0.001
    assert fit.predict(9.0) == pytest.approx(1 - e, abs=3.3 * fit.stderr_["readout_error"])


def test_logistic_fit_uncertainties_cover_the_truth_at_the_stated_rate():
    """Over 30 independent data sets the +-2 sigma interval of H0 must contain the truth about 95 % of
    the time: with a true coverage of 0.954, 24 or more of 30 happens with probability > 99.7 %."""
    rng = np.random.default_rng(123)
    truth = Logistic(H0=5.0, k=2.0, a=0.95)
    H = np.linspace(2.0, 8.0, 9)
    hits = 0
    for _ in range(30):
        k = rng.binomial(100, truth.p(H))
        fit = LogisticFit().fit(H, k, 100)
        hits += abs(fit.params_["H0"] - truth.H0) < 2 * fit.stderr_["H0"]
    assert hits >= 24, hits
    assert stats.binom.cdf(23, 30, 0.954) < 0.003


def test_trapezoid_pulse_has_the_coil_edges_and_the_plateau():
    t, H = trapezoid_pulse(np.array([3.6]), 1e-3, 36000.0, n_t=2001)
    assert H.max() == pytest.approx(3.6, rel=1e-3)
    dt = np.diff(t)[0]
    assert np.max(np.abs(np.diff(H[0]))) / dt <= 36000.0 * 1.001  # never faster than the slew
    plateau = t[np.isclose(H[0], 3.6)]
    assert plateau.max() - plateau.min() == pytest.approx(1e-3, abs=3 * dt)


def _nb_data(nb, taus, slew, n, rng):
    Hs, ts, ks = [], [], []
    for tau in taus:
        H = np.linspace(1.0, 12.0, 12)
        t, Ht = trapezoid_pulse(H, tau, slew)
        p = nb.pass_probability(t, Ht)
        Hs.append(H)
        ts.append(np.full_like(H, tau))
        ks.append(rng.binomial(n, p))
    return np.concatenate(Hs), np.concatenate(ks), np.concatenate(ts)


def test_neel_brown_fit_over_three_pulse_lengths_recovers_hc_and_e0():
    rng = np.random.default_rng(3)
    truth = NeelBrown(modes=(DepinningMode(weight=0.97, Hc_mT=14.0, E0_kT300=28.0),), floor=0.03)
    slew = 36000.0  # mT/s: 2e4 A/s at 1.8 mT/A
    H, k, tau = _nb_data(truth, [1e-4, 1e-3, 1e-2], slew, 200, rng)
    fit = NeelBrownFit(f0_Hz=1e9, beta=1.5, slew_mT_per_s=slew).fit(H, k, 200, tau)
    assert abs(fit.params_["Hc_mT"] - 14.0) < 3.3 * fit.stderr_["Hc_mT"]
    assert abs(fit.params_["E0_kT300"] - 28.0) < 3.3 * fit.stderr_["E0_kT300"]
    assert abs(fit.params_["floor"] - 0.03) < 3.3 * fit.stderr_["floor"]
    assert fit.stderr_["Hc_mT"] < 1.0 and fit.stderr_["E0_kT300"] < 2.0
    assert fit.goodness_.p_value > 0.001
    d = fit.to_dict()
    assert d["f0_Hz"] == 1e9 and d["beta"] == 1.5 and d["model"]["modes"][0]["Hc_mT"] == d["Hc_mT"]


def test_one_pulse_length_leaves_hc_and_e0_traded_off():
    """SCIENCE.md: at one pulse length E0 and Hc trade off; more pulse lengths separate them."""
    rng = np.random.default_rng(5)
    truth = NeelBrown(modes=(DepinningMode(weight=0.97, Hc_mT=14.0, E0_kT300=28.0),), floor=0.03)
    H1, k1, t1 = _nb_data(truth, [1e-3], None, 600, rng)
    H3, k3, t3 = _nb_data(truth, [1e-4, 1e-3, 1e-2], None, 200, rng)  # same number of reads
    one = NeelBrownFit().fit(H1, k1, 600, t1)
    three = NeelBrownFit().fit(H3, k3, 200, t3)
    assert abs(one.corr_) > 0.99
    assert three.stderr_["Hc_mT"] < 0.5 * one.stderr_["Hc_mT"]


def test_fits_reject_malformed_data_with_a_clear_message():
    with pytest.raises(ValueError, match="counts must lie in"):
        LogisticFit().fit([1, 2, 3], [5, 1, 2], 4)
    with pytest.raises(ValueError, match="at least 3 field points"):
        LogisticFit().fit([1, 2], [0, 1], 4)
