"""Library code draws only from explicit generators: a training run (Boltzmann machine, stochastic
synapses, the regression plan; directly and on the run engine) leaves torch's and numpy's global random
state exactly as it found it, and its results do not depend on that state."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from labml.bm.training import BMData, BMTrainConfig, BMTrainer
from labml.synapses.trainer import SynapseTrainConfig, SynapseTrainer

torch.set_num_threads(1)


def _bas() -> BMData:
    rng = np.random.default_rng(0)
    x = (rng.random((120, 16)) < 0.5).astype(np.float32)
    y = rng.integers(0, 2, 120)
    return BMData(x[:90], y[:90], x[90:], y[90:])


def _bm(**kw):
    cfg = BMTrainConfig(epochs=2, batch_size=15, eval_ais_betas=50, eval_ais_chains=5, **kw)
    tr = BMTrainer(cfg, _bas())
    tr.fit()
    return tr.evaluate(), tr.model.state_dict()


def _synapses(**kw):
    cfg = SynapseTrainConfig(epochs=2, patience=0, train_size=150, test_size=50, test_passes=2,
                             data="digits", **kw)
    tr = SynapseTrainer(cfg)
    tr.fit()
    return tr.evaluate(), tr.model.state_dict()


def _regression():
    from plans import RegressionPlan

    plan = RegressionPlan(epochs=2, dropout=0.3, seed=3)
    plan._build()

    class _Ctx:
        def emit(self, *a):
            pass

    for i in range(2):
        plan.step(i, _Ctx())
    return plan.results(), plan.model.state_dict()


RUNS = {
    "rbm (fused step)": lambda: _bm(model="rbm", hidden=4),
    "classrbm with dropout": lambda: _bm(model="classrbm", hidden=4, loss="hybrid", dropout=0.2,
                                         input_dropout=0.1),
    "bm": lambda: _bm(model="bm", hidden=2),
    "stochastic synapses": lambda: _synapses(n=2),
    "perceptron": lambda: _synapses(model="perceptron"),
    "meanfield": lambda: _synapses(model="meanfield"),
    "regression plan": _regression,
}


def _global_state():
    return torch.random.get_rng_state().clone(), np.random.get_state(), random.getstate()


def _same(a, b) -> bool:
    return (torch.equal(a[0], b[0]) and a[1][0] == b[1][0] and np.array_equal(a[1][1], b[1][1])
            and a[1][2:] == b[1][2:] and a[2] == b[2])


@pytest.mark.parametrize("name", list(RUNS))
def test_training_leaves_the_global_random_state_untouched_and_does_not_depend_on_it(name):
    torch.manual_seed(123)
    np.random.seed(123)
    before = _global_state()
    res_a, model_a = RUNS[name]()
    assert _same(before, _global_state()), f"{name} used or reseeded a global generator"
    torch.manual_seed(7)  # another global state: the same run
    np.random.seed(7)
    res_b, model_b = RUNS[name]()
    assert res_a == res_b or str(res_a) == str(res_b)  # NaN-safe
    for k in model_a:
        assert torch.equal(model_a[k], model_b[k]), k


def test_a_run_on_the_engine_leaves_the_global_random_state_untouched(tmp_path, mnist_dir):
    from labml.bm.kind import BMTraining
    from labml.runs.engine import RunEngine

    torch.manual_seed(5)
    np.random.seed(5)
    before = _global_state()
    plan = BMTraining(model="classrbm", loss="discriminative", hidden=4, epochs=2, train_size=100,
                      test_size=50, data=str(mnist_dir))
    out = RunEngine(progress=False, handle_sigint=False).run(plan, tmp_path / "bm")
    assert out.status == "success"
    assert _same(before, _global_state())
