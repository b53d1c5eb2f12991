"""The device calibration curve p(H) in torch, for gradients.

`TorchLogistic` is the torch twin of `instruments.calibration.Logistic` (tested against it):

    p(H) = (1 - a) + a * sigmoid(k * (H - H0)),    H in mT

H0, k and a are buffers that broadcast against H, so one module holds the published [E23] curve
(scalars), one wire's fitted curve, or per-synapse curves (device spread, or each synapse mapped to a
physical wire with its own calibration).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from instruments.calibration import Logistic


class TorchLogistic(nn.Module):
    """p(H) = (1 - a) + a * sigmoid(k * (H - H0)) with broadcastable parameters (H0 in mT, k in 1/mT)."""

    def __init__(self, H0=Logistic.H0, k=Logistic.k, a=Logistic.a) -> None:
        super().__init__()
        H0_t = torch.as_tensor(H0, dtype=torch.float32)
        k_t = torch.as_tensor(k, dtype=torch.float32)
        a_t = torch.as_tensor(a, dtype=torch.float32)
        if torch.any(k_t <= 0):
            raise ValueError("logistic slope k must be > 0 per mT")
        if torch.any((a_t <= 0) | (a_t > 1)):
            raise ValueError("logistic amplitude a must be in (0, 1]")
        self.register_buffer("H0", H0_t)
        self.register_buffer("k", k_t)
        self.register_buffer("a", a_t)

    @classmethod
    def from_logistic(cls, curve: Logistic) -> TorchLogistic:
        """One curve for every synapse (e.g. the published one, or one wire's fit)."""
        return cls(curve.H0, curve.k, curve.a)

    @classmethod
    def from_logistics(cls, curves: Sequence[Logistic], index: np.ndarray | torch.Tensor) -> TorchLogistic:
        """Per-synapse curves: synapse s uses curves[index[s]] (index has the synapse shape)."""
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        H0 = torch.tensor([c.H0 for c in curves], dtype=torch.float32)[idx]
        k = torch.tensor([c.k for c in curves], dtype=torch.float32)[idx]
        a = torch.tensor([c.a for c in curves], dtype=torch.float32)[idx]
        return cls(H0, k, a)

    @classmethod
    def with_spread(
        cls,
        shape: Sequence[int],
        base: Logistic | None = None,
        H0_sd_mT: float = 0.2,
        k_rel_sd: float = 0.1,
        generator: torch.Generator | None = None,
    ) -> TorchLogistic:
        """Per-synapse curves with device-to-device spread: H0 ~ N(H0, sd), k ~ k * (1 + N(0, rel_sd))."""
        base = base or Logistic()
        H0 = base.H0 + H0_sd_mT * torch.randn(*shape, generator=generator)
        k = base.k * (1.0 + k_rel_sd * torch.randn(*shape, generator=generator)).clamp_min(0.2)
        return cls(H0, k, torch.full(tuple(shape), base.a))

    def forward(self, H_mT: torch.Tensor) -> torch.Tensor:
        """Pass probability at field H (mT)."""
        return (1.0 - self.a) + self.a * torch.sigmoid(self.k * (H_mT - self.H0))

    def inverse(self, q: torch.Tensor | float) -> torch.Tensor:
        """Field (mT) giving pass probability q (q clipped into the curve's open range)."""
        q = torch.as_tensor(q, dtype=torch.float32)
        eps = 1e-6
        u = ((q - (1.0 - self.a)) / self.a).clamp(eps, 1 - eps)
        return self.H0 + torch.log(u / (1 - u)) / self.k
