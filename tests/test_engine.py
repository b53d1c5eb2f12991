"""The run engine on the model backend: pause/resume, stop, Ctrl+C, progress, bad input."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal

import pytest
import torch
from plans import RegressionPlan

from labml.cli import main as labml_main
from labml.errors import UserError
from labml.progress import ProgressBar
from labml.runs import checkpoints as checkpoint
from labml.runs import store as runs
from labml.runs.engine import RunEngine, dry_run
from labml.runs.plan import TrainingPlan

torch.set_num_threads(1)
PARAMS = {"epochs": 8, "hidden": 8, "batch_size": 64, "seed": 1}


def _engine(**kw) -> RunEngine:
    return RunEngine(progress=False, handle_sigint=kw.pop("handle_sigint", False), **kw)


def _at_step(engine: RunEngine, n: int, action) -> None:
    def cb(event, payload):
        if event == "step" and payload["step"] == n:
            action()

    engine.subscribe(cb)


def _digest(folder) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref") / "run"
    out = _engine().run(RegressionPlan(**PARAMS), d)
    assert out.status == "success" and out.steps_done == PARAMS["epochs"]
    return runs.load(d)


def test_pause_then_resume_in_the_same_process_gives_the_same_rows(tmp_path, reference):
    decisions = []
    eng = _engine(on_pause=lambda e, step: decisions.append(step) or "resume")
    _at_step(eng, 3, eng.request_pause)
    out = eng.run(RegressionPlan(**PARAMS), tmp_path / "r")
    assert out.status == "success" and decisions == [3]
    r = runs.load(tmp_path / "r")
    assert r.series("metrics") == reference.series("metrics")
    assert r.series("batches") == reference.series("batches")
    assert [e["event"] for e in r.meta["events"]] == ["pause", "resume"]


def test_a_suspended_run_continues_with_labml_resume_and_ends_like_an_uninterrupted_one(tmp_path, reference):
    eng = _engine(on_pause=lambda e, step: "suspend")
    _at_step(eng, 5, eng.request_pause)
    out = eng.run(RegressionPlan(**PARAMS), tmp_path / "r")
    assert out.status == "paused" and out.steps_done == 5
    assert len(runs.load(tmp_path / "r").series("metrics")) == 5
    assert labml_main(["resume", str(tmp_path / "r"), "--no-progress"]) == 0
    r = runs.load(tmp_path / "r")
    assert r.meta["status"] == "success"
    assert r.series("metrics") == reference.series("metrics")
    assert r.meta["results"] == reference.meta["results"]


def test_stop_ends_cleanly_after_the_current_step_and_cannot_be_resumed(tmp_path):
    eng = _engine()
    _at_step(eng, 3, eng.request_stop)
    out = eng.run(RegressionPlan(**PARAMS), tmp_path / "r")
    assert (out.status, out.steps_done) == ("stopped", 3)
    r = runs.load(tmp_path / "r")
    assert [row["epoch"] for row in r.series("metrics")] == [0, 1, 2]
    assert r.meta["status"] == "stopped" and r.meta["stop_time"]
    with pytest.raises(UserError, match="has finished"):
        _engine().resume(tmp_path / "r")


def test_ctrl_c_once_pauses_and_twice_aborts_cleanly(tmp_path):
    seen = []

    def on_pause(engine, step):
        seen.append(step)
        os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl+C, while paused
        return "resume"

    eng = _engine(on_pause=on_pause, handle_sigint=True)
    _at_step(eng, 2, lambda: os.kill(os.getpid(), signal.SIGINT))
    old = signal.getsignal(signal.SIGINT)
    out = eng.run(RegressionPlan(**PARAMS), tmp_path / "r")
    assert signal.getsignal(signal.SIGINT) is old  # handler restored
    assert (out.status, seen) == ("aborted", [2])
    r = runs.load(tmp_path / "r")
    assert r.meta["status"] == "aborted" and "Ctrl+C" in r.meta["reason"]
    assert len(r.series("metrics")) == 2  # the rows of the steps done, none half-written


def test_progress_bar_shows_steps_and_time_remaining():
    buf = io.StringIO()
    bar = ProgressBar(stream=buf)
    bar.start(0, 40, "train")
    bar.update(10, force=True)
    bar.close(40, "success")
    text = buf.getvalue()
    assert "10/40" in text and "left" in text and "40/40 100%" in text and "success" in text


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"lr": -0.1}, "lr"), ({"epochs": 2.5}, "epochs"), ({"dropout": 1.0}, "dropout"),
     ({"batch_size": True}, "batch_size")],
)
def test_bad_parameter_values_are_clear_errors(kwargs, name):
    with pytest.raises(UserError, match=f"parameter {name} must be"):
        RegressionPlan(**kwargs)


def test_dry_run_checks_the_output_folder_without_creating_it(tmp_path, reference):
    summary = dry_run(RegressionPlan(**PARAMS), None, tmp_path / "new" / "run")
    assert summary["steps"] == PARAMS["epochs"] and not (tmp_path / "new").exists()
    with pytest.raises(UserError, match="already holds a run"):
        dry_run(RegressionPlan(**PARAMS), None, reference.path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot write run folder"):
        dry_run(RegressionPlan(**PARAMS), None, tmp_path / "file" / "run")
    with pytest.raises(UserError, match="cannot write run folder"):
        _engine().run(RegressionPlan(**PARAMS), tmp_path / "file" / "run")


def _suspended_run(path):
    eng = _engine(on_pause=lambda e, step: "suspend")
    _at_step(eng, 2, eng.request_pause)
    assert eng.run(RegressionPlan(**PARAMS), path).status == "paused"
    return runs.load(path)


@pytest.mark.parametrize("damage", ["flip", "truncate", "foreign", "junk"])
def test_corrupt_or_foreign_checkpoint_is_a_clear_error_and_damages_nothing(tmp_path, damage, reference):
    shutil.copytree(reference.path, tmp_path / "ref")
    run = _suspended_run(tmp_path / "r")
    newest = checkpoint.list_checkpoints(run.path)[-1]
    data = bytearray(newest.read_bytes())
    if damage == "flip":
        data[-10] ^= 0xFF
        newest.write_bytes(bytes(data))
        match = "SHA-256"
    elif damage == "truncate":
        newest.write_bytes(bytes(data[:-100]))
        match = "truncated"
    elif damage == "foreign":
        other = _suspended_run(tmp_path / "other")
        shutil.copy(checkpoint.list_checkpoints(other.path)[-1], newest)
        match = "belongs to run"
    else:
        newest.write_bytes(b"PK\x03\x04 not a checkpoint")
        match = "not a labml checkpoint"
    before = _digest(run.path)
    with pytest.raises(UserError, match=match):
        _engine().resume(run.path)
    assert labml_main(["resume", str(run.path)]) == 2  # the CLI prints it as an error
    after = _digest(run.path)
    assert after == before
    if damage == "flip":  # the older kept checkpoint still resumes the run, exactly
        with pytest.raises(UserError, match="--checkpoint 1"):
            _engine().resume(run.path)
        assert labml_main(["resume", str(run.path), "--checkpoint", "1", "--no-progress"]) == 0
        assert runs.load(run.path).series("metrics") == runs.load(tmp_path / "ref").series("metrics")


def test_resume_of_a_finished_run_is_refused_and_changes_nothing(tmp_path, reference, capsys):
    before = _digest(reference.path)
    assert labml_main(["resume", str(reference.path)]) == 2
    assert "has finished" in capsys.readouterr().err
    assert _digest(reference.path) == before
    with pytest.raises(UserError, match="not a run folder"):
        _engine().resume(tmp_path)


def test_labml_runs_lists_and_filters(tmp_path, reference, capsys):
    shutil.copytree(reference.path, tmp_path / "a")
    _suspended_run(tmp_path / "b")
    assert labml_main(["runs", str(tmp_path), "--status", "paused", "--json"]) == 0
    import json

    listed = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in listed] == [str(tmp_path / "b")] and listed[0]["steps"] == 2
    assert labml_main(["runs", str(tmp_path), "--kind", "train"]) == 0
    out = capsys.readouterr().out
    assert "success" in out and "paused" in out


class _CountingTrainer:
    """A minimal steppable trainer (the contract of labml.synapses / labml.bm)."""

    def __init__(self, config, rig):
        self.g = torch.Generator().manual_seed(config["seed"])
        self.w = torch.zeros(3)
        self.config = config

    def run_epoch(self, epoch):
        self.w += torch.randn(3, generator=self.g)
        return {"epoch": epoch, "w0": float(self.w[0]), "stop": epoch + 1 >= self.config["stop_after"]}

    def evaluate(self):
        return {"norm": float(self.w.norm())}

    def state_dict(self):
        return {"w": self.w.clone(), "g": self.g.get_state()}

    def load_state_dict(self, s):
        self.w, _ = s["w"].clone(), self.g.set_state(s["g"])


class _DemoTraining(TrainingPlan):
    """A training kind on the shared epoch base (labml.runs.plan.TrainingPlan), as the package's are."""

    kind = "train-demo"

    def __init__(self, **cfg):
        super().__init__(cfg, cfg["epochs"])

    def build_trainer(self, rig):
        return _CountingTrainer(self.params, rig)


@pytest.fixture
def demo_kind():
    """Run kind "train-demo" registered by code (a run folder can only name it)."""
    from labml.runs import kinds

    kind = kinds.register(kinds.RunKind(
        "train-demo", _DemoTraining,
        (kinds.Param("seed", "int"), kinds.Param("epochs", "int", low=1), kinds.Param("stop_after", "int"))))
    yield kind
    kinds.unregister("train-demo")


def test_a_training_kind_records_epochs_stops_early_and_resumes_exactly(tmp_path, demo_kind):
    cfg = {"seed": 4, "epochs": 10, "stop_after": 6}
    full = _engine().run(_DemoTraining(**cfg), tmp_path / "full")
    assert (full.status, full.steps_done) == ("success", 6)  # early stop at the trainer's request
    eng = _engine(on_pause=lambda e, s: "suspend")
    _at_step(eng, 3, eng.request_pause)
    assert eng.run(_DemoTraining(**cfg), tmp_path / "cut").status == "paused"
    out = _engine().resume(tmp_path / "cut")
    a, b = runs.load(tmp_path / "full"), runs.load(tmp_path / "cut")
    assert out.status == "success"
    assert b.series("metrics") == a.series("metrics")
    assert b.meta["results"]["final"] == a.meta["results"]["final"] != {}


def test_training_dry_run_validates_settings_and_rig_without_opening_anything(tmp_path, capsys):
    from labml.runs import kinds

    rc = labml_main(["train", "synapses", "--n", "4", "--epochs", "3", "--backend", "rig", "--rig", "sim",
                     "--dry-run", "--json", "--run-dir", str(tmp_path / "new")])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and out["steps"] == 3 and out["parameters"]["lr"] == 0.02
    assert not (tmp_path / "new").exists()
    train = kinds.get("train-synapses")
    with pytest.raises(UserError, match="n must be an integer"):
        train.make({"n": 0})
    with pytest.raises(UserError, match=r"unknown setting\(s\) \['nn'\]"):
        train.make({"nn": 1})
    with pytest.raises(UserError, match="unknown run kind"):
        kinds.get("train-cats")


def test_rows_written_after_the_last_checkpoint_are_cut_and_redone_on_resume(tmp_path, reference):
    class Crash(Exception):
        pass

    def crash():
        raise Crash  # the process dies after step 5; checkpoints were written at steps 0 and 3

    eng = _engine(checkpoint_every=3)
    eng._notify = lambda event, payload: crash() if event == "step" and payload["step"] == 5 else None
    with pytest.raises(Crash):
        eng.run(RegressionPlan(**PARAMS), tmp_path / "r")
    run = runs.load(tmp_path / "r")
    assert len(run.series("metrics")) == 5 and checkpoint.latest(run.path)["step"] == 3
    run.update(status="running")  # what a SIGKILLed process leaves in run.json
    out = _engine(checkpoint_every=3).resume(tmp_path / "r")
    assert out.status == "success"
    assert runs.load(tmp_path / "r").series("metrics") == reference.series("metrics")
    assert runs.load(tmp_path / "r").series("batches") == reference.series("batches")


def test_sigterm_aborts_cleanly_and_leaves_every_file_whole(tmp_path):
    eng = _engine(handle_sigint=True)
    # SIGTERM while step 3 is emitting its rows (inside the step, not between steps)
    eng.subscribe(lambda ev, p: os.kill(os.getpid(), signal.SIGTERM)
                  if ev == "row" and p["series"] == "metrics" and p["row"]["epoch"] == 3 else None)
    old = signal.getsignal(signal.SIGTERM)
    out = eng.run(RegressionPlan(**PARAMS), tmp_path / "r")
    assert signal.getsignal(signal.SIGTERM) is old
    assert (out.status, out.reason) == ("aborted", "terminated (SIGTERM)")
    r = runs.load(tmp_path / "r")
    assert [row["epoch"] for row in r.series("metrics")] == [0, 1, 2]  # step 3 interrupted: not recorded
    assert all(len(row) == 3 for row in r.series("batches"))  # no half-written line
