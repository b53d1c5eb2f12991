"""Chains: where the model (negative-phase) system starts, independent of the kernel.

- `cd`:  contrastive divergence, restarted at the data for every batch, k sweeps.
- `pcd`: persistent chains (Tieleman 2008), k sweeps per parameter update.
- `pt`:  parallel tempering (Desjardins et al. 2010; Cho, Raiko & Ilin 2010): persistent chains at
  inverse temperatures beta * r_m, r_0 = 1 > r_1 > ... > r_{M-1}, each making k sweeps per update,
  then one round of replica exchanges between neighbours (even pairs on even updates, odd pairs on
  odd ones); the negative statistics are those of the r_0 = 1 chains.

A sweep updates every block of the model once, in `model.groups` order, with the kernel; one-hot
label blocks (ClassRBM's y) are always drawn exactly from their softmax conditional.
"""

from __future__ import annotations

import logging

import torch

from labml.bm.kernels import HeatBath, Kernel, Metropolis
from labml.bm.models import BM, RBM, ClassRBM, EnergyModel

logger = logging.getLogger(__name__)

State = dict[str, torch.Tensor]


class Sampler:
    """Block sampler of an energy model with a kernel."""

    def __init__(self, model: EnergyModel, kernel: Kernel, generator: torch.Generator | None = None) -> None:
        self.model = model
        self.kernel = kernel
        self.generator = generator if generator is not None else kernel.generator
        self.last_fields: dict[str, torch.Tensor] = {}

    # --- state helpers -------------------------------------------------------------------------
    def values(self, state: State) -> dict[str, torch.Tensor]:
        label = self.model.label_groups
        return {g: (x if g in label else self.kernel.values(x)) for g, x in state.items()}

    def random_state(self, n: int, dtype: torch.dtype | None = None) -> State:
        m = self.model
        if dtype is None:
            dtype = next(m.parameters()).dtype
        if isinstance(m, BM):
            return {"s": self.kernel.random_state((n, m.n_units), dtype)}
        state = {}
        for g in m.groups:
            size = m.group_size(g)
            if g in m.label_groups:
                idx = torch.randint(size, (n,), generator=self.generator)
                state[g] = torch.nn.functional.one_hot(idx, size).to(dtype)
            else:
                state[g] = self.kernel.random_state((n, size), dtype)
        return state

    def state_from_data(self, v: torch.Tensor, y: torch.Tensor | None = None) -> State:
        """Kernel state with visible spins (and one-hot labels) set from data, hidden random."""
        m = self.model
        n = v.shape[0]
        if isinstance(self.kernel, HeatBath) and not isinstance(m, BM):
            # the heat bath never reads the old hidden state: skip drawing a random one
            state = {"v": v, "h": torch.empty(n, m.n_hidden, dtype=v.dtype)}
            if isinstance(m, ClassRBM):
                if y is None:
                    raise ValueError("ClassRBM data needs one-hot labels")
                state["y"] = y.to(v.dtype)
            return state
        state = self.random_state(n, v.dtype)
        if isinstance(m, BM):
            s = self.kernel.values(state["s"]).clone()
            s[:, : m.n_visible] = v
            state["s"] = self.kernel.from_spins(torch.sign(s) + (s == 0).to(s.dtype))
            return state
        state["v"] = self.kernel.from_spins(v)
        if "y" in state:
            if y is None:
                raise ValueError("ClassRBM data needs one-hot labels")
            state["y"] = y.to(v.dtype)
        return state

    # --- dynamics -----------------------------------------------------------------------------
    def _keep_some(self, new: torch.Tensor, old: torch.Tensor, p: float, shape) -> torch.Tensor:
        """`new` where a uniform draw of `shape` is below p, else `old` (partial updates)."""
        if p >= 1.0:
            return new
        mask = torch.rand(shape, generator=self.generator) < p
        if new.dim() > mask.dim():
            mask = mask[..., None]
        return torch.where(mask, new, old)

    @torch.no_grad()
    def sweep(
        self,
        state: State,
        clamped: tuple[str, ...] = (),
        fields: dict[str, torch.Tensor] | None = None,
        update_prob: float = 1.0,
        beta_scale: torch.Tensor | None = None,
    ) -> State:
        """One update of every block not in `clamped` (BM: of every unit not clamped).

        For a BM, clamping "v" holds the first n_visible units fixed. `fields` may hold local
        fields already computed for the current state (saves a matrix product). The field used
        for each block's last update is kept in `self.last_fields`. With `update_prob` < 1 each
        spin (a one-hot label block as one unit) takes its update only with that probability
        (continuous-time Glauber dynamics in steps; the relaxation device). `beta_scale` (rows, 1)
        multiplies the model's inverse temperature row by row (the replicas of parallel tempering).
        """
        m = self.model
        beta = m.beta if beta_scale is None else m.beta * beta_scale
        if isinstance(m, BM):
            J = m.coupling()
            S = state["s"]
            start = m.n_visible if "v" in clamped else 0
            for i in range(start, m.n_units):
                vals = self.kernel.values(S)
                h = (vals @ J[:, i] + m.b[i])[:, None]
                old = S[:, i : i + 1]
                new = self.kernel.update(old, h, beta, first_unit=i)
                S[:, i : i + 1] = self._keep_some(new, old, update_prob, h.shape)
            state["s"] = S
            return state
        for g in m.groups:
            if g in clamped:
                continue
            if fields and g in fields:
                field = fields.pop(g)
            else:
                field = m.local_field(self.values(state), g)
            self.last_fields[g] = field
            if g in m.label_groups:
                idx = torch.multinomial(torch.softmax(beta * field, dim=1), 1, generator=self.generator)[:, 0]
                new = torch.nn.functional.one_hot(idx, field.shape[1]).to(field.dtype)
                state[g] = self._keep_some(new, state[g], update_prob, (field.shape[0], 1))
            else:
                new = self.kernel.update(state[g], field, beta)
                state[g] = self._keep_some(new, state[g], update_prob, field.shape)
        return state

    def run(
        self, state: State, n_sweeps: int, clamped: tuple[str, ...] = (),
        beta_scale: torch.Tensor | None = None,
    ) -> State:
        for _ in range(n_sweeps):
            state = self.sweep(state, clamped, beta_scale=beta_scale)
        return state

    @torch.no_grad()
    def statistics(self, state: State) -> dict[str, torch.Tensor]:
        """Values for the forces. For an RBM sampled with +/-1 spins the hidden layer is replaced
        by its exact conditional mean tanh(beta h) given the current visible state
        (Rao-Blackwellised); the field of the last hidden update is exactly that field."""
        vals = self.values(state)
        m = self.model
        if self.kernel.discrete and isinstance(m, RBM | ClassRBM):
            field = self.last_fields.get("h")
            if field is None or field.shape[0] != vals["v"].shape[0]:
                field = m.local_field(vals, "h")
            vals["h"] = torch.tanh(m.beta * field)
        return vals


class Chains:
    """Negative-phase chains: kind "cd" (restarted at the data), "pcd" (persistent) or "pt"
    (persistent, parallel tempering over `beta_ratios`, n_chains at each of them)."""

    def __init__(
        self,
        sampler: Sampler,
        kind: str = "pcd",
        k: int = 1,
        n_chains: int = 100,
        beta_ratios: tuple[float, ...] = (),
    ) -> None:
        if kind not in ("cd", "pcd", "pt"):
            raise ValueError(f"chains must be 'cd', 'pcd' or 'pt', got {kind!r}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.sampler = sampler
        self.kind = kind
        self.k = int(k)
        self.n_chains = int(n_chains)
        self.state: State | None = None
        self.beta_ratios = tuple(float(r) for r in beta_ratios)
        if kind == "pt":
            r = self.beta_ratios
            if len(r) < 2 or r[0] != 1.0 or any(not (b > c > 0) for b, c in zip(r, r[1:], strict=False)):
                raise ValueError(f"parallel tempering needs beta ratios 1 = r_0 > r_1 > ... > 0, got {r}")
            if isinstance(sampler.model, BM):
                raise ValueError("parallel tempering is implemented for the bipartite models (RBM, ClassRBM)")
            if not isinstance(sampler.kernel, HeatBath | Metropolis):
                # the exchange uses model.energy: exact only for the Ising kernels' densities
                raise ValueError(f"parallel tempering needs the heatbath or metropolis kernel, "
                                 f"got {sampler.kernel.name}")
            # one inverse-temperature factor per row of the stacked replicas (replica-major), in
            # double precision; the sweeps use it at the precision of the state
            self._row_scale = torch.tensor(r, dtype=torch.float64).repeat_interleave(self.n_chains)[:, None]
        self.exchanges = 0  # rounds of replica exchange done (their parity picks the pairs)
        self.swap_attempts = [0] * max(len(self.beta_ratios) - 1, 0)
        self.swap_accepts = [0] * max(len(self.beta_ratios) - 1, 0)

    def init_persistent(self, v: torch.Tensor | None = None, y: torch.Tensor | None = None) -> None:
        """Start persistent chains at data items (or at random spins when v is None)."""
        reps = len(self.beta_ratios) if self.kind == "pt" else 1
        if v is None:
            self.state = self.sampler.random_state(self.n_chains * reps)
            return
        # PCD: the first n_chains items; PT: n_chains items in every replica, the batch's items
        # repeated when it has fewer (a small training set)
        rows = torch.arange(self.n_chains) % len(v) if self.kind == "pt" else slice(0, self.n_chains)
        v0 = v[rows].repeat(reps, 1)
        y0 = None if y is None else y[rows].repeat(reps, 1)
        state = self.sampler.state_from_data(v0, y0)
        clamped = ("v",) if isinstance(self.sampler.model, BM) else ("v", "y")
        scale = self._row_scale.to(v0.dtype) if self.kind == "pt" else None
        self.state = self.sampler.sweep(state, clamped=clamped, beta_scale=scale)

    @torch.no_grad()
    def negative(
        self, v: torch.Tensor, y: torch.Tensor | None = None, data_hidden_field: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Advance the model system and return its values for the forces.

        CD: the model copy is re-seeded at the data (hidden drawn given the data, using
        `data_hidden_field` when the positive phase already computed it), then k sweeps.
        PCD: the persistent chains make k sweeps. PT: every replica makes k sweeps at its inverse
        temperature, then one round of exchanges; the values are the r = 1 replica's.
        """
        s = self.sampler
        if self.kind == "cd":
            state = s.state_from_data(v, y)
            if not isinstance(s.model, BM):
                hint = None if data_hidden_field is None else {"h": data_hidden_field}
                state = s.sweep(state, clamped=("v", "y"), fields=hint)
            else:
                state = s.sweep(state, clamped=("v",))
            state = s.run(state, self.k)
            return s.statistics(state)
        if self.state is None:
            self.init_persistent(v, y)
        if self.kind == "pcd":
            self.state = s.run(self.state, self.k)
            return s.statistics(self.state)
        self.state = s.run(self.state, self.k, beta_scale=self._row_scale.to(self.state["v"].dtype))
        self._exchange()
        s.last_fields.clear()  # the exchanges moved rows: the statistics recompute the field
        return s.statistics({g: x[: self.n_chains] for g, x in self.state.items()})

    @torch.no_grad()
    def _exchange(self) -> None:
        """Metropolis replica exchange of neighbours (m, m + 1), m of the round's parity: the joint
        states swap with probability min(1, exp((beta_m - beta_m+1) (E_m - E_m+1))), which keeps
        every replica's Boltzmann distribution exp(-beta_m E) (detailed balance of the product)."""
        s, n = self.sampler, self.n_chains
        energy = s.model.energy(s.values(self.state)).view(len(self.beta_ratios), n)
        beta = s.model.beta * torch.tensor(self.beta_ratios, dtype=energy.dtype)
        for m in range(self.exchanges % 2, len(self.beta_ratios) - 1, 2):
            log_acc = (beta[m] - beta[m + 1]) * (energy[m] - energy[m + 1])
            u = torch.rand(n, generator=s.generator, dtype=energy.dtype)
            swap = torch.log(u) < log_acc
            self.swap_attempts[m] += n
            self.swap_accepts[m] += int(swap.sum())
            lo, hi = slice(m * n, (m + 1) * n), slice((m + 1) * n, (m + 2) * n)
            rows = swap[:, None]
            for x in self.state.values():
                a, b = x[lo].clone(), x[hi].clone()
                x[lo], x[hi] = torch.where(rows, b, a), torch.where(rows, a, b)
        self.exchanges += 1

    def swap_rates(self) -> list[float]:
        """Accepted fraction of the exchanges tried between each pair of neighbouring replicas."""
        pairs = zip(self.swap_accepts, self.swap_attempts, strict=True)
        return [a / t if t else float("nan") for a, t in pairs]

    def state_dict(self) -> dict:
        state = None if self.state is None else {g: x.clone() for g, x in self.state.items()}
        return {"kind": self.kind, "k": self.k, "state": state,
                "exchanges": self.exchanges, "swap_attempts": list(self.swap_attempts),
                "swap_accepts": list(self.swap_accepts)}

    def load_state_dict(self, d: dict) -> None:
        self.state = None if d.get("state") is None else {k: v.clone() for k, v in d["state"].items()}
        self.exchanges = int(d.get("exchanges", 0))
        self.swap_attempts = list(d.get("swap_attempts", self.swap_attempts))
        self.swap_accepts = list(d.get("swap_accepts", self.swap_accepts))
