"""`labml rig check|scan|zero` and the VISA branch of labml.rigs.open_rig.

The VISA branch is exercised end to end by replacing pymeasure's VISAAdapter with the simulated
lab's SimAdapter (simulated_hw.adapter) on one simulated World: the real role implementations and
drivers of instruments.drivers talk SCPI, exactly as they would over GPIB/LAN."""

from __future__ import annotations

import json
import os
import socket
import textwrap

import numpy as np
import pytest

from labml.cli import main

BENCH = textwrap.dedent(
    """
    name = "test-bench"
    backend = "visa"

    [coil]
    mT_per_A = 1.8
    inductance_H = 1e-3
    resistance_ohm = 1.0
    compliance_V = 20.0

    [limits]
    i_max_A = 20.0
    field_max_mT = 36.0
    ramp_rate_A_per_s = 50.0
    ramp_step_A = 0.1
    pulse_slew_max_A_per_s = 2e4
    duty_max = 0.5
    mean_power_max_W = 150.0

    [instruments.field_source]
    class = "instruments.drivers.roles.KepcoFieldSource"
    address = "GPIB0::6::INSTR"
    timeout_s = 1.0
    model = "BOP 20-20"

    [instruments.pulse_source]
    class = "instruments.drivers.roles.AwgPulseSource"
    address = "TCPIP0::10.0.0.20::INSTR"
    amplifier_A_per_V = 2.0

    [instruments.field_sensor]
    class = "instruments.drivers.roles.HallSensor"
    address = "GPIB0::12::INSTR"

    [instruments.readout]
    class = "instruments.drivers.roles.MokeLockinReadout"
    address = "GPIB0::8::INSTR"

    [instruments.channel_selector]
    class = "instruments.drivers.roles.SwitchSelector"
    address = "GPIB0::7::INSTR"
    wire_channels = [1, 2]

    [[wires]]
    id = 0
    calibration = { H0 = 4.63168, k = 2.72741, a = 0.97813 }

    [[wires]]
    id = 1
    calibration = { H0 = 4.63168, k = 2.72741, a = 0.97813 }
    """
)


@pytest.fixture
def bench(tmp_path, monkeypatch):
    """A 'visa' rig file whose VISA addresses resolve to simulated instruments on one World."""
    from simulated_hw.adapter import SimAdapter
    from simulated_hw.instruments.awg import SimAgilent33500
    from simulated_hw.instruments.gaussmeter import SimLakeShore425
    from simulated_hw.instruments.lockin import SimSR830
    from simulated_hw.instruments.sources import SimKepco
    from simulated_hw.instruments.switch import SimSwitch7001
    from simulated_hw.world import World

    world = World.default(seed=3, n_wires=2)
    sims = {
        "GPIB0::6::INSTR": SimKepco(world),
        "TCPIP0::10.0.0.20::INSTR": SimAgilent33500(world, amplifier_A_per_V=2.0),
        "GPIB0::12::INSTR": SimLakeShore425(world),
        "GPIB0::8::INSTR": SimSR830(world),
        "GPIB0::7::INSTR": SimSwitch7001(world),
    }
    adapters = {}
    opened = []

    def fake_visa_adapter(address, **kwargs):
        opened.append((address, kwargs))
        a = SimAdapter(sims[address], timeout_s=kwargs.get("timeout", 2000) / 1000)
        adapters[address] = a
        return a

    import pymeasure.adapters

    import instruments.rig

    monkeypatch.setattr(pymeasure.adapters, "VISAAdapter", fake_visa_adapter)
    monkeypatch.setattr(instruments.rig, "WallClock", lambda: world.clock)
    path = tmp_path / "bench.toml"
    path.write_text(BENCH)
    lock_dir = tmp_path / "locks"
    monkeypatch.setenv("LABML_LOCK_DIR", str(lock_dir))
    return {"path": path, "world": world, "adapters": adapters, "opened": opened, "lock_dir": lock_dir}


def test_rig_check_reports_identities_state_and_limits(bench, capsys):
    rc = main(["rig", "check", "--rig", str(bench["path"])])
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    assert "KEPCO" in out.upper() and "33522B" in out and "SR830" in out and "7001" in out
    assert "GPIB0::6::INSTR" in out and "coil: current" in out and "Hall probe" in out
    assert "i_max 20 A" in out and "wire 1:" in out and "rig check: ok" in out
    assert ("GPIB0::6::INSTR", {"timeout": 1000}) in bench["opened"]
    # every connection closed and the lock released afterwards
    assert all(a.connection.closed for a in bench["adapters"].values())
    assert not (bench["lock_dir"] / "test-bench.lock").exists()


def test_rig_check_names_the_instrument_that_does_not_answer(bench, capsys, monkeypatch):
    from simulated_hw.instruments.lockin import SimSR830

    monkeypatch.setattr(SimSR830, "read", lambda self: None)  # the lock-in never replies: VISA timeout
    rc = main(["rig", "check", "--rig", str(bench["path"])])
    err = capsys.readouterr().err
    assert rc == 1
    assert "readout" in err and "GPIB0::8::INSTR" in err and "did not answer" in err
    assert bench["world"].coil.output_on is False


def test_opening_a_rig_left_energised_ramps_it_down_through_the_drivers(bench, caplog):
    from labml.rigs import open_rig

    world = bench["world"]
    world.coil.set_output(True)
    world.coil.set_setpoint_A(4.0)
    world.advance(0.05)
    with open_rig(bench["path"]) as rig:
        assert "left energised" in caplog.text
        assert abs(world.coil.current_A) < 0.01
        sets = [r for r in rig.guard.log if r.action == "set"]
        assert len(sets) == 40 and sets[-1].detail["current_A"] == 0.0
        t = np.array([r.t_s for r in sets])
        assert np.all(np.diff(t) >= 0.1 / 50.0 * (1 - 1e-9))
    assert world.coil.output_on is False


def test_read_synapses_on_the_bench_path_through_the_drivers(bench):
    from labml.rigs import open_rig

    with open_rig(bench["path"], instruments={"readout": {"threshold_V": 0.0}}) as rig:
        rig.calibrate_readout(0, n=2)
        reads = rig.read_synapses(np.array([2.0, 12.0]), np.array([0, 0]), n=4)
    assert reads.counts[1] == 4  # 12 mT is far above the nominal wire's curve: always passes
    assert reads.counts[0] <= 2  # 2 mT: p ~ 0.03
    assert reads.bench_time_s > 8 * 5e-3 and reads.energy_J > 0


def test_a_second_process_cannot_open_a_locked_bench(bench, capsys):
    from instruments.errors import RigLockedError
    from labml.rigs import open_rig

    lock = bench["lock_dir"] / "test-bench.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(RigLockedError, match="in use by PID"):
        open_rig(bench["path"])
    assert bench["opened"] == []  # refused before any connection
    assert main(["rig", "check", "--rig", str(bench["path"])]) == 2
    assert "in use by PID" in capsys.readouterr().err


def test_rig_zero_refuses_a_live_lock_holder_unless_forced(bench, capsys):
    world = bench["world"]
    world.coil.set_output(True)
    world.coil.set_setpoint_A(-3.0)
    world.advance(0.05)
    lock = bench["lock_dir"] / "test-bench.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    assert main(["rig", "zero", "--rig", str(bench["path"])]) == 2
    assert "locked by live PID" in capsys.readouterr().err
    assert abs(world.coil.current_A + 3.0) < 0.01 and bench["opened"] == []
    assert main(["rig", "zero", "--rig", str(bench["path"]), "--force"]) == 0
    out = capsys.readouterr().out
    assert "-> " in out and "outputs off" in out
    assert abs(world.coil.current_A) < 0.01 and world.coil.output_on is False
    opened = {a for a, _ in bench["opened"]}
    assert opened == {"GPIB0::6::INSTR", "TCPIP0::10.0.0.20::INSTR"}  # only coil supply and generator


def test_rig_zero_takes_over_a_dead_holders_lock(bench, capsys):
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    lock = bench["lock_dir"] / "test-bench.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": p.pid, "host": socket.gethostname()}))
    assert main(["rig", "zero", "--rig", str(bench["path"])]) == 0
    assert f"PID {p.pid}" in capsys.readouterr().out
    assert not lock.exists()


def test_rig_scan_lists_resources_without_opening_them(monkeypatch, capsys):
    import pyvisa

    calls = []

    class FakeRM:
        visalib = "fake"

        def __init__(self, lib=""):
            calls.append(("init", lib))

        def list_resources(self, query="?*::INSTR"):
            calls.append(("list", query))
            return ("GPIB0::6::INSTR", "TCPIP0::10.0.0.20::INSTR")

        def open_resource(self, *a, **k):  # pragma: no cover - reaching it is the failure
            raise AssertionError("scan must not open resources")

        def close(self):
            calls.append(("close",))

    monkeypatch.setattr(pyvisa, "ResourceManager", FakeRM)
    assert main(["rig", "scan", "--visa-library", "@py"]) == 0
    out = capsys.readouterr().out
    assert "GPIB0::6::INSTR" in out and "TCPIP0::10.0.0.20::INSTR" in out
    assert calls == [("init", "@py"), ("list", "?*::INSTR"), ("close",)]


def test_bad_rig_file_is_a_clear_error(tmp_path, capsys):
    p = tmp_path / "bad.toml"
    p.write_text(BENCH.replace("i_max_A = 20.0", "i_max = 20.0"))
    assert main(["rig", "check", "--rig", str(p)]) == 2
    err = capsys.readouterr().err
    assert str(p) in err and "i_max" in err and "missing unit" in err


def test_the_strict_supply_driver_gets_the_rigs_current_limit_as_second_line_of_defence(bench):
    from labml.rigs import open_rig

    with open_rig(bench["path"], limits={"i_max_A": 8.0}, cycle={"reset_field_mT": -14.0}) as rig:
        supply = rig.field_source.supply
        assert supply.i_max_A == 8.0
        with pytest.raises(ValueError):  # the driver itself refuses 9 A before writing anything
            supply.current_setpoint = 9.0
