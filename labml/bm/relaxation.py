"""Learning by relaxation: the nanomagnetic Boltzmann "device" as a learning dynamics
(SCIENCE.md section 5, after Lobanov 2023). It is simulated here in labml; it is not an instrument.

Three coupled systems share the parameters theta of the model (an RBM, W, a, b; a ClassRBM, also
U, d; a fully connected BM, couplings and biases):

- the target copy: visible spins (and a ClassRBM's label) clamped to a data item (changed every
  `tau_data`), hidden spins relaxing under E at temperature T;
- the model copy: all spins free. Physically it is the copy with inverted Hamiltonian -E at
  negative temperature -T, which samples the same exp(-E/T) but pushes the parameters the other
  way; in simulation it is an ordinary sampler of E whose force enters with a minus sign;
- the parameters: slow overdamped degrees of freedom

      d theta / dt = mu_theta (f_target - f_model) - mu_theta * damping * theta
                     + sqrt(2 mu_theta T_theta) xi(t),        mu_theta = 1 / tau_theta,

  with f = -dE/dtheta evaluated on the instantaneous spin states (e.g. f_W = v h^T).

Spins follow continuous-time Glauber dynamics: in each step of length dt every spin makes a kernel
update with probability dt / tau_spin. `n_copies` target/model pairs run in parallel (a batch of
devices sharing theta). With tau_spin << tau_data << tau_theta the dynamics learns like PCD with
step lr ~ tau_data / tau_theta; with `reseed=True` (model copy restarted from the target copy at
each new data item) and little relaxation it behaves like CD-k with k ~ tau_data / tau_spin; a
persistent copy with tau_theta too short lags behind the moving model (PCD with too large a step).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from labml.bm.chains import Sampler
from labml.bm.kernels import Kernel
from labml.bm.models import BM, RBM, ClassRBM

logger = logging.getLogger(__name__)


@dataclass
class RelaxationConfig:
    """Time scales in arbitrary device time units (only ratios matter).

    tau_spin: mean time between updates of one spin; tau_data: dwell time of a data item on the
    target copy; tau_theta: parameter time scale (mobility mu_theta = 1 / tau_theta, unless
    `mu_theta` is given); damping: restoring-force coefficient (L2, per unit time and mobility);
    T_theta: parameter temperature; dt: integration step (<= tau_spin); reseed: restart the model
    copy from the target copy at each new data item.
    """

    tau_spin: float = 1.0
    tau_data: float = 10.0
    tau_theta: float | None = None
    mu_theta: float | None = None
    damping: float = 0.0
    T_theta: float = 0.0
    dt: float = 1.0
    reseed: bool = False

    def __post_init__(self) -> None:
        if self.tau_theta is not None and self.mu_theta is not None:
            raise ValueError("give tau_theta or mu_theta = 1 / tau_theta, not both")
        if self.tau_theta is None and self.mu_theta is None:
            self.tau_theta = 1000.0
        if self.tau_theta is None:
            self.tau_theta = 1.0 / float(self.mu_theta)
        self.mu_theta = 1.0 / float(self.tau_theta)
        if not (self.tau_spin > 0 and self.tau_data > 0 and self.tau_theta > 0 and self.dt > 0):
            raise ValueError(
                f"relaxation time scales must be > 0: tau_spin={self.tau_spin}, tau_data={self.tau_data}, "
                f"tau_theta={self.tau_theta}, dt={self.dt}"
            )
        if self.dt > self.tau_spin:
            raise ValueError(f"dt={self.dt} must not exceed tau_spin={self.tau_spin}")
        if self.damping < 0 or self.T_theta < 0:
            raise ValueError(f"damping and T_theta must be >= 0, got {self.damping}, {self.T_theta}")

    @property
    def steps_per_item(self) -> int:
        return max(1, int(round(self.tau_data / self.dt)))

    @property
    def equivalent_lr(self) -> float:
        """Parameter step per data item of the equivalent PCD trainer: tau_data / tau_theta."""
        return self.tau_data * self.mu_theta

    def to_dict(self) -> dict:
        return asdict(self)


class RelaxationDevice:
    """Simulated learning-by-relaxation device for an RBM, a ClassRBM or a fully connected BM (see
    the module docstring). The target copy holds the data clamped: the visible spins (and, for a
    ClassRBM, the one-hot label); everything else relaxes."""

    def __init__(
        self,
        model: RBM | ClassRBM | BM,
        kernel: Kernel,
        config: RelaxationConfig,
        n_copies: int = 100,
        generator: torch.Generator | None = None,
    ) -> None:
        if not isinstance(model, RBM | ClassRBM | BM):
            raise TypeError(f"the relaxation device needs an RBM, ClassRBM or BM, got {type(model).__name__}")
        self.model = model
        self.kernel = kernel
        self.config = config
        self.n_copies = int(n_copies)
        self.generator = generator if generator is not None else kernel.generator
        self.sampler = Sampler(model, kernel, self.generator)
        self.target: dict | None = None
        self.model_copy: dict | None = None
        self.time = 0.0
        self.parameter_moves = 0

    # ----------------------------------------------------------------- spin dynamics
    def _update_probability(self) -> float:
        return min(1.0, self.config.dt / self.config.tau_spin)

    def _spin_step(self, state: dict, clamp_visible: bool) -> None:
        """One sweep (visible spins and label unless clamped, then hidden; a BM's units in
        turn) in which each spin updates with probability dt / tau_spin."""
        clamped = ("v", "y") if clamp_visible else ()
        self.sampler.sweep(state, clamped, update_prob=self._update_probability())

    @torch.no_grad()
    def _parameter_step(self) -> None:
        c = self.config
        m = self.model
        f_t = m.forces(self.sampler.values(self.target))
        f_m = m.forces(self.sampler.values(self.model_copy))
        mu_dt = c.mu_theta * c.dt
        noise = math.sqrt(2.0 * c.mu_theta * c.T_theta * c.dt) if c.T_theta > 0 else 0.0
        for name, p in m.named_parameters():
            p.add_(mu_dt * (f_t[name] - f_m[name]) - mu_dt * c.damping * p)
            if noise:
                p.add_(noise * torch.randn(p.shape, generator=self.generator, dtype=p.dtype))
        if isinstance(m, BM):  # keep the raw coupling symmetric with zero diagonal
            m.W.copy_(m.coupling())
        self.parameter_moves += 1

    # ----------------------------------------------------------------- driving with data
    def _clamp(self, v: torch.Tensor, y: torch.Tensor | None) -> None:
        m = self.model
        if isinstance(m, ClassRBM) and y is None:
            raise ValueError("a ClassRBM device needs the items' one-hot labels")
        if self.target is None:
            self.target = self.sampler.state_from_data(v, y)
            if not isinstance(m, BM) and self._update_probability() < 1.0:
                # the heat-bath state from data leaves h unset (a full update never reads it);
                # a partial Glauber step keeps some old spins, so start from a draw given the data
                field = m.local_field(self.sampler.values(self.target), "h")
                self.target["h"] = self.kernel.update(self.target["h"], field, m.beta)
            return
        if isinstance(m, BM):
            S = self.kernel.values(self.target["s"]).clone()
            S[:, : m.n_visible] = v
            self.target["s"] = self.kernel.from_spins(S)
            return
        self.target["v"] = self.kernel.from_spins(v)
        if isinstance(m, ClassRBM):
            self.target["y"] = y.to(v.dtype)

    def _reseed(self) -> None:
        """Model copy restarted at the target copy: its clamped spins copied, the RBM's hidden
        spins drawn given them (as CD starts; the old hidden state belongs to the previous item);
        a BM copies the target's relaxed state."""
        seed = {k: x.clone() for k, x in self.target.items()}
        if not isinstance(self.model, BM):
            field = self.model.local_field(self.sampler.values(seed), "h")
            seed["h"] = self.kernel.update(seed["h"], field, self.model.beta)
        self.model_copy = seed

    @torch.no_grad()
    def present(self, v: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """Clamp data items v (n_copies, n_visible spins; a ClassRBM also needs their one-hot
        labels y) on the target copies for tau_data."""
        if v.shape[0] != self.n_copies:
            raise ValueError(f"present() needs {self.n_copies} items, got {v.shape[0]}")
        self._clamp(v, y)
        if self.model_copy is None or self.config.reseed:
            self._reseed()
        for _ in range(self.config.steps_per_item):
            self._spin_step(self.target, clamp_visible=True)
            self._spin_step(self.model_copy, clamp_visible=False)
            self._parameter_step()
            self.time += self.config.dt

    def run_epoch(
        self, v_train: torch.Tensor, rng: np.random.Generator, y_train: torch.Tensor | None = None
    ) -> dict:
        """Present the training set once, in random order, n_copies items at a time."""
        n = v_train.shape[0]
        perm = rng.permutation(n)
        moves0 = self.parameter_moves
        for i in range(n // self.n_copies):
            idx = perm[i * self.n_copies : (i + 1) * self.n_copies]
            self.present(v_train[idx], None if y_train is None else y_train[idx])
        return {"device_time": self.time, "parameter_moves": self.parameter_moves - moves0}

    @torch.no_grad()
    def model_copy_visible_mean(self) -> torch.Tensor:
        """Mean visible spin of the model copies (what the copies currently sample)."""
        vals = self.sampler.values(self.model_copy)
        if isinstance(self.model, BM):
            return vals["s"][:, : self.model.n_visible].mean(0)
        return vals["v"].mean(0)

    def state_dict(self) -> dict:
        def clone(s):
            return None if s is None else {k: x.clone() for k, x in s.items()}

        return {
            "target": clone(self.target),
            "model_copy": clone(self.model_copy),
            "time": self.time,
            "parameter_moves": self.parameter_moves,
        }

    def load_state_dict(self, d: dict) -> None:
        self.target = d["target"]
        self.model_copy = d["model_copy"]
        self.time = float(d["time"])
        self.parameter_moves = int(d["parameter_moves"])
