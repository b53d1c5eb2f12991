"""The fast path of the simulated world (FastTables): per-wire pass-probability and cycle-cost
tables on a uniform field grid, the vectorised ``read_synapses`` and the model pass probabilities.
Same physics as the SCPI path (simulated_hw.physics), priced on the samples the rig arms."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from instruments.roles import SynapseReads
from simulated_hw import physics
from simulated_hw.physics import CycleSpec

#: fields above the largest Hc of a wire (plus this margin, mT) pass with certainty (table edge)
_TABLE_MARGIN_MT = 0.5


#: spacing (mT) of the per-wire pass-probability table of the fast path (linear interpolation)
TABLE_STEP_MT = 0.02


#: sample temperature quantum (K) of the fast-path table cache (drift on)
_T_QUANTUM_K = 0.02


class FastTables:
    """World mixin: table-driven batched synapse reads. Needs the world's coil, coil_params, cycle,
    wire_params, wires, rng, clock, field_max_mT, _tables, _last_table and the other mixins."""

    def _cycle_for(self, pulse_duration_s: float | None) -> CycleSpec:
        if pulse_duration_s is None:
            return self.cycle
        return replace(self.cycle, pulse_duration_s=float(pulse_duration_s))

    def _reset_pulse_cost(self, cyc: CycleSpec) -> tuple[float, float, float, float]:
        """(program length s, energised time s, programmed Joule energy J, Joule heat of the real
        coil current J) of the reset pulse of the cycle."""
        c = self.coil.effective_params
        key = ("reset", cyc, c)
        hit = self._tables.get(key)
        if hit is None:
            amp = cyc.reset_field_mT / c.mT_per_A
            g, I = physics.pulse_traces(np.array([amp]), cyc.reset_s, cyc.edge_slew_A_per_s, c)
            length, on, e_prog = physics.sampled_program_cost(
                amp, cyc.reset_s, cyc, self.coil_params.resistance_ohm
            )
            hit = (
                float(length[0]),
                float(on[0]),
                float(e_prog[0]),
                float(physics.joule_energy_J(g, I[0], c)),
            )
            self._tables[key] = hit
        return hit

    def _table(self, cyc: CycleSpec, T_K: float) -> dict:
        """Fast-path tables on a uniform field grid 0..H_top (TABLE_STEP_MT), built once per cycle,
        temperature quantum and coil: "p" (n_wires, n_grid) true pass probability of every wire,
        "t" and "e" (n_grid,) bench time (s) and programmed coil Joule energy (J) of one whole
        cycle with that drive amplitude (`_cycle_cost`), "h" (n_grid,) Joule heat of the real coil
        current of that cycle (J, heats the simulated coil). H_top is above every wire's largest
        Hc, so fields above it pass with certainty."""
        Tq = round(T_K / _T_QUANTUM_K) * _T_QUANTUM_K
        c = self.coil.effective_params
        last = self._last_table
        if last is not None and last[0] is cyc and last[1] == Tq and last[2] is c:
            return last[3]
        key = (replace(cyc, read_bandwidth_Hz=1.0, readout="moke"), Tq, c)  # read-out: not in the table
        tab = self._tables.get(key)
        if tab is not None:
            self._last_table = (cyc, Tq, c, tab)
            return tab
        if len(self._tables) > 64:
            self._tables.clear()
        hc_max = max((m.Hc_mT for p in self.wire_params for m in p.neel_brown.modes), default=0.0)
        H_top = min(hc_max + _TABLE_MARGIN_MT, self.field_max_mT)
        n = int(math.ceil(H_top / TABLE_STEP_MT)) + 1
        H_grid = np.linspace(0.0, (n - 1) * TABLE_STEP_MT, n)
        P = np.ones((self.n_wires, n))
        h_drive = np.empty(n)
        for lo in range(0, n, 256):  # blocks: short pulses get short grids
            Hb = H_grid[lo : lo + 256]
            g, I = physics.pulse_traces(Hb / c.mT_per_A, cyc.pulse_duration_s, cyc.edge_slew_A_per_s, c)
            h_drive[lo : lo + 256] = physics.joule_energy_J(g, I, c)
            for w, wp in enumerate(self.wire_params):
                P[w, lo : lo + 256] = physics.trace_pass_probability(
                    g, I * c.mT_per_A, wp.neel_brown, cyc.settle_s, Tq
                )
        t_cycle, e_cycle = self._cycle_cost(H_grid, cyc)
        h_cycle = self._reset_pulse_cost(cyc)[3] + h_drive
        tab = {
            "H": H_grid,
            "p": P,
            "t": t_cycle,
            "e": e_cycle,
            "h": h_cycle,  # values and slopes per cell
            "dp": np.diff(P, axis=1, append=P[:, -1:]),
            "dt": np.diff(t_cycle, append=t_cycle[-1]),
            "de": np.diff(e_cycle, append=e_cycle[-1]),
            "dh": np.diff(h_cycle, append=h_cycle[-1]),
        }
        self._tables[key] = tab
        self._last_table = (cyc, Tq, c, tab)
        return tab

    def _cycle_cost(self, H_mT: np.ndarray, cyc: CycleSpec):
        """(bench time s, programmed Joule energy J) of whole cycles with drive amplitudes H_mT: one
        waveform (reset, gap, drive, settle) padded for duty and power, then the read; priced on
        the samples the rig arms (`physics.sampled_program_cost`)."""
        t_reset, on_reset, e_reset, _ = self._reset_pulse_cost(cyc)
        amp = np.asarray(H_mT, dtype=float) / self.coil.effective_params.mT_per_A
        t_drive, on_drive, e_drive = physics.sampled_program_cost(
            amp, cyc.pulse_duration_s, cyc, self.coil_params.resistance_ohm
        )
        e_cycle = e_reset + e_drive
        if cyc.two_waveforms:  # reset+gap and drive+settle padded each on its own, injection between
            t_cycle = (
                physics.rested_s(t_reset + cyc.gap_s, on_reset, e_reset, cyc)
                + cyc.inject_s
                + physics.rested_s(t_drive + cyc.settle_s, on_drive, e_drive, cyc)
                + cyc.read_s
            )
        else:
            t_cycle = physics.cycle_time_s(
                t_reset + cyc.gap_s + t_drive + cyc.settle_s, on_reset + on_drive, e_cycle, cyc
            )
        return t_cycle, e_cycle

    def exact_pass_probability(
        self, fields_mT, wire: int = 0, pulse_duration_s: float | None = None, T_K: float | None = None
    ) -> np.ndarray:
        """Model pass probability of one cycle on `wire`, computed directly (no table) with
        physics.cycle_pass_probability: for a few fields, other pulse lengths or temperatures (K;
        default the present sample temperature)."""
        cyc = self._cycle_for(pulse_duration_s)
        w = self._check_wire(wire)
        T = self.sample_temperature_K if T_K is None else float(T_K)
        return physics.cycle_pass_probability(
            np.asarray(fields_mT, dtype=float),
            self.wire_params[w].neel_brown,
            self.coil.effective_params,
            cyc.pulse_duration_s,
            cyc.edge_slew_A_per_s,
            cyc.settle_s,
            T,
        ).reshape(np.shape(fields_mT))

    def _lookup(self, fields_mT, wires, cyc: CycleSpec):
        """Validate requests and look up (shape, p_true, total bench time s, total energy J for one
        read of every request, wires_flat)."""
        H = np.asarray(fields_mT, dtype=float)
        w = np.asarray(wires)
        if w.ndim == 0:
            w = np.full(H.shape, w)
        if H.shape != w.shape:
            raise ValueError(f"read_synapses: fields_mT shape {H.shape} and wires shape {w.shape} differ")
        Hf = H.ravel()
        wf = w.ravel()
        if Hf.size == 0:
            return H.shape, np.empty(0), 0.0, 0.0, 0.0, wf.astype(np.intp)
        h_max, h_min = float(Hf.max()), float(Hf.min())  # NaN and inf show up here
        if not (math.isfinite(h_max) and math.isfinite(h_min)):
            raise ValueError("read_synapses: fields_mT must be finite")
        if wf.dtype.kind not in "iu" or wf.min() < 0 or wf.max() >= self.n_wires:
            raise ValueError(f"read_synapses: wires must be integers in 0..{self.n_wires - 1}")
        wf = wf.astype(np.intp, copy=False)
        if h_max > self.field_max_mT:
            raise ValueError(f"read_synapses: field {h_max:.4g} mT above field_max_mT {self.field_max_mT}")
        if h_min < 0:
            props = np.array([p.H_prop_mT for p in self.wire_params])
            bad = np.flatnonzero(Hf < -props[wf])
            if bad.size:
                i = bad[0]
                raise ValueError(
                    f"read_synapses: request {i}: field {Hf[i]:.4g} mT on wire {wf[i]} is below -H_prop "
                    f"({-props[wf[i]]:g} mT): a negative drive pulse that strong pushes the pinned wall back "
                    "off the notch, which the fast path does not model (fields in [-H_prop, 0) read as "
                    "0 mT). "
                    "Learning code never asks for it: it projects every field onto the wire's "
                    "field_range_mT, which the rig config keeps >= 0 mT. For such pulses use the SCPI path "
                    "(instruments.rig.NanowireRig.read_synapses(rig, ...) or rig.cycle)"
                )
        tab = self._table(cyc, self.sample_temperature_K)
        n_grid = tab["t"].size
        pos = np.multiply(Hf, 1.0 / TABLE_STEP_MT)
        np.maximum(pos, 0.0, out=pos)
        i = pos.astype(np.intp)
        np.minimum(i, n_grid - 2, out=i)
        f = pos
        f -= i  # fractional position in the cell (> 1 beyond the table)
        flat = wf * n_grid + i if self.n_wires > 1 else i
        p_out = tab["p"].ravel()[flat]
        p_out += tab["dp"].ravel()[flat] * f

        def cell_sums(ii, ff):
            # per-cell request counts and summed fractions, then every cost is a short sum over
            # the grid (no BLAS dot here: its thread pool stalls on a loaded machine)
            cnt = np.bincount(ii, minlength=n_grid).astype(float)
            frac = np.bincount(ii, weights=ff, minlength=n_grid)
            return tuple(float((cnt * tab[v]).sum() + (frac * tab["d" + v]).sum()) for v in ("t", "e", "h"))

        if h_max <= tab["H"][-1]:
            t_sum, e_sum, h_sum = cell_sums(i, f)
        else:  # beyond every Hc: passes for sure; cost of those pulses computed directly
            out = f > 1.0
            inside = ~out
            t_sum, e_sum, h_sum = cell_sums(i[inside], f[inside])
            c = self.coil.effective_params
            g, I = physics.pulse_traces(Hf[out] / c.mT_per_A, cyc.pulse_duration_s, cyc.edge_slew_A_per_s, c)
            p_out[out] = 1.0
            t_o, e_o = self._cycle_cost(Hf[out], cyc)
            t_sum += float(t_o.sum())
            e_sum += float(e_o.sum())
            h_sum += float((self._reset_pulse_cost(cyc)[3] + physics.joule_energy_J(g, I, c)).sum())
        return H.shape, p_out, t_sum, e_sum, h_sum, wf

    def true_pass_probability(self, fields_mT, wires, pulse_duration_s: float | None = None) -> np.ndarray:
        """Model pass probability (no read-out error) of one bench cycle per request: drive pulse of
        amplitude fields_mT (trapezoid, coil-limited edges, plateau pulse_duration_s or the cycle's)
        then settle_s at zero field, integrated with the wire's Neel-Brown modes at the present
        sample temperature. Table lookup with linear interpolation (TABLE_STEP_MT grid)."""
        shape, p, _, _, _, _ = self._lookup(fields_mT, wires, self._cycle_for(pulse_duration_s))
        return p.reshape(shape)

    def read_synapses(self, fields_mT, wires, n: int, pulse_duration_s: float | None = None) -> SynapseReads:
        """Fast path: counts[i] ~ Binomial(n, q_i), q = p (1 - e) + (1 - p) e with p the true pass
        probability of request i (`true_pass_probability`) and e the read-out bit error
        (`readout_error` of that wire). bench_time_s and energy_J are those of the same cycles on
        the bench, n per request one after another, as instruments.rig.NanowireRig plays them: one
        waveform (reset pulse, gap_s with the injection, drive pulse, settle_s) padded with rest for
        duty_max and mean_power_max_W, then read_s (`physics.cycle_time_s`); energy_J = I^2 R of
        the programmed current of those waveforms (`instruments.safety.program_energy_J`, what the
        bench planner reports: one definition), while the simulated coil is heated by the real
        current, which lags the program where compliance limits the slew. The clock advances by
        bench_time_s, the coil warms by the mean power of that real current, and each wire read is
        left in the state of its last cycle."""
        n = int(n)
        if n < 1:
            raise ValueError(f"read_synapses: n must be >= 1, got {n}")
        cyc = self._cycle_for(None if pulse_duration_s is None else pulse_duration_s)
        shape, p, t_sum, e_sum, h_sum, wf = self._lookup(fields_mT, wires, cyc)
        errs = [self.readout_error(i) for i in range(self.n_wires)]
        e = errs[0] if errs.count(errs[0]) == len(errs) else np.asarray(errs)[wf]
        q = p + (1.0 - 2.0 * p) * e
        counts = physics.sample_binomial(self.rng, n, q)
        bench_time = n * t_sum
        energy = n * e_sum
        if p.size:
            # leave each wire read in the state of its last cycle
            rev = wf[::-1]
            for wi in np.flatnonzero(np.bincount(wf, minlength=self.n_wires)).tolist():
                i_req = wf.size - 1 - int(np.argmax(rev == wi))
                if self.rng.random() < p[i_req]:
                    self._unpin(self.wires[wi], +1)
                else:
                    self._pin_nonfloor(wi)
            if bench_time > 0:
                self._heat(bench_time, n * h_sum / bench_time)  # the real coil current heats
                self.clock._tick(bench_time)
        return SynapseReads(counts=counts.reshape(shape), n=n, bench_time_s=bench_time, energy_J=energy)

    def _pin_nonfloor(self, wire: int) -> None:
        """A wall pinned at the notch of `wire` with a non-floor mode drawn by weight."""
        s = self.wires[wire]
        modes = self.wire_params[wire].neel_brown.modes
        total = sum(m.weight for m in modes)
        u = self.rng.random() * total
        mode, cum = len(modes) - 1, 0.0
        for i, m in enumerate(modes):
            cum += m.weight
            if u < cum:
                mode = i
                break
        s.m_pad, s.m_far, s.wall_pinned, s.mode = 1, -1, True, mode
        s.escape_left = float(self.rng.exponential())
