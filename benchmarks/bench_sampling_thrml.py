"""The thrml side of benchmarks/bench_sampling.py, run by an interpreter that has thrml 0.1.4 (JAX).

Protocol on stdin/stdout, one JSON object per line, so that bench_sampling.py can interleave its
own timings with these in one run:

    {"op": "setup", "graph": "FILE.npz", "chains": C, "sweeps": S, "seed": 0}
        -> {"ok": true, "compile_s": ...}
    {"op": "run"}                                                          -> {"seconds": ...}
    {"op": "check"}  -> {"mean_spin": [...]}   (mean of each unit over the chains, for a sanity check)
    {"op": "quit"}

The graph file holds edge lists i, j (i < j), weights, biases, beta and the colour of each unit;
thrml's IsingEBM has E = -beta (sum b s + sum J s s), the model of bench_sampling.py at T = 1/beta.
Chains are a jax.vmap over sample_states (thrml's own batching); one run is `sweeps` block-Gibbs
sweeps of every chain (n_warmup = sweeps, n_samples = 1), jitted once at setup.
"""

from __future__ import annotations

import json
import sys
import time


def _setup(cmd: dict):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from thrml import Block, SamplingSchedule, SpinNode, sample_states
    from thrml.models import IsingEBM, IsingSamplingProgram, hinton_init

    g = np.load(cmd["graph"])
    n = int(g["biases"].size)
    nodes = [SpinNode() for _ in range(n)]
    edges = [(nodes[a], nodes[b]) for a, b in zip(g["i"].tolist(), g["j"].tolist(), strict=True)]
    colour = g["colour"]
    blocks = [Block([nodes[k] for k in np.flatnonzero(colour == c)]) for c in np.unique(colour)]
    biases = jnp.asarray(g["biases"], jnp.float32)
    weights = jnp.asarray(g["weights"], jnp.float32)
    model = IsingEBM(nodes, edges, biases, weights, jnp.asarray(float(g["beta"]), jnp.float32))
    program = IsingSamplingProgram(model, blocks, clamped_blocks=[])
    schedule = SamplingSchedule(n_warmup=int(cmd["sweeps"]), n_samples=1, steps_per_sample=1)
    C = int(cmd["chains"])
    key = jax.random.key(int(cmd.get("seed", 0)))
    k_init, k_run = jax.random.split(key)
    init = hinton_init(k_init, model, blocks, (C,))
    all_nodes = [Block(nodes)]

    @jax.jit
    def run(keys, init_state):
        return jax.vmap(lambda k, s: sample_states(k, program, schedule, s, [], all_nodes))(keys, init_state)

    keys = jax.random.split(k_run, C)
    t0 = time.perf_counter()
    out = run(keys, init)
    jax.block_until_ready(out)
    state = {"run": run, "keys": keys, "init": init, "out": out, "split": jax.random.split}
    return state, time.perf_counter() - t0


def main() -> None:
    import jax

    state = None
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        if cmd["op"] == "setup":
            state, compile_s = _setup(cmd)
            reply = {"ok": True, "compile_s": compile_s, "devices": str(jax.devices())}
        elif cmd["op"] == "run":
            state["keys"] = jax.vmap(lambda k: jax.random.split(k)[0])(state["keys"])  # fresh draws
            t0 = time.perf_counter()
            out = state["run"](state["keys"], state["init"])
            jax.block_until_ready(out)
            reply = {"seconds": time.perf_counter() - t0}
            state["out"] = out
        elif cmd["op"] == "check":
            import numpy as np

            spins = 2.0 * np.asarray(state["out"][0], np.float64) - 1.0  # (chains, 1, n)
            reply = {"mean_spin": spins.reshape(spins.shape[0], -1).mean(0).tolist()}
        else:
            reply = {"error": f"unknown op {cmd['op']!r}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
