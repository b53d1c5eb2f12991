"""Sampling kernels and chains against the distributions they must sample.

Every statistical assertion uses a fixed seed and independent samples (one per chain, many chains);
chi-square tests reject at p < 1e-3 (so a correct sampler fails by chance at most 0.1 % of seeds),
means are compared within 4 standard errors (two-sided ~6e-5) plus the stated discretisation bias.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from instruments.calibration import Logistic
from instruments.roles import SynapseReads
from labml.bm.chains import Chains, Sampler
from labml.bm.kernels import SLLG, HeatBath, Metropolis, RigKernel, SoftSpin, make_kernel
from labml.bm.models import BM, RBM, all_spin_states

torch.set_num_threads(1)
P_REJECT = 1e-3


def _state_index(s: torch.Tensor) -> torch.Tensor:
    return ((s > 0).long() * (2 ** torch.arange(s.shape[1]))).sum(1)


def _small_bm(seed=0, n_visible=3, n_hidden=2, std=0.6) -> BM:
    g = torch.Generator().manual_seed(seed)
    m = BM(n_visible, n_hidden, temperature=0.9, init_std=std, generator=g)
    with torch.no_grad():
        m.b.copy_(torch.randn(m.n_units, generator=g) * 0.4)
    return m


def _boltzmann(m: BM) -> torch.Tensor:
    S = all_spin_states(m.n_units, m.b.dtype)
    with torch.no_grad():
        return torch.softmax(-m.beta * m.energy({"s": S}).double(), 0)


def _chi2_pvalue(counts: np.ndarray, p: np.ndarray) -> float:
    expected = p * counts.sum()
    return float(stats.chisquare(counts, expected).pvalue)


@pytest.mark.parametrize("kernel_cls", [HeatBath, Metropolis])
def test_persistent_chains_sample_the_exact_boltzmann_distribution(kernel_cls):
    """5-spin BM (3 visible, 2 hidden, all coupled): 4000 persistent chains, 60 sweeps, one state per
    chain; chi-square against exp(-E/T)/Z over the 32 states."""
    m = _small_bm()
    g = torch.Generator().manual_seed(1)
    chains = Chains(Sampler(m, kernel_cls(g)), "pcd", k=60, n_chains=4000)
    chains.init_persistent()
    s = chains.negative(None)["s"]
    counts = np.bincount(_state_index(s).numpy(), minlength=32)
    assert _chi2_pvalue(counts, _boltzmann(m).numpy()) > P_REJECT


@pytest.mark.parametrize("kernel_cls", [HeatBath, Metropolis])
def test_rbm_block_sampler_matches_exact_visible_marginal(kernel_cls):
    g = torch.Generator().manual_seed(2)
    m = RBM(4, 3, temperature=1.2, init_std=0.7, generator=g)
    with torch.no_grad():
        m.a.copy_(torch.randn(4, generator=g) * 0.5)
    chains = Chains(Sampler(m, kernel_cls(g)), "pcd", k=40, n_chains=4000)
    chains.init_persistent()
    v = chains.negative(None)["v"]
    V = all_spin_states(4, torch.float32)
    p = torch.softmax(-m.beta * m.free_energy(V).detach().double(), 0).numpy()
    counts = np.bincount(_state_index(v).numpy(), minlength=16)
    assert _chi2_pvalue(counts, p) > P_REJECT


def test_parallel_tempering_replicas_sample_their_exact_tempered_distributions():
    """RBM 4 x 3 with strong couplings, replicas at beta x (1, 0.6, 0.3), 4000 chains each, 60 rounds
    of one sweep and one exchange: every replica's joint state (v, h) follows exp(-beta r E) / Z_r
    over the 128 states (chi-square), the exchanges were tried on both parities and accepted at
    rates strictly inside (0, 1), and the statistics are those of the r = 1 replica."""
    g = torch.Generator().manual_seed(4)
    m = RBM(4, 3, temperature=0.8, init_std=1.5, generator=g)
    with torch.no_grad():
        m.a.copy_(torch.randn(4, generator=g) * 0.5)
    ratios = (1.0, 0.6, 0.3)
    chains = Chains(Sampler(m, HeatBath(g)), "pt", k=1, n_chains=4000, beta_ratios=ratios)
    chains.init_persistent()
    for _ in range(60):
        stats_v = chains.negative(None)["v"]
    assert torch.equal(stats_v, chains.state["v"][:4000])
    S = all_spin_states(7, torch.float32)
    with torch.no_grad():
        E = m.energy({"v": S[:, :4], "h": S[:, 4:]}).double()
    joint = torch.cat([chains.state["v"], chains.state["h"]], 1)
    for i, r in enumerate(ratios):
        counts = np.bincount(_state_index(joint[i * 4000 : (i + 1) * 4000]).numpy(), minlength=128)
        p = torch.softmax(-m.beta * r * E, 0).numpy()
        assert _chi2_pvalue(counts, p) > P_REJECT, r
    assert chains.exchanges == 60 and all(t == 30 * 4000 for t in chains.swap_attempts)
    assert all(0.05 < rate < 0.95 for rate in chains.swap_rates())


def test_cd1_draws_from_the_exact_one_step_gibbs_transition():
    """CD-1 from a fixed data vector v0: the model copy's visible state after one sweep is
    distributed as sum_h p(h | v0) p(v | h) (enumerated), chi-square over the 16 states."""
    g = torch.Generator().manual_seed(3)
    m = RBM(4, 3, init_std=0.8, generator=g)
    v0 = torch.tensor([[1.0, -1.0, 1.0, 1.0]])
    data = v0.expand(5000, -1).clone()
    chains = Chains(Sampler(m, HeatBath(g)), "cd", k=1)
    v = chains.negative(data)["v"]
    with torch.no_grad():
        H = all_spin_states(3, torch.float32)
        ph = torch.exp(-m.beta * m.energy({"v": v0.expand(8, -1), "h": H}))
        ph = ph / ph.sum()
        V = all_spin_states(4, torch.float32)
        pv_h = torch.sigmoid(2 * m.beta * V[None, :, :] * m.visible_field(H)[:, None, :]).prod(-1)  # (8, 16)
        p = (ph[:, None] * pv_h).sum(0).double()
    counts = np.bincount(_state_index(v).numpy(), minlength=16)
    assert _chi2_pvalue(counts, (p / p.sum()).numpy()) > P_REJECT
    # ... and CD restarts at the data: a second call does not depend on the first
    v2 = chains.negative(v0.expand(5000, -1).clone())["v"]
    counts2 = np.bincount(_state_index(v2).numpy(), minlength=16)
    assert _chi2_pvalue(counts2, (p / p.sum()).numpy()) > P_REJECT


def _langevin(x: float) -> float:
    return 1.0 / math.tanh(x) - 1.0 / x


def test_sllg_single_moment_without_anisotropy_follows_the_langevin_function():
    """<S.h> = coth(mu H / kT) - kT / (mu H); 4000 independent moments after t = 10 (many
    relaxation times). The Heun bias at dt = 0.02 is below 0.01 (measured against dt = 0.01)."""
    g = torch.Generator().manual_seed(4)
    for h, T in ((2.0, 1.0), (0.5, 1.0)):
        k = SLLG(dt=0.02, n_steps=500, alpha=1.0, anisotropy=0.0, generator=g)
        S = k.random_state((4000, 1), torch.float64)
        S = k.update(S, torch.full((4000, 1), h, dtype=torch.float64), 1.0 / T)
        assert torch.allclose(S.norm(dim=-1), torch.ones(4000, 1, dtype=torch.float64))
        z = k.values(S)
        se = float(z.std()) / math.sqrt(z.numel())
        assert abs(float(z.mean()) - _langevin(h / T)) < 4 * se + 0.01


def _two_spin_expectations(J, h1, h2, beta, onsite, lo, hi):
    """<s1>, <s2>, <s1 s2> of exp(-beta E), E = -J s1 s2 - h1 s1 - h2 s2 + onsite(s1) + onsite(s2)
    with uniform measure on [lo, hi]^2, by numerical integration."""

    def w(s1, s2):
        return math.exp(-beta * (-J * s1 * s2 - h1 * s1 - h2 * s2 + onsite(s1) + onsite(s2)))

    def integ(f):
        return integrate.dblquad(lambda s2, s1: f(s1, s2) * w(s1, s2), lo, hi, lo, hi, epsabs=1e-10)[0]

    Z = integ(lambda a, b: 1.0)
    return integ(lambda a, b: a) / Z, integ(lambda a, b: b) / Z, integ(lambda a, b: a * b) / Z


def _two_spin_bm(J, h1, h2, T):
    m = BM(2, 0, temperature=T, dtype=torch.float64)
    with torch.no_grad():
        m.W.copy_(torch.tensor([[0.0, J], [J, 0.0]], dtype=torch.float64))
        m.b.copy_(torch.tensor([h1, h2], dtype=torch.float64))
    return m


def test_sllg_two_coupled_macrospins_match_numerical_integration():
    """Two macrospins with easy-axis anisotropy K: S_z is uniform on [-1, 1] on the sphere, so
    <S1z>, <S1z S2z> of exp(beta (J z1 z2 + h.z + K z^2)) are 2-d integrals."""
    J, h1, h2, T, K = 0.8, 0.3, -0.2, 1.0, 0.5
    m = _two_spin_bm(J, h1, h2, T)
    g = torch.Generator().manual_seed(5)
    k = SLLG(dt=0.02, n_steps=25, alpha=1.0, anisotropy=K, generator=g)
    s = Sampler(m, k)
    state = s.run(s.random_state(2000, torch.float64), 30)
    z = k.values(state["s"])
    m1, m2, c12 = _two_spin_expectations(J, h1, h2, 1 / T, lambda x: -K * x * x, -1.0, 1.0)
    for est, exact in ((z[:, 0], m1), (z[:, 1], m2), (z[:, 0] * z[:, 1], c12)):
        se = float(est.std()) / math.sqrt(est.numel())
        assert abs(float(est.mean()) - exact) < 4 * se + 0.01, (float(est.mean()), exact)


def test_soft_spins_match_their_continuous_target():
    """One soft spin in a field, and two coupled soft spins, against numerical integration of
    exp(beta (h x + J x1 x2 - lam/4 (x^2 - 1)^2)). Heun bias at dt = 0.01 is below 0.01."""
    lam = 4.0
    g = torch.Generator().manual_seed(6)
    k = SoftSpin(dt=0.01, n_steps=600, well=lam, generator=g)
    h, beta = 0.4, 1.0

    def onsite(x):
        return lam / 4 * (x * x - 1) ** 2

    w = lambda x: math.exp(beta * (h * x) - beta * onsite(x))  # noqa: E731
    Z = integrate.quad(w, -4, 4)[0]
    mean = integrate.quad(lambda x: x * w(x), -4, 4)[0] / Z
    x = k.update(
        k.random_state((2000, 1), torch.float64), torch.full((2000, 1), h, dtype=torch.float64), beta
    )
    se = float(x.std()) / math.sqrt(x.numel())
    assert abs(float(x.mean()) - mean) < 4 * se + 0.01

    J, h1, h2, T = 0.6, 0.2, -0.1, 1.0
    m = _two_spin_bm(J, h1, h2, T)
    k2 = SoftSpin(dt=0.01, n_steps=20, well=lam, generator=g)
    s = Sampler(m, k2)
    xs = s.run(s.random_state(2000, torch.float64), 40)["s"]
    m1, m2, c12 = _two_spin_expectations(J, h1, h2, 1 / T, onsite, -3.0, 3.0)
    for est, exact in ((xs[:, 0], m1), (xs[:, 1], m2), (xs[:, 0] * xs[:, 1], c12)):
        se = float(est.std()) / math.sqrt(est.numel())
        assert abs(float(est.mean()) - exact) < 4 * se + 0.01, (float(est.mean()), exact)


class FakeRig:
    """A rig whose wires pass with a true logistic curve that differs from the calibration it
    reports by a shift `error_mT` of H0 (a calibration error); reads are Bernoulli draws."""

    def __init__(self, n_wires=3, error_mT=0.0, seed=0, field_range=(0.0, 12.0)):
        self.n_wires = n_wires
        self.cal = [Logistic(H0=4.6 + 0.2 * w) for w in range(n_wires)]
        self.true = [
            Logistic(H0=c.H0 + error_mT * (1 if w % 2 else -1), k=c.k, a=c.a) for w, c in enumerate(self.cal)
        ]
        self.range = field_range
        self.rng = np.random.default_rng(seed)
        self.requests = []

    def calibration(self, wire):
        return self.cal[wire]

    def field_range_mT(self, wire):
        return self.range

    def true_p(self, H, wire):
        return self.true[wire].p(H)

    def read_synapses(self, fields_mT, wires, n):
        fields_mT = np.asarray(fields_mT)
        lo, hi = self.range
        assert fields_mT.min() >= lo and fields_mT.max() <= hi, "request outside the allowed field range"
        p = np.empty_like(fields_mT)
        for w in range(self.n_wires):
            m = wires == w
            p[m] = self.true_p(fields_mT[m], w)
        counts = self.rng.binomial(n, p)
        return SynapseReads(counts=counts, n=n, bench_time_s=5e-3 * n * len(p), energy_J=1e-3 * n * len(p))


def _realised_stationary(m: BM, kernel: RigKernel, rig: FakeRig) -> np.ndarray:
    """Stationary distribution of the sequential rig heat-bath sweep, by enumerating its
    transition matrix with the rig's TRUE pass probabilities at the requested fields."""
    n = m.n_units
    S = all_spin_states(n, torch.float64)
    J = m.coupling().detach().double()
    b = m.b.detach().double()
    P = np.eye(2**n)
    for i in range(n):
        h = (S @ J[:, i] + b[i]).numpy()
        q = 1 / (1 + np.exp(-2 * m.beta * h))
        wire = i % rig.n_wires  # units are read round-robin on the wires
        H = rig.cal[wire].inverse(q, *rig.range)
        p_up = rig.true_p(H, wire)
        Ti = np.zeros((2**n, 2**n))
        for a in range(2**n):
            up, down = a | (1 << i), a & ~(1 << i)
            Ti[a, up] += p_up[a]
            Ti[a, down] += 1 - p_up[a]
        P = P @ Ti
    w, vecs = np.linalg.eig(P.T)
    pi = np.real(vecs[:, np.argmin(abs(w - 1))])
    return pi / pi.sum()


@pytest.mark.parametrize("error_mT", [0.0, 0.4])
def test_rig_kernel_distribution_is_within_what_its_calibration_error_allows(error_mT):
    """BM of 4 spins sampled by rig reads. With a perfect calibration the chain samples exp(-E/T)
    (chi-square); with H0 off by 0.4 mT it samples the stationary law of the realised chain
    (chi-square), whose TV distance from exp(-E/T) is the error the calibration allows; the
    measured TV stays within that plus the sampling error (4 sigma)."""
    g = torch.Generator().manual_seed(7)
    m = BM(4, 0, temperature=1.0, init_std=0.3, generator=g, dtype=torch.float64)
    with torch.no_grad():
        m.b.copy_(torch.randn(4, generator=g, dtype=torch.float64) * 0.2)
    rig = FakeRig(error_mT=error_mT, seed=8)
    kernel = make_kernel("rig", g, rig=rig)
    chains = Chains(Sampler(m, kernel), "pcd", k=25, n_chains=3000)
    chains.init_persistent()
    s = chains.negative(None)["s"]
    counts = np.bincount(_state_index(s).numpy(), minlength=16)
    boltz = _boltzmann(m).numpy()
    realised = _realised_stationary(m, kernel, rig)
    assert _chi2_pvalue(counts, realised) > P_REJECT
    tv_allowed = 0.5 * np.abs(realised - boltz).sum()
    emp = counts / counts.sum()
    tv = 0.5 * np.abs(emp - boltz).sum()
    # sampling error of the TV estimate: sum of |binomial errors|/2 <= 0.5 * sum sqrt(p(1-p)/n)
    tv_noise = 0.5 * np.sqrt(boltz * (1 - boltz) / counts.sum()).sum()
    assert tv <= tv_allowed + 4 * tv_noise
    if error_mT == 0.0:
        assert tv_allowed < 1e-6
        assert _chi2_pvalue(counts, boltz) > P_REJECT
    else:
        assert tv_allowed > 0.01  # the calibration error is visible ...
        assert _chi2_pvalue(counts, boltz) < P_REJECT  # ... and the test can detect it
    assert kernel.reads == 3000 * 4 * 25  # one device read per spin update


def test_rig_kernel_keeps_every_request_inside_the_allowed_field_range():
    rig = FakeRig(field_range=(2.0, 7.0))
    kernel = RigKernel(rig, torch.Generator().manual_seed(0))
    field = torch.tensor([[-50.0, -1.0, 0.0, 1.0, 50.0, 3.0]])
    out = kernel.update(torch.ones_like(field), field, 1.0)  # FakeRig asserts the range
    assert set(out.flatten().tolist()) <= {-1.0, 1.0}
    H, wires = kernel.fields_for(torch.sigmoid(2 * field).double().numpy())
    assert H.min() >= 2.0 and H.max() <= 7.0
    assert wires.tolist() == [[0, 1, 2, 0, 1, 2]]


def test_unknown_kernel_and_rig_kernel_without_rig_are_refused():
    with pytest.raises(ValueError, match="unknown kernel"):
        make_kernel("gibbs")
    with pytest.raises(ValueError, match="needs an attached rig"):
        make_kernel("rig")


class _MeasuredCurves:
    """The pass probabilities of a real (here: simulated) rig, measured at the requested fields
    with many reads, in the interface `_realised_stationary` uses."""

    def __init__(self, rig, reads=20000):
        self.rig = rig
        self.reads = reads
        self.n_wires = int(rig.n_wires)
        self.cal = [rig.calibration(w) for w in range(self.n_wires)]
        self.range = tuple(rig.field_range_mT(0))

    def true_p(self, H, wire):
        H = np.asarray(H, dtype=float)
        r = self.rig.read_synapses(H, np.full(H.shape, wire), self.reads)
        return np.asarray(r.counts) / self.reads


def test_rig_kernel_on_the_simulated_rig_samples_its_realised_chain():
    """The rig kernel on the simulated lab (labml.rigs.open_rig("sim")): its wires differ from
    the nominal calibration the rig reports (fabrication spread), so the 4-spin BM it samples is
    the stationary law of the realised chain, built from the wires' pass probabilities measured
    at the requested fields (20000 reads each): chi-square against it, and the TV distance from
    exp(-E/T) stays within the TV that this calibration error allows (+ 4 sigma sampling)."""
    from labml.rigs import open_rig

    g = torch.Generator().manual_seed(9)
    m = BM(4, 0, temperature=1.0, init_std=0.3, generator=g, dtype=torch.float64)
    with torch.no_grad():
        m.b.copy_(torch.randn(4, generator=g, dtype=torch.float64) * 0.2)
    with open_rig("sim") as rig:
        lo, hi = rig.field_range_mT(0)
        assert all(tuple(rig.field_range_mT(w)) == (lo, hi) for w in range(rig.n_wires))
        kernel = make_kernel("rig", g, rig=rig)
        chains = Chains(Sampler(m, kernel), "pcd", k=20, n_chains=3000)
        chains.init_persistent()
        s = chains.negative(None)["s"]
        realised = _realised_stationary(m, kernel, _MeasuredCurves(rig))
    counts = np.bincount(_state_index(s).numpy(), minlength=16)
    boltz = _boltzmann(m).numpy()
    assert _chi2_pvalue(counts, realised) > P_REJECT
    emp = counts / counts.sum()
    tv_allowed = 0.5 * np.abs(realised - boltz).sum()
    tv_noise = 0.5 * np.sqrt(boltz * (1 - boltz) / counts.sum()).sum()
    assert 0.5 * np.abs(emp - boltz).sum() <= tv_allowed + 4 * tv_noise
    assert kernel.bench_time_s > 0 and kernel.energy_J > 0
