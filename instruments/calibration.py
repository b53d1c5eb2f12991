"""Device physics shared by every layer: the depinning calibration curve p(H), its inverse,
the Neel-Brown pass probability, and their fits (SCIENCE.md section 1).

Everything here is plain numpy/scipy so that the instrument layer, the simulated lab and the
learning code all use one copy of the formulas. `labml` has a torch version of the logistic for
gradients that is tested against this one.

Units: fields in mT, times in s, energies in units of kB*T at T = 300 K unless stated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

KB_J_PER_K = 1.380649e-23
T_REF_K = 300.0

# The published logistic of one device in Ellis et al. 2023 [E23].
E23_H0_MT = 4.63168
E23_K_PER_MT = 2.72741
E23_A = 0.97813


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True)
class Logistic:
    """p(H) = (1 - a) + a * sigmoid(k * (H - H0)); H in mT.

    The floor (1 - a) is the share of walls that pass at any field.
    """

    H0: float = E23_H0_MT
    k: float = E23_K_PER_MT
    a: float = E23_A

    def __post_init__(self) -> None:
        if not (0.0 < self.a <= 1.0):
            raise ValueError(f"logistic amplitude a must be in (0, 1], got {self.a}")
        if not (self.k > 0):
            raise ValueError(f"logistic slope k must be > 0 per mT, got {self.k}")

    @property
    def p_min(self) -> float:
        return 1.0 - self.a

    def p(self, H_mT):
        """Pass probability at field H (mT); array in, array out."""
        return (1.0 - self.a) + self.a * _sigmoid(self.k * (np.asarray(H_mT, dtype=float) - self.H0))

    def inverse(self, q, H_min_mT: float | None = None, H_max_mT: float | None = None):
        """Field (mT) that gives pass probability q.

        q is clipped into the curve's open range (1 - a, 1) first, then the field is clipped to
        [H_min_mT, H_max_mT] when given, so the result is always a field the rig may apply.
        """
        q = np.asarray(q, dtype=float)
        eps = 1e-9
        u = (np.clip(q, self.p_min + eps, 1.0 - eps) - self.p_min) / self.a
        u = np.clip(u, eps, 1.0 - eps)
        H = self.H0 + np.log(u / (1.0 - u)) / self.k
        if H_min_mT is not None or H_max_mT is not None:
            lo = -np.inf if H_min_mT is None else H_min_mT
            hi = np.inf if H_max_mT is None else H_max_mT
            H = np.clip(H, lo, hi)
        return H

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MeasuredCurve:
    """p(H) as measured on a wire: pass fractions `p` at increasing fields `H_mT`, already made
    non-decreasing (labml.synapses.rig.calibrate_wires fits it by isotonic regression), read
    between the points by linear interpolation and held flat outside them.

    For wires whose curve no logistic follows (a fabricated wire's two depinning modes shift
    apart: a logistic fit can miss such a wire by ~0.1 in p). Same interface as `Logistic`
    (`p`, `inverse`, `p_min`, `to_dict`); `inverse` returns, for q between two measured values,
    the field that the straight line between them gives, clipped like `Logistic.inverse`."""

    H_mT: tuple[float, ...]
    p_values: tuple[float, ...]

    def __post_init__(self) -> None:
        H, p = np.asarray(self.H_mT, dtype=float), np.asarray(self.p_values, dtype=float)
        if H.ndim != 1 or H.shape != p.shape or H.size < 2:
            raise ValueError("a measured curve needs >= 2 fields and as many pass fractions")
        if not (np.all(np.isfinite(H)) and np.all(np.diff(H) > 0)):
            raise ValueError("the fields of a measured curve must be finite and increasing")
        if not (np.all((p >= 0) & (p <= 1)) and np.all(np.diff(p) >= 0)):
            raise ValueError("the pass fractions of a measured curve must be in [0, 1] and non-decreasing")
        if p[-1] <= p[0]:
            raise ValueError("a measured curve must rise over its fields")

    @property
    def p_min(self) -> float:
        return float(self.p_values[0])

    def p(self, H_mT):
        return np.interp(np.asarray(H_mT, dtype=float), self.H_mT, self.p_values)

    def inverse(self, q, H_min_mT: float | None = None, H_max_mT: float | None = None):
        H, p = np.asarray(self.H_mT), np.asarray(self.p_values)
        # ties (flat stretches) made strictly increasing by a negligible ramp so that np.interp
        # is defined; within a flat stretch any field gives the same p
        p = p + np.arange(p.size) * 1e-12
        out = np.interp(np.asarray(q, dtype=float), p, H)
        if H_min_mT is not None or H_max_mT is not None:
            out = np.clip(out, -np.inf if H_min_mT is None else H_min_mT,
                          np.inf if H_max_mT is None else H_max_mT)
        return out

    def to_dict(self) -> dict:
        return {"H_mT": list(self.H_mT), "p_values": list(self.p_values)}

    @classmethod
    def from_dict(cls, d: dict) -> MeasuredCurve:
        """The curve `to_dict` wrote (numbers only; ValueError / KeyError / TypeError otherwise)."""
        return cls(tuple(float(h) for h in d["H_mT"]), tuple(float(p) for p in d["p_values"]))


@dataclass(frozen=True)
class DepinningMode:
    """One depinning mode of a notch (Im et al. 2009): share `weight` of injected walls,
    depinning field Hc (mT), barrier E0 in kB*T at 300 K."""

    weight: float
    Hc_mT: float
    E0_kT300: float


@dataclass(frozen=True)
class NeelBrown:
    """Multi-mode Neel-Brown (Arrhenius) depinning of a wall pinned at a notch.

    r_m(H) = f0 * exp(-E0_m * (1 - H/Hc_m)^beta / (kB T)) for 0 <= H < Hc_m, infinite above Hc_m.
    `floor` is the share of walls that pass at any field (a mode with Hc ~ 0).
    The defaults are the nominal wire of SCIENCE.md, which reproduces the [E23] logistic.
    """

    modes: tuple[DepinningMode, ...] = field(
        default_factory=lambda: (
            DepinningMode(weight=0.679, Hc_mT=13.38, E0_kT300=26.2),
            DepinningMode(weight=0.299, Hc_mT=17.04, E0_kT300=24.5),
        )
    )
    floor: float = 0.022
    f0_Hz: float = 1e9
    beta: float = 1.5

    def __post_init__(self) -> None:
        total = self.floor + sum(m.weight for m in self.modes)
        if not np.isclose(total, 1.0, atol=1e-6):
            raise ValueError(f"Neel-Brown mode weights plus floor must sum to 1, got {total:.6f}")

    def rate(self, H_mT, T_K: float = T_REF_K) -> np.ndarray:
        """Escape rate (1/s) of each mode at field H: array of shape H.shape + (n_modes,).

        Negative fields push the wall back against the notch: treated as H = 0 (the rate at rest).
        """
        H = np.clip(np.asarray(H_mT, dtype=float), 0.0, None)[..., None]
        Hc = np.array([m.Hc_mT for m in self.modes])
        E0 = np.array([m.E0_kT300 for m in self.modes]) * (T_REF_K / T_K)
        x = np.clip(1.0 - H / Hc, 0.0, None)
        with np.errstate(over="ignore"):
            r = self.f0_Hz * np.exp(-E0 * x**self.beta)
        return np.where(H >= Hc, np.inf, r)

    def pass_probability_from_integral(self, integral_rate_s: np.ndarray) -> np.ndarray:
        """Combine per-mode rate integrals (..., n_modes) into the total pass probability."""
        w = np.array([m.weight for m in self.modes])
        with np.errstate(over="ignore", invalid="ignore"):
            per_mode = -np.expm1(-np.asarray(integral_rate_s))
        return self.floor + (per_mode * w).sum(axis=-1)

    def pass_probability(self, t_s: np.ndarray, H_t_mT: np.ndarray, T_K: float = T_REF_K) -> np.ndarray:
        """P_pass = floor + sum_m w_m (1 - exp(-integral r_m(H(t)) dt)) over a sampled pulse.

        t_s: (n_t,) sample times; H_t_mT: (..., n_t) field at those times. Trapezoidal rule.
        """
        r = self.rate(H_t_mT, T_K)  # (..., n_t, n_modes)
        r = np.moveaxis(r, -2, -1)  # (..., n_modes, n_t)
        with np.errstate(invalid="ignore"):
            integral = np.trapezoid(r, t_s, axis=-1)
        integral = np.where(np.isnan(integral), np.inf, integral)
        return self.pass_probability_from_integral(integral)

    def rectangle_pass_probability(self, H_mT, duration_s: float, T_K: float = T_REF_K) -> np.ndarray:
        """Pass probability of an ideal rectangular pulse (no rise time)."""
        integral = self.rate(H_mT, T_K) * duration_s
        return self.pass_probability_from_integral(integral)

    def to_dict(self) -> dict:
        return {
            "modes": [asdict(m) for m in self.modes],
            "floor": self.floor,
            "f0_Hz": self.f0_Hz,
            "beta": self.beta,
        }

    @classmethod
    def from_dict(cls, d: dict) -> NeelBrown:
        return cls(
            modes=tuple(DepinningMode(**m) for m in d["modes"]),
            floor=float(d.get("floor", 0.0)),
            f0_Hz=float(d.get("f0_Hz", 1e9)),
            beta=float(d.get("beta", 1.5)),
        )
