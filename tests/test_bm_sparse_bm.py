"""The sparse p-bit Boltzmann machine (labml.bm.sparse_bm, issue 19): the chip graph at hardware
size, the energy its file states, sampling with the image clamped against exact enumeration, that
PCD on colour blocks learns, and that a resumed training is the uninterrupted one."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from labml.bm.sparse_bm import Layout, SparseBM, SparseBMTrainer, SparseTrainConfig, chip_graph
from labml.bm.sparse_graph import GraphSampler


def test_the_default_chip_graph_has_the_size_of_the_published_machine_and_is_wired_locally():
    i, j, L = chip_graph()
    assert (L.n_visible, L.n_labels, L.n_hidden, L.n_units) == (784, 50, 3430, 4264)
    assert i.size == 27_176 and i.size <= 30_000  # "about 30k couplings" (Niazi et al. 2024)
    assert np.all(i < j) and np.unique(i * L.n_units + j).size == i.size
    vis = i < L.n_visible
    assert np.all(j[vis] >= L.hidden.start)  # pixels are wired to hidden units only
    # each hidden unit's pixels lie in the 5 x 5 window around its place on the grid (rows 49 x 70
    # over 28 x 28 pixels): at most 2 pixels apart in each direction from one another
    for h in np.unique(j[vis])[:200]:
        py, px = np.divmod(i[vis][j[vis] == h], 28)
        assert py.max() - py.min() <= 4 and px.max() - px.min() <= 4
    lab = (i >= L.labels.start) & (i < L.labels.stop)
    assert np.all(j[lab] >= L.hidden.start) and np.bincount(i[lab] - L.labels.start).tolist() == [100] * 50
    m = SparseBM(i, j, L)
    assert m.graph.colouring("dsatur").n_colours >= 3  # lateral couplings: not bipartite


def test_the_energy_is_the_one_the_saved_file_states_and_numpy_alone_reads_it(tmp_path):
    i, j, L = chip_graph(n_hidden=40, image_shape=(6, 6), n_classes=3, label_copies=2, hidden_per_label=5,
                         seed=3)
    rng = np.random.default_rng(0)
    m = SparseBM(i, j, L, w=rng.normal(size=i.size), b=rng.normal(size=L.n_units), temperature=1.5)
    path = m.save(tmp_path / "model.npz", {"note": "test"})
    s = np.where(rng.random((L.n_units, 7)) < 0.5, -1.0, 1.0)
    with np.load(path, allow_pickle=False) as f:  # what a script without this package does
        e = -(f["w"][:, None] * s[f["i"]] * s[f["j"]]).sum(0) - f["b"] @ s
        assert float(f["temperature"]) == 1.5 and int(f["label_copies"]) == 2
    np.testing.assert_allclose(m.graph.energy(s), e, rtol=1e-12)
    back = SparseBM.load(path)
    np.testing.assert_array_equal(back.w, m.w)
    np.testing.assert_array_equal(back.b, m.b)
    np.save(tmp_path / "other.npy", np.zeros(3))
    np.savez(tmp_path / "foreign.npz", format=np.array("something-else/1"))
    with pytest.raises(ValueError, match="not a sparse p-bit model"):
        SparseBM.load(tmp_path / "foreign.npz")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="cannot be read"):
        SparseBM.load(tmp_path / "broken.npz")


def _tiny(seed=0):
    """3 pixels, 2 classes x 1 copy, 4 hidden: 9 units, small enough to enumerate."""
    L = Layout(n_visible=3, n_classes=2, label_copies=1, n_hidden=4)
    h = range(5, 9)
    edges = {(v, k) for v in range(3) for k in h} | {(lab, k) for lab in (3, 4) for k in h} | {(5, 6), (7, 8),
                                                                                           (5, 8)}
    i, j = np.array(sorted(edges)).T
    rng = np.random.default_rng(seed)
    return SparseBM(i, j, L, w=rng.normal(0, 0.8, i.size), b=rng.normal(0, 0.5, L.n_units))


def test_labels_sampled_with_the_image_clamped_follow_the_exact_conditional():
    """Chi-square of the label pair's sampled frequencies (one independent draw per chain, after
    200 sweeps from the start classification uses) against p(labels | image) by enumerating the 2^6
    label and hidden states (p >= 0.001 fails about once in a thousand runs)."""
    m = _tiny()
    x = np.array([1, 0, 1])
    sampler = GraphSampler(m.graph, "heatbath")
    state = m.clamped_state(sampler, np.tile(x, (4000, 1)), None, seed=5)
    sampler.sweep(state, 200, clamp=m.mask("visible"))
    assert np.all(state.s[:3] == (2.0 * x - 1)[:, None])  # the image stayed clamped
    lab = state.s[m.layout.labels] > 0
    counts = np.bincount(lab[0] * 2 + lab[1], minlength=4)
    free = np.array(list(itertools.product([-1.0, 1.0], repeat=6))).T
    s = np.vstack([np.repeat((2.0 * x - 1)[:, None], free.shape[1], 1), free])
    p = np.exp(-m.graph.energy(s))
    exact = np.array([p[(free[0] > 0) * 2 + (free[1] > 0) == k].sum() for k in range(4)]) / p.sum()
    assert stats.chisquare(counts, exact * counts.sum()).pvalue > 1e-3


def _toy_data(n=400, seed=0):
    """Class 0 lights pixels 0 and 1, class 1 pixel 2 (each flipped with probability 0.1)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = np.where(y[:, None] == 0, [1, 1, 0], [0, 0, 1])
    return np.where(rng.random(x.shape) < 0.1, 1 - x, x).astype(np.float32), y


def _exact_loglik(m, x, y):
    states = np.array(list(itertools.product([-1.0, 1.0], repeat=m.layout.n_units))).T
    e = -m.graph.energy(states)
    log_z = np.logaddexp.reduce(e)
    lab = m.label_spins(y)
    data = np.vstack([2.0 * x.T - 1, lab])
    logp = []
    for col in range(data.shape[1]):
        hit = np.all(states[:5] == data[:, col:col + 1], axis=0)
        logp.append(np.logaddexp.reduce(e[hit]) - log_z)
    return float(np.mean(logp))


def test_pcd_on_colour_blocks_raises_the_exact_likelihood_and_learns_to_classify():
    x, y = _toy_data()
    m = _tiny(seed=1)
    m.set_values(np.zeros(m.n_edges), SparseBMTrainer.initial_biases(m, x))
    before = _exact_loglik(m, x, y)
    tr = SparseBMTrainer(m, x, y, SparseTrainConfig(epochs=30, batch_size=20, lr=0.01, momentum=0.0, k_pos=2,
                                                    k_neg=2, chains=50, seed=0))
    for _ in range(30):
        tr.run_epoch()
    after = _exact_loglik(m, x, y)
    # the data's entropy: ln 2 for the label + 3 x H(0.1) = 1.67 nats, the best any model can do;
    # uncoupled units at the start: -3.45; PCD gets within 0.13 nats of the bound (measured -1.74)
    assert before < -3.4 and after > -1.80, (before, after)
    xt, yt = _toy_data(500, seed=9)
    acc = m.classify(tr.sampler, xt, 50, y=yt, seed=1)["accuracy_by_sweeps"][50]
    # the Bayes rate of this data is 0.9*0.9*0.9 + ... >= 0.97; a 500-image test: >= 0.9 is far
    # beyond chance (binomial p < 1e-80 at 0.5)
    assert acc >= 0.9, acc


def test_a_resumed_training_is_the_uninterrupted_one_bit_for_bit():
    x, y = _toy_data(200)
    cfg = SparseTrainConfig(epochs=4, batch_size=20, lr=0.02, k_pos=2, k_neg=2, chains=20, seed=4)
    a = _tiny(2)
    ta = SparseBMTrainer(a, x, y, cfg)
    for _ in range(4):
        ta.run_epoch()
    b = _tiny(2)
    tb = SparseBMTrainer(b, x, y, cfg)
    tb.run_epoch()
    tb.run_epoch()
    saved = tb.state_dict()
    c = _tiny(7)  # other starting values: all of them come from the state
    tc = SparseBMTrainer(c, x, y, cfg)
    tc.load_state_dict(saved)
    tc.run_epoch()
    tc.run_epoch()
    np.testing.assert_array_equal(c.w, a.w)
    np.testing.assert_array_equal(c.b, a.b)
    assert tc.epoch == 4 and tc.updates == ta.updates


def test_the_hybrid_conditional_term_is_the_exact_gradient_of_log_p_label_given_image_at_equilibrium():
    """The conditional phase (labels released from the positive state, image clamped), run to
    equilibrium, minus the positive phase is -d log p(y | v) / d theta: compared on every coupling
    and bias of the tiny machine with the exact value by enumeration, within 4.5 standard errors of
    the per-chain difference (at 33 parameters, a false alarm about once in 5,000 runs)."""
    m = _tiny(seed=3)
    x, y = np.array([1, 0, 1]), 1
    tr = SparseBMTrainer(m, np.zeros((1, 3), np.float32), np.zeros(1, np.int64),
                         SparseTrainConfig(objective="hybrid", chains=2, seed=0))
    n = 20_000
    pos = m.clamped_state(tr.sampler, np.tile(x, (n, 1)), np.full(n, y), seed=11)
    tr.sampler.sweep(pos, 100, clamp=m.mask("visible", "labels"))
    start = tr.conditional_phase(pos, 0, seed=12)  # it starts from the positive state, a copy
    assert np.array_equal(start.s, pos.s) and start.s is not pos.s
    cond = tr.conditional_phase(pos, 100, seed=12)
    assert np.all(cond.s[:3] == pos.s[:3]) and not np.array_equal(cond.s[3:5], pos.s[3:5])
    feats = lambda s: np.vstack([s[m.i] * s[m.j], s]).astype(np.float64)  # noqa: E731
    d = feats(cond.s) - feats(pos.s)  # per chain: the sampled -d log p(y | v)
    est, se = d.mean(1), d.std(1, ddof=1) / np.sqrt(n)
    free = np.array(list(itertools.product([-1.0, 1.0], repeat=6))).T  # labels and hidden
    s = np.vstack([np.repeat((2.0 * x - 1)[:, None], free.shape[1], 1), free])
    p = np.exp(-m.graph.energy(s))
    given_y = (free[0] == (-1.0 if y else 1.0)) & (free[1] == (1.0 if y else -1.0))
    exact = feats(s) @ (p / p.sum()) - feats(s[:, given_y]) @ (p[given_y] / p[given_y].sum())
    assert np.all(np.abs(est - exact) <= 4.5 * se + 1e-12), np.max(np.abs(est - exact) / (se + 1e-12))
    assert np.abs(exact).max() > 0.1  # the term is not trivially zero here


def test_an_unknown_objective_or_a_bad_alpha_is_refused_in_one_line():
    x, y = _toy_data(20)
    with pytest.raises(ValueError, match="objective must be one of"):
        SparseBMTrainer(_tiny(), x, y, SparseTrainConfig(objective="hybird"))
    for alpha in (-0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="alpha must be finite and >= 0"):
            SparseBMTrainer(_tiny(), x, y, SparseTrainConfig(objective="hybrid", alpha=alpha))
