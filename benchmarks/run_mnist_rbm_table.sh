#!/bin/bash
# The RBM-500 table of issue 18 (benchmarks/README.md, "Full MNIST against published numbers"):
# PCD-1, lr 0.004 decayed (chosen on validation over 0.002, see benchmarks/README.md), 1000
# epochs, on the stochastic binarisation (seeds 0, 1, 2) and the 0.5 threshold (seed 0), one after
# the other. Every run resumes where it stopped, so rerunning
# this script continues the table (finished runs just print their final line); each session of a
# run stops after --hours (default 2.5).
#
#   benchmarks/run_mnist_rbm_table.sh DATA_DIR RUNS_DIR [HOURS]
#
# Run from the repository root; PYTHON defaults to .venv/bin/python.
set -u
DATA=${1:?usage: $0 DATA_DIR RUNS_DIR [HOURS]}
RUNS=${2:?usage: $0 DATA_DIR RUNS_DIR [HOURS]}
HOURS=${3:-2.5}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$RUNS"
for spec in stochastic:0 threshold:0 stochastic:1 stochastic:2; do
    bin=${spec%%:*}
    seed=${spec##*:}
    PYTHONPATH=. nice -n 19 "$PY" benchmarks/bench_mnist_rbm.py --data "$DATA" \
        --binarised "$RUNS/mnist_binarised_seed0.npz" --binarisation "$bin" --seed "$seed" \
        --lr 0.004 --epochs 1000 --val-every 50 --hours "$HOURS" \
        --run-dir "$RUNS/rbm500-pcd1-lr0.004-e1000-$bin-s$seed"
done
