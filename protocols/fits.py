"""Fits of depinning data: binomial error bars, the logistic p(H) and the Neel-Brown model.

Data are pass counts `k_i` out of `n_i` reads at fields `H_i` (mT), optionally at several pulse
lengths. Both fits are binomial maximum-likelihood fits (scipy.optimize) with parameter
uncertainties from the inverse Fisher information, sum_i n_i / (p_i (1 - p_i)) dp_i/dtheta dp_i/dtheta^T,
which is the standard large-sample covariance of a binomial MLE.

The formulas of the curves themselves are not re-implemented here: the logistic is
`instruments.calibration.Logistic`, the Neel-Brown pass probability is
`instruments.calibration.NeelBrown` (SCIENCE.md section 1).

Estimator style (scikit-learn): settings in `__init__`, `fit(...)` returns self, results as
attributes with a trailing underscore.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from instruments.calibration import DepinningMode, Logistic, NeelBrown

log = logging.getLogger(__name__)

_P_EPS = 1e-9


def _small_problem(fn):
    """Run a fit with single-threaded BLAS: these problems are tiny, and BLAS worker threads
    spinning on a loaded machine make them 10x slower (threadpoolctl ships with scikit-learn)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - scikit-learn brings it
            return fn(*args, **kwargs)
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


def binomial_interval(counts, n, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) confidence interval of a binomial proportion.

    counts, n: arrays (or scalars) of successes and trials. Returns (low, high) arrays.
    """
    k = np.asarray(counts, dtype=float)
    n = np.broadcast_to(np.asarray(n, dtype=float), k.shape)
    alpha = 1.0 - confidence
    with np.errstate(invalid="ignore"):
        lo = np.where(k > 0, stats.beta.ppf(alpha / 2, k, n - k + 1), 0.0)
        hi = np.where(k < n, stats.beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    return lo, hi


def _check_binomial(H, counts, n) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    H = np.asarray(H, dtype=float).ravel()
    k = np.asarray(counts, dtype=float).ravel()
    n = np.broadcast_to(np.asarray(n, dtype=float), k.shape).astype(float)
    if not (H.shape == k.shape):
        raise ValueError(f"fields ({H.shape}) and counts ({k.shape}) must have the same length")
    if np.any(n <= 0) or np.any(k < 0) or np.any(k > n):
        raise ValueError("counts must lie in [0, n] with n > 0 reads per field")
    if H.size < 3:
        raise ValueError(f"need at least 3 field points to fit, got {H.size}")
    return H, k, n


def _neg_loglik(p: np.ndarray, k: np.ndarray, n: np.ndarray) -> float:
    p = np.clip(p, _P_EPS, 1 - _P_EPS)
    return float(-(k * np.log(p) + (n - k) * np.log1p(-p)).sum())


def _fisher_cov(jac: np.ndarray, p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Inverse Fisher information of a binomial model with Jacobian dp/dtheta (n_points, n_par)."""
    p = np.clip(p, 1e-6, 1 - 1e-6)
    w = n / (p * (1 - p))
    info = jac.T @ (w[:, None] * jac)
    return np.linalg.pinv(info)


def _numeric_jacobian(fun, theta: np.ndarray, rel: float = 1e-5) -> np.ndarray:
    theta = np.asarray(theta, dtype=float)
    cols = []
    for j in range(theta.size):
        h = rel * max(abs(theta[j]), 1e-3)
        tp, tm = theta.copy(), theta.copy()
        tp[j] += h
        tm[j] -= h
        cols.append((fun(tp) - fun(tm)) / (2 * h))
    return np.stack(cols, axis=-1)


@dataclass
class GoodnessOfFit:
    """Pearson chi-square of a binomial fit: sum (k - n p)^2 / (n p (1 - p)) on `dof` degrees."""

    chi2: float
    dof: int

    @property
    def p_value(self) -> float:
        return float(stats.chi2.sf(self.chi2, self.dof)) if self.dof > 0 else float("nan")


def _goodness(k, n, p, n_par) -> GoodnessOfFit:
    """Likelihood-ratio (G) statistic 2 sum [k ln(k / n p) + (n - k) ln((n - k) / n (1 - p))]: like
    Pearson's chi-square for large counts, but not blown up by a model probability near 0 or 1."""
    p = np.clip(p, 1e-12, 1 - 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = np.where(k > 0, k * np.log(k / (n * p)), 0.0)
        t2 = np.where(n - k > 0, (n - k) * np.log((n - k) / (n * (1 - p))), 0.0)
    return GoodnessOfFit(chi2=float(2 * (t1 + t2).sum()), dof=int(k.size - n_par))


class LogisticFit:
    """Binomial maximum-likelihood fit of the read-bit probability

        p(H) = (1 - a) + a sigmoid(k (H - H0))      (the calibration curve, instruments.calibration)
        q(H) = p + (1 - 2 p) e                       (e: read-out bit error, when fit_readout_error)

    A read-out flips a small share e of the bits, which caps the measured curve at 1 - e; without e
    the fit would bend the logistic to reach the last points. After `fit`: `logistic_`
    (instruments.calibration.Logistic of the pass probability p), `params_` {H0, k, a[, readout_error]},
    `stderr_` (same keys; H0 in mT, k per mT, a and e dimensionless), `cov_` (same order),
    `goodness_` (likelihood-ratio chi-square), `n_reads_`.
    """

    PARAMS = ("H0", "k", "a", "readout_error")

    def __init__(self, a_max: float = 1.0, fit_readout_error: bool = True) -> None:
        self.a_max = a_max
        self.fit_readout_error = fit_readout_error

    @staticmethod
    def _initial(H, frac) -> np.ndarray:
        order = np.argsort(H)
        Hs, fs = H[order], frac[order]
        floor = float(np.clip(fs[: max(1, len(fs) // 5)].mean(), 0.0, 0.5))
        a0 = float(np.clip(1.0 - floor, 0.05, 0.999))
        mid = floor + 0.5 * a0
        above = np.nonzero(fs >= mid)[0]
        H0 = float(Hs[above[0]]) if above.size else float(np.median(Hs))
        span = float(np.ptp(Hs)) or 1.0
        return np.array([H0, 8.0 / span, a0])

    @_small_problem
    def fit(self, H_mT, counts, n) -> LogisticFit:
        """Fit pass counts `counts` out of `n` reads at fields `H_mT` (mT). Returns self."""
        H, k, n = _check_binomial(H_mT, counts, n)
        frac = k / n
        names = self.PARAMS if self.fit_readout_error else self.PARAMS[:3]

        def model(theta):
            p = Logistic(H0=theta[0], k=theta[1], a=theta[2]).p(H)
            e = theta[3] if len(theta) > 3 else 0.0
            return p + (1.0 - 2.0 * p) * e

        def model_jac(theta):
            H0, kk, a = theta[:3]
            e = theta[3] if len(theta) > 3 else 0.0
            z = kk * (H - H0)
            cols = [-a * kk * _dsig(z), a * (H - H0) * _dsig(z), _sig(z) - 1.0]
            cols = [c * (1.0 - 2.0 * e) for c in cols]
            if len(theta) > 3:
                cols.append(1.0 - 2.0 * Logistic(H0=H0, k=kk, a=a).p(H))
            return np.stack(cols, axis=-1)

        def nll_and_grad(theta):
            p = np.clip(model(theta), _P_EPS, 1 - _P_EPS)
            f = -(k * np.log(p) + (n - k) * np.log1p(-p)).sum()
            dp = -(k / p - (n - k) / (1 - p))
            return float(f), dp @ model_jac(theta)

        span = float(np.ptp(H)) or 1.0
        bounds = [(H.min() - span, H.max() + span), (1e-3 / span, 1e3 / span), (1e-3, self.a_max)]
        x0 = self._initial(H, frac)
        starts = [x0, x0 * np.array([1.0, 0.3, 1.0]), x0 * np.array([1.0, 3.0, 1.0])]
        if self.fit_readout_error:
            bounds.append((0.0, 0.2))
            starts = [np.append(s, 0.002) for s in starts]
        best = None
        for start in starts:
            start = np.clip(start, [b[0] for b in bounds], [b[1] for b in bounds])
            res = optimize.minimize(nll_and_grad, start, jac=True, method="L-BFGS-B", bounds=bounds)
            if best is None or res.fun < best.fun:
                best = res
        theta = best.x
        p = model(theta)
        self.cov_ = _fisher_cov(model_jac(theta), p, n)
        self.params_ = dict(zip(names, map(float, theta), strict=True))
        self.stderr_ = dict(
            zip(names, map(float, np.sqrt(np.clip(np.diag(self.cov_), 0, None))), strict=True)
        )
        self.logistic_ = Logistic(H0=self.params_["H0"], k=self.params_["k"], a=self.params_["a"])
        self.goodness_ = _goodness(k, n, p, len(names))
        self.n_reads_ = int(n.sum())
        self.neg_loglik_ = float(best.fun)
        log.info(
            "logistic fit %s +- %s (G %.1f / %d)",
            self.params_,
            self.stderr_,
            self.goodness_.chi2,
            self.goodness_.dof,
        )
        return self

    def predict(self, H_mT) -> np.ndarray:
        """Fitted read-bit probability q(H) (pass probability with the read-out error)."""
        p = self.logistic_.p(H_mT)
        return p + (1.0 - 2.0 * p) * self.params_.get("readout_error", 0.0)

    def to_dict(self) -> dict:
        return {
            **self.params_,
            **{f"{k}_err": v for k, v in self.stderr_.items()},
            "chi2": self.goodness_.chi2,
            "dof": self.goodness_.dof,
        }


def _sig(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _dsig(x):
    s = _sig(x)
    return s * (1.0 - s)


def trapezoid_pulse(
    H_mT: float | np.ndarray, plateau_s: float, slew_mT_per_s: float | None, n_t: int = 241
) -> tuple[np.ndarray, np.ndarray]:
    """Sampled field H(t) of a trapezoidal pulse: linear rise at `slew_mT_per_s`, `plateau_s` at H,
    linear fall. `slew_mT_per_s=None` gives an ideal rectangle. Returns (t_s (n_t,), H_t (..., n_t))."""
    H = np.asarray(H_mT, dtype=float)
    if slew_mT_per_s is None:
        t = np.linspace(0.0, plateau_s, n_t)
        return t, np.broadcast_to(H[..., None], H.shape + (n_t,)).copy()
    t_rise = np.abs(H) / slew_mT_per_s  # (...,)
    t_max = float(np.max(2 * t_rise)) + plateau_s
    t = np.linspace(0.0, t_max, n_t)
    tt = t[None, :] if H.ndim else t
    tr = t_rise[..., None]
    rise = np.clip(tt / np.where(tr > 0, tr, 1.0), 0.0, 1.0)
    fall = np.clip((tr * 2 + plateau_s - tt) / np.where(tr > 0, tr, 1.0), 0.0, 1.0)
    shape = np.minimum(rise, fall)
    shape = np.where(tt <= 2 * tr + plateau_s, shape, 0.0)
    return t, H[..., None] * shape


@dataclass
class NeelBrownData:
    """Depinning data at several pulse lengths: per point field (mT), plateau length (s), counts, n."""

    H_mT: np.ndarray
    duration_s: np.ndarray
    counts: np.ndarray
    n: np.ndarray


class NeelBrownFit:
    """Binomial maximum-likelihood fit of a one-mode Neel-Brown depinning model with a floor,

        P_pass = floor + (1 - floor) (1 - exp(-integral r(H(t)) dt)),
        r(H) = f0 exp(-E0 (1 - H/Hc)^beta)      (E0 in kB*T at 300 K, Hc in mT)
        P_bit  = P_pass + (1 - 2 P_pass) e       (e: read-out bit error, when fit_readout_error)

    over data at two or more pulse lengths, with f0 and beta fixed (SCIENCE.md: at one pulse length
    E0 and Hc trade off). The pulse is a trapezoid with the coil's slew (`slew_mT_per_s`, None for an
    ideal rectangle). After `fit`: `model_` (instruments.calibration.NeelBrown), `params_`
    {Hc_mT, E0_kT300, floor[, readout_error]}, `stderr_`, `cov_`, `corr_` (Hc-E0 correlation),
    `goodness_`. Read bits of a real read-out flip with a small probability e, which puts a ceiling
    1 - e on the measured curve; `fit_readout_error=True` (default) fits e too.
    """

    PARAMS = ("Hc_mT", "E0_kT300", "floor", "readout_error")

    def __init__(
        self,
        f0_Hz: float = 1e9,
        beta: float = 1.5,
        slew_mT_per_s: float | None = None,
        n_t: int = 161,
        fit_readout_error: bool = True,
    ) -> None:
        self.f0_Hz = f0_Hz
        self.beta = beta
        self.slew_mT_per_s = slew_mT_per_s
        self.n_t = n_t
        self.fit_readout_error = fit_readout_error

    def _names(self) -> tuple[str, ...]:
        return self.PARAMS if self.fit_readout_error else self.PARAMS[:3]

    def _model(self, theta: np.ndarray, H: np.ndarray, tau: np.ndarray) -> np.ndarray:
        Hc, E0, floor = theta[:3]
        e = theta[3] if len(theta) > 3 else 0.0
        nb = NeelBrown(
            modes=(DepinningMode(weight=1.0 - floor, Hc_mT=Hc, E0_kT300=E0),),
            floor=floor,
            f0_Hz=self.f0_Hz,
            beta=self.beta,
        )
        out = np.empty_like(H)
        for d in np.unique(tau):
            m = tau == d
            t, Ht = trapezoid_pulse(H[m], float(d), self.slew_mT_per_s, self.n_t)
            out[m] = nb.pass_probability(t, Ht)
        return out + (1.0 - 2.0 * out) * e

    @_small_problem
    def fit(self, H_mT, counts, n, duration_s) -> NeelBrownFit:
        """Fit counts out of n at fields H_mT (mT) and pulse plateau lengths duration_s (s)."""
        H, k, n = _check_binomial(H_mT, counts, n)
        tau = np.broadcast_to(np.asarray(duration_s, dtype=float), H.shape).astype(float)
        if np.unique(tau).size < 2:
            log.warning("Neel-Brown fit with one pulse length: E0 and Hc are not separately determined")
        frac = k / n
        floor0 = float(np.clip(np.min(frac), 1e-4, 0.3))
        Hmax = float(H.max())
        bounds = [(max(1e-3, 0.5 * float(np.median(H))), 20 * Hmax), (1.0, 200.0), (0.0, 0.5)]
        if self.fit_readout_error:
            bounds.append((0.0, 0.2))
        names = self._names()

        def nll(theta):
            return _neg_loglik(self._model(theta, H, tau), k, n)

        # Coarse grid over (Hc, E0) for starting points (the likelihood is rough in places: the
        # sampled pulse changes with H), then Nelder-Mead from the best few.
        e0 = [0.005] if self.fit_readout_error else []
        lo = np.array([b[0] for b in bounds])
        hi = np.array([b[1] for b in bounds])
        grid = [
            (nll(np.clip([Hc0, E00, floor0, *e0], lo, hi)), Hc0, E00)
            for Hc0 in np.geomspace(max(bounds[0][0], 0.8 * Hmax), 6 * Hmax, 14)
            for E00 in np.geomspace(5.0, 150.0, 12)
        ]
        grid.sort(key=lambda g: g[0])
        best = None
        for _, Hc0, E00 in grid[:2]:
            start = np.clip([Hc0, E00, floor0, *e0], lo, hi)
            res = optimize.minimize(
                lambda th: nll(np.clip(th, lo, hi)) + 1e6 * float(np.sum((th - np.clip(th, lo, hi)) ** 2)),
                start,
                method="Nelder-Mead",
                options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 6000, "maxfev": 6000},
            )
            if best is None or res.fun < best.fun:
                best = res
        best.x = np.clip(best.x, lo, hi)
        theta = np.asarray(best.x, dtype=float)
        p = self._model(theta, H, tau)
        jac = _numeric_jacobian(lambda th: self._model(th, H, tau), theta)
        self.cov_ = _fisher_cov(jac, p, n)
        err = np.sqrt(np.clip(np.diag(self.cov_), 0, None))
        self.params_ = dict(zip(names, map(float, theta), strict=True))
        self.stderr_ = dict(zip(names, map(float, err), strict=True))
        self.corr_ = float(self.cov_[0, 1] / (err[0] * err[1])) if err[0] > 0 and err[1] > 0 else float("nan")
        self.goodness_ = _goodness(k, n, p, len(names))
        self.model_ = NeelBrown(
            modes=(DepinningMode(weight=1.0 - theta[2], Hc_mT=float(theta[0]), E0_kT300=float(theta[1])),),
            floor=float(theta[2]),
            f0_Hz=self.f0_Hz,
            beta=self.beta,
        )
        self.neg_loglik_ = float(best.fun)
        log.info("Neel-Brown fit %s +- %s", self.params_, self.stderr_)
        return self

    def predict(self, H_mT, duration_s) -> np.ndarray:
        """Fitted pass probability at fields H_mT and plateau lengths duration_s."""
        H = np.atleast_1d(np.asarray(H_mT, dtype=float))
        tau = np.broadcast_to(np.asarray(duration_s, dtype=float), H.shape).astype(float)
        return self._model(np.array([self.params_[p] for p in self._names()]), H, tau)

    def to_dict(self) -> dict:
        return {
            **self.params_,
            **{f"{k}_err": v for k, v in self.stderr_.items()},
            "Hc_E0_correlation": self.corr_,
            "f0_Hz": self.f0_Hz,
            "beta": self.beta,
            "chi2": self.goodness_.chi2,
            "dof": self.goodness_.dof,
            "model": self.model_.to_dict(),
        }
