"""The scripting API (labml.open_rig, labml.run, labml.sweep, labml.find_runs): the same rig, choke
point, run kinds, engine and catalogue as the command line; every way out of a `with open_rig` block
leaves the simulated coil at 0 A with its output off, confirmed by read-back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import labml
from labml.cli import main as labml_main
from labml.errors import UserError
from labml.rigs import rig_config, sim_state_path
from simulated_hw.simstate import read_state

ROOT = Path(__file__).resolve().parents[1]


def _sim_state():
    return read_state(sim_state_path(rig_config("sim").name))


def test_import_labml_is_light_and_the_api_is_there():
    code = ("import sys, labml; heavy = [m for m in ('torch', 'numpy', 'numba', 'qtpy', 'protocols') "
            "if m in sys.modules]; print(heavy, callable(labml.open_rig), callable(labml.run), "
            "callable(labml.sweep), callable(labml.find_runs))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.split() == ["[]", "True", "True", "True", "True"]
    with pytest.raises(AttributeError):
        labml.no_such_thing  # noqa: B018


def test_read_ramp_run_with_rows_and_find_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABML_RUNS", str(tmp_path / "runs"))
    rows: list[tuple[dict, str]] = []
    with labml.open_rig("sim") as rig:
        before = rig.read()
        assert before["units"]["field_sensor"] == {"field_mT": "mT"}
        assert rig.ramp("5 mT") == pytest.approx(5.0)
        assert rig.read("field_sensor")["field_sensor"]["field_mT"] == pytest.approx(5.0, abs=0.05)
        assert rig.read("field_source")["field_source"]["current_A"] == pytest.approx(5.0 / 1.8, abs=0.01)
        run = labml.run("hysteresis", rig=rig, field_max="8 mT", field_step="1 mT", settle="0 s",
                        on_row=lambda row, series: rows.append((row, series)), sample="S9")
        assert not rig.coil_at_zero  # the rig stays open for the next run until the block ends
    assert rig.coil_at_zero is True
    st = _sim_state()
    assert st.setpoint_A == 0.0 and st.output_on is False
    res = run.meta["results"]
    assert run.meta["status"] == "success" and run.meta["sample"] == "S9"
    assert run.meta["parameters"]["field_max"] == 8.0  # "8 mT" converted by the protocol
    assert len(rows) == res["points"] == 2 * 17 and {s for _, s in rows} == {"data"}
    assert [r["Field set (mT)"] for r, _ in rows[:3]] == [-8.0, -7.0, -6.0]
    assert [r.path for r in labml.find_runs(kind="hysteresis", where="coercive_field_mT>0")] == [run.path]
    capsys.readouterr()
    assert labml_main(["runs", "--kind", "hysteresis", "--json"]) == 0
    assert [e["path"] for e in json.loads(capsys.readouterr().out)] == [str(run.path)]


def test_a_run_given_a_rig_spec_opens_and_shuts_its_own_rig(tmp_path, monkeypatch):
    monkeypatch.setenv("LABML_RUNS", str(tmp_path / "runs"))
    run = labml.run("hysteresis", field_max=6, field_step=2, settle=0)  # numbers in the kind's units
    assert run.meta["status"] == "success" and run.meta["coil_at_zero"] is True
    st = _sim_state()
    assert st.setpoint_A == 0.0 and st.output_on is False


@pytest.mark.parametrize("kind, params, message", [
    ("hysteresis", {"field_max": "12 mV"}, r"field_max.*'12 mV'.*mT"),
    ("hysteresis", {"feld_max": "12 mT"}, r"no parameter 'feld_max' \(did you mean 'field_max'\?\)"),
    ("hysteresis", {"field_max": "2000 mT"}, r"field_max"),
    ("train-synapses", {"lr": "fast"}, r"parameter lr = 'fast' is not allowed; expected float"),
    ("train-synapses", {"epochs": 0}, r"epochs.*>= 1, got 0"),
    ("train-synapses", {"field_step_mT": "2 s"}, r"field_step_mT"),
    ("histeresis", {}, r"unknown protocol 'histeresis' \(did you mean 'hysteresis'\?\)"),
])
def test_bad_parameters_are_one_line_errors_before_the_rig_moves(tmp_path, monkeypatch, kind, params,
                                                                 message):
    import re

    monkeypatch.setenv("LABML_RUNS", str(tmp_path / "runs"))
    with pytest.raises(UserError) as err:
        labml.run(kind, **params)
    assert "\n" not in str(err.value) and re.search(message, str(err.value)), str(err.value)
    assert not (tmp_path / "runs").exists()  # no run folder made
    assert _sim_state() is None  # the simulated bench was never opened


def test_a_ramp_beyond_the_limits_is_refused_and_nothing_moves(tmp_path):
    with labml.open_rig("sim") as rig:
        with pytest.raises(UserError, match=r"ramp to '40 mT': .*36"):
            rig.ramp("40 mT")
        assert rig.read("field_source")["field_source"]["current_A"] == pytest.approx(0.0, abs=1e-3)


def test_an_exception_in_the_block_leaves_the_field_at_zero(tmp_path):
    with pytest.raises(RuntimeError, match="analysis bug"):
        with labml.open_rig("sim") as rig:
            rig.ramp("6 mT")
            assert _sim_state().setpoint_A == pytest.approx(6.0 / 1.8, abs=0.05)
            raise RuntimeError("analysis bug")
    assert rig.coil_at_zero is True
    st = _sim_state()
    assert st.setpoint_A == 0.0 and st.output_on is False


def _default_signals():
    """In the child before exec: the signals at their defaults, as a script started at a terminal has
    them (a test run in a background job or under nohup passes SIGINT or SIGHUP on ignored)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


HOLD_7_MT = ("import time, labml\n"
             "with labml.open_rig('sim') as rig:\n"
             "    rig.ramp('7 mT')\n"
             "    print('energised', flush=True)\n"
             "    time.sleep(600)\n")


def _signalled_script(tmp_path, sig):
    """Start a script that holds 7 mT inside `with labml.open_rig("sim")`, send it `sig` once the
    field is on, and return (exit status, stderr). The script starts with every signal at its
    default (`_default_signals`). It would sleep 600 s: a signal that is lost shows as a failure
    here."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD_7_MT], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_signals)
    assert proc.stdout.readline().strip() == "energised", proc.stderr.read()
    assert _sim_state().setpoint_A == pytest.approx(7.0 / 1.8, abs=0.05) and _sim_state().output_on
    time.sleep(0.2)
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"the script ignored {signal.Signals(sig).name}: {proc.communicate()[1][-2000:]}")
    return proc.returncode, err


def test_ctrl_c_in_a_script_leaves_the_field_at_zero(tmp_path):
    """A real SIGINT to a script that holds 7 mT: the block's end ramps the coil down; the simulated
    bench's persisted supply state reads 0 A, output off."""
    rc, err = _signalled_script(tmp_path, signal.SIGINT)
    assert rc != 0 and "KeyboardInterrupt" in err, (rc, err[-2000:])
    st = _sim_state()
    assert st.setpoint_A == 0.0 and st.output_on is False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_termination_signal_to_a_script_leaves_the_field_at_zero(tmp_path, sig):
    """`kill` (SIGTERM) or a closed terminal (SIGHUP) ends a script like Ctrl+C while it holds a rig:
    the block's end ramps the coil down before the process ends (by default Python would die at
    once with the coil energised). A handler of the script's own is kept: see the second script."""
    rc, err = _signalled_script(tmp_path, sig)
    assert rc == 1 and f"Terminated: {signal.Signals(sig).name}" in err, err[-2000:]
    st = _sim_state()
    assert st.setpoint_A == 0.0 and st.output_on is False
    own = ("import signal, labml\n"
           "mine = lambda s, f: None\n"
           "signal.signal(signal.SIGTERM, mine)\n"
           "with labml.open_rig('sim') as rig:\n"
           "    kept = signal.getsignal(signal.SIGTERM) is mine\n"
           "    ours = signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL\n"
           "print(kept, ours, signal.getsignal(signal.SIGHUP) is signal.SIG_DFL)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", own], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60, preexec_fn=_default_signals)
    assert out.stdout.split() == ["True", "True", "True"], out.stderr[-2000:]


def test_sweep_returns_the_points_runs_in_grid_order(tmp_path, monkeypatch):
    monkeypatch.setenv("LABML_RUNS", str(tmp_path / "runs"))
    runs = labml.sweep("depinning-calibration", {"reads": [20, 40]}, wire=0, field_points=5,
                       write_calibration=False, sweep_dir=tmp_path / "sw", workers=0)
    assert [r.meta["parameters"]["reads"] for r in runs] == [20, 40]
    assert all(r.meta["status"] == "success" for r in runs)
    lo, hi = rig_config("sim").wires[0].field_range_mT
    assert all(lo < r.meta["results"]["H0"] < hi for r in runs)
    with pytest.raises(UserError, match="rig must be a rig spec"):
        labml.sweep("depinning-calibration", {"reads": [20]}, rig=object())
    assert [e.path for e in labml.find_runs(tmp_path / "sw", kind="sweep")] == [tmp_path / "sw"]
