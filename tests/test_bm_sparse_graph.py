"""The sparse spin-graph engine (labml.bm.sparse_graph) against the distributions it must sample.

Statistics: fixed seeds, independent samples (one per chain, many chains, each run long past its
relaxation), chi-square tests reject at p < 1e-3 (a correct sampler fails by chance at most 0.1 %
of seeds), means within 4 standard errors plus the stated discretisation bias.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy import integrate, stats

from instruments.calibration import Logistic
from instruments.roles import SynapseReads
from labml.bm import _graph_kernels as gk
from labml.bm.models import RBM, ClassRBM, all_spin_states
from labml.bm.sparse_graph import (
    GraphSampler,
    SparseGraphModel,
    colouring_from_labels,
    from_rbm,
    lattice_2d,
    random_graph,
)

P_REJECT = 1e-3


def _graph(edges, n, seed, scale=0.7, bias=0.4, temperature=0.9) -> SparseGraphModel:
    rng = np.random.default_rng(seed)
    i, j = np.array(edges).T
    A = sp.coo_matrix((rng.normal(0, scale, len(edges)), (i, j)), shape=(n, n))
    return SparseGraphModel((A + A.T).tocsr(), rng.normal(0, bias, n), temperature)


def _cycle(n, seed):
    return _graph([(k, (k + 1) % n) for k in range(n)], n, seed)


def _random_small(seed):
    return random_graph(10, 16, seed=seed, coupling_std=0.6, bias_std=0.4, temperature=0.9)


def _boltzmann(m: SparseGraphModel) -> np.ndarray:
    S = all_spin_states(m.n_units).numpy().T  # (n, 2^n), state k has spin i = bit i of k
    return torch.softmax(torch.from_numpy(-m.beta * m.energy(S)), 0).numpy()


def _state_index(s: np.ndarray) -> np.ndarray:
    return ((s > 0).astype(np.int64) * (2 ** np.arange(s.shape[0]))[:, None]).sum(0)


def _chi2_pvalue(counts, p) -> float:
    """Chi-square p-value; states expected fewer than 5 times are pooled into one cell (the
    chi-square approximation needs expected counts >= 5)."""
    expected = p * counts.sum()
    small = expected < 5
    if small.any():
        counts = np.r_[counts[~small], counts[small].sum()]
        expected = np.r_[expected[~small], expected[small].sum()]
    return float(stats.chisquare(counts, expected).pvalue)


# --- model and colouring ------------------------------------------------------------------------------
def test_bad_couplings_biases_and_temperature_are_refused_in_one_line():
    J = sp.csr_matrix(np.array([[0.0, 1.0], [0.5, 0.0]]))
    with pytest.raises(ValueError, match=r"symmetric, J\[0,1\] = 1.0 != J\[1,0\] = 0.5"):
        SparseGraphModel(J)
    with pytest.raises(ValueError, match=r"zero diagonal, J\[1,1\] = 2.0"):
        SparseGraphModel(sp.csr_matrix(np.diag([0.0, 2.0])))
    with pytest.raises(ValueError, match="biases need 2 values"):
        SparseGraphModel(sp.csr_matrix((2, 2)), b=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        SparseGraphModel(sp.csr_matrix((2, 2)), temperature=0)
    with pytest.raises(ValueError, match="scipy sparse matrix"):
        SparseGraphModel(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="unknown colouring 'rainbow'"):
        lattice_2d(4).colouring("rainbow")
    with pytest.raises(ValueError, match=r"clamp mask must have shape \(16,\) or \(16, 3\)"):
        GraphSampler(lattice_2d(4)).sweep(GraphSampler(lattice_2d(4)).new_state(3), clamp=np.ones(5, bool))


@pytest.mark.parametrize("method", ["dsatur", "largest_first"])
def test_colourings_are_proper_and_odd_cycles_need_three_colours(method):
    for m, colours in ((_cycle(3, 0), 3), (_cycle(5, 0), 3), (lattice_2d(6), 2), (_cycle(6, 0), 2)):
        c = m.colouring(method)
        assert c.n_colours == colours
        assert m.colouring(method) is c  # cached with the graph
        rows, cols = m.J.nonzero()
        assert np.all(c.colour[rows] != c.colour[cols])
        assert sorted(np.concatenate(c.blocks).tolist()) == list(range(m.n_units))
    big = random_graph(4264, 30000, seed=3)
    c = big.colouring(method)
    rows, cols = big.J.nonzero()
    assert np.all(c.colour[rows] != c.colour[cols]) and c.n_colours <= 10
    with pytest.raises(ValueError, match="not proper: unit 0 is coupled to a unit of its own colour"):
        colouring_from_labels(_cycle(3, 0), [0, 0, 1])


def test_random_graph_of_the_benchmark_has_the_asked_size():
    m = random_graph(4264, 30000, seed=0)
    assert m.n_units == 4264 and m.n_couplings == 30000


def test_exp_polynomial_matches_numpy():
    x = np.linspace(-700.0, 700.0, 100_001)
    out = np.empty_like(x)
    gk.exp_array(x, out)
    assert np.max(np.abs(out / np.exp(x) - 1.0)) < 1e-15


# --- heat bath and Metropolis against exact enumeration ------------------------------------------------
GRAPHS = {
    "triangle": lambda: _cycle(3, 1),
    "5-cycle": lambda: _cycle(5, 2),
    "random 10 spins": lambda: _random_small(4),
}


@pytest.mark.parametrize("kernel", ["heatbath", "metropolis"])
@pytest.mark.parametrize("method", ["dsatur", "largest_first"])
@pytest.mark.parametrize("graph", list(GRAPHS))
def test_block_sweeps_sample_the_exact_boltzmann_distribution(graph, method, kernel):
    """20000 independent chains from random spins, 60 sweeps each (many relaxation times at these
    couplings), one state per chain: chi-square against exp(-E/T)/Z over all 2^n states."""
    m = GRAPHS[graph]()
    sampler = GraphSampler(m, kernel, colouring=method)
    state = sampler.new_state(20000, seed=11)
    sampler.sweep(state, 60)
    assert set(np.unique(state.s)) <= {-1.0, 1.0}
    counts = np.bincount(_state_index(state.s), minlength=2**m.n_units)
    assert _chi2_pvalue(counts, _boltzmann(m)) > P_REJECT


def test_a_wrong_temperature_is_detected():
    """The test above has power: sampling at T' = 1.3 T is rejected against exp(-E/T)."""
    m = _random_small(4)
    hot = SparseGraphModel(m.J, m.b, 1.3 * m.temperature)
    sampler = GraphSampler(hot)
    state = sampler.new_state(20000, seed=11)
    sampler.sweep(state, 60)
    counts = np.bincount(_state_index(state.s), minlength=2**m.n_units)
    assert _chi2_pvalue(counts, _boltzmann(m)) < P_REJECT


@pytest.mark.parametrize("kernel", ["heatbath", "metropolis"])
def test_clamped_units_never_change_and_free_units_sample_the_conditional(kernel):
    """Per-chain clamping: every chain holds its own clamped units fixed through 40 sweeps; with
    the same units clamped to the same values in all chains, the free units follow the exact
    conditional p(free | clamped) (chi-square)."""
    m = _random_small(5)
    sampler = GraphSampler(m, kernel)
    rng = np.random.default_rng(0)
    mask = rng.random((m.n_units, 300)) < 0.4
    state = sampler.new_state(300, seed=1)
    before = state.s.copy()
    sampler.sweep(state, 40, clamp=mask)
    assert np.array_equal(state.s[mask], before[mask])
    assert (state.s[~mask] != before[~mask]).mean() > 0.2

    clamped = np.array([0, 3, 7])
    values = np.array([1.0, -1.0, 1.0], np.float32)
    mask = np.zeros(m.n_units, bool)
    mask[clamped] = True
    state = sampler.new_state(4000, seed=2)
    state.s[clamped] = values[:, None]
    sampler.sweep(state, 60, clamp=mask)
    assert np.all(state.s[clamped] == values[:, None])
    p = _boltzmann(m)
    S = all_spin_states(m.n_units).numpy().T
    p = np.where(np.all(S[clamped] == values[:, None], axis=0), p, 0.0)
    counts = np.bincount(_state_index(state.s), minlength=2**m.n_units)
    keep = p > 0
    assert counts[~keep].sum() == 0
    assert _chi2_pvalue(counts[keep], p[keep] / p.sum()) > P_REJECT


@pytest.mark.parametrize("kernel", ["heatbath", "metropolis"])
def test_results_are_reproducible_per_seed_and_independent_of_threads_and_tiles(kernel):
    m = random_graph(300, 900, seed=6, coupling_std=0.5)
    runs = []
    for threads, tile in ((1, 64), (2, 64), (2, 16), (1, 200)):
        sampler = GraphSampler(m, kernel, threads=threads, tile=tile)
        state = sampler.new_state(40, seed=7)
        sampler.sweep(state, 5)
        runs.append(state)
    for other in runs[1:]:
        assert np.array_equal(runs[0].s, other.s) and np.array_equal(runs[0].rng, other.rng)
    # the few-chains kernel (vectorised over units) makes the same moves as the tiled one
    few = GraphSampler(m, kernel)
    state = few.new_state(40, seed=7)
    for c in range(0, 40, 5):
        part = type(state)(state.s[:, c : c + 5].copy(), state.rng[:, c : c + 5].copy())
        few.sweep(part, 5)
        assert np.array_equal(part.s, runs[0].s[:, c : c + 5])
    other_seed = few.new_state(40, seed=8)
    few.sweep(other_seed, 5)
    assert not np.array_equal(other_seed.s, runs[0].s)


# --- the rig kernel against its own clipped chain ----------------------------------------------------------
class ClippingRig:
    """Wires whose true logistic curves differ from the reported calibration by +/-`error_mT`, and
    an allowed field range whose floor cuts the low probabilities off (the device floor)."""

    def __init__(self, n_wires=2, error_mT=0.4, field_range=(4.0, 12.0), seed=0):
        self.n_wires = n_wires
        self.cal = [Logistic(H0=4.6 + 0.2 * w) for w in range(n_wires)]
        self.true = [
            Logistic(H0=c.H0 + error_mT * (1 if w % 2 else -1), k=c.k, a=c.a) for w, c in enumerate(self.cal)
        ]
        self.range = field_range
        self.rng = np.random.default_rng(seed)

    def calibration(self, wire):
        return self.cal[wire]

    def field_range_mT(self, wire):
        return self.range

    def read_synapses(self, fields_mT, wires, n):
        fields_mT = np.asarray(fields_mT)
        assert self.range[0] <= fields_mT.min() and fields_mT.max() <= self.range[1]
        p = np.array([self.true[w].p(H) for H, w in zip(fields_mT, wires, strict=True)])
        return SynapseReads(counts=self.rng.binomial(n, p), n=n, bench_time_s=0.0, energy_J=0.0)


def _rig_chain_stationary(m: SparseGraphModel, rig: ClippingRig, blocks) -> np.ndarray:
    """Stationary law of the block sweep performed by the rig: per block, every unit i of it goes
    up with the TRUE probability at the field requested for q = sigmoid(2 beta h_i), clipped to the
    allowed range (unit i read on wire i % n_wires); transition matrix enumerated exactly."""
    n = m.n_units
    S = all_spin_states(n).numpy().T  # (n, 2^n)
    P = np.eye(2**n)
    for block in blocks:
        h = m.local_fields(S)[block]  # (nb, 2^n)
        q = 1 / (1 + np.exp(-2 * m.beta * h))
        p_up = np.empty_like(q)
        for r, i in enumerate(block):
            wire = i % rig.n_wires
            H = rig.cal[wire].inverse(q[r], *rig.range)
            p_up[r] = rig.true[wire].p(H)
        T = np.zeros((2**n, 2**n))
        rest = ~np.isin(np.arange(n), block)
        for a in range(2**n):
            for b in range(2**n):
                if np.all(S[rest, a] == S[rest, b]):
                    up = S[block, b] > 0
                    T[a, b] = np.prod(np.where(up, p_up[:, a], 1 - p_up[:, a]))
        P = P @ T
    w, vecs = np.linalg.eig(P.T)
    pi = np.real(vecs[:, np.argmin(abs(w - 1))])
    return pi / pi.sum()


def test_rig_kernel_samples_its_clipped_chain_not_exp_minus_e():
    """A 4-unit graph (triangle plus a pendant, 3 colours) on a rig whose field floor clips the
    low pass probabilities and whose calibration is off by 0.4 mT: 3000 chains x 20 sweeps,
    chi-square against the clipped chain's exact stationary law; that law is far from exp(-E/T)
    (TV > 0.05) and the test can tell them apart."""
    m = _graph([(0, 1), (1, 2), (0, 2), (2, 3)], 4, seed=9, scale=0.8, bias=0.6, temperature=0.8)
    rig = ClippingRig()
    assert min(rig.cal[w].p(rig.range[0]) for w in range(2)) > 0.05  # the floor clips
    sampler = GraphSampler(m, "rig", rig=rig)
    assert sampler.colouring.n_colours == 3
    state = sampler.new_state(3000, seed=3)
    sampler.sweep(state, 20)
    counts = np.bincount(_state_index(state.s), minlength=16)
    realised = _rig_chain_stationary(m, rig, sampler.colouring.blocks)
    assert _chi2_pvalue(counts, realised) > P_REJECT
    boltz = _boltzmann(m)
    assert 0.5 * np.abs(realised - boltz).sum() > 0.05
    assert _chi2_pvalue(counts, boltz) < P_REJECT
    assert sampler.kernel.reads == 3000 * 4 * 20


# --- continuous kernels against their continuous models -------------------------------------------------
def _langevin(x: float) -> float:
    return 1.0 / math.tanh(x) - 1.0 / x


def _two_units(J, h1, h2, T) -> SparseGraphModel:
    return SparseGraphModel(sp.csr_matrix(np.array([[0.0, J], [J, 0.0]])), [h1, h2], T)


def _two_spin_expectations(J, h1, h2, beta, onsite, lo, hi):
    def w(s1, s2):
        return math.exp(-beta * (-J * s1 * s2 - h1 * s1 - h2 * s2 + onsite(s1) + onsite(s2)))

    def integ(f):
        return integrate.dblquad(lambda s2, s1: f(s1, s2) * w(s1, s2), lo, hi, lo, hi, epsabs=1e-10)[0]

    Z = integ(lambda a, b: 1.0)
    return integ(lambda a, b: a) / Z, integ(lambda a, b: b) / Z, integ(lambda a, b: a * b) / Z


def _assert_means(pairs):
    for est, exact in pairs:
        se = float(est.std()) / math.sqrt(est.size)
        assert abs(float(est.mean()) - exact) < 4 * se + 0.01, (float(est.mean()), exact)


def test_sllg_on_a_graph_follows_the_langevin_function_and_the_coupled_integral():
    """One free macrospin in a field h (a graph of one unit): <S_z> = L(beta h) (Langevin function);
    two coupled macrospins with anisotropy K: <z1>, <z2>, <z1 z2> against 2-d quadrature.
    2000 chains; Heun bias at dt = 0.02 below 0.01."""
    g = torch.Generator().manual_seed(4)
    single = SparseGraphModel(sp.csr_matrix((1, 1)), [1.5], 1.0)
    sampler = GraphSampler(single, "sllg", generator=g, dt=0.02, n_steps=50, alpha=1.0)
    state = sampler.new_state(2000, seed=1)
    sampler.sweep(state, 10)
    assert np.allclose(np.linalg.norm(state.vectors, axis=-1), 1.0, atol=1e-5)
    _assert_means([(state.s[0].astype(np.float64), _langevin(1.5))])

    J, h1, h2, T, K = 0.8, 0.3, -0.2, 1.0, 0.5
    sampler = GraphSampler(_two_units(J, h1, h2, T), "sllg", generator=g, dt=0.02, n_steps=25, anisotropy=K)
    state = sampler.new_state(2000, seed=2)
    sampler.sweep(state, 30)
    z = state.s.astype(np.float64)
    m1, m2, c12 = _two_spin_expectations(J, h1, h2, 1 / T, lambda x: -K * x * x, -1.0, 1.0)
    _assert_means([(z[0], m1), (z[1], m2), (z[0] * z[1], c12)])


def test_soft_spins_on_a_graph_match_quadrature():
    lam, J, h1, h2, T = 4.0, 0.6, 0.2, -0.1, 1.0
    g = torch.Generator().manual_seed(6)
    sampler = GraphSampler(_two_units(J, h1, h2, T), "soft", generator=g, dt=0.01, n_steps=20, well=lam)
    state = sampler.new_state(2000, seed=3)
    sampler.sweep(state, 40)
    x = state.s.astype(np.float64)
    m1, m2, c12 = _two_spin_expectations(J, h1, h2, 1 / T, lambda v: lam / 4 * (v * v - 1) ** 2, -3.0, 3.0)
    _assert_means([(x[0], m1), (x[1], m2), (x[0] * x[1], c12)])


# --- the project's models as graphs -------------------------------------------------------------------------
def test_rbm_and_classrbm_become_two_colour_graphs_with_the_same_energy():
    g = torch.Generator().manual_seed(0)
    rbm = RBM(5, 3, temperature=1.1, init_std=0.5, generator=g)
    with torch.no_grad():
        rbm.a.normal_(generator=g)
        rbm.b.normal_(generator=g)
    m, col = from_rbm(rbm)
    assert col.n_colours == 2 and m.n_couplings == 15
    v = torch.where(torch.rand(8, 5, generator=g) < 0.5, -1.0, 1.0)
    h = torch.where(torch.rand(8, 3, generator=g) < 0.5, -1.0, 1.0)
    e_graph = m.energy(torch.cat([v, h], 1).double().numpy().T)
    assert np.allclose(e_graph, rbm.energy({"v": v, "h": h}).detach().double().numpy(), atol=1e-5)

    crbm = ClassRBM(5, 3, n_classes=4, init_std=0.5, generator=g)
    with torch.no_grad():
        crbm.d.normal_(generator=g)
        crbm.b.normal_(generator=g)
    m, col = from_rbm(crbm)
    y = torch.nn.functional.one_hot(torch.arange(8) % 4, 4).float()
    e_graph = m.energy(torch.cat([v, 2 * y - 1, h], 1).double().numpy().T)
    e_model = crbm.energy({"v": v, "y": y, "h": h}).detach().double().numpy()
    diff = e_graph - e_model
    assert np.allclose(diff, diff[0], atol=1e-5)  # equal up to a constant (the label spins' offset)


def test_rbm_graph_heat_bath_matches_the_exact_visible_marginal():
    g = torch.Generator().manual_seed(2)
    rbm = RBM(4, 3, temperature=1.2, init_std=0.7, generator=g)
    with torch.no_grad():
        rbm.a.copy_(torch.randn(4, generator=g) * 0.5)
    m, col = from_rbm(rbm)
    sampler = GraphSampler(m, "heatbath", colouring=col)
    state = sampler.new_state(4000, seed=5)
    sampler.sweep(state, 40)
    V = all_spin_states(4, torch.float32)
    p = torch.softmax(-rbm.beta * rbm.free_energy(V).detach().double(), 0).numpy()
    counts = np.bincount(_state_index(state.s[:4]), minlength=16)
    assert _chi2_pvalue(counts, p) > P_REJECT


def test_sampling_benchmark_runs_without_thrml_and_says_so():
    """bench_sampling.py without thrml in the interpreter: the thrml column is skipped with a
    line saying so, and the engine and the CPU bounds are still measured."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, str(root / "benchmarks/bench_sampling.py"), "--cases", "c", "--repeats", "1",
         "--flips", "2e4", "--json", "--thrml-python", sys.executable],
        capture_output=True, text=True, cwd=root, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout.strip().splitlines()[-1])
    if "thrml not installed" not in data["thrml"]:
        pytest.skip("thrml is installed in this interpreter")
    assert "thrml columns skipped" in out.stderr
    variants = {r["variant"] for r in data["rows"]}
    assert variants == {"labml GraphSampler", "bound: random draws (numpy PCG64 float32)",
                        "bound: CSR SpMM (scipy float32)"}
    assert all(r["flips_per_s"] > 0 for r in data["rows"])
    assert {r["chains"] for r in data["rows"]} == {1, 100}


def test_forces_are_the_chain_averages_of_the_coupled_pairs_and_spins():
    m = _random_small(3)
    s = np.where(np.random.default_rng(0).random((m.n_units, 50)) < 0.5, -1.0, 1.0)
    C, mean = m.forces(s)
    dense = s @ s.T / 50
    rows, cols = m.J.nonzero()
    assert np.allclose(C.toarray()[rows, cols], dense[rows, cols])
    assert C.nnz == m.J.nnz and np.allclose(mean, s.mean(1))


@pytest.mark.parametrize("kernel", ["heatbath", "soft"])
def test_a_sampler_follows_new_parameters_of_its_model(kernel):
    """Training changes J in place: a sampler made before samples the new couplings (two units,
    ferromagnetic J = 2 at T = 0.5, then antiferromagnetic J = -2: the product s1 s2 flips sign)."""
    m = _two_units(2.0, 0.0, 0.0, 0.5)
    options = {"generator": torch.Generator().manual_seed(0)} if kernel == "soft" else {}
    sampler = GraphSampler(m, kernel, **options)
    state = sampler.new_state(400, seed=0)
    sampler.sweep(state, 20)
    assert np.mean(state.s[0] * state.s[1]) > 0.5
    m.set_parameters(J=-m.J)
    sampler.sweep(state, 20)
    assert np.mean(state.s[0] * state.s[1]) < -0.5


def test_new_values_reach_a_sampler_made_before_them():
    """`set_values` (training's in-place update) reaches every sampler of the model: the fused kernels'
    arrays and the rows a kernel-object sampler (sLLG, soft spins, rig) cached are rebuilt. With
    the couplings set to 0, a heat-bath unit's law is its bias alone."""
    model = random_graph(40, 120, seed=3)
    soft = GraphSampler(model, "soft")
    fused = GraphSampler(model, "heatbath")
    state = soft.new_state(4, seed=0)
    soft.sweep(state, 1)
    fused.sweep(fused.new_state(4, seed=0), 1)
    b = np.full(model.n_units, 0.5)
    model.set_values(np.zeros_like(model.J.data), b)
    assert all(rows.nnz == 0 or not rows.data.any() for rows in soft._block_rows())
    st = fused.new_state(4000, seed=1)
    fused.sweep(st, 3)
    # units independent with P(+1) = sigmoid(2 * 0.5) = 0.731; 40 x 4000 draws: 99.9 % binomial band
    p = (st.s > 0).mean()
    se = math.sqrt(0.731 * 0.269 / st.s.size)
    assert abs(p - 1 / (1 + math.exp(-1.0))) < 3.3 * se, p
