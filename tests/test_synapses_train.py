"""Training stochastic-synapse networks: the reference protocol, checkpoints, the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from labml.data import load_dataset
from labml.errors import UserError
from labml.synapses.trainer import SynapseTrainConfig, SynapseTrainer, build_trainer

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset(None, train_size=600, seed=0)


@pytest.fixture(autouse=True)
def _no_env_data(monkeypatch):
    monkeypatch.setenv("LABML_DATA", "digits")


def test_stochastic_synapses_learn_digits(digits):
    tr = SynapseTrainer(SynapseTrainConfig(n=8, epochs=8, patience=0, seed=0), dataset=digits)
    res = tr.fit()
    # 450 test images, 16 passes: chance is 0.10; a working learner is far above it.
    assert res["test_accuracy"] > 0.75
    assert res["epochs"] == 8 and res["test_passes"] == 16 and res["sec_per_epoch"] > 0
    for layer in tr.model.layers:  # H stayed in the allowed field range
        assert layer.H.min() >= 0.0 and layer.H.max() <= 10.0


@pytest.fixture(scope="module")
def digits_full():
    return load_dataset(None, seed=0)


def test_n1_ends_more_binary_than_n64_and_needs_the_variance_term(digits_full):
    """The [E23] behaviour on the 8x8 digits (fixed seed, 12 epochs; 450 test images x 16 passes)."""
    res = {}
    for key, kw in {"n1": dict(n=1), "n64": dict(n=64), "n1-novar": dict(n=1, variance_term=False)}.items():
        res[key] = SynapseTrainer(
            SynapseTrainConfig(epochs=12, patience=0, seed=0, **kw), dataset=digits_full
        ).fit()
    assert res["n1"]["frac_binary"] > res["n64"]["frac_binary"] + 0.1
    assert res["n64"]["test_accuracy"] > res["n1"]["test_accuracy"]
    # Binomial sd of one accuracy on 450 images is ~0.02; the gap measured is ~0.1.
    assert res["n1"]["test_accuracy"] > res["n1-novar"]["test_accuracy"] + 0.03


def test_baselines_and_options_train(digits):
    for kw in (dict(model="perceptron"), dict(model="meanfield"), dict(signed=True, n=4)):
        res = SynapseTrainer(SynapseTrainConfig(epochs=3, patience=0, **kw), dataset=digits).fit()
        assert res["test_accuracy"] > 0.3, kw  # chance is 0.1
    for kw in (dict(hidden=[16], activation="sigmoid"), dict(hidden=[32])):  # step activations by default
        res = SynapseTrainer(SynapseTrainConfig(n=4, epochs=10, patience=0, **kw), dataset=digits).fit()
        assert res["test_accuracy"] > 0.3, kw


def test_early_stopping_after_patience_epochs_without_improvement(digits):
    cfg = SynapseTrainConfig(model="perceptron", lr=1e-12, epochs=50, patience=3)
    res = SynapseTrainer(cfg, dataset=digits).fit()
    assert res["epochs"] == 4 and res["best_epoch"] == 0


def test_checkpoint_resumes_exactly(digits):
    cfg = SynapseTrainConfig(n=4, epochs=5, patience=0, seed=2)
    a = SynapseTrainer(cfg, dataset=digits)
    a.run_epoch(0)
    a.run_epoch(1)
    state = a.state_dict()
    m_a = a.run_epoch(2)
    b = SynapseTrainer(cfg, dataset=digits)
    b.load_state_dict(state)
    m_b = b.run_epoch(2)
    for k in ("train_loss", "train_accuracy", "val_accuracy", "frac_binary"):
        assert m_a[k] == m_b[k], k
    assert torch.equal(a.model.layers[0].H, b.model.layers[0].H)


def test_bad_settings_are_named_before_anything_runs(digits):
    with pytest.raises(UserError, match="n must be an integer >= 1"):
        SynapseTrainer(SynapseTrainConfig(n=0), dataset=digits)
    with pytest.raises(UserError, match="step activations only"):
        SynapseTrainConfig(backend="rig", hidden=[8], activation="relu").validate()
    with pytest.raises(UserError, match="unknown config keys"):
        build_trainer({"n": 1, "learning_rate": 0.1})


def test_engine_builder_makes_a_steppable_trainer():
    tr = build_trainer({"n": 2, "epochs": 1, "train_size": 200})
    m = tr.run_epoch(0)
    assert {"epoch", "train_loss", "val_accuracy", "frac_binary", "stop"} <= set(m)
    assert "H0" in tr.arrays_() and "test_accuracy" in tr.evaluate(passes=2)


def test_command_line_json_and_run_folder(tmp_path, capsys):
    from labml.cli import main

    rd = tmp_path / "run"
    rc = main(
        [
            "train",
            "synapses",
            "--n",
            "2",
            "--epochs",
            "2",
            "--train-size",
            "200",
            "--run-dir",
            str(rd),
            "--json",
        ]
    )
    assert rc == 0
    out, err = capsys.readouterr()
    res = json.loads(out.strip().splitlines()[-1])
    assert {"n", "epochs", "test_accuracy", "frac_binary", "sec_per_epoch", "run_dir"} <= set(res)
    assert res["n"] == 2 and res["epochs"] == 2 and 0 <= res["test_accuracy"] <= 1
    assert "epoch   1" in err  # progress on stderr
    meta = json.loads((rd / "run.json").read_text())
    assert meta["status"] == "success" and meta["parameters"]["n"] == 2
    from labml.runs.store import load

    assert [r["epoch"] for r in load(rd).series("epochs")] == [0, 1]
    assert np.load(rd / "model.npz")["p0"].shape == (1, 10, 64)  # (devices, out, in)


def test_command_line_errors(capsys):
    from labml.cli import main

    assert main(["train", "synapses", "--backend", "rig", "--epochs", "1"]) == 2
    assert "--backend rig needs --rig" in capsys.readouterr().err
    assert main(["train", "synapses", "--n", "0"]) == 2
    assert "n must be an integer >= 1" in capsys.readouterr().err


def test_device_spread_gives_every_synapse_its_own_curve(digits):
    cfg = SynapseTrainConfig(n=4, epochs=1, patience=0, spread_H0_mT=0.3, spread_k_rel=0.1)
    tr = SynapseTrainer(cfg, dataset=digits)
    layer = tr.model.layers[0]
    H0 = layer.curve.H0.numpy()
    assert H0.shape == (1, 10, 64) and 0.25 < H0.std() < 0.35  # 640 draws: sd within ~4 standard errors
    np.testing.assert_allclose(layer.probabilities().detach().numpy(), 0.5, atol=1e-4)  # starts at p = 1/2
    assert tr.fit(run=None)["test_accuracy"] > 0.1
