"""Sampling kernels: how one block of conditionally independent units is updated given its
local field h (SCIENCE.md section 5).

A kernel keeps each block in its own representation (a "state"): +/-1 spins for the discrete
kernels, unit vectors (..., 3) for stochastic-LLG macrospins, reals for soft spins.
`values(state)` is what the couplings see (s, S_z or x). Every kernel implements

    update(state, field, beta) -> new state

which, repeated with a fixed field, leaves invariant p(s_i) ~ exp(beta * (h_i s_i - U(s_i))), with
U the kernel's on-site term (none for Ising spins, easy-axis anisotropy -K S_z^2 for macrospins,
a double well for soft spins).

- `HeatBath`:   s_i = +1 with probability sigmoid(2 beta h_i).
- `Metropolis`: flip s_i with probability min(1, exp(-2 beta s_i h_i)).
- `SLLG`:       stochastic Landau-Lifshitz-Gilbert macrospins (gamma = mu_s = kB = 1), easy-axis
                anisotropy K along z, Heun integration (Stratonovich) and renormalisation |S| = 1.
- `SoftSpin`:   overdamped Langevin spins x in a double well lam/4 (x^2 - 1)^2, Heun.
- `RigKernel`:  heat bath on hardware: each update is one read of the attached nanowire rig at
                H = p_wire^-1(q), q = sigmoid(2 beta h) kept inside the wire's allowed field range.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from instruments.rig import check_wire_ranges

logger = logging.getLogger(__name__)


class Kernel:
    """Base class. `discrete` kernels sample +/-1 spins, so <s>_h = tanh(beta h) is exact."""

    name = "kernel"
    discrete = True

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    def from_spins(self, s: torch.Tensor) -> torch.Tensor:
        """Kernel state for +/-1 spin values (e.g. data)."""
        return s.clone()

    def values(self, state: torch.Tensor) -> torch.Tensor:
        return state

    def random_state(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        u = torch.rand(shape, generator=self.generator, dtype=dtype)
        return self.from_spins(torch.where(u < 0.5, -1.0, 1.0).to(dtype))

    def update(
        self, state: torch.Tensor, field: torch.Tensor, beta: float, first_unit: int = 0
    ) -> torch.Tensor:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class HeatBath(Kernel):
    """Heat-bath (Glauber / Gibbs) update: P(s_i = +1) = sigmoid(2 beta h_i)."""

    name = "heatbath"

    def update(
        self, state: torch.Tensor, field: torch.Tensor, beta: float, first_unit: int = 0
    ) -> torch.Tensor:
        return heat_bath_spins(field, beta, self.generator)


def heat_bath_spins(
    field: torch.Tensor, beta: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """+/-1 spins, +1 where u < sigmoid(2 beta h) for u ~ U[0, 1) drawn with `generator`.

    Same draws and same spins as `torch.where(u < p, 1, -1)`, in fewer passes: the sign of
    -(u - p) is exact in floating point (zero only when u == p, and -(+0) = -0 gives -1).
    """
    return spins_with_prob(torch.sigmoid(field * (2.0 * beta)), generator)


def spins_with_prob(p: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """+/-1 spins, +1 where u < p for u ~ U[0, 1) drawn with `generator` (p is not changed)."""
    u = torch.rand(p.shape, generator=generator, dtype=p.dtype)
    u.sub_(p).neg_()
    return torch.copysign(torch.ones((), dtype=p.dtype), u, out=u)


class Metropolis(Kernel):
    """Metropolis single-flip update: flip with probability min(1, exp(-2 beta s_i h_i))."""

    name = "metropolis"

    def update(
        self, state: torch.Tensor, field: torch.Tensor, beta: float, first_unit: int = 0
    ) -> torch.Tensor:
        accept = torch.exp((-2.0 * beta * state * field).clamp(max=0.0))
        u = torch.rand(accept.shape, generator=self.generator, dtype=accept.dtype)
        return torch.where(u < accept, -state, state)


class SLLG(Kernel):
    """Stochastic LLG macrospins, Heun scheme, renormalised to |S| = 1.

    dS/dt = -1/(1 + alpha^2) [S x H + alpha S x (S x H)],  H = (h + 2 K S_z) z + xi,
    xi Gaussian with variance 2 D / dt per component and step, D = alpha T (gamma = mu_s = kB = 1),
    held fixed within a Heun step (Stratonovich). `n_steps` steps of length `dt` per update.
    The stationary density is exp(beta (h S_z + K S_z^2)) on the sphere.
    """

    name = "sllg"
    discrete = False

    def __init__(
        self,
        dt: float = 0.02,
        n_steps: int = 20,
        alpha: float = 1.0,
        anisotropy: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(generator)
        if not (dt > 0 and n_steps >= 1 and alpha > 0 and anisotropy >= 0):
            raise ValueError(
                f"sLLG needs dt > 0, n_steps >= 1, alpha > 0, anisotropy >= 0; got "
                f"dt={dt}, n_steps={n_steps}, alpha={alpha}, anisotropy={anisotropy}"
            )
        self.dt = float(dt)
        self.n_steps = int(n_steps)
        self.alpha = float(alpha)
        self.K = float(anisotropy)

    def from_spins(self, s: torch.Tensor) -> torch.Tensor:
        S = torch.zeros(*s.shape, 3, dtype=s.dtype)
        S[..., 2] = torch.sign(s) + (s == 0).to(s.dtype)
        return S

    def random_state(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        S = torch.randn(*shape, 3, generator=self.generator, dtype=dtype)
        return S / S.norm(dim=-1, keepdim=True)

    def values(self, state: torch.Tensor) -> torch.Tensor:
        return state[..., 2]

    def _rhs(self, S: torch.Tensor, Hext: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        H = xi.clone()
        H[..., 2] += Hext + 2.0 * self.K * S[..., 2]
        SxH = torch.linalg.cross(S, H, dim=-1)
        return -(SxH + self.alpha * torch.linalg.cross(S, SxH, dim=-1)) / (1.0 + self.alpha**2)

    def update(
        self, state: torch.Tensor, field: torch.Tensor, beta: float, first_unit: int = 0
    ) -> torch.Tensor:
        T = 1.0 / beta
        sigma = math.sqrt(2.0 * self.alpha * T / self.dt)
        S = state
        for _ in range(self.n_steps):
            xi = sigma * torch.randn(S.shape, generator=self.generator, dtype=S.dtype)
            f1 = self._rhs(S, field, xi)
            Sp = S + self.dt * f1
            f2 = self._rhs(Sp, field, xi)
            S = S + 0.5 * self.dt * (f1 + f2)
            S = S / S.norm(dim=-1, keepdim=True)
        return S

    def __repr__(self) -> str:
        return f"SLLG(dt={self.dt}, n_steps={self.n_steps}, alpha={self.alpha}, anisotropy={self.K})"


class SoftSpin(Kernel):
    """Overdamped Langevin soft spins in a double well (Heun; additive noise).

    dx = (h - lam x (x^2 - 1)) dt + sqrt(2 T dt) N(0, 1); stationary density
    exp(beta (h x - lam/4 (x^2 - 1)^2)).
    """

    name = "soft"
    discrete = False

    def __init__(
        self, dt: float = 0.01, n_steps: int = 20, well: float = 4.0, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(generator)
        if not (dt > 0 and n_steps >= 1 and well >= 0):
            raise ValueError(f"soft spins need dt > 0, n_steps >= 1, well >= 0; got {dt}, {n_steps}, {well}")
        self.dt = float(dt)
        self.n_steps = int(n_steps)
        self.well = float(well)

    def _drift(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return h - self.well * x * (x * x - 1.0)

    def update(
        self, state: torch.Tensor, field: torch.Tensor, beta: float, first_unit: int = 0
    ) -> torch.Tensor:
        sigma = math.sqrt(2.0 / beta * self.dt)
        x = state
        for _ in range(self.n_steps):
            noise = sigma * torch.randn(x.shape, generator=self.generator, dtype=x.dtype)
            d1 = self._drift(x, field)
            xp = x + self.dt * d1 + noise
            x = x + 0.5 * self.dt * (d1 + self._drift(xp, field)) + noise
        return x

    def __repr__(self) -> str:
        return f"SoftSpin(dt={self.dt}, n_steps={self.n_steps}, well={self.well})"


class RigKernel(Kernel):
    """Heat bath performed by the attached nanowire rig (a stochastic domain wall is a p-bit).

    For each unit, q = sigmoid(2 beta h) is turned into a drive field with the calibration of the
    wire that the unit is mapped to (the rig's, or `calibrations` measured for this use),
    H = p_wire^-1(q) clipped to rig.field_range_mT(wire) (so no request ever leaves the allowed
    range), and the unit becomes +1 if the read bit is 1.
    Units are mapped to wires round-robin over their position in the block. Every update costs
    one device cycle per unit and chain; `reads`, `bench_time_s` and `energy_J` add up the cost.
    """

    name = "rig"

    def __init__(self, rig, generator: torch.Generator | None = None, calibrations=None) -> None:
        super().__init__(generator)
        self.rig = rig
        n = int(rig.n_wires)
        if n < 1:
            raise ValueError("the rig has no wires")
        self.n_wires = n
        # the rig's own curves, or curves measured for this use (one per wire, with p and inverse)
        own = calibrations is None
        self.calibrations = [rig.calibration(w) for w in range(n)] if own else list(calibrations)
        if len(self.calibrations) != n:
            raise ValueError(f"{len(self.calibrations)} calibrations for a rig of {n} wires")
        self.ranges = [tuple(float(x) for x in rig.field_range_mT(w)) for w in range(n)]
        self.reads = 0
        self.bench_time_s = 0.0
        self.energy_J = 0.0

    def q_range(self, wire: int) -> tuple[float, float]:
        """The pass probabilities the wire can give inside its allowed field range (by calibration)."""
        lo, hi = self.ranges[wire]
        cal = self.calibrations[wire]
        return float(cal.p(lo)), float(cal.p(hi))

    def fields_for(
        self, q: np.ndarray, first_unit: int = 0, units: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(fields_mT, wires) for target probabilities q of shape (B, n); unit j of the block (index
        first_unit + j in the model, or units[j] when the block's units are given) is read on wire
        (that index) % n_wires."""
        B, n = q.shape
        wire_of = self._wire_of(n, first_unit, units)
        H = np.empty_like(q)
        # one calibration call per wire on that wire's columns: the same values in the same order
        # as a boolean mask over (B, n) would give (row-major), without n_wires passes over all of q
        for w in range(self.n_wires):
            cols = np.flatnonzero(wire_of == w)
            if cols.size == 0:
                continue
            lo, hi = self.ranges[w]
            if cols.size == n:
                H[:] = self.calibrations[w].inverse(q, lo, hi)
            else:
                H[:, cols] = self.calibrations[w].inverse(q[:, cols], lo, hi)
        return H, np.ascontiguousarray(np.broadcast_to(wire_of, (B, n)))

    def _wire_of(self, n: int, first_unit: int = 0, units: np.ndarray | None = None) -> np.ndarray:
        index = first_unit + np.arange(n) if units is None else np.asarray(units, dtype=np.int64)
        return index % self.n_wires

    def update(
        self, state: torch.Tensor, field: torch.Tensor, beta: float, first_unit: int = 0,
        units: np.ndarray | None = None, active: np.ndarray | None = None,
    ) -> torch.Tensor:
        """New spins (B, n) for local fields `field` (B, n). `active` (B, n) bool: read only those
        (chain, unit) pairs, in row-major order; the others keep their value in `state` and cost
        no read (clamped units). Without it every pair is read."""
        q = torch.sigmoid(2.0 * beta * field).detach().double().cpu().numpy()
        H, wires = self.fields_for(q, first_unit, units)
        if active is None:
            f, w = H.ravel(), wires.ravel()
        else:
            act = np.asarray(active, dtype=bool)
            if act.shape != q.shape:
                raise ValueError(f"active must have the shape of the field {q.shape}, got {act.shape}")
            f, w = H[act], wires[act]
        check_wire_ranges(self.rig, f, w)
        reads = self.rig.read_synapses(f, w, 1)
        bits = np.asarray(reads.counts)
        self.reads += f.size
        self.bench_time_s += float(reads.bench_time_s)
        self.energy_J += float(reads.energy_J)
        if active is None:
            return torch.as_tensor(2.0 * bits.reshape(q.shape) - 1.0, dtype=field.dtype)
        out = state.detach().clone().to(field.dtype)
        out[torch.from_numpy(act)] = torch.as_tensor(2.0 * bits.ravel() - 1.0, dtype=field.dtype)
        return out

    def state_dict(self) -> dict:
        return {"reads": self.reads, "bench_time_s": self.bench_time_s, "energy_J": self.energy_J}

    def load_state_dict(self, state: dict) -> None:
        self.reads = int(state.get("reads", 0))
        self.bench_time_s = float(state.get("bench_time_s", 0.0))
        self.energy_J = float(state.get("energy_J", 0.0))


KERNELS = ("heatbath", "metropolis", "sllg", "soft", "rig")


def make_kernel(name: str, generator: torch.Generator | None = None, rig=None, **options) -> Kernel:
    """Kernel by name; `options` go to its constructor (e.g. dt, n_steps, anisotropy, well)."""
    if name == "heatbath":
        return HeatBath(generator)
    if name == "metropolis":
        return Metropolis(generator)
    if name == "sllg":
        return SLLG(generator=generator, **options)
    if name == "soft":
        return SoftSpin(generator=generator, **options)
    if name == "rig":
        if rig is None:
            raise ValueError("the rig kernel needs an attached rig (--rig FILE|sim)")
        return RigKernel(rig, generator, **options)
    raise ValueError(f"unknown kernel {name!r}; choose one of {', '.join(KERNELS)}")
