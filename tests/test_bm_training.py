"""Training Boltzmann machines: learning improves the exact log-likelihood, the trainer is
steppable and resumes exactly from its state_dict, the ClassRBM classifies, AIS agrees with the
exact answer, and `labml train bm` writes a run folder and its JSON line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from instruments.roles import SynapseReads
from labml.bm.evaluation import exact_log_partition
from labml.bm.training import BMData, BMTrainConfig, BMTrainer
from labml.cli import main

torch.set_num_threads(1)


def bars_and_stripes_data(n_train=600, n_test=200, seed=0) -> BMData:
    """4x4 bars (label 0) and stripes (label 1), the two ambiguous all-0/all-1 patterns removed."""
    pats, labels = [], []
    for bits in range(1, 2**4 - 1):
        row = np.array([(bits >> i) & 1 for i in range(4)])
        pats.append(np.repeat(row[None, :], 4, 0).ravel())
        labels.append(0)
        pats.append(np.repeat(row[:, None], 4, 1).ravel())
        labels.append(1)
    P, L = np.array(pats, dtype=np.float32), np.array(labels)
    rng = np.random.default_rng(seed)
    i, j = rng.integers(len(P), size=n_train), rng.integers(len(P), size=n_test)
    return BMData(P[i], L[i], P[j], L[j])


@pytest.fixture(scope="module")
def bas() -> BMData:
    return bars_and_stripes_data()


def test_pcd_training_raises_the_exact_test_log_likelihood(bas):
    """A 16x8 RBM trained with PCD-1 (heat bath) for 15 epochs gains > 2 nats of exact test
    log-likelihood over its start (the independent-pixel model, 16 log 2 = -11.09 nats)."""
    cfg = BMTrainConfig(model="rbm", hidden=8, epochs=15, batch_size=20, lr=0.04, seed=0)
    tr = BMTrainer(cfg, bas)
    before = tr.evaluate()
    assert before["loglik_method"] == "exact"
    assert before["test_loglik"] == pytest.approx(-16 * math.log(2), abs=0.05)
    tr.fit()
    after = tr.evaluate()
    assert after["test_loglik"] > before["test_loglik"] + 2.0
    assert tr.updates == 15 * 30 and len(tr.history) == 15


@pytest.mark.parametrize("kernel, chains", [("heatbath", "pcd"), ("metropolis", "pcd"), ("soft", "pcd"),
                                            ("heatbath", "pt")])
def test_trainer_resumes_exactly_from_its_state_dict(bas, kernel, chains):
    """One epoch, checkpoint, a fresh trainer loads it and runs epochs 2 and 3: identical parameters
    to three uninterrupted epochs (model, optimiser, chains and every RNG are in the state; parallel
    tempering also the parity of the next exchange round: 25 updates per epoch, so it is odd)."""
    cfg = BMTrainConfig(
        model="rbm",
        hidden=4,
        epochs=3,
        batch_size=24,
        lr=0.02,
        kernel=kernel,
        chains=chains,
        pt_replicas=3,
        seed=3,
        kernel_options={"n_steps": 3} if kernel == "soft" else {},
    )
    a = BMTrainer(cfg, bas)
    a.fit()
    b = BMTrainer(cfg, bas)
    b.run_epoch(0)
    state = b.state_dict()
    c = BMTrainer(cfg, bas)
    c.load_state_dict(state)
    assert c.epoch == 1 and c.updates == 25
    c.fit()
    for (name, pa), pc in zip(a.model.state_dict().items(), c.model.state_dict().values(), strict=True):
        assert torch.equal(pa, pc), name


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_classrbm_discriminative_classifies_by_free_energy(bas, dropout):
    cfg = BMTrainConfig(
        model="classrbm",
        hidden=8,
        epochs=10,
        batch_size=20,
        lr=0.01,
        loss="discriminative",
        optimizer="adam",
        dropout=dropout,
        input_dropout=dropout / 3,
        seed=0,
    )
    tr = BMTrainer(cfg, bas)
    tr.fit()
    ev = tr.evaluate()
    # 200 test items: accuracy >= 0.95 rejects a 0.5 guesser with p < 1e-40
    assert ev["test_accuracy"] >= 0.95
    assert ev["loglik_method"] == "exact" and math.isfinite(ev["test_loglik"])


def test_classrbm_hybrid_and_generative_losses_train(bas):
    """Hybrid (discriminative + 0.01 generative) classifies; generative raises the exact joint
    log-likelihood log p(v, y) by > 1 nat."""
    cfg = BMTrainConfig(
        model="classrbm", hidden=8, epochs=6, batch_size=20, loss="hybrid", lr=0.01, optimizer="adam", seed=1
    )
    tr = BMTrainer(cfg, bas)
    tr.fit()
    assert tr.evaluate()["test_accuracy"] >= 0.9
    cfg = BMTrainConfig(
        model="classrbm", hidden=8, epochs=6, batch_size=20, loss="generative", lr=0.04, seed=1
    )
    tr = BMTrainer(cfg, bas)
    before = tr.evaluate()["test_loglik"]
    tr.fit()
    assert tr.evaluate()["test_loglik"] > before + 1.0


def test_bm_with_hidden_units_learns(bas):
    """Fully connected BM, 8 visible (two rows of the patterns) + 2 hidden spins, exact LL."""
    small = BMData(bas.x_train[:, :8], bas.y_train, bas.x_test[:, :8], bas.y_test)
    cfg = BMTrainConfig(model="bm", hidden=2, epochs=3, batch_size=20, lr=0.05, seed=0)
    tr = BMTrainer(cfg, small)
    before = tr.evaluate()["test_loglik"]
    tr.fit()
    after = tr.evaluate()
    assert after["loglik_method"] == "exact"
    assert after["test_loglik"] > before + 1.0


def test_ais_evaluation_agrees_with_exact(bas):
    """Forcing AIS on a 16x8 RBM: forward and reverse AIS log Z within 0.1 nats of exact."""
    cfg = BMTrainConfig(
        model="rbm",
        hidden=8,
        epochs=3,
        batch_size=20,
        lr=0.02,
        seed=0,
        eval_max_exact_hidden=4,
        eval_ais_betas=1000,
        eval_ais_chains=100,
        eval_reverse_sweeps=200,
    )
    tr = BMTrainer(cfg, bas)
    tr.fit()
    ev = tr.evaluate()
    exact = exact_log_partition(tr.model.double())
    tr.model.float()
    assert ev["loglik_method"] == "ais"
    assert ev["ais_log_Z"] == pytest.approx(exact, abs=0.1)
    assert ev["reverse_ais_log_Z"] == pytest.approx(exact, abs=0.1)


class _RangeCheckingRig:
    """Minimal rig: nominal calibration, Bernoulli reads at the calibrated p, range enforced."""

    n_wires = 2

    def __init__(self):
        from instruments.calibration import Logistic

        self.cal = Logistic()
        self.rng = np.random.default_rng(0)

    def calibration(self, wire):
        return self.cal

    def field_range_mT(self, wire):
        return (1.7, 7.5)

    def read_synapses(self, fields_mT, wires, n):
        assert np.all((fields_mT >= 1.7) & (fields_mT <= 7.5))
        return SynapseReads(self.rng.binomial(n, self.cal.p(fields_mT)), n, 0.01 * len(fields_mT), 0.0)


def test_rig_kernel_trains_through_rig_reads_within_range(bas):
    rig = _RangeCheckingRig()
    cfg = BMTrainConfig(model="rbm", hidden=4, epochs=2, batch_size=20, lr=0.02, kernel="rig", seed=0)
    tr = BMTrainer(cfg, bas, rig=rig)
    tr.fit()
    # PCD-1: per update one sweep of 20 chains x (16 visible + 4 hidden) reads, plus the initial
    # hidden draw of the persistent chains
    assert tr.kernel.reads == 2 * 30 * 20 * 20 + 20 * 4
    assert math.isfinite(tr.evaluate()["test_loglik"])


def _train_bm(argv):
    """`labml train bm ARGV` through the command's real entry point."""
    return main(["train", "bm", *argv])


@pytest.mark.parametrize("chains", [[], ["--chains", "pt", "--pt-replicas", "3"]])
def test_cli_trains_and_prints_json_last(tmp_path, capsys, mnist_dir, chains):
    data = mnist_dir
    run_dir = tmp_path / "run"
    rc = _train_bm(["--model", "rbm", "--hidden", "4", "--epochs", "2", "--data", str(data), "--train-size",
                    "300", "--run-dir", str(run_dir), "--json", "--seed", "1", *chains])
    assert rc == 0
    out = capsys.readouterr().out.strip().splitlines()
    res = json.loads(out[-1])
    assert res["loglik_method"] == "exact" and res["test_loglik"] < 0
    assert res["sec_per_epoch"] > 0 and res["run_dir"] == str(run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "success" and meta["results"]["test_loglik"] == pytest.approx(res["test_loglik"])
    from labml.runs import store

    epochs = [r["epoch"] for r in store.load(run_dir).series("metrics")]
    assert epochs and epochs == list(range(len(epochs)))
    assert (run_dir / "run.h5").is_file() and (run_dir / "figures" / "samples.png").stat().st_size > 0
    assert list((run_dir / "checkpoints").iterdir())


def test_cli_classrbm_reports_accuracy(tmp_path, capsys, mnist_dir):
    rc = _train_bm(["--model", "classrbm", "--loss", "discriminative", "--hidden", "10", "--epochs", "5",
                    "--data", str(mnist_dir), "--train-size", "300", "--run-dir", str(tmp_path / "r"),
                    "--json", "--no-samples"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # 10 classes, 300 training images, 200 balanced test images of the fixture: > 0.3 rejects chance
    # (0.1) at p = 1e-15 (binomial); seeds 0-7 of this setting on the fixture give 0.445-0.615
    assert 0.3 < res["test_accuracy"] <= 1.0


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--model", "rbm", "--loss", "discriminative"], "need --model classrbm"),
        (["--kernel", "rig"], "--kernel rig needs --rig"),
        (["--learning", "relaxation", "--model", "classrbm", "--loss", "hybrid"], "relaxation is generative"),
        (["--lr", "-1"], "lr=-1"),
        (["--chains", "pt", "--pt-beta-min", "1"], "pt-beta-min"),
        (["--chains", "pt", "--model", "bm"], "parallel tempering trains an RBM or ClassRBM"),
        (["--chains", "pt", "--kernel", "soft"], "needs heatbath or metropolis"),
    ],
)
def test_cli_refuses_bad_settings_before_training(tmp_path, capsys, argv, match):
    rc = _train_bm(["--hidden", "4", "--epochs", "1", "--run-dir", str(tmp_path / "r"), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("labml: error: ") and match in err, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("centering", ["none", "data", "bits"])
def test_rbm_update_is_the_centred_force_difference(bas, centering):
    """The fused RBM step (one matrix product for both statistics) equals -beta (f_target - f_model)
    mapped through the centring transform, computed the long way from the same chain state."""
    cfg = BMTrainConfig(model="rbm", hidden=7, epochs=1, batch_size=20, lr=0.01, centering=centering)
    a = BMTrainer(cfg, bas)
    a.run_epoch(0)
    state = a.state_dict()
    a.optimizer.zero_grad()
    a._set_generative_grad(a.v_train[:20], None)
    b = BMTrainer(cfg, bas)
    b.load_state_dict(state)
    m, v = b.model, b.v_train[:20]
    with torch.no_grad():
        hf = m.hidden_field(v)
        f_t = m.forces({"v": v}, torch.tanh(m.beta * hf))
        f_m = m.forces(b.chains.negative(v, None, hf))
        D = {k: f_t[k] - f_m[k] for k in f_t}
        if centering != "none":
            ov, oh = b.offset_v, b.offset_h
            if centering == "data":
                oh.mul_(1 - cfg.centering_rate).add_(cfg.centering_rate * f_t["b"])
            Gw = D["W"] - torch.outer(ov, D["b"]) - torch.outer(D["a"], oh)
            D = {"W": Gw, "a": D["a"] - Gw @ oh, "b": D["b"] - Gw.t() @ ov}
    for name, p in a.model.named_parameters():
        torch.testing.assert_close(p.grad, -m.beta * D[name], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("decay_biases", [False, True])
def test_weight_decay_shrinks_the_couplings_and_the_biases_only_when_asked(bas, decay_biases):
    """One SGD update with weight decay wd is the update without it minus lr * wd * the parameter,
    on W always and on the biases only with decay_biases (the RBM benchmark decays W alone)."""
    one_batch = BMData(bas.x_train[:20], bas.y_train[:20], bas.x_test, bas.y_test)
    cfg = dict(model="rbm", hidden=7, epochs=1, batch_size=20, lr=0.05, decay_biases=decay_biases)
    plain, decayed = BMTrainer(BMTrainConfig(**cfg), one_batch), BMTrainer(
        BMTrainConfig(**cfg, weight_decay=0.3), one_batch)
    before = {k: p.detach().clone() for k, p in decayed.model.named_parameters()}
    assert before["a"].abs().max() > 0.1  # visible biases start at the data's log-odds
    plain.run_epoch(0)
    decayed.run_epoch(0)
    assert plain.updates == decayed.updates == 1
    p_plain = dict(plain.model.named_parameters())
    for name, p in decayed.model.named_parameters():
        shrink = 0.05 * 0.3 * before[name] if (name == "W" or decay_biases) else 0 * before[name]
        torch.testing.assert_close(p.detach(), p_plain[name].detach() - shrink, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("model", ["rbm", "classrbm"])
def test_parallel_tempering_learns_bars_and_stripes_better_than_pcd_at_equal_sweeps(bas, model):
    """Bars and stripes is the textbook multimodal set where persistent Gibbs chains stop mixing.
    PT with 5 replicas and one sweep each against PCD-5 (five sweeps per update each), 30 epochs,
    8 seeds: the exact test log-likelihood (ClassRBM: of the pairs (v, y)) of PT is higher by more
    than 1 nat, one-sided 95 % t lower bound on the paired mean difference (RBM, seeds 0-7: 2.1 to
    8.1 nats, mean 3.9)."""
    from scipy import stats

    diffs = []
    for seed in range(8):
        ll = {}
        for chains, k in (("pcd", 5), ("pt", 1)):
            cfg = BMTrainConfig(model=model, hidden=8, epochs=30, batch_size=20, lr=0.05, chains=chains, k=k,
                                loss="generative", pt_replicas=5, pt_beta_min=0.3, seed=seed)
            t = BMTrainer(cfg, bas)
            t.fit()
            ll[chains] = t.evaluate()["test_loglik"]
        diffs.append(ll["pt"] - ll["pcd"])
    d = np.array(diffs)
    lower = d.mean() - stats.t.ppf(0.95, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    assert lower > 1.0, diffs


@pytest.mark.parametrize("change, match", [
    ({"pt_replicas": 1}, "pt_replicas=1: must be an integer >= 2"),
    ({"pt_beta_min": 1.0}, "pt_beta_min=1.0: must be in (0, 1)"),
    ({"model": "bm", "hidden": 2}, "chains='pt': parallel tempering trains an RBM or ClassRBM"),
])
def test_parallel_tempering_settings_are_checked_in_one_line(change, match):
    from labml.errors import UserError

    with pytest.raises(UserError) as e:
        BMTrainConfig(**{"model": "rbm", "chains": "pt", **change}).validate()
    assert match in str(e.value) and "\n" not in str(e.value)


def test_a_checkpoint_from_before_couplings_only_decay_resumes_exactly(bas):
    """Checkpoints written before `decay_biases` hold one optimiser group; a trainer with the two
    groups (couplings, biases) resumes from them. Without decay the groups change nothing, so the
    resumed run equals the uninterrupted one bit for bit (momentum: the state per parameter counts)."""
    cfg = dict(model="rbm", hidden=4, epochs=3, batch_size=24, lr=0.02, momentum=0.5, seed=5)
    a = BMTrainer(BMTrainConfig(**cfg), bas)
    a.fit()
    b = BMTrainer(BMTrainConfig(**cfg), bas)
    b.run_epoch(0)
    state = b.state_dict()
    assert len(state["optimizer"]["param_groups"]) == 1
    c = BMTrainer(BMTrainConfig(**cfg, decay_biases=False), bas)
    assert len(c.optimizer.param_groups) == 2
    c.load_state_dict(state)
    c.fit()
    for (name, pa), pc in zip(a.model.state_dict().items(), c.model.state_dict().values(), strict=True):
        assert torch.equal(pa, pc), name


def test_parallel_tempering_runs_on_fewer_items_than_chains(bas):
    """15 training items and 20 chains per replica: the replicas start from the items repeated."""
    few = BMData(bas.x_train[:15], bas.y_train[:15], bas.x_test, bas.y_test)
    cfg = BMTrainConfig(model="rbm", hidden=4, epochs=2, batch_size=20, chains="pt", pt_replicas=3)
    t = BMTrainer(cfg, few)
    t.fit()
    assert t.updates == 2 and t.chains.state["v"].shape == (60, 16)


def test_a_trainer_without_test_items_trains_the_same_and_reports_no_figures(bas):
    """A final model trained on every item (no test set, as `--n-val 0` builds it): training is
    bit-identical to the same run with a test set, and evaluate() reports no figures rather than
    failing on an empty set."""
    cfg = BMTrainConfig(model="classrbm", hidden=8, epochs=2, batch_size=20, loss="generative", lr=0.04,
                        seed=3)
    empty = BMData(bas.x_train, bas.y_train, bas.x_test[:0], bas.y_test[:0])
    without, with_test = BMTrainer(cfg, empty).fit(), BMTrainer(cfg, bas).fit()
    assert without.evaluate() == {"test_loglik": None, "loglik_method": None}
    for key, value in with_test.model.state_dict().items():
        assert torch.equal(without.model.state_dict()[key], value), key


@pytest.mark.parametrize("model", ["rbm", "classrbm"])
def test_replaced_training_inputs_train_as_a_trainer_built_on_them(bas, model):
    """replace_training_inputs (a fresh binarisation each epoch): after the swap, an epoch is
    bit-identical to one of a trainer built on the new inputs and restored to the same state, for
    the fused RBM step (its sparse index of the data rebuilt, its bit generator kept) and the
    plain ClassRBM step."""
    cfg = BMTrainConfig(model=model, hidden=8, epochs=2, batch_size=20, lr=0.04, seed=5,
                        **({"loss": "generative"} if model == "classrbm" else {}))
    flipped = np.random.default_rng(0).random(bas.x_train.shape) < 0.1
    other = BMData(np.where(flipped, 1 - bas.x_train, bas.x_train), bas.y_train, bas.x_test, bas.y_test)
    swapped = BMTrainer(cfg, bas)
    assert swapped._fast_rbm_applies() == (model == "rbm")
    swapped.run_epoch(0)
    built = BMTrainer(cfg, other)
    built.load_state_dict(swapped.state_dict())
    swapped.replace_training_inputs(other.x_train)
    swapped.run_epoch(1)
    built.run_epoch(1)
    for key, value in built.model.state_dict().items():
        assert torch.equal(swapped.model.state_dict()[key], value), key
    # the swap changed what was learnt: the same epoch on the old inputs ends elsewhere
    kept = BMTrainer(cfg, bas)
    kept.run_epoch(0)
    kept.run_epoch(1)
    assert not torch.equal(kept.model.W, swapped.model.W)
