"""The accuracy-against-n sweep writes its table and plot and resumes without repeating runs."""

from __future__ import annotations

import torch

from labml.synapses import sweep

torch.set_num_threads(1)


def test_sweep_writes_table_and_plot_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("LABML_DATA", "digits")
    base = {"epochs": 1, "patience": 0, "train_size": 200, "test_passes": 2}
    rows = sweep.run_sweep(
        tmp_path, ns=(1, 4), seeds=(0,), baselines=("perceptron",), no_variance_ns=(), base=base
    )
    assert {(r["variant"], r["n"]) for r in rows} == {("stochastic", 1), ("stochastic", 4), ("perceptron", 0)}
    table = (tmp_path / "table.md").read_text()
    assert "| stochastic | 4 | 1 |" in table and "| perceptron | - | 1 |" in table
    assert (tmp_path / "accuracy_vs_n.png").read_bytes()[:4] == b"\x89PNG"
    # Run again with one more seed: only the new seed's runs are trained.
    calls = []
    real = sweep.SynapseTrainer

    class Counting(real):
        def fit(self, *a, **k):
            calls.append(self.config.seed)
            return super().fit(*a, **k)

    monkeypatch.setattr(sweep, "SynapseTrainer", Counting)
    rows = sweep.run_sweep(
        tmp_path, ns=(1, 4), seeds=(0, 1), baselines=("perceptron",), no_variance_ns=(), base=base
    )
    assert calls == [1, 1, 1] and len(rows) == 6
