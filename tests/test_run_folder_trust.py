"""Opening, listing or resuming a run folder never runs anything from it (issue 13, item 7), a
foreign plan is refused rather than recorded as a success (item 9), and a run folder's rig
snapshot never sets a limit (the local rig config does)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil

import pytest
import torch

from labml.cli import main as labml_main
from labml.engine_plans import FieldSweepPlan, RegressionPlan
from labml.errors import UserError
from labml.runs import checkpoints as ckpt
from labml.runs import kinds
from labml.runs import store as runs
from labml.runs.engine import RunEngine, dry_run, load_checkpoint

torch.set_num_threads(1)
REG = {"epochs": 4, "hidden": 4, "batch_size": 128, "seed": 2}
SWEEP = {"field_max_mT": 2.0, "step_mT": 1.0, "settle_s": 0.0}  # 10 field points


def _paused(plan, run_dir, at: int, **kw):
    """Run `plan` and suspend it (resumable) after step `at`."""
    eng = RunEngine(progress=False, handle_sigint=False, on_pause=lambda e, s: "suspend")
    eng.subscribe(lambda ev, p: eng.request_pause() if ev == "step" and p["step"] == at else None)
    assert eng.run(plan, run_dir, **kw).status == "paused"
    return run_dir


@pytest.fixture(scope="module")
def paused_regression(tmp_path_factory):
    return _paused(RegressionPlan(**REG), tmp_path_factory.mktemp("reg") / "run", at=2)


@pytest.fixture
def reg_run(paused_regression, tmp_path):
    """A fresh copy of a paused regression run (resumable from step 2 of 4)."""
    return shutil.copytree(paused_regression, tmp_path / "run")


def _edit(run_dir, **changes) -> None:
    meta = json.loads((run_dir / "run.json").read_text())
    meta.update(changes)
    (run_dir / "run.json").write_text(json.dumps(meta))


def _cli(capsys, *argv) -> tuple[int, str]:
    rc = labml_main(list(argv))
    return rc, capsys.readouterr().err


def _every_way_of_opening(run_dir, capsys, marker) -> list[str]:
    """Open `run_dir` every way a user can: resume, resume --dry-run, the listing, the GUI run
    browser, the Python load APIs. Returns the resume errors; the marker must never appear."""
    errors = []
    for argv in (["resume", str(run_dir), "--no-progress"], ["resume", str(run_dir), "--dry-run"]):
        rc, err = _cli(capsys, *argv)
        assert rc == 2 and err.count("\n") == 1, err  # one line, no traceback
        errors.append(err)
    assert labml_main(["runs", str(run_dir.parent)]) == 0
    assert str(run_dir) in capsys.readouterr().out  # listed: a record to look at, nothing run
    from gui.browser import RunBrowser, load_run_buffer, scan_runs

    assert [m["path"] for m in scan_runs(run_dir.parent)] == [str(run_dir)]
    load_run_buffer(run_dir)
    browser = RunBrowser(run_dir.parent)
    browser.refresh()
    browser.select_path(run_dir)
    browser.open_selected()
    browser.deleteLater()
    run = runs.load(run_dir)
    with pytest.raises(UserError):
        RunEngine(progress=False, handle_sigint=False).resume(run_dir)
    assert not marker.exists(), "opening the run folder ran code from it"
    errors.append(run.meta.get("kind"))
    return errors


# ======================================================================================= registry
def test_registering_a_run_kind_name_twice_is_an_error():
    kind = kinds.RunKind("test-twice", lambda: None)
    kinds.register(kind)
    try:
        with pytest.raises(kinds.DuplicateKind, match="test-twice"):
            kinds.register(kinds.RunKind("test-twice", lambda: None))
    finally:
        kinds.unregister("test-twice")
    with pytest.raises(kinds.DuplicateKind, match="train-regression"):  # a package kind, too
        kinds.register(kinds.RunKind(kinds.get("train-regression").name, lambda: None))
    with pytest.raises(ValueError, match="not code of this package"):
        kinds.RunKind("test-outside", "os:system")


def test_every_plan_the_package_writes_names_a_registered_kind_that_rebuilds_it():
    from protocols.runner import ProcedurePlan, make_procedure

    plans = [RegressionPlan(**REG), FieldSweepPlan(**SWEEP),
             ProcedurePlan("hysteresis", make_procedure("hysteresis", {"field_max": "5 mT"}))]
    from labml.engine_plans import trainer_plan

    plans += [trainer_plan("train-synapses", n=2, epochs=2), trainer_plan("train-bm", epochs=1)]
    for plan in plans:
        spec = plan.spec()
        assert set(spec) == {"kind", "params"} and spec["kind"] == plan.kind
        again = kinds.plan_from_spec(json.loads(json.dumps(spec)))
        assert type(again) is type(plan) and again.spec() == json.loads(json.dumps(spec))
    declared = kinds.get("field-sweep").param("field_max_mT")
    assert (declared.unit, declared.type, declared.default) == ("mT", "float", 12.0)


def test_parameters_outside_their_declared_type_or_range_are_refused_naming_them():
    with pytest.raises(UserError, match="parameter epochs = -1 .*range \\[1, inf\\]"):
        kinds.plan_from_spec({"kind": "train-regression", "params": {"epochs": -1}})
    with pytest.raises(UserError, match="parameter lr = 'fast'"):
        kinds.plan_from_spec({"kind": "train-regression", "params": {"lr": "fast"}})
    with pytest.raises(UserError, match="unknown parameter"):
        kinds.plan_from_spec({"kind": "train-regression", "params": {"builder": "os:system"}})
    with pytest.raises(UserError, match="unknown run kind 'os:system'"):
        kinds.plan_from_spec({"kind": "os:system", "params": {}})
    with pytest.raises(UserError, match="names code to run"):
        kinds.plan_from_spec({"factory": "os:system", "params": {}})
    with pytest.raises(UserError, match="field_max_mT = 0.0 "):  # boundary: (0, inf) excludes 0
        kinds.plan_from_spec({"kind": "field-sweep", "params": {"field_max_mT": 0.0}})
    assert kinds.plan_from_spec({"kind": "field-sweep", "params": {"field_max_mT": 1e-9,
                                                                   "step_mT": 1e-9}}).kind == "field-sweep"


# ======================================================================================= crafted folders
def test_a_run_json_naming_code_is_refused_everywhere_and_runs_nothing(reg_run, tmp_path, capsys, qtbot):
    marker = tmp_path / "MARKER"
    _edit(reg_run, plan={"factory": "subprocess:run", "params": {"args": ["touch", str(marker)]}})
    errors = _every_way_of_opening(reg_run, capsys, marker)
    assert labml_main(["runs", str(tmp_path), "--resumable", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # not offered for resuming
    assert "names code to run (factory 'subprocess:run')" in errors[0]
    assert "names code to run" in errors[1]
    _edit(reg_run, plan={"factory": "os:system", "params": {"command": f"touch {marker}"}})
    _every_way_of_opening(reg_run, capsys, marker)


class _Payload:
    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_holding_a_pickled_call_is_refused_everywhere_and_runs_nothing(reg_run, tmp_path, capsys,
                                                                                  qtbot):
    marker = tmp_path / "MARKER"
    newest = ckpt.list_checkpoints(reg_run)[-1]
    header = ckpt.read_header(newest)
    buf = io.BytesIO()
    torch.save({"step": header["step"], "plan": {}, "x": _Payload(marker)}, buf)
    payload = buf.getvalue()
    header.update(length=len(payload), sha256=hashlib.sha256(payload).hexdigest())  # a VALID header
    newest.write_bytes(ckpt.MAGIC + json.dumps(header).encode() + b"\n" + payload)
    errors = _every_way_of_opening(reg_run, capsys, marker)
    assert "refused: it holds objects other than tensors" in errors[0] and "os" in errors[0]
    with pytest.raises(UserError, match="refused"):
        load_checkpoint(runs.load(reg_run))
    with pytest.raises(UserError, match="refused"):
        ckpt.latest(reg_run)
    assert not marker.exists()


def test_a_model_file_holding_a_pickled_call_is_refused(tmp_path):
    from protocols.inference import load_trained

    marker = tmp_path / "MARKER"
    torch.save({"protocol": "train-synapses", "config": {}, "state": _Payload(marker)}, tmp_path / "model.pt")
    with pytest.raises(UserError, match="model file .* refused"):
        load_trained(tmp_path)
    assert not marker.exists()


def test_an_old_run_json_with_a_factory_of_this_package_still_resumes(reg_run, paused_regression):
    meta = json.loads((reg_run / "run.json").read_text())
    _edit(reg_run, plan={"factory": "labml.engine_plans:RegressionPlan", "params": meta["plan"]["params"]})
    out = RunEngine(progress=False, handle_sigint=False).resume(reg_run)
    assert out.status == "success" and len(runs.load(reg_run).series("metrics")) == REG["epochs"]


# ======================================================================================= foreign plan
def test_a_plan_in_run_json_that_did_not_write_its_checkpoint_is_refused_not_recorded_as_success(reg_run,
                                                                                               capsys):
    meta = json.loads((reg_run / "run.json").read_text())
    # (written as an old run.json names its plan, so that the same test runs on the code before kinds)
    _edit(reg_run, plan={"factory": "labml.engine_plans:RegressionPlan",
                         "params": {**meta["plan"]["params"], "epochs": 2}})
    rc, err = _cli(capsys, "resume", str(reg_run), "--no-progress")
    assert rc == 2 and "does not match the one that wrote its checkpoint of step 2 (differs in epochs)" in err
    _edit(reg_run, plan={"kind": "field-sweep", "params": {}})
    rc, err = _cli(capsys, "resume", str(reg_run), "--dry-run")
    assert rc == 2 and "of kind 'field-sweep' but the run is of kind 'train-regression'" in err
    assert runs.load(reg_run).meta["status"] == "paused"  # untouched: still resumable as it was


def test_a_checkpoint_beyond_the_end_of_the_plan_is_refused(reg_run, capsys):
    # an old checkpoint (no plan spec recorded in it) of a run whose run.json now says fewer epochs
    newest = ckpt.list_checkpoints(reg_run)[-1]
    state = ckpt.load(newest)
    state.pop("spec", None), state.pop("_header")
    ckpt.save(reg_run, runs.load(reg_run).uid, state["step"], state)
    meta = json.loads((reg_run / "run.json").read_text())
    _edit(reg_run, plan={"factory": "labml.engine_plans:RegressionPlan",
                         "params": {**meta["plan"]["params"], "epochs": 1}})
    rc, err = _cli(capsys, "resume", str(reg_run), "--no-progress")
    assert rc == 2 and "checkpoint is at step 2 but the plan has 1 steps" in err


# ======================================================================================= rig snapshot
@pytest.fixture(scope="module")
def paused_sweep(tmp_path_factory):
    return _paused(FieldSweepPlan(**SWEEP), tmp_path_factory.mktemp("sweep") / "run", at=3, rig_spec="sim")


@pytest.fixture
def sweep_run(paused_sweep, tmp_path):
    return shutil.copytree(paused_sweep, tmp_path / "run")


def test_a_looser_rig_snapshot_is_refused_and_never_raises_the_limits_the_guard_applies(sweep_run, capsys):
    meta = json.loads((sweep_run / "run.json").read_text())
    local = dict(meta["rig_config"]["limits"])
    snap = meta["rig_config"]
    snap["limits"].update(i_max_A=1000.0, field_max_mT=local["field_max_mT"] * 1.01)
    snap["instruments"]["field_source"]["address"] = "TCPIP::10.0.0.99::INSTR"
    _edit(sweep_run, rig_config=snap)
    for argv in (["resume", str(sweep_run), "--no-progress"], ["resume", str(sweep_run), "--dry-run"]):
        rc, err = _cli(capsys, *argv)
        assert rc == 2 and err.count("\n") == 1
        assert ("differs from the run's snapshot in instruments.field_source.address, limits.field_max_mT, "
                "limits.i_max_A; resume with --accept-rig-change") in err
    seen = {}
    eng = RunEngine(progress=False, handle_sigint=False)
    eng.subscribe(lambda ev, p: seen.setdefault("limits", eng.rig.guard.limits) if ev == "start" else None)
    assert eng.resume(sweep_run, accept_rig_change=True).status == "success"
    assert seen["limits"].i_max_A == local["i_max_A"] == 20.0  # the local limits, not the looser snapshot
    assert seen["limits"].field_max_mT == local["field_max_mT"]
    after = runs.load(sweep_run).meta
    change = [e for e in after["events"] if e["event"] == "rig-change"]
    assert change and change[0]["old"]["limits.i_max_A"] == 1000.0
    assert after["rig_config"]["limits"]["i_max_A"] == 20.0


def test_rig_overrides_in_run_json_or_of_a_plan_cannot_change_a_limit(sweep_run, capsys, tmp_path):
    _edit(sweep_run, rig_overrides={"limits": {"i_max_A": 1000.0}})
    rc, err = _cli(capsys, "resume", str(sweep_run), "--no-progress", "--accept-rig-change")
    assert rc == 2 and "rig_overrides" in err and "not those of its plan" in err

    class Looser(FieldSweepPlan):
        rig_overrides = {"limits": {"i_max_A": 1000.0}, "sim": {"seed": 3}}

    with pytest.raises(UserError, match=r"overrides rig config key\(s\) \['limits.i_max_A'\]"):
        dry_run(Looser(**SWEEP), "sim")
    with pytest.raises(UserError, match="overrides rig config"):
        RunEngine(progress=False, handle_sigint=False).run(Looser(**SWEEP), tmp_path / "x", rig_spec="sim")

    class Seeded(FieldSweepPlan):
        rig_overrides = {"sim": {"seed": 3}}

    assert dry_run(Seeded(**SWEEP), "sim")["steps"] == 10  # the sim seed is the one allowed override


def test_a_rig_spec_inside_the_run_folder_is_refused(sweep_run, capsys):
    from instruments.config import builtin_rig_path

    shutil.copy(builtin_rig_path("sim_default"), sweep_run / "rig.toml")
    _edit(sweep_run, rig_spec=str(sweep_run / "rig.toml"))
    rc, err = _cli(capsys, "resume", str(sweep_run), "--dry-run")
    assert rc == 2 and "lies inside the run folder" in err


def test_a_sweep_manifest_naming_code_is_refused_and_runs_nothing(tmp_path, capsys):
    from labml.runs.sweeps import Sweep

    Sweep.create(tmp_path / "sw", "hysteresis", {"field_max": ["5 mT"]}, rig="sim")
    manifest = json.loads((tmp_path / "sw" / "manifest.json").read_text())
    manifest["point_fn"] = "builtins:print"
    (tmp_path / "sw" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="point_fn 'builtins:print' .* names no code to run"):
        Sweep.open(tmp_path / "sw").run(workers=0)
    assert "protocol" not in capsys.readouterr().out  # print was never called with a point
