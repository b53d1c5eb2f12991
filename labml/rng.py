"""Torch building blocks that draw from an explicit ``torch.Generator``.

Library code never seeds or draws from the process-wide generators (``torch.manual_seed``,
``np.random.seed``, ``nn.Linear``'s default initialisation, ``nn.Dropout``): a trainer owns its
generators and saves their states in its checkpoints, so a run is reproducible for a seed, resumes
bit-exactly, and leaves the caller's global random state as it found it.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def linear(in_features: int, out_features: int, generator: torch.Generator | None,
           bias: bool = True) -> nn.Linear:
    """An nn.Linear with nn.Linear's default initialisation (weight and bias ~ U(-1/sqrt(fan_in),
    1/sqrt(fan_in)), which is what kaiming_uniform_(a=sqrt(5)) gives), drawn from `generator`;
    making it draws nothing from torch's global generator (torch.nn.utils.skip_init)."""
    layer = nn.utils.skip_init(nn.Linear, in_features, out_features, bias=bias)
    bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        if layer.bias is not None:
            layer.bias.uniform_(-bound, bound, generator=generator)
    return layer


class Dropout(nn.Module):
    """nn.Dropout (zero each element with probability p in training, scale the rest by 1/(1-p))
    with its masks drawn from `generator` instead of torch's global generator."""

    def __init__(self, p: float, generator: torch.Generator) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, generator=self.generator, dtype=x.dtype, device=x.device) >= self.p
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
