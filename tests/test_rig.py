"""NanowireRig with small fake roles: the read_synapses planner, the read cycle, request
validation before anything moves, connecting to an energised rig, and the shutdown order on
normal exit, exception and Ctrl+C."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from helpers import FakeClock
from scipy import stats

from instruments.calibration import Logistic
from instruments.config import builtin_rig_path, load_rig_config
from instruments.errors import InstrumentFault, SafetyError
from instruments.rig import NanowireRig

CFG = load_rig_config(
    builtin_rig_path("sim_default"), overrides={"instruments": {"readout": {"threshold_V": 1.0}}}
)


class FakeWorld:
    """Toy bench: a wall is pinned by inject(), a positive drive pulse of peak H passes it with
    probability Logistic().p(H), a negative pulse resets the wire. Records every call."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.clock = FakeClock()
        self.events: list[tuple] = []
        self.passed = False
        self.pinned = False
        self.current_A = 0.0
        self.p = Logistic()

    def play(self, I_A, inject_at=None):
        neg, pos = I_A.min(), I_A.max()
        if neg < 0:
            self.passed, self.pinned = False, False
        if inject_at is not None:
            self.pinned = True
        if pos > 0 and self.pinned:
            if pos * 1.8 > 15 or self.rng.random() < self.p.p(pos * 1.8):
                self.passed, self.pinned = True, False
        self.clock.sleep(I_A.size / 1e5)


class Supply:
    name = "fake supply"

    def __init__(self, world, start_A=0.0):
        self.w = world
        self.w.current_A = start_A
        self.output_enabled = False
        self.writes = []

    identity = "FAKE,KEPCO,0,1"

    @property
    def current_A(self):
        return self.w.current_A

    def set_current_A(self, current_A):
        self.w.events.append(("set", current_A))
        self.writes.append((self.w.clock.now(), current_A))
        self.w.current_A = current_A

    def enable_output(self):
        self.w.events.append(("output_on",))
        self.output_enabled = True

    def disable_output(self):
        self.w.events.append(("output_off",))
        self.output_enabled = False


class Awg:
    name = "fake awg"
    amplifier_A_per_V = 2.0
    identity = "FAKE,33500,0,1"

    def __init__(self, world):
        self.w = world
        self.program = None

    def arm(self, waveform_V, sample_rate_Hz, n_cycles=1):
        self.w.events.append(("arm", n_cycles))
        self.program = np.asarray(waveform_V) * self.amplifier_A_per_V
        self.inject_at = None
        self.n = n_cycles

    def trigger(self):
        self.w.events.append(("trigger",))
        for _ in range(self.n):
            self.w.play(self.program, self.inject_at)

    def inject(self):
        self.w.events.append(("inject",))
        self.w.pinned = True

    def disarm(self):
        self.w.events.append(("disarm",))

    def outputs_off(self):
        self.w.events.append(("awg_outputs_off",))


class AwgWithInjectDelay(Awg):
    def arm(self, waveform_V, sample_rate_Hz, n_cycles=1, inject_delay_s=None):
        super().arm(waveform_V, sample_rate_Hz, n_cycles)
        self.inject_at = inject_delay_s


class Readout:
    name = "fake moke"
    identity = "FAKE,SR830,0,1"

    def __init__(self, world):
        self.w = world

    def signal(self):
        self.w.events.append(("read",))
        self.w.clock.sleep(5e-3)
        return 1.005 if self.w.passed else 0.995


class Selector:
    name = "fake switch"
    identity = "FAKE,7001,0,1"

    def __init__(self, world):
        self.w = world
        self.selected = -1

    def select(self, wire):
        self.w.events.append(("select", wire))
        self.selected = wire

    def open_all(self):
        self.w.events.append(("open_all",))


class Lock:
    def __init__(self, world):
        self.w = world

    def release(self):
        self.w.events.append(("lock_released",))


def make_rig(world=None, awg_cls=AwgWithInjectDelay, start_A=0.0, cfg=CFG):
    world = world or FakeWorld()
    rig = NanowireRig(
        cfg,
        field_source=Supply(world, start_A),
        pulse_source=awg_cls(world),
        readout=Readout(world),
        channel_selector=Selector(world),
        clock=world.clock,
        lock=Lock(world),
        closers=[lambda: world.events.append(("closed",))],
    )
    return world, rig


def test_read_synapses_plans_one_arm_per_wire_and_field_level():
    world, rig = make_rig()
    fields = np.array([3.0, 5.0, 3.004, 5.0, 6.0, 3.0])  # 3.004 quantises onto 3.00 (0.01 mT grid)
    wires = np.array([0, 0, 0, 1, 1, 2])
    reads = rig.read_synapses(fields, wires, n=50)
    arms = [e for e in world.events if e[0] == "arm"]
    assert len(arms) == 5  # (0,3.0) (0,5.0) (1,5.0) (1,6.0) (2,3.0)
    assert [e[1] for e in world.events if e[0] == "select"] == [0, 1, 2]
    assert sum(e[0] == "trigger" for e in world.events) == 6 * 50
    assert reads.counts.shape == (6,) and reads.n == 50
    assert np.all((reads.counts >= 0) & (reads.counts <= 50))
    assert reads.bench_time_s > 6 * 50 * 10e-3  # every cycle lasts > 10 ms on the bench
    assert reads.energy_J > 0


def test_read_synapses_counts_follow_the_pass_probability():
    world, rig = make_rig(world=FakeWorld(seed=1))
    fields = np.array([3.5, 4.63, 5.8])
    reads = rig.read_synapses(fields, np.zeros(3, int), n=400)
    p = Logistic().p(fields)
    # two-sided binomial test per request at 99.9 % confidence
    for k, pi in zip(reads.counts, p, strict=True):
        assert stats.binomtest(int(k), 400, pi).pvalue > 1e-3


def test_without_injection_trigger_each_cycle_arms_reset_and_drive_with_inject_between():
    world, rig = make_rig(awg_cls=Awg)
    reads = rig.read_synapses(np.array([4.0]), np.array([0]), n=3)
    seq = [e[0] for e in world.events if e[0] in ("arm", "trigger", "inject", "read")]
    one = ["arm", "trigger", "inject", "arm", "trigger", "read"]
    assert seq[-18:] == one * 3
    assert reads.counts.shape == (1,)


def test_requests_beyond_the_field_limit_raise_before_anything_moves():
    world, rig = make_rig()
    world.events.clear()
    with pytest.raises(SafetyError, match="request 1: field 40.0 mT"):
        rig.read_synapses(np.array([4.0, 40.0]), np.array([0, 0]), n=5)
    with pytest.raises(ValueError, match="wire 7"):
        rig.read_synapses(np.array([4.0]), np.array([7]), n=5)
    assert world.events == []


def test_cycle_and_read_bit_on_the_selected_wire():
    world, rig = make_rig()
    rig.select(2)
    bits = [rig.cycle(12.0) for _ in range(5)]  # far above H0: always passes in the toy world
    assert bits == [1] * 5
    assert [rig.cycle(-2.0) for _ in range(3)] == [0] * 3
    assert rig.calibration(2) == Logistic()
    lo, hi = rig.field_range_mT(0)
    assert 0 <= lo < 4.63 < hi


def test_readout_levels_can_be_measured_when_no_threshold_is_configured():
    cfg = load_rig_config(builtin_rig_path("sim_default"))
    world, rig = make_rig(cfg=cfg)
    with pytest.raises(InstrumentFault, match="threshold"):
        rig.read_bit()
    lv0, lv1 = rig.calibrate_readout(0)
    assert (lv0, lv1) == (0.995, 1.005)
    assert rig.cycle(12.0) == 1


def test_connecting_to_an_energised_rig_ramps_it_down_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="instruments.rig"):
        world, rig = make_rig(start_A=5.0)
    assert "left energised" in caplog.text
    writes = rig.field_source.writes
    assert writes[-1][1] == 0.0 and len(writes) == 50
    t = np.array([w[0] for w in writes])
    assert np.all(np.diff(t) >= 0.1 / 50.0 * (1 - 1e-9))


def shutdown_tail(events):
    i = max(k for k, e in enumerate(events) if e[0] == "disarm")
    return [e[0] for e in events[i:] if e[0] != "set"]


def test_shutdown_order_on_exception():
    world = FakeWorld()
    with pytest.raises(RuntimeError, match="boom"):
        with make_rig(world)[1] as rig:
            rig.ramp_to_field(9.0)
            raise RuntimeError("boom")
    ev = world.events
    tail = shutdown_tail(ev)
    assert tail == ["disarm", "output_off", "awg_outputs_off", "open_all", "closed", "lock_released"]
    i_disarm = max(k for k, e in enumerate(ev) if e[0] == "disarm")
    i_off = next(k for k, e in enumerate(ev) if e[0] == "output_off")
    ramp_down = [e[1] for e in ev[i_disarm:i_off] if e[0] == "set"]
    assert ramp_down[-1] == 0.0 and len(ramp_down) == 50  # 5 A down in 0.1 A steps before output off


def test_ctrl_c_inside_with_shuts_down_and_propagates():
    world = FakeWorld()
    with pytest.raises(KeyboardInterrupt):
        with make_rig(world)[1] as rig:
            rig.ramp_to_field(1.8)
            raise KeyboardInterrupt
    assert shutdown_tail(world.events)[-1] == "lock_released"
    assert rig.field_source.output_enabled is False and world.current_A == 0.0


def test_a_failing_shutdown_step_does_not_skip_the_rest():
    world, rig = make_rig()

    def broken():
        raise InstrumentFault("supply timeout")

    rig.field_source.disable_output = broken
    errors = rig.shutdown()
    assert [name for name, _ in errors] == ["field source output off"]
    assert [e[0] for e in world.events][-3:] == ["open_all", "closed", "lock_released"]
    assert rig.shutdown() is errors  # idempotent


def test_identities_name_the_role_that_does_not_answer():
    world, rig = make_rig()
    assert rig.identities()["field_source"] == "FAKE,KEPCO,0,1"

    class Dead(Readout):
        @property
        def identity(self):
            raise TimeoutError("VI_ERROR_TMO")

    rig.readout = Dead(world)
    with pytest.raises(InstrumentFault, match="readout .*SIM::SR830::INSTR.* did not answer"):
        rig.identities()


def test_ctrl_c_while_ramping_down_an_energised_rig_on_connect_still_leaves_it_safe():
    world = FakeWorld()
    supply = Supply(world, start_A=5.0)
    calls = {"n": 0}
    original = supply.set_current_A

    def interrupted(current_A):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        original(current_A)

    supply.set_current_A = interrupted
    with pytest.raises(KeyboardInterrupt):
        NanowireRig(
            CFG,
            field_source=supply,
            pulse_source=Awg(world),
            readout=Readout(world),
            channel_selector=Selector(world),
            clock=world.clock,
            lock=Lock(world),
        )
    assert world.current_A == 0.0 and supply.output_enabled is False
    assert [e[0] for e in world.events][-2:] == ["open_all", "lock_released"]


class BufferedReadout(Readout):
    """A read-out with triggered, buffered acquisition: one value per played cycle."""

    def __init__(self, world):
        super().__init__(world)
        self.buffer = None
        world.on_cycle = self._sample

    def _sample(self):
        if self.buffer is not None:
            self.buffer.append(1.005 if self.w.passed else 0.995)

    def arm_buffer(self, n):
        self.w.events.append(("arm_buffer", n))
        self.buffer = []

    def fetch_buffer(self):
        values, self.buffer = self.buffer, None
        return values


def _cycling_world(seed: int) -> FakeWorld:
    """A FakeWorld whose every play of the coil is one read cycle of the wire (as on the bench)."""
    world = FakeWorld(seed=seed)
    original_play = world.play

    def play(I_A, inject_at=None):
        original_play(I_A, inject_at)
        world.on_cycle()

    world.play = play
    return world


def test_buffered_readout_reads_a_whole_level_with_one_trigger():
    world = _cycling_world(seed=2)
    rig = NanowireRig(
        CFG,
        field_source=Supply(world),
        pulse_source=AwgWithInjectDelay(world),
        readout=BufferedReadout(world),
        channel_selector=Selector(world),
        clock=world.clock,
    )
    reads = rig.read_synapses(np.array([3.0, 12.0]), np.array([0, 0]), n=200)
    assert [e for e in world.events if e[0] == "arm"] == [("arm", 200), ("arm", 200)]
    assert sum(e[0] == "trigger" for e in world.events) == 2
    assert reads.counts[1] == 200
    assert stats.binomtest(int(reads.counts[0]), 200, float(Logistic().p(3.0))).pvalue > 1e-3


@pytest.mark.parametrize("garbage", ["nan", "short"])
def test_a_garbage_buffer_from_the_readout_is_a_fault_not_a_count(garbage):
    # NaN > threshold is False: without the check a lost value would silently count as a 0 bit
    world = _cycling_world(seed=2)
    readout = BufferedReadout(world)
    fetch = readout.fetch_buffer

    def fetch_garbage():
        values = fetch()
        return values[:-1] if garbage == "short" else [*values[:-1], float("nan")]

    readout.fetch_buffer = fetch_garbage
    rig = NanowireRig(
        CFG,
        field_source=Supply(world),
        pulse_source=AwgWithInjectDelay(world),
        readout=readout,
        channel_selector=Selector(world),
        clock=world.clock,
    )
    match = "199 buffered values, expected 200" if garbage == "short" else "1 non-finite buffered value"
    with pytest.raises(InstrumentFault, match=match) as info:
        rig.read_synapses(np.array([3.0]), np.array([0]), n=200)
    assert info.value.kind == ("truncated" if garbage == "short" else "garbled")
