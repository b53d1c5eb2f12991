"""Networks of stochastic synapses and the two baselines of [E23] (SCIENCE.md section 4).

- `StochasticSynapseNet`: stochastic-synapse layers (`StochasticSynapseLinear`), optionally with hidden
  layers. Between layers: "step" (binary activations, the only kind a rig can run in the loop: an input
  only gates whether a synapse is read; straight-through sigmoid gradient), or a continuous nonlinearity
  ("sigmoid", "relu", "tanh"; model backend only).
- `Perceptron`: real-valued weights (nn.Linear).
- `MeanFieldNet`: continuous device-like weights J = sigmoid(w) - 0.25.

Every model has `project_()` (after each optimiser step), `frac_binary()` (share of synapse
probabilities below 0.05 or above 0.95, None for the baselines) and `stochastic` (whether a forward pass is
random, so test accuracy is averaged over passes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from labml.synapses.curves import TorchLogistic
from labml.synapses.layer import StochasticSynapseLinear

ACTIVATIONS = ("step", "sigmoid", "relu", "tanh")
MODELS = ("stochastic", "perceptron", "meanfield")


class _StepST(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y):
        ctx.save_for_backward(y)
        return (y > 0).to(y.dtype)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        s = torch.sigmoid(y)
        return grad * s * (1 - s)


class Step(nn.Module):
    """Heaviside step (y > 0) with a straight-through sigmoid gradient."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return _StepST.apply(y)


def make_activation(name: str) -> nn.Module:
    if name == "step":
        return Step()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "relu":
        return nn.ReLU()
    if name == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


class _Net(nn.Module):
    stochastic = False

    def __init__(self, layers: Sequence[nn.Module], activation: str) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.acts = nn.ModuleList([make_activation(activation) for _ in range(len(layers) - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.acts):
                x = self.acts[i](x)
        return x

    def project_(self) -> None:
        pass

    def frac_binary(self) -> float | None:
        return None


class StochasticSynapseNet(_Net):
    """Stochastic-synapse layers sizes[0] -> sizes[1] -> ... -> sizes[-1]."""

    stochastic = True

    def __init__(
        self,
        sizes: Sequence[int],
        n: int = 1,
        *,
        activation: str = "step",
        curves: Sequence[TorchLogistic | None] | None = None,
        field_ranges_mT: Sequence[tuple] | None = None,
        variance_term: bool = True,
        signed: bool = False,
        sampler: str = "fast",
        generator: torch.Generator | None = None,
        init_sd_mT: float | None = None,
    ) -> None:
        n_layers = len(sizes) - 1
        if init_sd_mT is None:  # one layer: all at p = 1/2 as in [E23]; deeper: break the symmetry
            init_sd_mT = 0.0 if n_layers == 1 else 0.5
        curves = list(curves) if curves is not None else [None] * n_layers
        ranges = list(field_ranges_mT) if field_ranges_mT is not None else [(0.0, 10.0)] * n_layers
        layers = [
            StochasticSynapseLinear(
                sizes[i],
                sizes[i + 1],
                n,
                curve=curves[i],
                variance_term=variance_term,
                signed=signed,
                field_range_mT=ranges[i],
                sampler=sampler,
                generator=generator,
                init_sd_mT=init_sd_mT,
            )
            for i in range(n_layers)
        ]
        super().__init__(layers, activation)

    def project_(self) -> None:
        for layer in self.layers:
            layer.project_()

    @torch.no_grad()
    def init_hidden_biases(self, x: torch.Tensor) -> None:
        """Centre every hidden layer on a data sample: bias = -(mean pre-activation) over `x`.

        Non-negative device weights make every pre-activation positive at the start; without a
        threshold near its mean a step (or sigmoid) unit would be always on and carry no information.
        """
        for i, layer in enumerate(self.layers[:-1]):
            mu = x @ layer.effective_weights().t()
            layer.bias.copy_(-mu.mean(0))
            x = self.acts[i](mu + layer.bias)

    @torch.no_grad()
    def probabilities(self) -> torch.Tensor:
        """All device probabilities, flattened."""
        return torch.cat([layer.probabilities().reshape(-1) for layer in self.layers])

    @torch.no_grad()
    def frac_binary(self) -> float:
        p = self.probabilities()
        return float(((p < 0.05) | (p > 0.95)).float().mean())


class Perceptron(_Net):
    """Real-valued baseline: nn.Linear layers."""

    def __init__(
        self, sizes: Sequence[int], *, activation: str = "step", generator: torch.Generator | None = None
    ) -> None:
        from labml.rng import linear

        super().__init__([linear(sizes[i], sizes[i + 1], generator) for i in range(len(sizes) - 1)],
                         activation)


class MeanFieldLinear(nn.Module):
    """y = x @ J^T + b with continuous device-like weights J = sigmoid(w) - offset (offset 0.25 in [E23])."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        offset: float = 0.25,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.offset = offset
        self.w = nn.Parameter(0.1 * torch.randn(out_features, in_features, generator=generator))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def weights(self) -> torch.Tensor:
        return torch.sigmoid(self.w) - self.offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weights().t() + self.bias


class MeanFieldNet(_Net):
    """Mean-field baseline with J = sigmoid(w) - 0.25."""

    def __init__(
        self, sizes: Sequence[int], *, activation: str = "step", generator: torch.Generator | None = None
    ) -> None:
        super().__init__(
            [MeanFieldLinear(sizes[i], sizes[i + 1], generator=generator) for i in range(len(sizes) - 1)],
            activation,
        )
