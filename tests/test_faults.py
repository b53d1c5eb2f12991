"""Fault injection: every fault kind is produced deterministically (given a seed or a schedule)
and surfaces at the driver as a pyvisa-like VisaIOError or at the role as InstrumentFault; a rig
with a failing instrument still shuts down to zero field with outputs off."""

from __future__ import annotations

import numpy as np
import pytest
from pymeasure.instruments.keithley import Keithley6221
from pyvisa.constants import StatusCode
from pyvisa.errors import VisaIOError
from scipy import stats

from instruments.config import builtin_rig_path, load_rig_config
from instruments.errors import ConfigError, InstrumentFault
from instruments.models.keithley6221 import DeltaModeMRReadout
from instruments.models.kepco_bop import KepcoBOPStrict, KepcoFieldSource
from instruments.models.sr8x0 import MokeLockinReadout, SR830Lockin
from simulated_hw.adapter import SimAdapter
from simulated_hw.faults import FAULT_KINDS, FaultConfigError, FaultInjector
from simulated_hw.instruments import SimKeithley6221, SimKepco, SimSR830
from simulated_hw.rig import build_sim_rig
from simulated_hw.world import World


@pytest.fixture
def world():
    return World.default(seed=5)


def kepco_role(world, faults=None):
    adapter = SimAdapter(SimKepco(world), faults=faults)
    return KepcoFieldSource(KepcoBOPStrict(adapter, i_max_A=20, v_max_V=20)), adapter


def moke_role(world, faults=None):
    adapter = SimAdapter(SimSR830(world), faults=faults)
    ro = MokeLockinReadout(SR830Lockin(adapter), world.clock)
    ro.configure()
    return ro, adapter


def _outcomes(seed: int, n: int = 150) -> list[str]:
    world = World.default(seed=0)
    faults = FaultInjector("field_source", {"timeout": 0.05, "garbled": 0.05}, seed=seed)
    fs, adapter = kepco_role(world, faults)
    out = []
    for _ in range(n):
        try:
            _ = fs.current_A
            out.append("ok")
        except InstrumentFault as exc:
            out.append(type(exc.__cause__).__name__)
            adapter.flush_read_buffer()
    return out


def test_random_faults_are_deterministic_given_the_seed():
    a, b, c = _outcomes(3), _outcomes(3), _outcomes(4)
    assert a == b
    assert a != c
    assert {"ok", "VisaIOError", "ValueError"} <= set(a)


def test_fault_rate_matches_the_configured_probability():
    faults = FaultInjector("x", {"timeout": 0.1}, seed=1)
    n = 4000
    hits = 0
    for _ in range(n):
        faults.tick()
        hits += faults.take("timeout")
    lo, hi = stats.binom.interval(0.999, n, 0.1)
    assert lo <= hits <= hi  # 99.9 % binomial interval


def test_scheduled_fault_fires_at_the_given_transaction(world):
    faults = FaultInjector("field_source", schedule=[{"kind": "timeout", "at": 4, "count": 1}])
    fs, _ = kepco_role(world, faults)
    fs.current_A  # transactions 1 (write) and 2 (read)  # noqa: B018
    with pytest.raises(InstrumentFault) as info:
        _ = fs.current_A  # 3 (write), 4 (read): times out
    assert isinstance(info.value.__cause__, VisaIOError)
    assert faults.log == [(4, "timeout")]
    fs.current_A  # noqa: B018  (back to normal)


def test_timeout_is_a_pyvisa_timeout_at_the_driver_and_costs_the_timeout(world):
    faults = FaultInjector("field_source")
    adapter = SimAdapter(SimKepco(world), faults=faults, timeout_s=1.5)
    supply = KepcoBOPStrict(adapter, i_max_A=20, v_max_V=20)
    faults.inject("timeout")
    t0 = world.clock.now()
    with pytest.raises(VisaIOError) as info:
        supply.current  # noqa: B018
    assert info.value.error_code == StatusCode.error_timeout
    assert world.clock.now() - t0 == pytest.approx(1.5)


def test_garbled_reply_is_an_instrument_fault(world):
    fs, adapter = kepco_role(world)
    adapter.faults.inject("garbled")
    with pytest.raises(InstrumentFault, match="unreadable reply"):
        fs.current_A  # noqa: B018
    assert fs.current_A == pytest.approx(0.0, abs=1e-3)


def test_after_a_truncated_reply_the_supply_role_resynchronises_so_the_next_reply_is_clean(world):
    fs, adapter = kepco_role(world)
    world.coil.set_output(True)
    world.coil.set_setpoint_A(2.5)
    world.advance(0.01)
    adapter.faults.inject("truncated")
    with pytest.raises(InstrumentFault, match="measure current"):
        fs.current_A  # noqa: B018
    # the partial bytes of the lost reply were discarded: the next query reads its own answer
    assert fs.setpoint_A == pytest.approx(2.5)
    assert fs.current_A == pytest.approx(2.5, abs=1e-3)


def test_after_a_disconnect_on_a_read_the_stale_reply_is_never_taken_for_the_next_answer(world):
    fs, adapter = kepco_role(world)
    world.coil.set_output(True)
    world.coil.set_setpoint_A(-4.25)
    world.advance(0.01)
    adapter.faults.schedule.append({"kind": "disconnect", "at": adapter.faults.transaction + 2, "count": 1})
    with pytest.raises(InstrumentFault):
        fs.output_enabled  # noqa: B018  (the query is written, its reply is lost on the read)
    assert fs.setpoint_A == pytest.approx(-4.25)  # not the "1" queued for OUTP?
    assert fs.output_enabled is True


def test_error_queue_fault_surfaces_when_the_role_checks_errors(world):
    fs, adapter = kepco_role(world)
    adapter.faults.inject("error")
    with pytest.raises(InstrumentFault, match="-310"):
        fs.configure()
    fs.configure()  # queue drained: fine again


def test_disconnect_then_reconnect(world):
    fs, adapter = kepco_role(world)
    adapter.faults.inject("disconnect", count=3)
    for _ in range(3):
        with pytest.raises(InstrumentFault) as info:
            fs.output_enabled  # noqa: B018
        assert info.value.__cause__.error_code == StatusCode.error_connection_lost
    assert fs.output_enabled is False
    adapter.faults.inject("disconnect", count=None)  # until the cable is back
    for _ in range(5):
        with pytest.raises(InstrumentFault):
            fs.output_enabled  # noqa: B018
    adapter.reconnect()
    assert fs.output_enabled is False


def test_compliance_trip_on_supply_and_delta_source(world):
    fs, adapter = kepco_role(world)
    fs.configure()
    fs.enable_output()
    adapter.faults.inject("compliance")
    with pytest.raises(InstrumentFault, match="compliance"):
        fs.set_current_A(0.1)
    fs.set_current_A(0.1)  # one occurrence only
    d_adapter = SimAdapter(SimKeithley6221(world))
    ro = DeltaModeMRReadout(Keithley6221(d_adapter), world.clock)
    ro.configure()
    d_adapter.faults.inject("compliance")
    with pytest.raises(InstrumentFault, match="overflow"):
        ro.signal()
    assert ro.signal() == pytest.approx(world.resistance_ohm(), abs=0.01)


def test_lockin_overload_and_laser_off(world):
    ro, adapter = moke_role(world)
    adapter.faults.inject("overload")
    with pytest.raises(InstrumentFault, match="overload"):
        ro.signal()
    adapter.faults.inject("laser_off")
    with pytest.raises(InstrumentFault, match="laser off"):
        ro.signal()
    assert ro.signal() > 0.4  # light back


def test_every_kind_is_known_and_bad_specs_are_refused():
    assert set(FAULT_KINDS) == {
        "timeout",
        "garbled",
        "truncated",
        "error",
        "disconnect",
        "compliance",
        "overload",
        "laser_off",
    }
    with pytest.raises(FaultConfigError, match="unknown fault kind 'smoke'"):
        FaultInjector("readout", {"smoke": 0.1})
    with pytest.raises(FaultConfigError, match=r"faults.readout.timeout.*outside"):
        FaultInjector("readout", {"timeout": 1.5})
    with pytest.raises(FaultConfigError, match="unknown key"):
        FaultInjector("readout", schedule=[{"kind": "timeout", "when": 3}])


def test_rig_config_faults_and_shutdown_with_a_dead_instrument():
    base = builtin_rig_path("sim_default")
    with pytest.raises(ConfigError, match="no instrument role"):
        build_sim_rig(load_rig_config(base, {"sim": {"faults": {"lockin": {"timeout": 0.1}}}}))
    with pytest.raises(ConfigError, match="unknown fault kind"):
        build_sim_rig(load_rig_config(base, {"sim": {"faults": {"readout": {"fire": 0.1}}}}))
    cfg = load_rig_config(
        base,
        {
            "sim": {
                "faults": {"seed": 2, "readout": {"schedule": [{"kind": "laser_off", "at": 1, "count": -1}]}}
            }
        },
    )
    rig = build_sim_rig(cfg)
    rig.ramp_to_field(3.0)
    with pytest.raises(InstrumentFault, match="laser off"):
        rig.cycle(5.0)
    rig.faults["pulse_source"].inject("disconnect", count=None)  # generator unplugged too
    errors = rig.shutdown()
    assert any("pulse" in name for name, _ in errors)  # reported, not hidden
    assert rig.world.coil.current_A == 0.0 and not rig.world.coil.output_on
    assert np.isclose(rig.guard.setpoint_A, 0.0)


def _roles(world):
    """(name, role, adapter, operation) for every role implementation over its simulated instrument."""
    from pymeasure.instruments.lakeshore import LakeShore421, LakeShore425

    from instruments.models.agilent33500 import Agilent33500Pulse, AwgPulseSource
    from instruments.models.keithley24xx import Keithley2400Strict, SourcemeterFieldSource
    from instruments.models.keithley7001 import SwitchMatrix7001, SwitchSelector
    from instruments.models.lakeshore import HallSensor
    from instruments.models.sr8x0 import SR860Lockin
    from simulated_hw.instruments import (
        SimAgilent33500,
        SimKeithley2400,
        SimLakeShore421,
        SimLakeShore425,
        SimSR860,
        SimSwitch7001,
    )

    out = []
    fs, a = kepco_role(world)
    out.append(("kepco", a, lambda: fs.current_A))
    a = SimAdapter(SimKeithley2400(world))
    smu = SourcemeterFieldSource(Keithley2400Strict(a, i_max_A=0.5))
    out.append(("2400", a, lambda: smu.current_A))
    a = SimAdapter(SimAgilent33500(world, 2.0))
    awg = AwgPulseSource(Agilent33500Pulse(a), amplifier_A_per_V=2.0)
    awg.arm(np.r_[0.0, np.ones(10), 0.0], 1e5)
    out.append(("33500", a, awg.trigger))
    for sim, drv in ((SimLakeShore425, LakeShore425), (SimLakeShore421, LakeShore421)):
        a = SimAdapter(sim(world))
        hall = HallSensor(drv(a))
        out.append((drv.__name__, a, lambda hall=hall: hall.field_mT))
    ro, a = moke_role(world)
    out.append(("sr830", a, ro.signal))
    a = SimAdapter(SimSR860(world))
    ro860 = MokeLockinReadout(SR860Lockin(a), world.clock)
    out.append(("sr860", a, ro860.signal))
    a = SimAdapter(SimKeithley6221(world))
    mr = DeltaModeMRReadout(Keithley6221(a), world.clock, n_average=2)
    mr.configure()
    out.append(("6221", a, mr.signal))
    a = SimAdapter(SimSwitch7001(world))
    sel = SwitchSelector(SwitchMatrix7001(a, n_channels=4))
    out.append(("7001", a, lambda: sel.select(1)))
    return out


@pytest.mark.parametrize("kind", ["timeout", "garbled", "truncated", "disconnect"])
def test_every_role_turns_bus_faults_into_instrument_faults(world, kind):
    for name, adapter, operation in _roles(world):
        operation()  # works without the fault
        adapter.faults.inject(kind, count=1)
        with pytest.raises(InstrumentFault):
            operation()
        adapter.flush_read_buffer()
        operation()  # and works again afterwards
        assert name
