"""Boltzmann machines in +/-1 spins with temperature (SCIENCE.md section 5).

Three models, all torch modules with batched tensor code:

- `BM`: fully connected Boltzmann machine over visible + hidden spins,
  E(s) = -1/2 s^T W s - b^T s with W symmetric, zero diagonal.
- `RBM`: E(v, h) = -v^T W h - a^T v - b^T h.
- `ClassRBM`: E(v, y, h) = -v^T W h - y^T U h - a^T v - b^T h - d^T y with y a 0/1 one-hot label.

Conventions: data bits x in {0, 1} map to spins s = 2x - 1. Energies are in units of the
temperature scale (kB = 1); beta = 1 / temperature. Every model exposes

- `groups`: the blocks of units that a sampler updates together (units inside a block are
  conditionally independent given the rest);
- `local_field(values, group)`: h_i = -dE/ds_i for the units of the block (the heat-bath field);
- `energy(values)`, and for the RBMs `free_energy(v)` (hidden spins summed out);
- `forces(values, mean_hidden)`: the generalised forces f = -dE/dtheta averaged over the batch,
  one tensor per parameter, the quantities whose difference between a target (data clamped) and a
  model system drives learning: -dL/dtheta = beta * (f_target - f_model).
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn
from torch.nn import functional as F

logger = logging.getLogger(__name__)

Values = dict[str, torch.Tensor]


def bits_to_spins(x: torch.Tensor) -> torch.Tensor:
    """0/1 bits -> -1/+1 spins."""
    return 2.0 * x - 1.0


def spins_to_bits(s: torch.Tensor) -> torch.Tensor:
    """-1/+1 spins -> 0/1 bits (continuous values map linearly)."""
    return 0.5 * (s + 1.0)


def log2cosh(x: torch.Tensor) -> torch.Tensor:
    """log(2 cosh x), stable for large |x|."""
    ax = x.abs()
    return ax + F.softplus(-2.0 * ax)


class EnergyModel(nn.Module):
    """Common parts: temperature and the sampling-block interface."""

    groups: tuple[str, ...] = ()
    label_groups: tuple[str, ...] = ()  # one-hot categorical blocks (always sampled exactly)

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    @property
    def beta(self) -> float:
        return 1.0 / self.temperature

    def group_size(self, group: str) -> int:
        raise NotImplementedError

    def local_field(self, values: Values, group: str) -> torch.Tensor:
        raise NotImplementedError

    def energy(self, values: Values) -> torch.Tensor:
        raise NotImplementedError


class _Bipartite(EnergyModel):
    """What RBM and ClassRBM share: the parameters (weights drawn from N(0, init_std^2) with
    `generator` in the order given, then zero biases) and the visible-bias initialisation."""

    def _init_parameters(
        self,
        weights: dict[str, tuple[int, int]],
        biases: dict[str, int],
        init_std: float,
        generator: torch.Generator | None,
        dtype: torch.dtype,
    ) -> None:
        for name, shape in weights.items():
            weight = torch.randn(*shape, generator=generator, dtype=dtype) * init_std
            setattr(self, name, nn.Parameter(weight))
        for name, size in biases.items():
            setattr(self, name, nn.Parameter(torch.zeros(size, dtype=dtype)))

    def init_visible_bias(self, x_bits: torch.Tensor, eps: float = 1e-3) -> None:
        """Set a so that the model with W = 0 reproduces the pixel means of the data (log-odds)."""
        p = x_bits.float().mean(0).clamp(eps, 1 - eps).to(self.a.dtype)
        with torch.no_grad():
            self.a.copy_(0.5 * self.temperature * torch.log(p / (1 - p)))


class RBM(_Bipartite):
    """Restricted Boltzmann machine in +/-1 spins.

    Parameters: W (n_visible, n_hidden), a (n_visible,), b (n_hidden,). `temperature` T scales
    every probability as exp(-E / T).
    """

    groups = ("v", "h")

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        temperature: float = 1.0,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(temperature)
        if n_visible < 1 or n_hidden < 1:
            raise ValueError(f"RBM needs n_visible, n_hidden >= 1, got {n_visible}, {n_hidden}")
        self.n_visible = int(n_visible)
        self.n_hidden = int(n_hidden)
        self._init_parameters(
            {"W": (n_visible, n_hidden)}, {"a": n_visible, "b": n_hidden}, init_std, generator, dtype
        )

    def group_size(self, group: str) -> int:
        return {"v": self.n_visible, "h": self.n_hidden}[group]

    def hidden_field(self, v: torch.Tensor) -> torch.Tensor:
        """b + v^T W, shape (B, n_hidden)."""
        return torch.addmm(self.b, v, self.W)

    def visible_field(self, h: torch.Tensor) -> torch.Tensor:
        """a + W h, shape (B, n_visible)."""
        return torch.addmm(self.a, h, self.W.t())

    def local_field(self, values: Values, group: str) -> torch.Tensor:
        if group == "h":
            return self.hidden_field(values["v"])
        if group == "v":
            return self.visible_field(values["h"])
        raise KeyError(group)

    def mean_hidden(self, v: torch.Tensor) -> torch.Tensor:
        """<h_j>_v = tanh(beta (b_j + (v^T W)_j))."""
        return torch.tanh(self.beta * self.hidden_field(v))

    def energy(self, values: Values) -> torch.Tensor:
        v, h = values["v"], values["h"]
        return -((v @ self.W) * h).sum(-1) - v @ self.a - h @ self.b

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -a^T v - T sum_j log(2 cosh(beta (b_j + (v^T W)_j))), shape (B,)."""
        T = self.temperature
        return -v @ self.a - T * log2cosh(self.beta * self.hidden_field(v)).sum(-1)

    def forces(self, values: Values, mean_hidden: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Batch-averaged generalised forces -dE/dtheta; `mean_hidden` replaces h if given."""
        v = values["v"]
        h = values["h"] if mean_hidden is None else mean_hidden
        n = v.shape[0]
        return {"W": v.t() @ h / n, "a": v.mean(0), "b": h.mean(0)}

    def log_partition_base(self) -> float:
        """log Z of the model with W = 0 (independent units), at this temperature."""
        beta = self.beta
        return float(log2cosh(beta * self.a.double()).sum() + log2cosh(beta * self.b.double()).sum())

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, temperature={self.temperature}"


class ClassRBM(_Bipartite):
    """Classification RBM: visible spins v, 0/1 one-hot label y over `n_classes`, hidden spins h.

    E(v, y, h) = -v^T W h - y^T U h - a^T v - b^T h - d^T y.
    p(y | v) is proportional to exp(-beta F(v, y)); prediction is argmin_y F(v, y).
    """

    groups = ("v", "y", "h")
    label_groups = ("y",)

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        n_classes: int = 10,
        temperature: float = 1.0,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(temperature)
        if n_visible < 1 or n_hidden < 1 or n_classes < 2:
            raise ValueError(
                f"ClassRBM needs n_visible, n_hidden >= 1 and n_classes >= 2, got "
                f"{n_visible}, {n_hidden}, {n_classes}"
            )
        self.n_visible = int(n_visible)
        self.n_hidden = int(n_hidden)
        self.n_classes = int(n_classes)
        self._init_parameters(
            {"W": (n_visible, n_hidden), "U": (n_classes, n_hidden)},
            {"a": n_visible, "b": n_hidden, "d": n_classes},
            init_std,
            generator,
            dtype,
        )

    def group_size(self, group: str) -> int:
        return {"v": self.n_visible, "h": self.n_hidden, "y": self.n_classes}[group]

    def hidden_field(self, v: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """b + v^T W + y^T U, shape (B, n_hidden); y one-hot 0/1 (B, n_classes)."""
        return torch.addmm(self.b, v, self.W) + y @ self.U

    def local_field(self, values: Values, group: str) -> torch.Tensor:
        if group == "h":
            return self.hidden_field(values["v"], values["y"])
        if group == "v":
            return torch.addmm(self.a, values["h"], self.W.t())
        if group == "y":
            return torch.addmm(self.d, values["h"], self.U.t())
        raise KeyError(group)

    def mean_hidden(self, v: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.beta * self.hidden_field(v, y))

    def energy(self, values: Values) -> torch.Tensor:
        v, y, h = values["v"], values["y"], values["h"]
        return -((v @ self.W) * h).sum(-1) - ((y @ self.U) * h).sum(-1) - v @ self.a - h @ self.b - y @ self.d

    def free_energy_all_classes(self, v: torch.Tensor) -> torch.Tensor:
        """F(v, y) for every class y, shape (B, n_classes)."""
        T = self.temperature
        base = torch.addmm(self.b, v, self.W)  # (B, H)
        pre = base[:, None, :] + self.U[None, :, :]  # (B, C, H)
        return -(v @ self.a)[:, None] - self.d[None, :] - T * log2cosh(self.beta * pre).sum(-1)

    def free_energy(self, v: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """F(v, y) for one-hot y (B, C); with y None, F(v) with the label summed out."""
        if y is None:
            Fy = self.free_energy_all_classes(v)
            return -self.temperature * torch.logsumexp(-self.beta * Fy, dim=1)
        T = self.temperature
        return -v @ self.a - y @ self.d - T * log2cosh(self.beta * self.hidden_field(v, y)).sum(-1)

    def class_log_prob(self, v: torch.Tensor) -> torch.Tensor:
        """log p(y | v) for every class, shape (B, n_classes)."""
        return torch.log_softmax(-self.beta * self.free_energy_all_classes(v), dim=1)

    def predict(self, v: torch.Tensor) -> torch.Tensor:
        """argmin_y F(v, y)."""
        return self.free_energy_all_classes(v).argmin(1)

    def forces(self, values: Values, mean_hidden: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        v, y = values["v"], values["y"]
        h = values["h"] if mean_hidden is None else mean_hidden
        n = v.shape[0]
        return {"W": v.t() @ h / n, "U": y.t() @ h / n, "a": v.mean(0), "b": h.mean(0), "d": y.mean(0)}

    def extra_repr(self) -> str:
        return (
            f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, n_classes={self.n_classes}, "
            f"temperature={self.temperature}"
        )


class BM(EnergyModel):
    """Fully connected Boltzmann machine over `n_visible` visible and `n_hidden` hidden spins.

    E(s) = -1/2 sum_{i != j} W_ij s_i s_j - sum_i b_i s_i, s = (visible, hidden).
    W is stored as an unconstrained matrix and used through its symmetric, zero-diagonal part
    (`coupling()`), so every update keeps the heat-bath and Metropolis rules valid.
    Sampling blocks are single units "s:<i>" (sequential sweeps, vectorised over chains).
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int = 0,
        temperature: float = 1.0,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(temperature)
        n = n_visible + n_hidden
        if n_visible < 1 or n_hidden < 0:
            raise ValueError(f"BM needs n_visible >= 1, n_hidden >= 0, got {n_visible}, {n_hidden}")
        self.n_visible = int(n_visible)
        self.n_hidden = int(n_hidden)
        self.n_units = n
        W = torch.randn(n, n, generator=generator, dtype=dtype) * init_std
        self.W = nn.Parameter(0.5 * (W + W.t()) * (1 - torch.eye(n, dtype=dtype)))
        self.b = nn.Parameter(torch.zeros(n, dtype=dtype))
        self.groups = tuple(f"s:{i}" for i in range(n))

    def coupling(self) -> torch.Tensor:
        """Symmetric, zero-diagonal coupling matrix."""
        W = 0.5 * (self.W + self.W.t())
        return W - torch.diag(torch.diagonal(W))

    def group_size(self, group: str) -> int:
        return 1

    @staticmethod
    def unit_index(group: str) -> int:
        return int(group.split(":")[1])

    def local_field(self, values: Values, group: str) -> torch.Tensor:
        i = self.unit_index(group)
        s = values["s"]
        J = self.coupling()
        return (s @ J[:, i] + self.b[i])[:, None]

    def all_fields(self, s: torch.Tensor) -> torch.Tensor:
        return s @ self.coupling() + self.b

    def energy(self, values: Values) -> torch.Tensor:
        s = values["s"]
        return -0.5 * ((s @ self.coupling()) * s).sum(-1) - s @ self.b

    def forces(self, values: Values, mean_hidden: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        s = values["s"]
        n = s.shape[0]
        C = 0.5 * (s.t() @ s) / n  # -dE/dW_ij = s_i s_j / 2 for the raw (symmetrised) W
        return {"W": C - torch.diag(torch.diagonal(C)), "b": s.mean(0)}

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, temperature={self.temperature}"


def all_spin_states(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Every +/-1 configuration of n spins, shape (2^n, n) (bit i of the index -> spin i)."""
    return spin_states_range(n, 0, 2**n, dtype)


def spin_states_range(n: int, start: int, stop: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """States number start..stop-1 of `all_spin_states(n)` (for chunked enumeration)."""
    if n > 30:
        raise ValueError(f"refusing to enumerate 2^{n} states")
    idx = torch.arange(start, stop)
    bits = (idx[:, None] >> torch.arange(n)) & 1
    return (2.0 * bits - 1.0).to(dtype)


def log_sum_exp_float(x: torch.Tensor) -> float:
    return float(torch.logsumexp(x.double().flatten(), 0))


LOG2 = math.log(2.0)
