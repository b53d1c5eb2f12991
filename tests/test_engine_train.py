"""`labml train synapses` on the run engine (labml.engine_train): same command contract, plus
checkpoints, resume and dry runs."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from labml import checkpoint, runs
from labml.commands.train import add_synapse_arguments
from labml.engine_train import cmd_train_synapses, synapse_config_from_args
from labml.errors import UserError

torch.set_num_threads(1)


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_synapse_arguments(p)
    if not any(a.dest == "run_dir" for a in p._actions):
        p.add_argument("--run-dir")
    if not any(a.dest == "dry_run" for a in p._actions):
        p.add_argument("--dry-run", action="store_true")
    return p.parse_args(list(argv))


def test_train_synapses_on_the_engine_keeps_the_command_contract_and_checkpoints(tmp_path, capsys):
    rd = tmp_path / "run"
    rc = cmd_train_synapses(_args("--n", "2", "--epochs", "2", "--train-size", "200", "--test-passes", "2",
                                  "--run-dir", str(rd), "--json"))
    assert rc == 0
    out, err = capsys.readouterr()
    res = json.loads(out.strip().splitlines()[-1])
    want = {"n", "epochs", "test_accuracy", "frac_binary", "sec_per_epoch", "best_epoch", "run_dir"}
    assert want <= set(res)
    assert res["n"] == 2 and res["epochs"] == 2 and 0 <= res["test_accuracy"] <= 1
    assert "epoch   1" in err
    run = runs.load(rd)
    assert run.meta["status"] == "success" and run.parameters["n"] == 2
    assert run.meta["plan"]["factory"] == "labml.engine_plans:TrainerPlan"  # `labml resume` can rebuild it
    assert run.meta["results"]["test_accuracy"] == res["test_accuracy"]
    assert [r["epoch"] for r in run.series("epochs")] == [0, 1]
    assert np.load(rd / "model.npz")["p0"].shape == (1, 10, 64)
    assert checkpoint.read_header(checkpoint.list_checkpoints(rd)[-1])["step"] == 2


def test_options_map_onto_every_config_field_and_bad_values_are_clear_errors(tmp_path):
    cfg = synapse_config_from_args(_args("--n", "4", "--field-step", "0.05", "--no-variance-term",
                                         "--hidden", "8", "4"))
    assert (cfg["n"], cfg["field_step_mT"], cfg["variance_term"], cfg["hidden"]) == (4, 0.05, False, [8, 4])
    with pytest.raises(UserError, match="n must be an integer >= 1"):
        cmd_train_synapses(_args("--n", "0"))
    with pytest.raises(UserError, match="--backend rig needs --rig"):
        cmd_train_synapses(_args("--backend", "rig"))
    assert cmd_train_synapses(_args("--backend", "rig", "--rig", "sim", "--dry-run",
                                    "--run-dir", str(tmp_path / "x"))) == 0
    assert not (tmp_path / "x").exists()
