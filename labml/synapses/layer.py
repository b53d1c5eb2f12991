"""The stochastic-synapse layer of Ellis et al. 2023 (SCIENCE.md section 4), as a torch module.

Inputs x (B, N_in), binary synapses w_ij in {0, 1} with P(w_ij = 1) = p_ij = p(H_ij), trainable control
fields H (N_out, N_in) in mT and a real bias b. Each synapse is read n times per input:

    Y_j   = sum_i x_i * (1/n) * sum_r w_ij^(r)              (what hardware gives)
    mu_j  = sum_i x_i p_ij,    s_j^2 = (1/n) sum_i x_i^2 p_ij (1 - p_ij) + 1e-4
    eps_j = stopgrad((Y_j - mu_j) / s_j),     y_j = mu_j + eps_j * s_j + b_j      (numerically Y + b)

so gradients flow through mu and s (reparameterisation):
dy_j/dp_ij = x_i [1 + (Y_j - mu_j) x_i (1 - 2 p_ij) / (2 n s_j^2)]. With `variance_term=False` the
gradient flows through mu only: y = mu + stopgrad(Y - mu) + b.

`signed=True` makes each synapse a differential pair of devices (w+ - w-): two fields per synapse,
Y = sum_i x_i (K+ - K-)/n, mu = sum_i x_i (p+ - p-), s^2 = (1/n) sum_i x_i^2 (p+(1-p+) + p-(1-p-)) + 1e-4.

The forward reads come from `binomial_sums` (exact, fast) by default; `reader` replaces them with reads
of an attached rig (see `labml.synapses.rig`). After every optimiser step call `project_()`: H is clipped
onto [H_min, H_max], the field range the rig allows for each synapse's wire.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.special import expit
from torch import nn

from labml.synapses.curves import TorchLogistic
from labml.synapses.sampling import SAMPLERS

VARIANCE_FLOOR = 1e-4

#: reader(layer, x) -> (n_devices, B, N_out) float32 sums of passed reads (weighted by x).
Reader = Callable[["StochasticSynapseLinear", torch.Tensor], torch.Tensor]


class StochasticSynapseLinear(nn.Module):
    """A layer of binary stochastic synapses read n times per input (see module docstring).

    Parameters: in_features, out_features; n reads per synapse per input; curve p(H) (default: the
    published [E23] logistic); bias; variance_term; signed (differential pairs); field_range_mT
    (H_min, H_max) in mT, scalars or tensors broadcastable to (N_out, N_in); sampler "fast" (exact,
    fast) or "binomial" (torch.binomial over the full tensor, the reference); generator for the reads.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        n: int = 1,
        *,
        curve: TorchLogistic | None = None,
        bias: bool = True,
        variance_term: bool = True,
        signed: bool = False,
        field_range_mT: tuple = (0.0, 10.0),
        sampler: str = "fast",
        generator: torch.Generator | None = None,
        init_sd_mT: float = 0.0,
        fused: bool = True,
    ) -> None:
        super().__init__()
        if n < 1:
            raise ValueError(f"n (reads per synapse) must be >= 1, got {n}")
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose one of {sorted(SAMPLERS)}")
        self.in_features = in_features
        self.out_features = out_features
        self.n = int(n)
        self.variance_term = variance_term
        self.signed = signed
        self.sampler = sampler
        self.generator = generator
        self.reader: Reader | None = None
        self.fused = fused
        self.curve = curve if curve is not None else TorchLogistic()
        n_dev = 2 if signed else 1
        lo = torch.as_tensor(field_range_mT[0], dtype=torch.float32)
        hi = torch.as_tensor(field_range_mT[1], dtype=torch.float32)
        if torch.any(lo >= hi):
            raise ValueError(f"field range must have H_min < H_max, got {field_range_mT}")
        self.register_buffer("H_min", lo)
        self.register_buffer("H_max", hi)
        # Initialised where p = 1/2 (H0 for the published curve), optionally with a small spread.
        H = self.curve.inverse(0.5).expand(n_dev, out_features, in_features).clone()
        if init_sd_mT > 0:
            H = H + init_sd_mT * torch.randn(H.shape, generator=generator)
        self.H = nn.Parameter(H)
        self.project_()
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    @property
    def n_devices(self) -> int:
        return self.H.shape[0]

    def probabilities(self) -> torch.Tensor:
        """p(H) of every device: (n_devices, N_out, N_in)."""
        return self.curve(self.H)

    def effective_weights(self) -> torch.Tensor:
        """Expected weight of each synapse: p (or p+ - p- for signed pairs), (N_out, N_in)."""
        p = self.probabilities()
        return p[0] - p[1] if self.signed else p[0]

    @torch.no_grad()
    def project_(self) -> None:
        """Clip H onto the allowed field range [H_min, H_max] (call after each optimiser step)."""
        self.H.clamp_(self.H_min, self.H_max)

    def read_sums(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """(n_devices, B, N_out) sums of passed reads: from the rig reader, else the model sampler."""
        if self.reader is not None:
            return self.reader(self, x)
        fn = SAMPLERS[self.sampler]
        return torch.stack([fn(x, p[d], self.n, self.generator) for d in range(p.shape[0])])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused and isinstance(self.curve, TorchLogistic):
            return _SynapseLayerFn.apply(x, self.H, self.bias, self)
        return self.forward_autograd(x)

    def forward_autograd(self, x: torch.Tensor) -> torch.Tensor:
        """The rule written with torch ops, differentiated by autograd (the fused path must equal it)."""
        p = self.probabilities()
        var_p = p * (1.0 - p)
        if self.signed:
            mean_w, var_w = p[0] - p[1], var_p[0] + var_p[1]
        else:
            mean_w, var_w = p[0], var_p[0]
        mu = x @ mean_w.t()
        var = (x * x) @ var_w.t() / self.n + VARIANCE_FLOOR
        with torch.no_grad():
            sums = self.read_sums(x, p.detach())
            Y = (sums[0] - sums[1]) / self.n if self.signed else sums[0] / self.n
            Y = Y.to(mu.dtype)
        if self.variance_term:
            s = torch.sqrt(var)
            eps = ((Y - mu) / s).detach()
            y = mu + eps * s
        else:
            y = mu + (Y - mu).detach()
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, n={self.n}, "
            f"signed={self.signed}, variance_term={self.variance_term}"
        )


def _weight_moments(a, sig, signed: bool):
    """p = (1 - a) + a sig (SCIENCE.md read probability) and the mean and variance of one read's
    weight: p and p(1 - p), or for a differential pair p+ - p- and the summed variances.
    Works on torch tensors and numpy arrays alike; returns (p, mean_w, var_w)."""
    p = (1.0 - a) + a * sig
    v = p * (1.0 - p)
    if signed:
        return p, p[0] - p[1], v[0] + v[1]
    return p, p[0], v[0]


class _SynapseLayerFn(torch.autograd.Function):
    """The layer as one autograd node: forward reads, backward the closed form of SCIENCE.md.

    With g = dL/dy (B, N_out), c = g (Y - mu) / s^2 and the logistic's dp/dH = a k sigma (1 - sigma):
        dL/dp_d = sign_d (g^T x) + (1 - 2 p_d) (c^T x^2) / (2 n)        (second term: variance term)
        dL/dx   = g W_mean + x * (c W_var) / n,      dL/db = sum_b g
    (sign_d = +1 for w+, -1 for w- of a differential pair). Tested against `forward_autograd`.
    """

    @staticmethod
    def forward(ctx, x, H, bias, layer):
        ctx.layer = layer
        ctx.has_bias = bias is not None
        if x.device.type == "cpu" and H.device.type == "cpu":
            # Same arithmetic in numpy: a few microseconds per op instead of torch's dispatch overhead,
            # which dominates a 196 x 10 layer.
            y, ctx.np_saved = _forward_numpy(
                layer, x.detach().numpy(), H.detach().numpy(), None if bias is None else bias.detach().numpy()
            )
            return torch.from_numpy(y)
        ctx.np_saved = None
        c = layer.curve
        sig = torch.sigmoid(c.k * (H - c.H0))
        p, mean_w, var_w = _weight_moments(c.a, sig, layer.signed)
        x2 = x * x
        mu = x @ mean_w.t()
        s2 = x2 @ var_w.t() / layer.n + VARIANCE_FLOOR
        sums = layer.read_sums(x, p)
        Y = ((sums[0] - sums[1]) if layer.signed else sums[0]).to(mu.dtype) / layer.n
        ctx.save_for_backward(x, x2, p, sig, mean_w, var_w, mu, s2, Y)
        return Y + bias if bias is not None else Y.clone()

    @staticmethod
    def backward(ctx, g):
        if ctx.np_saved is not None:
            dx, dH, db = _backward_numpy(
                ctx.layer,
                np.ascontiguousarray(g.detach().numpy()),
                ctx.np_saved,
                ctx.needs_input_grad[0],
                ctx.has_bias,
            )
            return (
                None if dx is None else torch.from_numpy(dx),
                torch.from_numpy(dH),
                None if db is None else torch.from_numpy(db),
                None,
            )
        x, x2, p, sig, mean_w, var_w, mu, s2, Y = ctx.saved_tensors
        layer = ctx.layer
        n = layer.n
        G1 = g.t() @ x
        cvec = None
        if layer.variance_term:
            cvec = g * (Y - mu) / s2
            G2 = (cvec.t() @ x2) / (2 * n)
            dp = (
                torch.stack([G1 + (1 - 2 * p[0]) * G2, -G1 + (1 - 2 * p[1]) * G2])
                if layer.signed
                else ((G1 + (1 - 2 * p[0]) * G2)[None])
            )
        else:
            dp = torch.stack([G1, -G1]) if layer.signed else G1[None]
        c = layer.curve
        dH = dp * (c.a * c.k) * sig * (1 - sig)
        dx = None
        if ctx.needs_input_grad[0]:
            dx = g @ mean_w
            if cvec is not None:
                dx = dx + x * (cvec @ var_w) / n
        db = g.sum(0) if ctx.has_bias else None
        return dx, dH, db, None


def _forward_numpy(layer, x, H, bias):
    """`_SynapseLayerFn.forward` in numpy (CPU): returns y and what the backward needs."""
    c = layer.curve
    a, k, H0 = c.a.numpy(), c.k.numpy(), c.H0.numpy()
    sig = expit(k * (H - H0))
    p, mean_w, var_w = _weight_moments(a, sig, layer.signed)
    x2 = x * x
    mu = x @ mean_w.T
    s2 = x2 @ var_w.T / layer.n + VARIANCE_FLOOR
    sums = layer.read_sums(torch.from_numpy(x), torch.from_numpy(p)).numpy()
    Y = ((sums[0] - sums[1]) if layer.signed else sums[0]).astype(mu.dtype) / layer.n
    y = Y + bias if bias is not None else Y.copy()
    return y, (x, x2, p, sig, mean_w, var_w, mu, s2, Y, a * k)


def _backward_numpy(layer, g, saved, need_dx: bool, has_bias: bool):
    """`_SynapseLayerFn.backward` in numpy (CPU)."""
    x, x2, p, sig, mean_w, var_w, mu, s2, Y, ak = saved
    n = layer.n
    G1 = g.T @ x
    cvec = None
    if layer.variance_term:
        cvec = g * (Y - mu) / s2
        G2 = (cvec.T @ x2) / (2 * n)
        if layer.signed:
            dp = np.stack([G1 + (1 - 2 * p[0]) * G2, -G1 + (1 - 2 * p[1]) * G2])
        else:
            dp = (G1 + (1 - 2 * p[0]) * G2)[None]
    else:
        dp = np.stack([G1, -G1]) if layer.signed else G1[None]
    dH = (dp * ak * sig * (1 - sig)).astype(p.dtype)
    dx = None
    if need_dx:
        dx = g @ mean_w
        if cvec is not None:
            dx = dx + x * (cvec @ var_w) / n
        dx = dx.astype(x.dtype)
    db = g.sum(0) if has_bias else None
    return dx, dH, db


def closed_form_grad_p(x: torch.Tensor, p: torch.Tensor, Y: torch.Tensor, n: int) -> torch.Tensor:
    """dy_bj/dp_ji of SCIENCE.md for unsigned synapses: (B, N_out, N_in).

    x_i [1 + (Y_j - mu_j) x_i (1 - 2 p_ij) / (2 n s_j^2)]
    """
    mu = x @ p.t()
    s2 = (x * x) @ (p * (1 - p)).t() / n + VARIANCE_FLOOR
    xi = x[:, None, :]
    return xi * (1 + (Y - mu)[:, :, None] * xi * (1 - 2 * p)[None] / (2 * n * s2[:, :, None]))
