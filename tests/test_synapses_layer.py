"""The stochastic-synapse layer follows SCIENCE.md section 4 exactly; its sampler is exact in law."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from instruments.calibration import Logistic
from labml.synapses import sampling
from labml.synapses.curves import TorchLogistic
from labml.synapses.layer import StochasticSynapseLinear, closed_form_grad_p

torch.set_num_threads(1)


def test_torch_curve_equals_the_shared_numpy_curve():
    H = np.linspace(-2, 12, 141)
    for c in (Logistic(), Logistic(H0=5.3, k=1.7, a=0.9)):
        got = TorchLogistic.from_logistic(c)(torch.tensor(H, dtype=torch.float32)).numpy()
        np.testing.assert_allclose(got, c.p(H), atol=2e-7)
        q = np.linspace(c.p_min + 0.01, 0.99, 20)
        np.testing.assert_allclose(
            TorchLogistic.from_logistic(c).inverse(torch.tensor(q)).numpy(), c.inverse(q), atol=1e-4
        )


def test_per_synapse_curves_pick_each_wires_curve():
    curves = [Logistic(H0=4.0), Logistic(H0=6.0, k=2.0, a=0.95)]
    idx = np.array([[0, 1, 1], [1, 0, 0]])
    tl = TorchLogistic.from_logistics(curves, idx)
    H = torch.full((2, 3), 5.0)
    want = np.where(idx == 0, curves[0].p(5.0), curves[1].p(5.0))
    np.testing.assert_allclose(tl(H).numpy(), want, atol=2e-7)


def test_layer_starts_at_p_half_and_projects_H_into_the_field_range():
    layer = StochasticSynapseLinear(6, 3, n=4, field_range_mT=(2.0, 7.0))
    np.testing.assert_allclose(layer.probabilities().detach().numpy(), 0.5, atol=1e-5)
    with torch.no_grad():
        layer.H.add_(torch.linspace(-20, 20, 18).reshape(1, 3, 6))
    layer.project_()
    assert layer.H.min() >= 2.0 and layer.H.max() <= 7.0


def _forward_with_grad(n, signed=False, variance_term=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    layer = StochasticSynapseLinear(7, 3, n=n, signed=signed, variance_term=variance_term, generator=g)
    with torch.no_grad():
        layer.H.copy_(4.63 + 1.5 * torch.randn(layer.H.shape, generator=g))
        layer.bias.copy_(torch.randn(3, generator=g))
    x = (torch.rand(5, 7, generator=g) < 0.6).float()
    x[0] = torch.linspace(0, 1.2, 7)  # the rule holds for real inputs too (x^2 in the variance)
    return layer, x


@pytest.mark.parametrize("n", [1, 4, 64])
def test_forward_value_is_the_hardware_sum_plus_bias(n):
    layer, x = _forward_with_grad(n)
    y = layer(x)
    Y = (y - layer.bias).detach()
    # Y must be (1/n) * sum_i x_i * (integer count of passed reads out of n).
    for b in range(1, 5):  # binary rows: Y * n is an integer between 0 and n * (active inputs)
        k = Y[b] * n
        assert torch.allclose(k, k.round(), atol=1e-3)
        assert (k >= -1e-3).all() and (k <= n * x[b].sum() + 1e-3).all()


@pytest.mark.parametrize("n", [1, 4, 64])
def test_autograd_equals_the_closed_form_gradient(n):
    """dy_j/dp_ij = x_i [1 + (Y_j - mu_j) x_i (1 - 2 p_ij) / (2 n s_j^2)] (SCIENCE.md section 4),
    checked on the trainable H through dp/dH = a k sigma (1 - sigma) of the logistic."""
    layer, x = _forward_with_grad(n)
    y = layer.forward_autograd(x)  # the rule in torch ops, differentiated by autograd
    Y = (y - layer.bias).detach()
    with torch.no_grad():
        p = layer.probabilities()[0]
        c = layer.curve
        sig = torch.sigmoid(c.k * (layer.H[0] - c.H0))
        dp_dH = c.a * c.k * sig * (1 - sig)
    want = closed_form_grad_p(x, p, Y, n) * dp_dH  # (B, out, in)
    for b in range(x.shape[0]):
        for j in range(3):
            (g,) = torch.autograd.grad(y[b, j], layer.H, retain_graph=True)
            expect = torch.zeros_like(g[0])
            expect[j] = want[b, j]
            torch.testing.assert_close(g[0], expect, atol=1e-5, rtol=1e-4)


def test_closed_form_matches_finite_differences_of_the_reparameterised_output():
    """With eps held fixed, y(p) = mu(p) + eps * s(p): central differences in float64."""
    rng = np.random.default_rng(0)
    n, x, p = 4, rng.random(6), rng.uniform(0.05, 0.95, 6)
    mu = lambda q: x @ q  # noqa: E731
    s = lambda q: np.sqrt((x**2) @ (q * (1 - q)) / n + 1e-4)  # noqa: E731
    Y = mu(p) + 0.7 * s(p)  # some sampled value
    eps = (Y - mu(p)) / s(p)
    h = 1e-6
    fd = np.array(
        [
            (mu(p + h * e) + eps * s(p + h * e) - mu(p - h * e) - eps * s(p - h * e)) / (2 * h)
            for e in np.eye(6)
        ]
    )
    cf = closed_form_grad_p(torch.tensor(x[None]), torch.tensor(p[None]), torch.tensor([[Y]]), n)[
        0, 0
    ].numpy()
    np.testing.assert_allclose(cf, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("variance_term", [True, False])
def test_fused_layer_equals_autograd_of_the_rule(signed, variance_term):
    """The default (fused) layer: one autograd node with the closed-form backward; same values and
    gradients (H, bias, inputs) as autograd through the rule, with the same reads."""
    layer, x = _forward_with_grad(4, signed=signed, variance_term=variance_term)
    x.requires_grad_(True)
    w = torch.randn(5, 3, generator=torch.Generator().manual_seed(9))
    grads, outs = [], []
    for fn in (layer, layer.forward_autograd):
        layer.zero_grad()
        x.grad = None
        layer.generator.manual_seed(5)
        y = fn(x)
        (y * w).sum().backward()
        outs.append(y.detach())
        grads.append((layer.H.grad.clone(), layer.bias.grad.clone(), x.grad.clone()))
    torch.testing.assert_close(outs[0], outs[1])
    for a, b in zip(grads[0], grads[1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_without_variance_term_the_gradient_is_x():
    layer, x = _forward_with_grad(1, variance_term=False)
    y = layer.forward_autograd(x)
    with torch.no_grad():
        c = layer.curve
        sig = torch.sigmoid(c.k * (layer.H[0] - c.H0))
        dp_dH = c.a * c.k * sig * (1 - sig)
    (g,) = torch.autograd.grad(y[2, 1], layer.H)
    torch.testing.assert_close(g[0, 1], x[2] * dp_dH[1])
    assert torch.all(g[0, [0, 2]] == 0)


def test_signed_pairs_read_the_difference_of_two_devices():
    layer, x = _forward_with_grad(8, signed=True)
    y = layer(x)
    p = layer.probabilities()
    mu = x @ (p[0] - p[1]).t()
    assert layer.H.shape == (2, 3, 7)
    (g,) = torch.autograd.grad(mu.sum() + 0 * y.sum(), layer.H)
    assert (g[0] >= 0).all() and (g[1] <= 0).all()  # w+ raises, w- lowers the output mean
    Y = (y - layer.bias).detach() * 8
    assert torch.allclose(Y[1:], Y[1:].round(), atol=1e-3)  # differences of integer counts


# ------------------------------------------------------------------------------------- exact sampling
def _exact_sum_pmf(p_active: np.ndarray, n: int) -> np.ndarray:
    pmf = np.array([1.0])
    for q in p_active:
        pmf = np.convolve(pmf, stats.binom.pmf(np.arange(n + 1), n, q))
    return pmf


def _chi2_pvalue(samples: np.ndarray, pmf: np.ndarray) -> float:
    """Chi-square goodness of fit, bins merged (in order) until each expects >= 20 counts."""
    counts = np.bincount(samples.astype(int), minlength=len(pmf))[: len(pmf)]
    assert counts.sum() == len(samples), "a sample fell outside the support"
    exp = pmf * len(samples)
    obs_b, exp_b, o, e = [], [], 0.0, 0.0
    for oi, ei in zip(counts, exp, strict=True):
        o, e = o + oi, e + ei
        if e >= 20:
            obs_b.append(o)
            exp_b.append(e)
            o, e = 0.0, 0.0
    obs_b[-1] += o
    exp_b[-1] += e
    return float(stats.chisquare(obs_b, np.array(exp_b) * sum(obs_b) / sum(exp_b)).pvalue)


@pytest.mark.parametrize("path", ["numba", "torch"])
@pytest.mark.parametrize("n", [1, 64])
def test_forward_sum_has_the_exact_distribution(n, path, monkeypatch):
    """Goodness of fit at a fixed seed: the forward sum S = sum_i x_i Bin(n, p_i) over active inputs.

    20000 draws; the test is at the 1e-3 level (a correct sampler fails with probability 0.001), and the
    same test rejects a sampler whose p is off by 0.01 (checked below), so it has teeth.
    """
    if path == "torch":
        monkeypatch.setattr(sampling, "HAVE_NUMBA", False)
    elif not sampling.HAVE_NUMBA:
        pytest.skip("numba not installed")
    g = torch.Generator().manual_seed(1234)
    n_in = 12
    p = torch.tensor(np.r_[np.linspace(0.02, 0.98, n_in), np.linspace(0.3, 0.7, n_in)], dtype=torch.float32)
    p = p.reshape(2, n_in)
    x_row = torch.tensor([1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1], dtype=torch.float32)
    x = x_row.expand(20000, n_in).contiguous()
    S = sampling.binomial_sums(x, p, n, g).numpy()
    for j in range(2):
        pa = p[j][x_row > 0].double().numpy()
        assert _chi2_pvalue(S[:, j], _exact_sum_pmf(pa, n)) > 1e-3
        assert _chi2_pvalue(S[:, j], _exact_sum_pmf(np.clip(pa + 0.01, 0, 1), n)) < 1e-3


def test_reference_sampler_draws_the_same_law():
    g = torch.Generator().manual_seed(7)
    p = torch.linspace(0.1, 0.9, 8)[None]
    x = torch.ones(20000, 8)
    S = sampling.reference_binomial_sums(x, p, 16, g)[:, 0].numpy()
    assert _chi2_pvalue(S, _exact_sum_pmf(p[0].double().numpy(), 16)) > 1e-3


def test_extreme_probabilities_and_real_inputs():
    g = torch.Generator().manual_seed(3)
    p = torch.tensor([[0.0, 1.0, 1 - 1e-7, 1e-9]])
    x = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 2.5, 0.0, 0.0]])
    S = sampling.binomial_sums(x, p, 64, g)
    assert S[1, 0] == 2.5 * 64  # weight x times the count of an always-passing synapse
    assert 128 - 1 <= S[0, 0] <= 128  # p = 0 never passes, p = 1 always


def test_sampler_is_reproducible_with_a_generator():
    x = (torch.rand(8, 30) < 0.3).float()
    p = torch.rand(4, 30)
    a = sampling.binomial_sums(x, p, 16, torch.Generator().manual_seed(5))
    b = sampling.binomial_sums(x, p, 16, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
