"""The coil stays inside its limits and ends at zero, confirmed, on the paths off the straight one:
resume of a rig run, faults on the supply (disconnect, timeout, garbled, truncated replies,
compliance), an abort after a supply fault, and the termination signals (SIGTERM, SIGHUP, SIGQUIT).

Every coil setpoint the simulated supply receives is recorded below the guard (the physical truth):
a step is the change of the current the supply drives (its setpoint while the output is on, 0 A
while it is off)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import wait_rows

from instruments.errors import InstrumentFault
from instruments.safety import CoilNotZeroError, RampStopped
from labml.rigs import open_rig
from labml.runs import store as runs
from labml.runs.engine import RunEngine
from simulated_hw.world import CoilState

ROOT = Path(__file__).resolve().parents[1]
#: setpoints travel as 6-significant-digit SCPI numbers
SCPI_ROUNDING_A = 1e-5
HYSTERESIS = {"field_max": 8.0, "field_step": 1.0, "settle": 0.01}


class SupplyRecorder:
    """Every change of the current the simulated supplies drive, in every world of this process:
    (world clock time, driven current before, driven current after)."""

    def __init__(self, monkeypatch):
        self.steps: list[tuple[float, float, float]] = []
        rec = self

        def driven(coil):
            return coil.setpoint_A if coil.output_on else 0.0

        orig_set, orig_out = CoilState.set_setpoint_A, CoilState.set_output

        def set_setpoint_A(coil, current_A):
            before = driven(coil)
            orig_set(coil, current_A)
            rec.steps.append((rec.clock_of(coil), before, driven(coil)))

        def set_output(coil, on):
            before = driven(coil)
            orig_out(coil, on)
            rec.steps.append((rec.clock_of(coil), before, driven(coil)))

        orig_load = CoilState.load_state_dict

        def load_state_dict(coil, state):  # a restore of saved world state must not move the coil
            before = driven(coil)
            orig_load(coil, state)
            rec.steps.append((rec.clock_of(coil), before, driven(coil)))

        monkeypatch.setattr(CoilState, "set_setpoint_A", set_setpoint_A)
        monkeypatch.setattr(CoilState, "set_output", set_output)
        monkeypatch.setattr(CoilState, "load_state_dict", load_state_dict)
        self.clocks: dict[int, object] = {}

    def clock_of(self, coil) -> float:
        clock = self.clocks.get(id(coil))
        return clock.now() if clock is not None else float("nan")

    def largest_step_A(self) -> float:
        return max((abs(b - a) for _, a, b in self.steps), default=0.0)


def _ramp_step(rig) -> float:
    return rig.config.limits.ramp_step_A


# ------------------------------------------------------------------------------ item 1: resume


def test_resume_of_a_paused_hysteresis_loop_never_jumps_the_coil(tmp_path, monkeypatch):
    from protocols.runner import run_protocol

    rec = SupplyRecorder(monkeypatch)
    run_dir = tmp_path / "loop"
    eng = RunEngine(progress=False, handle_sigint=False, on_pause=lambda e, s: "suspend")
    eng.subscribe(lambda ev, p: eng.request_pause() if ev == "step" and p["step"] == 12 else None)
    out = run_protocol("hysteresis", HYSTERESIS, rig="sim", run_dir=run_dir, engine=eng)
    assert out["status"] == "paused"
    n_first = len(rec.steps)
    # the checkpoint of the pause holds the world with the coil at the field of step 12 (+4 mT)
    resumed = RunEngine(progress=False, handle_sigint=False).resume(run_dir)
    assert resumed.status == "success" and resumed.coil_at_zero is True
    after = rec.steps[n_first:]
    assert len(after) > 50
    step = max(abs(b - a) for _, a, b in after)
    assert step <= 0.1 + SCPI_ROUNDING_A, f"a step of {step:.3f} A after resume (ramp_step_A = 0.1 A)"
    run = runs.load(run_dir)
    assert run.meta["coil_at_zero"] is True


def test_a_restored_rig_reads_the_coil_back_before_its_next_command(monkeypatch):
    """The guard's idea of the coil comes from a read-back after load_state_dict, not from the
    freshly built world it synced at connect; and the simulated supply is ramped to the saved
    setpoint through the guard before the world's state is restored (no teleported coil)."""
    with open_rig("sim") as rig:
        rig.ramp_to_field(7.2)  # 4 A
        state = rig.state_dict()
        rig.zero()
    rec = SupplyRecorder(monkeypatch)
    with open_rig("sim") as fresh:
        assert fresh.guard.setpoint_A == 0.0
        fresh.load_state_dict(state)
        assert fresh.guard.setpoint_A == pytest.approx(4.0)
        assert fresh.world.coil.setpoint_A == pytest.approx(4.0) and fresh.world.coil.output_on
        assert len(rec.steps) >= 40 and rec.largest_step_A() <= 0.1 + SCPI_ROUNDING_A
        fresh.ramp_to_field(5.4)  # 3 A: ten steps down from 4 A
        assert rec.largest_step_A() <= 0.1 + SCPI_ROUNDING_A


# ------------------------------------------------------------------------------ items 2 and 3: faults


def _driven_steps(rig, action) -> list[float]:
    coil = rig.world.coil
    steps = []
    orig_set, orig_out = coil.set_setpoint_A, coil.set_output

    def driven():
        return coil.setpoint_A if coil.output_on else 0.0

    def set_setpoint_A(v):
        b = driven()
        orig_set(v)
        steps.append(abs(driven() - b))

    def set_output(on):
        b = driven()
        orig_out(on)
        steps.append(abs(driven() - b))

    coil.set_setpoint_A, coil.set_output = set_setpoint_A, set_output
    action()
    return steps


@pytest.mark.parametrize("kind", ["disconnect", "timeout", "garbled", "truncated", "compliance"])
@pytest.mark.parametrize("seed", range(6))
def test_supply_faults_during_ramps_and_zeroing_never_step_the_coil_beyond_ramp_step(kind, seed):
    """Random faults of one kind on the supply while the field is ramped up and down and zeroed the
    way the engine does after a fault; then the rig's shutdown. No step ever exceeds ramp_step_A
    and the coil ends at 0 A with the output off."""
    rng = np.random.default_rng([seed, len(kind)])
    rig = open_rig("sim", sim={"seed": seed})

    def scenario():
        for _ in range(5):
            rig.faults["field_source"].inject(kind, int(rng.integers(1, 4)))
            try:
                rig.ramp_to_field(float(rng.uniform(-30, 30)))
            except (InstrumentFault, RampStopped):
                try:
                    rig.zero()
                except InstrumentFault:
                    rig.guard.emergency_zero()
                rig.guard.clear_stop()
        assert rig.shutdown() == []

    steps = _driven_steps(rig, scenario)
    assert max(steps) <= _ramp_step(rig) + SCPI_ROUNDING_A
    assert rig.world.coil.setpoint_A == 0.0 and not rig.world.coil.output_on
    assert rig.coil_at_zero is True


def test_abort_after_a_supply_disconnect_leaves_no_setpoint_programmed():
    """The supply drops off the bus mid-ramp at -4.25 A and comes back a few transactions later: the
    abort still ends at setpoint 0 A, read back, before the output is switched off."""
    rig = open_rig("sim")
    rig.ramp_to_field(-7.65)  # -4.25 A
    rig.faults["field_source"].inject("disconnect", 6)
    with pytest.raises(InstrumentFault):
        rig.ramp_to_field(-9.0)
    assert rig.shutdown() == []
    assert rig.world.coil.setpoint_A == 0.0 and rig.world.coil.output_on is False
    assert rig.coil_at_zero is True
    assert any(r.action == "zero-confirmed" for r in rig.guard.log)


def test_a_supply_that_never_answers_again_is_reported_not_claimed_safe():
    rig = open_rig("sim")
    rig.ramp_to_field(3.6)  # 2 A
    rig.faults["field_source"].inject("disconnect", None)  # until reconnect: never, here
    with pytest.raises(CoilNotZeroError, match="NOT confirmed at 0 A"):
        rig.guard.zero()
    errors = dict(rig.shutdown())
    assert rig.coil_at_zero is False
    assert "ramp field to 0 (confirmed by read-back)" in errors
    assert "field source output off" not in errors  # not even tried: the output is left regulating
    assert rig.world.coil.output_on is True and rig.world.coil.setpoint_A == pytest.approx(2.0)


def test_an_engine_run_whose_coil_cannot_be_confirmed_at_zero_ends_failed_and_says_so(tmp_path):
    from protocols.runner import run_protocol

    eng = RunEngine(progress=False, handle_sigint=False)

    def lose_supply(ev, p):
        if ev == "step" and p["step"] == 5:
            eng.rig.faults["field_source"].inject("disconnect", None)
            eng.request_abort("operator abort")

    eng.subscribe(lose_supply)
    out = run_protocol("hysteresis", HYSTERESIS, rig="sim", run_dir=tmp_path / "r", engine=eng)
    assert out["status"] == "failed" and "NOT confirmed at 0 A" in out["reason"]
    assert out["coil_at_zero"] is False
    assert runs.load(tmp_path / "r").meta["coil_at_zero"] is False


# ------------------------------------------------------------------------------ item 4: signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT])
def test_termination_signals_end_a_rig_run_safely_and_resumably(tmp_path, sig):
    run_dir = tmp_path / "r"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "labml.cli", "run", "hysteresis", "--field-max", "20", "--field-step", "0.1",
         "--run-dir", str(run_dir), "--json"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    wait_rows(proc, run_dir, "data", 8, timeout_s=120)
    assert proc.poll() is None, proc.stderr.read().decode()
    proc.send_signal(sig)
    proc.wait(timeout=120)
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "aborted", meta.get("reason")
    assert signal.Signals(sig).name in meta["reason"]
    assert meta["coil_at_zero"] is True  # zero read back before the run ended
    log_text = (run_dir / "run.log").read_text()
    assert "zero-confirmed" in log_text
    # resumable: `labml resume --dry-run` accepts it
    check = subprocess.run([sys.executable, "-m", "labml.cli", "resume", str(run_dir), "--dry-run", "--json"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["resumable"] is True


def test_a_signal_while_the_rig_opens_ends_the_run_aborted_with_the_coil_at_zero(tmp_path, monkeypatch):
    """SIGTERM arriving while the rig is being opened (its connect may be ramping down a coil left
    energised) is held until the rig is open, then ends the run as in the loop: aborted, resumable,
    coil confirmed at zero (before: the run stayed "running" and the ramp-down could be cut)."""
    from instruments.rig import NanowireRig
    from protocols.runner import run_protocol

    connect = NanowireRig.connect

    def connect_under_a_signal(rig):
        os.kill(os.getpid(), signal.SIGTERM)  # delivered at once, in the middle of connect
        connect(rig)

    monkeypatch.setattr(NanowireRig, "connect", connect_under_a_signal)
    before = signal.getsignal(signal.SIGTERM)
    eng = RunEngine(progress=False)  # handles signals, as the CLI's engine does
    out = run_protocol("hysteresis", HYSTERESIS, rig="sim", run_dir=tmp_path / "r", engine=eng)
    meta = runs.load(tmp_path / "r").meta
    assert out["status"] == meta["status"] == "aborted" and "SIGTERM" in meta["reason"]
    assert meta["coil_at_zero"] is True and runs.is_resumable(meta)
    assert signal.getsignal(signal.SIGTERM) is before  # handlers given back


def test_the_cli_gives_the_signal_handlers_of_its_caller_back(tmp_path):
    """`labml` called from a script (``cli.main([...])``) routes SIGTERM/SIGHUP through the safe
    unwinding only while it runs, then leaves the caller's own handlers in place."""
    from labml import cli

    def mine(signum, frame):
        pass

    old = {s: signal.signal(s, mine) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        assert cli.main(["runs", str(tmp_path)]) == 0
        assert signal.getsignal(signal.SIGTERM) is mine and signal.getsignal(signal.SIGHUP) is mine
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def test_a_supply_fault_while_a_resume_restores_the_coil_is_ridden_out_and_the_resume_stays_exact(
        tmp_path, monkeypatch):
    """Restoring a checkpoint ramps the simulated supply to the saved setpoint (I/O): a disconnect
    there is ridden out like a fault in a step (zero, backoff, the same exact restore again), is
    counted in run.json, and the run ends as the uninterrupted one (before: status failed)."""
    from protocols.runner import run_protocol

    ref = run_protocol("hysteresis", HYSTERESIS, rig="sim", run_dir=tmp_path / "ref",
                       engine=RunEngine(progress=False, handle_sigint=False))
    run_dir = tmp_path / "loop"
    eng = RunEngine(progress=False, handle_sigint=False, on_pause=lambda e, s: "suspend")
    eng.subscribe(lambda ev, p: eng.request_pause() if ev == "step" and p["step"] == 12 else None)
    paused = run_protocol("hysteresis", HYSTERESIS, rig="sim", run_dir=run_dir, engine=eng)
    assert paused["status"] == "paused"
    rec = SupplyRecorder(monkeypatch)
    with open_rig("sim", lock=False) as rig:
        # the resume's first supply transactions (the read-back before the ramp up) find it gone
        rig.faults["field_source"].inject("disconnect", count=3)
        out = RunEngine(progress=False, handle_sigint=False).resume(run_dir, rig=rig)
    assert out.status == "success" and out.coil_at_zero is True
    run = runs.load(run_dir)
    assert run.meta["faults"]["total"] >= 1
    assert rec.largest_step_A() <= 0.1 + SCPI_ROUNDING_A
    assert run.series("data") == runs.load(ref["run_dir"]).series("data")  # every row, exactly


def test_a_rig_that_does_not_answer_when_opened_leaves_the_run_resumable(tmp_path):
    """An instrument that does not answer while the rig opens ends the run "failed" naming it, but
    resumable (nothing has moved; before: a finished run that could never be continued); once the
    bench answers, `labml resume` runs it to the end."""
    from protocols.runner import run_protocol

    base = (ROOT / "instruments" / "rigs" / "sim_default.toml").read_text()
    toml = tmp_path / "rig.toml"
    toml.write_text(base + '\n[sim.faults.pulse_source]\n'
                    'schedule = [{ kind = "disconnect", at = 1, count = 100 }]\n')
    run_dir = tmp_path / "loop"
    with pytest.raises(InstrumentFault, match="pulse_source"):
        run_protocol("hysteresis", HYSTERESIS, rig=str(toml), run_dir=run_dir,
                     engine=RunEngine(progress=False, handle_sigint=False))
    meta = runs.load(run_dir).meta
    assert meta["status"] == "failed" and "cannot open rig" in meta["reason"] and runs.is_resumable(meta)
    toml.write_text(base)  # the generator answers again
    out = RunEngine(progress=False, handle_sigint=False).resume(run_dir)
    assert out.status == "success" and out.coil_at_zero is True
