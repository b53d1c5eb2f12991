"""The nanowires of the simulated world: fabricated properties (WireParams, SpreadParams,
spread_wire), magnetic state (WireState) and their hysteresis (WireDynamics: pad nucleation,
propagation, notch pinning with multi-mode Neel-Brown depinning, nucleation without a pad,
injection, reset, the selected wire)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from instruments.calibration import DepinningMode, NeelBrown
from simulated_hw import physics


@dataclass
class WireParams:
    """Fixed (fabricated) properties of one simulated nanowire.

    neel_brown: true multi-mode depinning of its notch. H_pad_mT: nucleation field of the pad (mT);
    H_prop_mT: propagation field of a free wall (mT); H_nuc_mT: nucleation field of the wire away
    from the pad (mT); has_pad: whether the wire has a nucleation pad. R0_ohm: 4-probe resistance
    across the notch (the AMR term is the same for +M and -M, so it is part of R0); dR_dw_ohm:
    change of R while a wall is pinned between the probes (AMR: a wall lowers R in Ni80Fe20, so
    negative by default, 0.1 % of R0). V0_V, kappa: MOKE photodiode level (V) and Kerr contrast.
    emf_V: thermal EMF of the voltage leads (V), cancelled by delta mode.
    """

    neel_brown: NeelBrown = field(default_factory=NeelBrown)
    H_pad_mT: float = 4.5
    H_prop_mT: float = 0.7
    H_nuc_mT: float = 22.0
    has_pad: bool = True
    R0_ohm: float = 125.0
    dR_dw_ohm: float = -0.125
    V0_V: float = 1.0
    kappa: float = 5e-3
    emf_V: float = 2e-6

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "neel_brown"}
        d["neel_brown"] = self.neel_brown.to_dict()
        return d


@dataclass
class WireState:
    """Present magnetic state of one wire. m_pad: magnetisation (+1/-1) between pad and notch;
    m_far: beyond the notch (what the MOKE spot sees); wall_pinned: a wall sits at the notch;
    mode: its depinning mode index (-1 none); escape_left: remaining Exp(1) escape budget of the
    pinned wall (it passes when the integrated escape rate reaches it)."""

    m_pad: int = -1
    m_far: int = -1
    wall_pinned: bool = False
    mode: int = -1
    escape_left: float = 0.0


@dataclass
class SpreadParams:
    """Fabrication spread of wires 1.. around the nominal wire 0 (`[sim.spread]`), relative sigmas."""

    Hc_rel: float = 0.05
    E0_rel: float = 0.05
    H_pad_rel: float = 0.1


def spread_wire(nominal: WireParams, spread: SpreadParams, rng: np.random.Generator) -> WireParams:
    """A fabricated wire around `nominal`: every mode's Hc and E0 and the pad field scaled by
    independent lognormal factors with the given relative sigmas (drawn from `rng`)."""
    nb = nominal.neel_brown
    modes = tuple(
        DepinningMode(
            weight=m.weight,
            Hc_mT=m.Hc_mT * float(np.exp(spread.Hc_rel * rng.standard_normal())),
            E0_kT300=m.E0_kT300 * float(np.exp(spread.E0_rel * rng.standard_normal())),
        )
        for m in nb.modes
    )
    H_pad = nominal.H_pad_mT * float(np.exp(spread.H_pad_rel * rng.standard_normal()))
    return replace(nominal, neel_brown=replace(nb, modes=modes), H_pad_mT=H_pad)


class WireDynamics:
    """World mixin: wire selection, walls arriving at / escaping from the notch along a field trace,
    the injection line and ideal reads. Needs the world's wires, wire_params, rng, selected_wire."""

    @property
    def n_wires(self) -> int:
        return len(self.wire_params)

    def wire_state(self, wire: int) -> WireState:
        return self.wires[self._check_wire(wire)]

    def select(self, wire: int) -> None:
        """Move the laser spot / switch matrix to `wire`."""
        self.selected_wire = self._check_wire(wire)

    def _check_wire(self, wire) -> int:
        w = int(wire)
        if not 0 <= w < self.n_wires:
            raise ValueError(f"wire {wire!r} out of range 0..{self.n_wires - 1}")
        return w

    def _pin(self, p: WireParams, s: WireState, sign: int) -> None:
        """A wall of sign `sign` (its pad side is `sign`) arrives at the notch: draw its mode."""
        nb = p.neel_brown
        u = self.rng.random()
        s.m_pad = sign
        cum = nb.floor
        if u < cum:  # floor mode: passes at once
            s.m_far = sign
            s.wall_pinned, s.mode, s.escape_left = False, -1, 0.0
            return
        mode = len(nb.modes) - 1
        for i, m in enumerate(nb.modes):
            cum += m.weight
            if u < cum:
                mode = i
                break
        s.wall_pinned, s.mode = True, mode
        s.escape_left = float(self.rng.exponential())

    @staticmethod
    def _unpin(s: WireState, m: int) -> None:
        s.m_pad = s.m_far = m
        s.wall_pinned, s.mode, s.escape_left = False, -1, 0.0

    def _wire_constant(self, p: WireParams, s: WireState, H: float, dt: float, T: float) -> None:
        self._wire_trace(p, s, np.array([0.0, dt]), np.array([H, H]), T)

    def _wire_trace(self, p: WireParams, s: WireState, t: np.ndarray, H: np.ndarray, T: float) -> None:
        """Advance one wire along a sampled field trace: events in time order."""
        k = 0
        n = t.size
        for _ in range(4 * n + 8):  # at most a few events per sample (each one moves k or settles the state)
            if not s.wall_pinned:
                m = s.m_far if s.m_pad == s.m_far else s.m_pad
                s.m_pad = s.m_far = m
                opp = -m * H[k:]
                i_pad = np.flatnonzero(opp > p.H_pad_mT) if p.has_pad else np.empty(0, int)
                i_nuc = np.flatnonzero(opp > p.H_nuc_mT)
                first_pad = i_pad[0] if i_pad.size else n
                first_nuc = i_nuc[0] if i_nuc.size else n
                if first_pad >= n - k and first_nuc >= n - k:
                    return
                if first_nuc <= first_pad:
                    self._unpin(s, -m)
                    k += int(first_nuc)
                    continue
                k += int(first_pad)
                self._pin(p, s, -m)
                continue
            sign = s.m_pad
            h = sign * H[k:]
            i_back = np.flatnonzero(h < -p.H_prop_mT)
            i_far = np.flatnonzero(h > p.H_nuc_mT)
            # escape can only matter before the first deterministic event: integrate up to it
            stop = min(i_back[0] if i_back.size else n, i_far[0] if i_far.size else n, n - k - 1)
            cum = physics.cumulative_rate_integral(
                t[k : k + stop + 1], h[: stop + 1], p.neel_brown, s.mode, T
            )
            i_esc = np.flatnonzero(cum >= s.escape_left)
            first = [
                (i_esc[0] if i_esc.size else n, "esc"),
                (i_back[0] if i_back.size else n, "back"),
                (i_far[0] if i_far.size else n, "far"),
            ]
            idx, what = min(first, key=lambda x: x[0])
            if idx >= n - k:
                s.escape_left -= float(cum[-1])
                return
            if what == "back":
                self._unpin(s, -sign)
            else:  # escaped or far region nucleated: whole wire `sign`
                self._unpin(s, sign)
            k += int(idx)
        raise RuntimeError("wire trace: event loop did not terminate (bug)")

    def inject(self, wires=None, duration_s: float = 0.0) -> None:
        """Injection line pulse: each wire whose pad region is -M gets a +M domain there and a wall
        pinned at its notch, with a depinning mode drawn from its Neel-Brown weights (floor-mode
        walls pass at once). Wires already +M at the pad are unchanged. Then advance duration_s."""
        for w in self._wire_list(wires):
            s = self.wires[w]
            if s.m_pad == -1 and not s.wall_pinned:
                self._pin(self.wire_params[w], s, +1)
        if duration_s > 0:
            self.advance(duration_s)

    def reset_wires(self, wires=None) -> None:
        """Ideal saturation to -M with no wall (what the -30 mT reset pulse does)."""
        for w in self._wire_list(wires):
            self._unpin(self.wires[w], -1)

    def _wire_list(self, wires) -> list[int]:
        if wires is None:
            return list(range(self.n_wires))
        return [self._check_wire(w) for w in np.atleast_1d(wires)]

    def read_bit(self, wire: int | None = None) -> int:
        """Ideal (noise-free) bit of a wire: 1 if the far region is +M (the wall passed)."""
        w = self.selected_wire if wire is None else self._check_wire(wire)
        return int(self.wires[w].m_far == 1)
