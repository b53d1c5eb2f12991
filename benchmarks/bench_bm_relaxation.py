"""Learning by relaxation against the gradient trainers (docs/boltzmann.md): RBM 9x6 on 3x3 bars
and stripes, 20 epochs of 400 items, 20 chains / copies, step 0.05 per item, three seeds; prints a
Markdown table of the exact log-likelihood of the 14 patterns (optimum -log 14 = -2.64).

    .venv/bin/python benchmarks/bench_bm_relaxation.py
"""

import numpy as np
import torch

from labml.bm.training import BMData, BMTrainConfig, BMTrainer

torch.set_num_threads(1)


def bas(n):
    pats = []
    for bits in range(2**n):
        row = np.array([(bits >> i) & 1 for i in range(n)])
        pats.append(np.repeat(row[:, None], n, 1).ravel())
        pats.append(np.repeat(row[None, :], n, 0).ravel())
    return np.unique(np.array(pats), axis=0).astype(np.float32)


P = bas(3)
rng = np.random.default_rng(0)
X = P[rng.integers(len(P), size=400)]
data = BMData(X, np.zeros(400, int), P, np.zeros(len(P), int))


def run(name, **kw):
    res = []
    for seed in range(3):
        cfg = BMTrainConfig(
            model="rbm",
            hidden=6,
            epochs=20,
            batch_size=20,
            lr=0.05,
            seed=seed,
            centering="none",
            visible_bias_init="zero",
            **kw,
        )
        tr = BMTrainer(cfg, data)
        tr.fit()
        res.append(tr.evaluate()["test_loglik"])
    print(f"| {name} | {np.mean(res):.2f} | {' / '.join(f'{r:.2f}' for r in res)} |", flush=True)


print(
    "| method (RBM 9x6, 3x3 bars and stripes, 20 epochs of 400 items, batch 20, step 0.05 per item) "
    "| mean exact LL of the 14 patterns | seeds 0 / 1 / 2 |"
)
print("|---|---|---|")
run("gradient PCD-6 (heat bath)", chains="pcd", k=6)
run("gradient PCD-1", chains="pcd", k=1)
run("gradient CD-1", chains="cd", k=1)
run(
    "relaxation, separated: tau_spin 1, tau_data 6, tau_theta 120",
    learning="relaxation",
    relaxation=dict(tau_spin=1, dt=1, tau_data=6, tau_theta=120),
)
run(
    "relaxation, re-seeded: tau_data 1, tau_theta 20, reseed",
    learning="relaxation",
    relaxation=dict(tau_spin=1, dt=1, tau_data=1, tau_theta=20, reseed=True),
)
run(
    "relaxation, persistent: tau_data 1, tau_theta 20",
    learning="relaxation",
    relaxation=dict(tau_spin=1, dt=1, tau_data=1, tau_theta=20),
)
