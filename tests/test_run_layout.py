"""One run folder layout (run.json schema_version 2, model.npz, figures/, checkpoints/, run.log) for
every kind; the three old layouts list and load read-only, are refused on resume with a one-line
hint, and `labml runs --migrate` converts them; one runs root (--runs-root > $LABML_RUNS > ./runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from plans import RegressionPlan

from labml.cli import main as labml_main
from labml.errors import UserError
from labml.runs import store as runs
from labml.runs.engine import RunEngine

torch.set_num_threads(1)
REG = {"epochs": 3, "hidden": 4, "batch_size": 128, "seed": 1}


# ======================================================================================= new layout
def test_a_new_run_folder_has_the_one_layout(tmp_path):
    run = runs.Run.create("train-x", {"a": 1}, tmp_path / "r")
    assert json.loads((run.path / "run.json").read_text())["schema_version"] == runs.SCHEMA_VERSION
    assert run.layout == "current"
    run.append_row("epochs", {"epoch": 0, "loss": 0.5})
    run.save_arrays("weights", w=np.arange(3.0))
    out = run.save_model(model_config={"hidden": 4}, **{"layer.w": torch.ones(2, 2), "p0": np.eye(2)})
    assert out == run.path / "model.npz"
    again = runs.load(run.path)
    assert again.meta["model"] == "model.npz" and again.meta["model_config"] == {"hidden": 4}
    with np.load(run.path / "model.npz", allow_pickle=False) as data:  # numpy alone reads it
        assert sorted(data.files) == ["layer.w", "p0"]
    assert again.model()["layer.w"].shape == (2, 2)
    assert again.series("epochs") == [{"epoch": 0, "loss": 0.5}]
    assert list(again.arrays("weights")["w"]) == [0.0, 1.0, 2.0]
    fig = run.figure_path("samples.png")
    assert fig == run.path / "figures" / "samples.png" and fig.parent.is_dir()
    with pytest.raises(ValueError, match="Python objects"):
        run.save_arrays("bad", x=np.array([{"a": 1}], dtype=object))


def test_runs_root_is_the_option_else_the_environment_else_runs(monkeypatch, tmp_path):
    monkeypatch.delenv("LABML_RUNS", raising=False)
    assert runs.runs_root() == Path("runs")
    monkeypatch.setenv("LABML_RUNS", str(tmp_path / "env"))
    assert runs.runs_root() == tmp_path / "env"
    assert runs.runs_root(tmp_path / "opt") == tmp_path / "opt"
    with runs.using_runs_root(tmp_path / "opt"):
        assert runs.runs_root() == tmp_path / "opt"
    assert runs.runs_root() == tmp_path / "env"


def test_matches_is_simple_enough():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "C901", "--config",
                          "lint.mccabe.max-complexity=15", "labml/runs/store.py", "labml/commands/runs.py"],
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if "No module named ruff" in out.stderr:
        pytest.skip("ruff not installed")
    assert out.returncode == 0, out.stdout


# ======================================================================================= old layouts
def _header(params: dict) -> str:
    lines = ["Procedure: <labml.runs.pymeasure_series.RunSeries>", "Parameters:",
             *[f"\t{k}: {v}" for k, v in params.items()], "Data:"]
    return "".join(f"#{line}\n" for line in lines)


def _old_run_json(folder: Path, **meta) -> None:
    folder.mkdir(parents=True)
    base = {"uid": folder.name, "status": "success", "reason": None,
            "start_time": "2026-11-01T10:00:00+00:00", "stop_time": "2026-11-01T10:05:00+00:00",
            "parameters": {"epochs": 2}}
    (folder / "run.json").write_text(json.dumps({**base, **meta}))  # no schema_version: as written before


def old_train_folder(folder: Path) -> Path:
    """`labml train synapses` before the layout: epochs.csv, model.npz (H/p), plan in run.json."""
    _old_run_json(folder, kind="train-synapses", plan={"kind": "train-synapses", "params": {"epochs": 2}})
    (folder / "epochs.csv").write_text(_header({"epochs": 2}) + "epoch,val_accuracy\n0,0.5\n1,0.75\n")
    np.savez_compressed(folder / "model.npz", H0=np.zeros((1, 10, 64)), p0=np.full((1, 10, 64), 0.5))
    return folder


def old_protocol_folder(folder: Path, status: str = "success") -> Path:
    """`labml run train-synapses` before the layout: data.csv, synapses.npz, model.pt."""
    _old_run_json(folder, kind="protocol-train-synapses", status=status,
                  plan={"kind": "protocol-train-synapses", "params": {"epochs": 2}})
    (folder / "data.csv").write_text(_header({"epochs": 2}) + "epoch,val_accuracy\n0,0.5\n")
    np.savez_compressed(folder / "synapses.npz", p0=np.full((1, 10, 64), 0.25))
    torch.save({"protocol": "train-synapses", "config": {"n": 1, "epochs": 2},
                "state": {"model": {"layers.0.H": torch.ones(10, 64)}, "epoch": 2}}, folder / "model.pt")
    return folder


def old_bm_cli_folder(folder: Path) -> Path:
    """labml.bm.cli before the run engine: no plan, metrics.csv, model.npz, samples.png on top."""
    _old_run_json(folder, kind="train-bm", start_time="2026-10-01T10:00:00+00:00")
    (folder / "metrics.csv").write_text(_header({}) + "epoch,recon_error\n0,0.3\n")
    np.savez_compressed(folder / "model.npz", W=np.zeros((784, 16)))
    (folder / "samples.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return folder


def test_the_three_old_layouts_list_and_load_read_only(tmp_path, capsys):
    root = tmp_path / "runs"
    train = old_train_folder(root / "t")
    proto = old_protocol_folder(root / "p")
    bm = old_bm_cli_folder(root / "b")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    found = {r.path: r for r in runs.find_runs(root)}
    assert set(found) == {train, proto, bm}
    assert {found[p].layout for p in (train, proto, bm)} == {"train", "protocol", "bm-cli"}
    assert runs.load(train).series("epochs")[-1] == {"epoch": 1, "val_accuracy": 0.75}
    assert runs.load(train).model()["p0"].shape == (1, 10, 64)
    assert runs.load(proto).arrays("synapses")["p0"][0, 0, 0] == 0.25
    assert runs.load(bm).model()["W"].shape == (784, 16)

    assert labml_main(["runs", str(root), "--json"]) == 0
    listed = {Path(r["path"]): r["layout"] for r in json.loads(capsys.readouterr().out)}
    assert listed == {train: "train", proto: "protocol", bm: "bm-cli"}

    from gui.browser import load_run_buffer, scan_runs

    assert {Path(m["path"]) for m in scan_runs(root)} == {train, proto, bm}
    for p in (train, proto, bm):
        load_run_buffer(p)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before  # nothing written


def test_resuming_an_old_layout_is_a_one_line_error_naming_the_fix(tmp_path, capsys):
    proto = old_protocol_folder(tmp_path / "p", status="paused")
    rc = labml_main(["resume", str(proto), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert str(proto) in err and "'protocol'" in err and f"labml runs --migrate {proto}" in err
    assert labml_main(["runs", str(tmp_path), "--resumable", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # not offered for resume before --migrate


def test_migrate_converts_an_old_protocol_folder_in_place(tmp_path, capsys):
    proto = old_protocol_folder(tmp_path / "p")
    bm = old_bm_cli_folder(tmp_path / "b")
    pt = (proto / "model.pt").read_bytes()
    assert labml_main(["runs", "--migrate", str(proto), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["from"] == "protocol" and out["changes"]
    run = runs.load(proto)
    assert run.layout == "current" and run.meta["model"] == "model.npz"
    assert run.meta["model_config"] == {"n": 1, "epochs": 2}
    assert run.meta["migrated"]["from_layout"] == "protocol"
    with np.load(proto / "model.npz", allow_pickle=False) as data:
        assert data["layers.0.H"].shape == (10, 64) and data["p0"][0, 0, 0] == 0.25
    assert (proto / "model.pt").read_bytes() == pt  # kept as it was
    assert runs.load(proto).series("data") == [{"epoch": 0, "val_accuracy": 0.5}]

    assert labml_main(["runs", "--migrate", str(bm)]) == 0
    assert (bm / "figures" / "samples.png").is_file() and not (bm / "samples.png").exists()
    assert runs.load(bm).layout == "current"
    assert labml_main(["runs", "--migrate", str(bm)]) == 0  # again: nothing to do
    assert "already current" in capsys.readouterr().out


def test_a_model_pt_holding_code_is_not_migrated(tmp_path, capsys):
    class Payload:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "MARKER",))

    proto = old_protocol_folder(tmp_path / "p")
    bad = {"protocol": "train-synapses", "config": {}, "state": {"model": Payload()}}
    torch.save(bad, proto / "model.pt")
    assert labml_main(["runs", "--migrate", str(proto)]) == 2
    assert "refused" in capsys.readouterr().err
    assert not (tmp_path / "MARKER").exists() and runs.load(proto).layout == "protocol"


@pytest.fixture(scope="module")
def paused_regression(tmp_path_factory):
    eng = RunEngine(progress=False, handle_sigint=False, on_pause=lambda e, s: "suspend")
    eng.subscribe(lambda ev, p: eng.request_pause() if ev == "step" and p["step"] == 1 else None)
    run_dir = tmp_path_factory.mktemp("reg") / "run"
    assert eng.run(RegressionPlan(**REG), run_dir).status == "paused"
    return run_dir


def test_an_old_paused_run_resumes_after_migrate(paused_regression, tmp_path, capsys):
    run_dir = Path(shutil.copytree(paused_regression, tmp_path / "run"))
    meta = json.loads((run_dir / "run.json").read_text())
    del meta["schema_version"]  # as the engine wrote it before this layout
    (run_dir / "run.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="old 'train' run folder layout"):
        RunEngine(progress=False, handle_sigint=False).resume(run_dir)
    assert labml_main(["runs", "--migrate", str(run_dir)]) == 0
    out = RunEngine(progress=False, handle_sigint=False).resume(run_dir)
    assert out.status == "success" and len(runs.load(run_dir).series("metrics")) == REG["epochs"]


def test_resume_takes_a_run_name_under_the_runs_root(paused_regression, tmp_path, capsys, monkeypatch):
    root = tmp_path / "root"
    shutil.copytree(paused_regression, root / "my-run")
    monkeypatch.chdir(tmp_path)
    assert labml_main(["--runs-root", str(root), "resume", "my-run", "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_dir"] == str(root / "my-run")


# ======================================================================================= one runs root
def test_with_labml_runs_set_every_command_lands_under_it_and_runs_lists_every_one(tmp_path, monkeypatch,
                                                                                  capsys, mnist_dir):
    """demo, both trainings, a protocol and a 2-point sweep, all with their default folders: every run
    lands under $LABML_RUNS, and `labml runs --json` lists every one (demo steps, sweep points and
    the sweep folder included); `--runs-root` overrides $LABML_RUNS."""
    root = tmp_path / "runs"
    monkeypatch.setenv("LABML_RUNS", str(root))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # nothing may land in ./runs
    syn = ["--n", "1", "--epochs", "1", "--train-size", "100", "--test-size", "50", "--patience", "0",
           "--test-passes", "1"]
    cal = ["--wire", "0", "--reads", "20", "--field-points", "5", "--write-calibration", "false"]
    commands = [
        ["demo", "--n", "1", "--epochs", "1", "--train-size", "100", "--test-size", "50"],
        ["train", "synapses", *syn],
        ["run", "depinning-calibration", *cal],
        ["sweep", "depinning-calibration", "--grid", "sim_seed=1,2", "--workers", "0", *cal],
    ]
    kinds = ["demo", "protocol-depinning-calibration", "train-synapses", "train-synapses",
             "protocol-depinning-calibration", "sweep", "protocol-depinning-calibration",
             "protocol-depinning-calibration"]
    commands.append(["train", "bm", "--model", "rbm", "--hidden", "4", "--epochs", "1", "--train-size", "100",
                     "--test-size", "50", "--data", str(mnist_dir)])
    kinds.append("train-bm")
    for argv in commands:
        assert labml_main([*argv, "--json"]) == 0, argv
    capsys.readouterr()

    assert not (tmp_path / "cwd" / "runs").exists()
    assert labml_main(["runs", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(r["kind"] for r in listed) == sorted(kinds)
    assert all(Path(r["path"]).resolve().is_relative_to(root.resolve()) for r in listed)
    assert all(r["status"] == "success" for r in listed)
    by_kind = {r["kind"]: Path(r["path"]) for r in listed}
    model = by_kind["train-synapses"] / "model.npz"
    with np.load(model, allow_pickle=False) as data:
        assert "p0" in data.files
    assert (by_kind["train-bm"] / "figures" / "samples.png").is_file()
    assert runs.load(by_kind["train-bm"]).meta["model"] == "model.npz"
    for r in listed:
        if r["kind"] != "sweep":
            assert r["layout"] == "current"

    other = tmp_path / "other"
    assert labml_main(["--runs-root", str(other), "run", "depinning-calibration", *cal, "--json"]) == 0
    capsys.readouterr()
    assert labml_main(["runs", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(kinds)  # $LABML_RUNS untouched
    assert labml_main(["--runs-root", str(other), "runs", "--json"]) == 0
    assert [Path(r["path"]).parent for r in json.loads(capsys.readouterr().out)] == [other]


def test_discovery_is_bounded_in_depth_and_survives_a_symlink_loop(tmp_path):
    root = tmp_path / "runs"
    for rel in ("a", "demo/01-step", "s/points/p0000", "1/2/3/4", "1/2/3/4/5"):
        runs.Run.create("k", {}, root / rel)
    (root / "a" / "checkpoints" / "x").mkdir(parents=True)
    (root / "a" / "checkpoints" / "x" / "run.json").write_text("{}")  # never a run
    (root / "loop").symlink_to(root, target_is_directory=True)
    found = sorted(str(r.path.relative_to(root)) for r in runs.find_runs(root))
    assert found == ["1/2/3/4", "a", "demo/01-step", "s/points/p0000"]


def test_the_table_marks_old_layouts(tmp_path, capsys):
    old_protocol_folder(tmp_path / "p")
    runs.Run.create("k", {}, tmp_path / "new")
    assert labml_main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "success (old protocol layout)" in out and "running" in out
