"""The fast RBM CD-1/PCD-1 step (labml.bm.training.BMTrainer._fast_rbm_grad) is the standard
step: for the same generator state it draws the same spins and gives the same parameter
gradient as the plain path (`_set_generative_grad`), on sparse data where its shortcuts
(sparse data field, compacted products) are actually taken."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labml.bm.kernels import heat_bath_spins
from labml.bm.training import BMData, BMTrainConfig, BMTrainer, _active_columns

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


@pytest.mark.parametrize("chains", ["cd", "pcd"])
@pytest.mark.parametrize("centering", ["data", "bits"])
def test_fast_step_gives_the_plain_parameter_gradient(chains, centering):
    data = sparse_data()
    cfg = BMTrainConfig(
        model="rbm", hidden=9, epochs=1, batch_size=20, lr=0.05, chains=chains, centering=centering
    )
    a = BMTrainer(cfg, data)
    assert a._fast_rbm_applies()
    a.run_epoch(0)  # trains through the fast path; the chains and offsets are now non-trivial
    state = a.state_dict()
    b = BMTrainer(cfg, data)
    b.load_state_dict(state)
    idx = np.arange(40, 60)
    v = a.v_train[idx]
    assert _active_columns(v) is not None  # the compacted products are exercised
    a.optimizer.zero_grad()
    a._fast_rbm_grad(v, idx)
    b.optimizer.zero_grad()
    b._set_generative_grad(b.v_train[idx], None)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        # float32 rounding only (tanh vs 2 sigmoid - 1, summation order), amplified by the sums
        # over ~60 pixels in the centring terms; one different spin would move an entry by ~0.1
        torch.testing.assert_close(pa.grad, pb.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(a.offset_h, b.offset_h)
    if chains == "pcd":  # the persistent chains made the same moves
        assert torch.equal(a.chains.state["v"], b.chains.state["v"])
        assert torch.equal(a.chains.state["h"], b.chains.state["h"])
    # the model-sample products took the compacted path too (model keeps the dead pixels at -1)
    assert _active_columns(a.chains.state["v"] if chains == "pcd" else v) is not None


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
