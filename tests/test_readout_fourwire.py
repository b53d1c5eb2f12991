"""The four-point MR read-out on a Keithley 2000 multimeter (instruments.models.keithley2000) and its
simulated twin (simulated_hw.instruments.keithley2000): the read-out kind added in three files
(model module, twin, this test) to show the recipe of docs/adding-a-readout.md.

Exact SCPI traffic of the role, strict driver limits, the rig TOML selecting it (with its own
unitless key ``nplc``), the simulated rig serving it on both paths, and the hysteresis protocol
running through it."""

from __future__ import annotations

import re
from contextlib import contextmanager

import numpy as np
import pytest
from pymeasure.adapters import ProtocolAdapter
from pymeasure.test import expected_protocol

from instruments.config import builtin_rig_path, load_rig_config
from instruments.errors import ConfigError, InstrumentFault
from instruments.models.keithley2000 import FourWireMRReadout, Keithley2000FourWire
from instruments.models.registry import readout_kind, resolve_class, spec_for
from simulated_hw.adapter import SimAdapter
from simulated_hw.faults import FaultInjector
from simulated_hw.instruments.keithley2000 import SimKeithley2000
from simulated_hw.rig import build_sim_rig
from simulated_hw.twins import simulated_role_classes, twin_for
from simulated_hw.world import World

DOTTED = "instruments.models.keithley2000.FourWireMRReadout"
READOUT = {"class": DOTTED, "range_ohm": 1000, "nplc": 1, "n_average": 2}
NO_ERR = ("SYST:ERR?", '0,"No error"')
#: what the 2000 reads across the default wire's notch at its 1 mA test current (ohm): R0 = 125 plus
#: the leads' thermal EMF over the current (2 uV / 1 mA; no offset compensation), and with a wall
#: pinned there R0 + dR_dw (-0.125 ohm)
R_FREE = 125.0 + 2e-6 / 1e-3
R_PINNED = R_FREE - 0.125


@contextmanager
def traffic(pairs):
    adapter = ProtocolAdapter(pairs)
    yield adapter
    assert adapter._index == len(pairs), f"unprocessed: {pairs[adapter._index :]}"


def fourwire_toml(tmp_path):
    """The built-in simulated rig with its [instruments.readout] table replaced by the 2000."""
    text = builtin_rig_path("sim_default").read_text()
    table = (
        '[instruments.readout]\nclass = "instruments.models.keithley2000.FourWireMRReadout"\n'
        'address = "SIM::K2000::INSTR"\ntimeout_s = 2.0\nrange_ohm = 1000\nnplc = 1\nn_average = 2\n'
    )
    text, n = re.subn(r"\[instruments\.readout\]\n(?:[^\[\n][^\n]*\n)*", table + "\n", text)
    assert n == 1
    path = tmp_path / "fourwire.toml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------ driver and role (exact SCPI)


def test_fourwire_readout_configures_and_averages_exact_traffic():
    pairs = [
        (":CONF:FRES", None),
        (":SENS:FRES:RANG:AUTO 0;:SENS:FRES:RANG 1000", None),
        (":SENS:FRES:NPLC 1", None),
        NO_ERR,
        (":READ?", "+1.25002000E+02"),
        (":READ?", "+1.24998000E+02"),
    ]
    with traffic(pairs) as adapter:
        ro = FourWireMRReadout(Keithley2000FourWire(adapter), range_ohm=1000, nplc=1, n_average=2)
        ro.configure()
        assert ro.signal() == pytest.approx(125.0)


def test_fourwire_overflow_is_a_fault():
    with traffic([(":READ?", "+9.90000000E+37")]) as adapter:
        ro = FourWireMRReadout(Keithley2000FourWire(adapter))
        with pytest.raises(InstrumentFault, match="overflow") as info:
            ro.signal()
    assert info.value.kind == "overload"


@pytest.mark.parametrize(("prop", "value"), [("resistance_4W_range", 2e8), ("resistance_4W_nplc", 20)])
def test_fourwire_driver_refuses_out_of_range_settings_before_writing(prop, value):
    with expected_protocol(Keithley2000FourWire, []) as inst:
        with pytest.raises(ValueError):
            setattr(inst, prop, value)


def test_fourwire_unknown_option_is_named():
    with pytest.raises(ValueError, match="unknown option"):
        FourWireMRReadout.from_config(ProtocolAdapter([]), {"nplcs": 1})


# ------------------------------------------------------------------ registry, config, twin


def test_fourwire_is_registered_by_class_and_has_a_twin():
    cls = resolve_class(DOTTED)
    assert cls is FourWireMRReadout
    spec = spec_for(cls)
    assert spec.role == "readout" and spec.driver_for({}) is Keithley2000FourWire
    kind = readout_kind(cls)
    assert kind.signal == "mr"
    assert kind.bandwidth_Hz({"nplc": 1, "n_average": 2}) == pytest.approx(12.5)
    assert twin_for(Keithley2000FourWire, "readout") is SimKeithley2000
    assert DOTTED in simulated_role_classes()


def test_rig_toml_selects_the_fourwire_readout(tmp_path):
    cfg = load_rig_config(fourwire_toml(tmp_path))
    ro = cfg.instruments["readout"]
    assert ro.cls == DOTTED and ro.options == {"range_ohm": 1000, "nplc": 1, "n_average": 2}
    # a key no registered class declares (and without a unit) is still refused at load time
    bad = fourwire_toml(tmp_path).read_text().replace("nplc = 1", "nplcs = 1")
    (tmp_path / "bad.toml").write_text(bad)
    with pytest.raises(ConfigError, match="nplcs"):
        load_rig_config(tmp_path / "bad.toml")


def test_world_prices_the_fourwire_readout_as_mr(tmp_path):
    world = World.from_rig_config(load_rig_config(fourwire_toml(tmp_path)))
    assert world.cycle.readout == "mr"
    assert world.cycle.read_bandwidth_Hz == pytest.approx(12.5)


def test_sim_fourwire_reads_the_notch_resistance_and_reports_overflow():
    world = World.default(seed=3, n_wires=1)
    adapter = SimAdapter(SimKeithley2000(world), faults=FaultInjector("readout"), clock=world.clock)
    ro = FourWireMRReadout(Keithley2000FourWire(adapter), range_ohm=1000, nplc=1)
    ro.configure()
    t0 = world.clock.now()
    assert ro.signal() == pytest.approx(R_FREE, abs=5e-4)  # no wall at the notch
    assert world.clock.now() - t0 == pytest.approx(1 / 50)  # one reading integrates 1 NPLC
    world.inject()  # a wall pinned at the notch lowers R by dR_dw
    if world.wire_state(0).wall_pinned:
        assert ro.signal() == pytest.approx(R_PINNED, abs=5e-4)
    adapter.faults.inject("overload", 1)
    with pytest.raises(InstrumentFault, match="overflow"):
        ro.signal()


# ------------------------------------------------------------------ the simulated rig and a protocol


def test_sim_rig_serves_the_fourwire_readout_on_both_paths():
    cfg = load_rig_config(builtin_rig_path("sim_default"), {"instruments": {"readout": READOUT}})
    rig = build_sim_rig(cfg)
    try:
        assert isinstance(rig.readout, FourWireMRReadout)
        assert isinstance(rig.instruments["readout"], SimKeithley2000)
        assert rig.identities()["readout"].startswith("KEITHLEY INSTRUMENTS INC.,MODEL 2000")
        pinned, passed = rig.calibrate_readout(0, n=3)
        assert pinned == pytest.approx(R_PINNED, abs=5e-4) and passed == pytest.approx(R_FREE, abs=5e-4)
        assert [rig.cycle(1.0), rig.cycle(20.0)] == [0, 1]  # SCPI path: every reading through the 2000
        reads = rig.read_synapses(np.array([1.0, 20.0]), np.array([0, 0]), 40)  # fast path
        assert reads.counts[0] < 8 and reads.counts[1] == 40  # at 1 mT only floor-mode walls pass
    finally:
        rig.shutdown()
    assert rig.coil_at_zero


def test_hysteresis_protocol_runs_through_the_fourwire_readout(tmp_path):
    from protocols.runner import run_protocol

    params = {"wire": 0, "field_max": "8 mT", "field_step": "1 mT", "settle": "10 ms"}
    out = run_protocol(
        "hysteresis", params, rig=str(fourwire_toml(tmp_path)), run_dir=tmp_path / "loop", progress=False
    )
    assert out["status"] == "success" and out["results"]["points"] == 34
    from labml.runs.store import load

    signal = load(tmp_path / "loop").arrays("hysteresis")["signal"]  # the protocol's saved loop (run.h5)
    assert signal.size == 34
    # 4-probe MR sees the wall while it sits at the notch: R0 + dR_dw between pad nucleation and
    # depinning, R0 in both saturated states
    # AMR reads +M and -M alike and a wall leaves the notch within ms at the 5 mT steps where the
    # pad nucleates: the 2000 reads the free wire all round (no loop, unlike MOKE)
    assert np.all(np.abs(signal - R_FREE) < 5e-4), signal


def test_depinning_calibration_runs_through_the_fourwire_readout(tmp_path):
    from protocols.runner import run_protocol

    params = {"wire": 0, "field_start": "3 mT", "field_stop": "7 mT", "field_points": 6, "reads": 40,
              "write_calibration": False}
    out = run_protocol(
        "depinning-calibration", params, rig=str(fourwire_toml(tmp_path)), run_dir=tmp_path / "d",
        progress=False,
    )
    r = out["results"]
    assert out["status"] == "success" and r["total_reads"] == 240
    # the pinned wall (R0 + dR_dw) and the passed one (R0) are told apart at 1 mA: the fit finds the
    # nominal wire's logistic (H0 = 4.63 mT) with no read-out error
    assert abs(r["H0"] - 4.63) < 4 * r["H0_err"] and r["readout_error"] < 0.02
