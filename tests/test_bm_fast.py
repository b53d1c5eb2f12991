"""The fast RBM CD-1/PCD-1 step (labml.bm.training.BMTrainer._fast_rbm_grad) is the standard
step: from its 32-bit draws it makes exactly the heat-bath moves, and gives the parameter
gradient of the plain path's formulas (force differences through the centring transform) on
those spins, on sparse data where its sparse products are actually taken."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labml.bm import _sparse
from labml.bm.kernels import heat_bath_spins
from labml.bm.training import BMData, BMTrainConfig, BMTrainer

torch.set_num_threads(1)


def sparse_data(n=200, nv=60, seed=0) -> BMData:
    """0/1 images where half the pixels are always 0 (like MNIST borders), the rest on 30 %."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, nv), np.float32)
    x[:, : nv // 2] = rng.random((n, nv // 2)) < 0.3
    x = x[:, rng.permutation(nv)]
    y = np.arange(n) % 2
    return BMData(x, y, x[:20], y[:20])


def test_heat_bath_spins_are_the_threshold_of_the_same_draws():
    """Same generator state: +1 exactly where u < sigmoid(2 beta h), with torch.where as reference."""
    field = torch.randn(50, 70)
    g = torch.Generator().manual_seed(3)
    s = heat_bath_spins(field, 0.7, g)
    g.manual_seed(3)
    u = torch.rand(field.shape, generator=g)
    ref = torch.where(u < torch.sigmoid(2.0 * 0.7 * field), 1.0, -1.0)
    assert torch.equal(s, ref)


def replay_fast_step(t: BMTrainer, idx: np.ndarray, bits_state: dict) -> dict:
    """The fast step recomputed densely in float64 from the same 32-bit draws: the spins it must
    draw (+1 where raw < p 2^32, p = sigmoid(2 beta field)) and the plain path's statistics
    (force differences through `_centred_step`, as `_set_generative_grad` applies them)."""
    m = t.model
    beta = m.beta
    W, a, b = (x.detach().double() for x in (m.W, m.a, m.b))
    bits = np.random.SFC64()
    bits.state = bits_state
    n, H = len(idx), W.shape[1]

    def draw(p):
        raw = torch.from_numpy(_sparse.raw_uint32(bits, tuple(p.shape)).astype(np.float64))
        return torch.where(raw < p * 2.0**32, 1.0, -1.0).double()

    v = t.v_train[idx].double()
    p_t = torch.sigmoid(2 * beta * (b + v @ W))
    h0 = draw(p_t) if t.chains.kind == "cd" else t.chains.state["h"].double()
    vm = draw(torch.sigmoid(2 * beta * (a + h0 @ W.t())))
    p_m = torch.sigmoid(2 * beta * (b + vm @ W))
    h_next = draw(p_m) if t.chains.kind == "pcd" else None
    h_t, hm = 2 * p_t - 1, 2 * p_m - 1
    D = {
        "W": (v.t() @ h_t - vm.t() @ hm).float() / n,
        "a": (v.mean(0) - vm.mean(0)).float(),
        "b": (h_t.mean(0) - hm.mean(0)).float(),
    }
    assert H == h_t.shape[1]
    return {"D": D, "hmean_t": h_t.mean(0).float(), "vm": vm.float(), "h_next": h_next}


@pytest.mark.parametrize("chains", ["cd", "pcd"])
@pytest.mark.parametrize("centering", ["data", "bits"])
def test_fast_step_draws_the_heat_bath_spins_and_gives_the_plain_gradient(chains, centering):
    data = sparse_data()
    cfg = BMTrainConfig(
        model="rbm", hidden=9, epochs=1, batch_size=20, lr=0.05, chains=chains, centering=centering
    )
    a = BMTrainer(cfg, data)
    assert a._fast_rbm_applies()
    a.run_epoch(0)  # trains through the fast path; the chains and offsets are now non-trivial
    b = BMTrainer(cfg, data)
    b.load_state_dict(a.state_dict())  # same parameters, chains, offsets and bit generator
    idx = np.arange(40, 60)
    ref = replay_fast_step(b, idx, b._fast["bits"].state)
    a.optimizer.zero_grad()
    a._fast_rbm_grad(idx)
    b.optimizer.zero_grad()
    b._apply_generative_grad(ref["D"], {"b": ref["hmean_t"]}, 1.0)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        # float32 against float64 rounding only; one different spin would move an entry by ~0.1
        torch.testing.assert_close(pa.grad, pb.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(a.offset_h, b.offset_h)
    if chains == "pcd":  # the persistent chains made the same moves
        assert torch.equal(a.chains.state["v"], ref["vm"])
        assert torch.equal(a.chains.state["h"], ref["h_next"].float())


def test_fast_draws_follow_their_probabilities():
    """P(+1) of the 32-bit threshold draw is p: counts of 20000 draws per probability inside their
    two-sided 99.9 % binomial intervals (fixed seed)."""
    from scipy.stats import binom

    p = torch.tensor([[0.001, 0.05, 0.3, 0.5, 0.77, 0.999]]).repeat(20000, 1)
    bits = np.random.SFC64(5)
    s = torch.empty_like(p)
    _sparse.draw_spins(p.numpy(), _sparse.raw_uint32(bits, tuple(p.shape)), s.numpy())
    ups = (s > 0).sum(0).numpy()
    lo, hi = binom.interval(0.999, 20000, p[0].numpy())
    assert np.all((ups >= lo) & (ups <= hi)), (ups, lo, hi)
    # the indexed draw gives the same spins from the same bits, and the CSR of the +1 columns
    bits2 = np.random.SFC64(5)
    s2 = torch.empty_like(p)
    indptr = np.zeros(p.shape[0] + 1, np.int64)
    indices = np.empty(p.numel(), np.int64)
    _sparse.draw_spins_indexed(
        p.numpy(), _sparse.raw_uint32(bits2, tuple(p.shape)), s2.numpy(), indptr, indices, 0
    )
    assert torch.equal(s, s2)
    rows = np.repeat(np.arange(p.shape[0]), np.diff(indptr))
    assert np.array_equal(np.stack([rows, indices[: indptr[-1]]], 1), (s > 0).nonzero().numpy())


def test_sparse_transposed_product_is_exact():
    rng = np.random.default_rng(1)
    x = rng.random((30, 50)) < 0.2
    R = rng.standard_normal((30, 7)).astype(np.float32)
    indptr = np.concatenate([[0], np.cumsum(x.sum(1))]).astype(np.int64)
    indices = x.nonzero()[1].astype(np.int64)
    G = np.empty((50, 7), np.float32)
    _sparse.xt_r(indptr, indices, R, G)
    np.testing.assert_allclose(G, x.T.astype(np.float32) @ R, atol=1e-5)
    q = rng.standard_normal(30).astype(np.float32)
    o = rng.standard_normal(50).astype(np.float32)
    xtq, xo = np.empty(50, np.float32), np.empty(30, np.float32)
    _sparse.x_products(indptr, indices, q, o, xtq, xo)
    np.testing.assert_allclose(xtq, x.T @ q, atol=1e-5)
    np.testing.assert_allclose(xo, x @ o, atol=1e-5)


def test_fast_step_resumes_bit_for_bit():
    """The fast step's bit generator travels with the checkpoint: a resumed trainer continues
    with the same draws as one that never stopped."""
    data = sparse_data()
    cfg = BMTrainConfig(model="rbm", hidden=6, epochs=2, batch_size=20, lr=0.05, chains="pcd")
    a = BMTrainer(cfg, data)
    a.run_epoch(0)
    b = BMTrainer(cfg, data)
    b.load_state_dict(a.state_dict())
    a.run_epoch(1)
    b.run_epoch(1)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_fast_path_is_used_only_where_it_applies():
    data = sparse_data()
    base = dict(model="rbm", hidden=5, epochs=1, batch_size=20)
    assert BMTrainer(BMTrainConfig(**base), data)._fast_rbm_applies()
    for extra in (
        {"fast": False},
        {"k": 2},
        {"kernel": "metropolis"},
        {"centering": "none"},
        {"model": "classrbm"},
    ):
        assert not BMTrainer(BMTrainConfig(**{**base, **extra}), data)._fast_rbm_applies(), extra


def test_fast_path_steps_aside_for_a_short_persistent_batch_and_for_non_binary_data():
    """PCD with fewer items than chains (a training set smaller than the batch) and data that are
    not +/-1 spins take the plain step, and training still works."""
    data = sparse_data(n=15)  # fewer images than the batch of 20
    cfg = BMTrainConfig(model="rbm", hidden=5, epochs=1, batch_size=20, chains="pcd")
    t = BMTrainer(cfg, data)
    assert t._fast_rbm_applies() and not t._fast_rbm_applies(15)
    t.run_epoch(0)
    assert t._fast is None and all(torch.isfinite(p).all() for p in t.model.parameters())
    cd = BMTrainer(BMTrainConfig(model="rbm", hidden=5, epochs=1, batch_size=20, chains="cd"), data)
    assert cd._fast_rbm_applies(15)
    grey = BMData(
        np.full((40, 6), 0.25, np.float32), np.zeros(40, int), np.zeros((5, 6), np.float32), np.zeros(5, int)
    )
    assert not BMTrainer(
        BMTrainConfig(model="rbm", hidden=3, epochs=1, batch_size=20), grey
    )._fast_rbm_applies()


def test_fast_step_rewinds_its_bits_and_checks_indices():
    """Loading a checkpoint from before the first fast step restarts the fast step's bits (as a
    fresh trainer would); an out-of-range item index raises instead of reaching the kernels; a
    NaN probability draws -1 like torch.where(u < p, 1, -1)."""
    data = sparse_data()
    cfg = BMTrainConfig(model="rbm", hidden=6, epochs=1, batch_size=20, lr=0.05, chains="cd")
    a = BMTrainer(cfg, data)
    before = a.state_dict()
    a.run_epoch(0)
    a.load_state_dict(before)
    a.run_epoch(0)
    b = BMTrainer(cfg, data)
    b.run_epoch(0)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)
    with pytest.raises(IndexError, match="out of range"):
        a._fast_rbm_grad(np.array([0, len(data.y_train)]))
    p = torch.tensor([[float("nan"), 1.0, 0.0]])
    s = torch.empty_like(p)
    _sparse.draw_spins(p.numpy(), np.array([[0, 5, 5]], np.uint32), s.numpy())
    assert s.tolist() == [[-1.0, 1.0, -1.0]]
