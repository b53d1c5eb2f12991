"""Physics kernels of the simulated lab, shared by the SCPI path and the fast path.

One physics, two speeds: `World.play_waveform` (what the simulated waveform generator and coil
supply drive, command by command) and `World.read_synapses` (the vectorised fast path) both build
the coil current with `coil_follow` and integrate the Neel-Brown escape rate of
`instruments.calibration.NeelBrown` with `rate_integrals` / `cumulative_rate_integral`. Nothing
here duplicates the depinning formulas: they live in instruments/calibration.py.

Units: A, V, ohm, H (henry), s, mT, K; rates in 1/s.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import ndtr

from instruments.calibration import KB_J_PER_K, NeelBrown
from instruments.config import CycleConfig
from instruments.rig import REST_MARGIN, trapezoid_samples
from instruments.safety import program_energy_J

logger = logging.getLogger(__name__)

#: Time step (s) of every coil/escape integration: the program is linearly interpolated onto it.
DT_S = 1e-6


@dataclass(frozen=True)
class CoilParams:
    """Field coil driven by a current-mode supply (SCIENCE.md section 3).

    B = mT_per_A * I. The supply follows its program as far as its voltage compliance allows:
    |L dI/dt + I R| <= compliance_V, so a step becomes an L/R exponential edge.
    """

    mT_per_A: float = 1.8
    inductance_H: float = 1e-3
    resistance_ohm: float = 1.0
    compliance_V: float = 20.0

    def __post_init__(self) -> None:
        for key in ("mT_per_A", "inductance_H", "resistance_ohm", "compliance_V"):
            v = getattr(self, key)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"coil {key} must be a positive number, got {v!r}")

    @property
    def tau_s(self) -> float:
        """L/R time constant (s)."""
        return self.inductance_H / self.resistance_ohm

    @property
    def i_compliance_A(self) -> float:
        """Largest steady current the compliance allows, V_c / R (A)."""
        return self.compliance_V / self.resistance_ohm

    def to_dict(self) -> dict:
        return asdict(self)


def coil_follow(
    t_s: np.ndarray, I_program_A: np.ndarray, I0_A, coil: CoilParams, dt_s: float = DT_S
) -> tuple[np.ndarray, np.ndarray]:
    """Real coil current for a current program.

    The program is piecewise linear between its samples (t_s, s; I_program_A, A; leading batch
    dimensions allowed, time last). It is resampled on a uniform grid of step <= dt_s starting at
    t_s[0]; at each step the current moves towards the program value as far as the compliance
    allows in that step: with Vr = V_c / R and e = exp(-dt R/L) the reachable interval is
    [-Vr + (I + Vr) e, Vr + (I - Vr) e] (exact L/R charging at +/- V_c). So the current never
    slews faster than (V_c - I R)/L and equals the program wherever the program is slow enough.

    Returns (t_grid (n,), I (..., n)); I[..., 0] = I0_A.
    """
    t_s = np.asarray(t_s, dtype=float)
    prog = np.asarray(I_program_A, dtype=float)
    if t_s.ndim != 1 or t_s.size < 2:
        raise ValueError("coil_follow: t_s must be a 1-D array with at least 2 samples")
    if np.any(np.diff(t_s) <= 0) or not np.all(np.isfinite(t_s)):
        raise ValueError("coil_follow: t_s must be finite and strictly increasing")
    if prog.shape[-1] != t_s.size or not np.all(np.isfinite(prog)):
        raise ValueError("coil_follow: I_program_A must be finite with the same last length as t_s")
    duration = t_s[-1] - t_s[0]
    n_steps = max(1, int(math.ceil(duration / dt_s - 1e-9)))
    grid = t_s[0] + np.linspace(0.0, duration, n_steps + 1)
    batch = prog.shape[:-1]
    flat = prog.reshape(-1, t_s.size)
    target = np.empty((flat.shape[0], grid.size))
    for j in range(flat.shape[0]):
        target[j] = np.interp(grid, t_s, flat[j])
    target = target.reshape(batch + (grid.size,))
    step = duration / n_steps
    e = math.exp(-step / coil.tau_s)
    vr = coil.i_compliance_A
    out = np.empty_like(target)
    cur = np.broadcast_to(np.asarray(I0_A, dtype=float), batch).astype(float)
    out[..., 0] = cur
    tgt = np.moveaxis(target, -1, 0)
    res = np.moveaxis(out, -1, 0)
    if cur.ndim == 0:
        c = float(cur)
        for k in range(1, grid.size):
            hi = vr + (c - vr) * e
            lo = -vr + (c + vr) * e
            p = tgt[k]
            c = hi if p > hi else (lo if p < lo else float(p))
            res[k] = c
    else:
        for k in range(1, grid.size):
            cur = np.clip(tgt[k], -vr + (cur + vr) * e, vr + (cur - vr) * e)
            res[k] = cur
    return grid, out


def coil_voltage_V(t_s: np.ndarray, I_A: np.ndarray, coil: CoilParams) -> np.ndarray:
    """Supply voltage L dI/dt + I R (V) along a current trace (finite differences)."""
    return coil.inductance_H * np.gradient(I_A, t_s, axis=-1) + coil.resistance_ohm * I_A


def joule_energy_J(t_s: np.ndarray, I_A: np.ndarray, coil: CoilParams) -> np.ndarray:
    """Joule heat dissipated in the coil, integral of I^2 R dt (J), trapezoidal rule."""
    return np.trapezoid(I_A**2, t_s, axis=-1) * coil.resistance_ohm


def trapezoid_program(
    amplitude_A: float, plateau_s: float, slew_A_per_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Breakpoints (t_s, I_A) of the standard drive/reset pulse: 0 -> amplitude at `slew_A_per_s`,
    hold `plateau_s`, back to 0 at the same slew. This is the program the fast path assumes the
    rig arms on its waveform generator (instruments side: same shape, limited by the CoilGuard)."""
    edge = abs(float(amplitude_A)) / float(slew_A_per_s)
    edge = max(edge, 1e-9)
    t = np.array([0.0, edge, edge + plateau_s, 2 * edge + plateau_s])
    return t, np.array([0.0, amplitude_A, amplitude_A, 0.0])


def fall_time_s(I_A, coil: CoilParams) -> np.ndarray:
    """Time (s) for the coil to discharge from I to 0 at full compliance (an upper bound of the tail
    a program needs after it returns to 0): (L/R) ln(1 + |I| / (V_c/R))."""
    return coil.tau_s * np.log1p(np.abs(np.asarray(I_A, dtype=float)) / coil.i_compliance_A)


def rate_integrals(t_s: np.ndarray, H_mT: np.ndarray, nb: NeelBrown, T_K: float) -> np.ndarray:
    """Per-mode integral of the escape rate, int r_m(H(t)) dt, over sampled fields.

    t_s: (n,), H_mT: (..., n). Returns (..., n_modes); inf where the field reached Hc.
    Uses NeelBrown.rate (instruments.calibration) and the trapezoidal rule.
    """
    r = np.moveaxis(nb.rate(H_mT, T_K), -1, -2)  # (..., n_modes, n)
    with np.errstate(invalid="ignore"):
        integral = np.trapezoid(r, t_s, axis=-1)
    return np.where(np.isnan(integral), np.inf, integral)


@functools.lru_cache(maxsize=256)
def _single_mode(nb: NeelBrown, mode: int) -> NeelBrown:
    """The same wire restricted to one depinning mode (same rate formula, one column)."""
    m = nb.modes[mode]
    return NeelBrown(modes=(m,), floor=1.0 - m.weight, f0_Hz=nb.f0_Hz, beta=nb.beta)


def cumulative_rate_integral(
    t_s: np.ndarray, H_mT: np.ndarray, nb: NeelBrown, mode: int, T_K: float
) -> np.ndarray:
    """Running integral (n,) of the escape rate of one mode along a trace, starting at 0 (trapezoid
    rule, the same quadrature as `rate_integrals`)."""
    r = _single_mode(nb, mode).rate(H_mT, T_K)[..., 0]
    with np.errstate(invalid="ignore"):
        seg = 0.5 * (r[1:] + r[:-1]) * np.diff(t_s)
    seg = np.where(np.isnan(seg), np.inf, seg)
    return np.concatenate([[0.0], np.cumsum(seg)])


def bit_error_probability(separation: float, sigma: float) -> float:
    """Single-shot error of a read-out whose two levels are `separation` apart with Gaussian noise
    `sigma` (same units), thresholded half way: Phi(-separation / (2 sigma))."""
    if sigma <= 0:
        return 0.0
    return float(ndtr(-abs(separation) / (2.0 * sigma)))


def moke_sigma_V(V0_V: float, rin_per_rtHz: float, detector_V_per_rtHz: float, bandwidth_Hz: float) -> float:
    """Noise (V rms) of the MOKE photodiode signal: laser intensity noise V0 * RIN and detector noise,
    both white, over the read bandwidth."""
    return math.sqrt((V0_V * rin_per_rtHz) ** 2 + detector_V_per_rtHz**2) * math.sqrt(bandwidth_Hz)


def johnson_V(R_ohm: float, T_K: float, bandwidth_Hz: float) -> float:
    """Johnson noise sqrt(4 kB T R df) (V rms)."""
    return math.sqrt(4.0 * KB_J_PER_K * T_K * R_ohm * bandwidth_Hz)


_RIG_CYCLE = CycleConfig()


@dataclass(frozen=True)
class CycleSpec:
    """One bench read cycle, as instruments.rig.NanowireRig plays it (`[cycle]` + `[limits]`).

    One waveform per cycle: reset pulse at reset_field_mT (plateau reset_s), gap_s at zero field
    (the wall is injected in it), drive pulse of amplitude H (plateau pulse_duration_s), settle_s at
    zero field; edges are programmed at edge_slew_A_per_s (the coil may be slower). The waveform is
    padded with rest (0 A) so that its duty cycle (|I| > duty_threshold_A) stays <= duty_max and its
    mean I^2 R power <= mean_power_max_W. Then the read takes read_s, with the read-out
    (`readout` = "moke" or "mr") integrating over read_bandwidth_Hz. The generator plays the
    program at sample_rate_Hz (`[cycle]`): the fast path prices the very samples the rig arms.
    two_waveforms: the rig's fallback for a pulse source that cannot fire the injection from its
    own trigger (e.g. a 33220A): the reset (+ gap) and the drive (+ settle) are two waveforms, each
    padded with rest on its own, with a software-timed injection of inject_s between them.
    """

    # the cycle timings default to the rig's own `[cycle]` defaults (instruments.config.CycleConfig)
    reset_field_mT: float = _RIG_CYCLE.reset_field_mT
    reset_s: float = _RIG_CYCLE.reset_s
    gap_s: float = _RIG_CYCLE.gap_s
    pulse_duration_s: float = _RIG_CYCLE.pulse_duration_s
    settle_s: float = _RIG_CYCLE.settle_s
    read_s: float = _RIG_CYCLE.read_s
    read_bandwidth_Hz: float = 250.0
    edge_slew_A_per_s: float = 0.95 * 2e4
    duty_max: float = 0.5
    duty_threshold_A: float = 0.2
    mean_power_max_W: float = 150.0
    readout: str = "moke"
    sample_rate_Hz: float = _RIG_CYCLE.sample_rate_Hz
    two_waveforms: bool = False
    inject_s: float = 0.0

    def __post_init__(self) -> None:
        for key in ("reset_s", "gap_s", "pulse_duration_s", "settle_s", "read_s", "duty_threshold_A"):
            v = getattr(self, key)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"cycle {key} must be >= 0, got {v!r}")
        for key in (
            "read_bandwidth_Hz",
            "edge_slew_A_per_s",
            "duty_max",
            "mean_power_max_W",
            "sample_rate_Hz",
        ):
            v = getattr(self, key)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"cycle {key} must be > 0, got {v!r}")
        if not (np.isfinite(self.inject_s) and self.inject_s >= 0):
            raise ValueError(f"cycle inject_s must be >= 0, got {self.inject_s!r}")
        if self.readout not in ("moke", "mr"):
            raise ValueError(f"cycle readout must be 'moke' or 'mr', got {self.readout!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def program_timing(amplitudes_A, plateau_s: float, slew_A_per_s: float, threshold_A: float):
    """(length s, energised time s) of trapezoid programs: 2|A|/slew + plateau, and the time with
    |I| above threshold_A (the duty-cycle count of the CoilGuard)."""
    a = np.abs(np.asarray(amplitudes_A, dtype=float))
    length = 2 * a / slew_A_per_s + plateau_s
    on = np.where(a > threshold_A, plateau_s + 2 * (a - threshold_A) / slew_A_per_s, 0.0)
    return length, on


def sampled_program_cost(amplitudes_A, plateau_s: float, cycle: CycleSpec, resistance_ohm: float):
    """(length s, energised time s, programmed Joule energy J) of the rig's trapezoid pulse programs
    (`instruments.rig.trapezoid_samples` at cycle.sample_rate_Hz, edges at cycle.edge_slew_A_per_s),
    one entry per amplitude. Energy is `instruments.safety.program_energy_J` of those samples:
    I^2 R of the PROGRAMMED current, the one definition of a waveform's energy shared by the
    CoilGuard's heating budget, the bench planner and the fast path."""
    amps = np.atleast_1d(np.asarray(amplitudes_A, dtype=float))
    fs = cycle.sample_rate_Hz
    length = np.empty(amps.shape)
    on = np.empty(amps.shape)
    energy = np.empty(amps.shape)
    for j, a in enumerate(amps.ravel()):
        prog = trapezoid_samples(a, plateau_s, cycle.edge_slew_A_per_s, fs)
        length.flat[j] = prog.size / fs
        on.flat[j] = np.count_nonzero(np.abs(prog) > cycle.duty_threshold_A) / fs
        energy.flat[j] = program_energy_J(prog, resistance_ohm, fs)
    return length, on, energy


def rested_s(program_s, on_s, energy_J, cycle: CycleSpec):
    """Length (s) of waveforms that last program_s with on_s energised and energy_J of programmed
    Joule heat once padded with rest for duty and mean power exactly as the rig pads them
    (`instruments.rig.REST_MARGIN` below the limits, whole samples)."""
    return np.maximum(
        np.maximum(
            program_s,
            np.ceil(on_s / cycle.duty_max * REST_MARGIN * cycle.sample_rate_Hz) / cycle.sample_rate_Hz,
        ),
        np.ceil(energy_J / cycle.mean_power_max_W * REST_MARGIN * cycle.sample_rate_Hz)
        / cycle.sample_rate_Hz,
    )


def cycle_time_s(program_s, on_s, energy_J, cycle: CycleSpec):
    """Bench time of one-waveform cycles (program_s long, on_s energised, energy_J of programmed
    Joule heat): the waveform padded with rest (`rested_s`), plus the read time."""
    return rested_s(program_s, on_s, energy_J, cycle) + cycle.read_s


def pulse_traces(
    amplitudes_A: np.ndarray, plateau_s: float, slew_A_per_s: float, coil: CoilParams, dt_s: float = DT_S
) -> tuple[np.ndarray, np.ndarray]:
    """Real coil currents for a batch of trapezoid pulses starting from 0 A.

    All pulses share one time grid long enough for the largest (program + discharge tail); shorter
    programs stay at 0 after their end. Returns (t_grid (n,), I (n_amp, n)).
    """
    amps = np.atleast_1d(np.asarray(amplitudes_A, dtype=float))
    a_max = float(np.max(np.abs(amps))) if amps.size else 0.0
    edge_max = a_max / slew_A_per_s
    tail = float(fall_time_s(a_max, coil)) + 5 * dt_s
    t_end = 2 * edge_max + plateau_s + tail
    # breakpoints per amplitude, padded to a common 5-point layout
    edges = np.maximum(np.abs(amps) / slew_A_per_s, 1e-9)
    tb = np.stack([np.zeros_like(amps), edges, edges + plateau_s, 2 * edges + plateau_s], axis=-1)
    Ib = np.stack([np.zeros_like(amps), amps, amps, np.zeros_like(amps)], axis=-1)
    n_steps = max(1, int(math.ceil(t_end / dt_s - 1e-9)))
    grid = np.linspace(0.0, t_end, n_steps + 1)
    target = np.empty((amps.size, grid.size))
    for j in range(amps.size):
        target[j] = np.interp(grid, tb[j], Ib[j])
    # follow on the common grid (program already on the grid: one sample per step)
    _, I = coil_follow(grid, target, np.zeros(amps.size), coil, dt_s=t_end / n_steps * (1 + 1e-12))
    return grid, I


def sample_binomial(rng: np.random.Generator, n: int, q: np.ndarray) -> np.ndarray:
    """Counts ~ Binomial(n, q) for an array of probabilities q (exact sampling).

    Small n uses inverse-CDF sampling from one uniform per request (much faster than
    Generator.binomial for n <= 8); larger n uses Generator.binomial.
    """
    q = np.asarray(q, dtype=float)
    if n == 1:  # Bernoulli; q outside [0, 1] behaves as clipped
        return (rng.random(q.shape) < q).astype(np.int64)
    q = np.clip(q, 0.0, 1.0)
    if n > 8:
        return rng.binomial(n, q)
    u = rng.random(q.shape)
    counts = np.zeros(q.shape, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = q / (1.0 - q)
        pmf = (1.0 - q) ** n
        cdf = pmf.copy()
        for k in range(n):
            counts += u >= cdf
            pmf = pmf * ratio * ((n - k) / (k + 1.0))
            cdf = cdf + np.where(q >= 1.0, 0.0, pmf)
    # q == 1: pmf above is 0 at k < n and the loop counted every k: counts = n
    return counts


def cycle_pass_probability(
    H_mT: np.ndarray,
    nb: NeelBrown,
    coil: CoilParams,
    plateau_s: float,
    slew_A_per_s: float,
    settle_s: float,
    T_K: float,
) -> np.ndarray:
    """True pass probability of one read cycle for drive amplitudes H_mT (>= -H_prop): trapezoid
    program (plateau_s, edges at slew_A_per_s) followed by the coil (`pulse_traces`), escape rate
    integrated over the real field (`rate_integrals`), then settle_s at zero field. Floor-mode walls
    pass at injection. This is what the fast path tabulates and what the SCPI path samples."""
    H = np.atleast_1d(np.asarray(H_mT, dtype=float))
    g, I = pulse_traces(H / coil.mT_per_A, plateau_s, slew_A_per_s, coil)
    return trace_pass_probability(g, I * coil.mT_per_A, nb, settle_s, T_K)


def trace_pass_probability(t_s: np.ndarray, H_mT: np.ndarray, nb: NeelBrown, settle_s: float, T_K: float):
    """Pass probability for sampled drive-field traces H_mT (..., n) on grid t_s, followed by
    settle_s at zero field: floor + sum_m w_m (1 - exp(-integral r_m dt))."""
    integ = rate_integrals(t_s, H_mT, nb, T_K) + nb.rate(0.0, T_K) * settle_s
    return np.clip(nb.pass_probability_from_integral(integ), 0.0, 1.0)
