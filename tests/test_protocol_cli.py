"""Bad input to `labml run` / `labml sweep` gives a clear error before anything moves: the rig is never
opened and no run or sweep folder is created."""

from __future__ import annotations

import json
import sys
import types

import pytest

from labml.cli import main


@pytest.fixture
def no_rig(monkeypatch, tmp_path):
    """Any attempt to open a rig fails the test; runs go to tmp_path."""
    monkeypatch.setenv("LABML_RUNS", str(tmp_path / "runs"))
    import labml.rigs as real

    fake = types.ModuleType("labml.rigs")
    fake.rig_config = real.rig_config  # reading a config moves nothing

    def open_rig(*a, **k):  # pragma: no cover - reaching it is the failure
        raise AssertionError("the rig was opened although the input was bad")

    fake.open_rig = open_rig
    monkeypatch.setitem(sys.modules, "labml.rigs", fake)
    return tmp_path


def _err(capsys) -> str:
    return capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "no-such-protocol"], "unknown protocol 'no-such-protocol'; known protocols: "),
        (["run", "depinning-calibration", "--no-such-param", "3"], "has no parameter 'no_such_param'"),
        (
            ["run", "depinning-calibration", "--reads", "0"],
            "parameter 'reads': value 0 is out of range [1, 1e+06]",
        ),
        (["run", "depinning-calibration", "--reads", "2.5"], "parameter 'reads': expected an integer"),
        (
            ["run", "depinning-calibration", "--pulse-duration", "3 mT"],
            "parameter 'pulse_duration': '3 mT' has units 'mT', which cannot be converted to s",
        ),
        (["run", "depinning-calibration", "--field-stop", "12 blorps"], "unknown unit 'blorps'"),
        (["run", "depinning-calibration", "--field-stop", "abc"], "'abc' is not a number"),
        (
            ["run", "depinning-calibration", "--field-stop", "40 mT"],
            "reaches 40 mT, beyond the rig's field limit of 36 mT",
        ),
        (
            ["run", "depinning-calibration", "--field-start", "8", "--field-stop", "2"],
            "must be above field_start",
        ),
        (["run", "depinning-calibration", "--wire", "7"], "wire 7 does not exist on rig 'sim_default'"),
        (["run", "depinning-calibration", "--nb-durations", "1 ms, 2 V"], "cannot be converted to s"),
        (["run", "characterise-wires", "--wires", "0,9"], "wire 9 does not exist"),
        (["sweep", "depinning-calibration", "--grid", "reads=10,0"], "value 0 is out of range"),
        (["sweep", "depinning-calibration", "--grid", "bogus=1,2"], "has no parameter 'bogus'"),
        (["sweep", "depinning-calibration"], "needs at least one --grid"),
        (["sweep", "depinning-calibration", "--grid", "reads"], "expected NAME=V1,V2"),
    ],
)
def test_bad_input_is_refused_before_anything_moves(no_rig, capsys, argv, message):
    rc = main(argv)
    assert rc == 2
    err = _err(capsys)
    assert message in err, err
    assert not (no_rig / "runs").exists(), "a run or sweep folder was created for bad input"


def test_a_rig_config_that_does_not_exist_is_named(no_rig, capsys):
    rc = main(["run", "depinning-calibration", "--rig", str(no_rig / "nope.toml"), "--dry-run"])
    assert rc == 2
    assert "nope.toml" in _err(capsys)


def test_dry_run_converts_units_and_reports_the_plan(no_rig, capsys):
    rc = main(
        [
            "run",
            "depinning-calibration",
            "--pulse-duration",
            "500 us",
            "--nb-durations",
            "0.1 ms,10ms",
            "--reads",
            "50",
            "--dry-run",
            "--json",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["status"] == "planned" and out["run_dir"] is None
    plan = out["plan"]
    assert plan["pulse_lengths_s"] == pytest.approx([5e-4, 1e-4, 1e-2])
    assert plan["total_reads"] == 3 * 13 * 50
    assert plan["estimate_s"] > 3 * 13 * 50 * 5e-3  # each read cycle takes at least ~5 ms on the bench
    assert not (no_rig / "runs").exists()


def test_run_lists_protocols_and_their_parameters(no_rig, capsys):
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "depinning-calibration" in out and "characterise-wires" in out
    assert main(["run", "depinning-calibration", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--pulse-duration" in out and "in s" in out and "range [1e-06, 1]" in out


def test_a_sweep_on_a_real_bench_is_not_sent_to_a_cluster(no_rig, capsys):
    """A real rig (backend visa) is one piece of hardware: its sweep runs locally, point after point."""
    from instruments.config import builtin_rig_path

    bench = str(builtin_rig_path("bench_example"))
    rc = main(
        [
            "sweep",
            "depinning-calibration",
            "--grid",
            "reads=10,20",
            "--rig",
            bench,
            "--cluster",
            "tcp://127.0.0.1:1",
            "--sweep-dir",
            str(no_rig / "runs" / "s"),
        ]
    )
    assert rc == 2
    assert "is a real bench (backend visa)" in _err(capsys)
    assert not (no_rig / "runs").exists()


def test_sim_seed_on_a_real_bench_is_refused_before_anything_moves(no_rig, capsys):
    """The simulated world's seed (`--sim-seed`) means nothing on a real bench: a clear error, no run."""
    from instruments.config import builtin_rig_path

    bench = str(builtin_rig_path("bench_example"))
    for cmd in ("run", "sweep"):
        argv = [cmd, "depinning-calibration", "--rig", bench, "--sim-seed", "3", "--reads", "10"]
        if cmd == "sweep":
            argv += ["--grid", "wire=0", "--sweep-dir", str(no_rig / "runs" / "s")]
        assert main(argv) == 2
        err = _err(capsys)
        assert "'sim_seed' = 3" in err and "backend sim" in err and "'visa'" in err
    assert not (no_rig / "runs").exists()


def test_every_run_command_has_a_dry_run_that_validates_and_makes_nothing(no_rig, capsys, tmp_path):
    """`--dry-run` on labml run, sweep, train synapses, train bm and resume: the plan is checked against
    the rig config (bad settings are refused), the rig is never opened and no folder is made."""
    runs = no_rig / "runs"
    ok = [
        ["run", "hysteresis", "--field-max", "8 mT", "--dry-run", "--json"],
        ["sweep", "depinning-calibration", "--grid", "reads=10,20", "--grid", "sim_seed=1,2", "--dry-run",
         "--json", "--sweep-dir", str(runs / "s")],
        ["train", "synapses", "--backend", "rig", "--rig", "sim", "--epochs", "2", "--dry-run", "--json",
         "--run-dir", str(runs / "t")],
        ["train", "bm", "--hidden", "8", "--epochs", "2", "--kernel", "rig", "--rig", "sim", "--dry-run",
         "--json", "--run-dir", str(runs / "b")],
    ]
    plans = []
    for argv in ok:
        assert main(argv) == 0, argv
        plans.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert plans[0]["status"] == "planned" and plans[0]["plan"]["steps"] == 66  # 2 branches of 33 fields
    assert plans[1]["status"] == "planned" and plans[1]["points"] == 4
    assert plans[2]["kind"] == "train-synapses" and plans[2]["steps"] == 2
    assert plans[3]["kind"] == "train-bm" and plans[3]["steps"] == 2
    bad = [
        (["run", "hysteresis", "--field-max", "80 mT", "--dry-run"], "field"),
        (["sweep", "depinning-calibration", "--grid", "reads=10,0", "--dry-run"], "reads"),
        (["train", "synapses", "--n", "0", "--dry-run"], "n must be an integer >= 1"),
        (["train", "bm", "--hidden", "0", "--epochs", "2", "--dry-run"], "hidden"),
        (["train", "synapses", "--data", str(tmp_path / "no-such-folder"), "--dry-run"], "no-such-folder"),
        (["train", "bm", "--hidden", "4", "--epochs", "1", "--data", str(tmp_path), "--dry-run"],
         "lacks training files"),
    ]
    for argv, word in bad:
        assert main(argv) == 2, argv
        assert word in _err(capsys), argv
    assert not runs.exists()


def test_resume_dry_run_says_where_a_run_would_continue_and_changes_nothing(tmp_path, capsys):
    from labml.runs.engine import RunEngine
    from protocols.runner import run_protocol

    eng = RunEngine(progress=False, handle_sigint=False, on_pause=lambda e, s: "suspend")
    eng.subscribe(lambda ev, p: eng.request_pause() if ev == "step" and p["step"] == 2 else None)
    out = run_protocol("depinning-calibration", {"reads": 10, "field_points": 4, "write_calibration": False},
                       run_dir=tmp_path / "r", engine=eng)
    assert out["status"] == "paused"
    before = (tmp_path / "r" / "run.json").read_text()
    assert main(["resume", str(tmp_path / "r"), "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert plan["resumable"] and plan["from_step"] == 2 and plan["steps"] == 4
    assert (tmp_path / "r" / "run.json").read_text() == before


def test_run_records_sample_device_operator_and_notes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABML_RUNS", str(tmp_path / "runs"))
    rc = main(["run", "depinning-calibration", "--reads", "5", "--field-points", "3", "--write-calibration",
               "false", "--sample", "S12", "--device", "wire 0", "--operator", "ana", "--notes",
               "after anneal",
               "--run-dir", str(tmp_path / "r"), "--json"])
    assert rc == 0
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    assert (meta["sample"], meta["device"], meta["operator"], meta["notes"]) == (
        "S12", "wire 0", "ana", "after anneal")
    capsys.readouterr()
    assert main(["runs", str(tmp_path), "--sample", "S12", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
