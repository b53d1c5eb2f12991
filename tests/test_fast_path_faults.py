"""Faults reach the fast path: the simulated rig's batched ``read_synapses`` (in-the-loop training,
depinning calibration) is cut into the bench planner's transactions (one burst per wire and field
level), each with its own configured fault rate; a faulty burst raises InstrumentFault and never
returns counts; the run engine retries it, counts it in run.json and suspends with the field at zero
while the fault persists."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

from instruments.config import builtin_rig_path, load_rig_config
from instruments.errors import ConfigError, InstrumentFault
from labml.engine_plans import trainer_plan
from labml.runs import store as runs
from labml.runs.engine import RunEngine, Watchdog
from protocols.runner import run_protocol
from simulated_hw.faults import FAST_PATH_KINDS, FaultInjector
from simulated_hw.rig import build_sim_rig

torch.set_num_threads(1)

# two wires, three levels: four bursts on a bench (wire 0: 3 and 5 mT; wire 1: 5 and 6 mT)
FIELDS = np.array([3.0, 5.0, 5.0, 6.0, 3.0])
WIRES = np.array([0, 0, 1, 1, 0])
N = 40


def sim_rig(fast_path=None, seed=3, **kw):
    faults = {"seed": seed} if fast_path is None else {"seed": seed, "fast_path": fast_path}
    return build_sim_rig(load_rig_config(builtin_rig_path("sim_default"), {"sim": {"faults": faults}}), **kw)


def _outcome(rig):
    try:
        reads = rig.read_synapses(FIELDS, WIRES, N)
    except InstrumentFault as exc:
        return ("fault", exc.kind, rig.clock.now())
    return ("ok", reads.counts.tolist(), reads.bench_time_s, reads.energy_J, rig.clock.now())


@pytest.mark.parametrize("kind", FAST_PATH_KINDS)
def test_a_faulty_burst_raises_an_instrument_fault_and_returns_no_counts(kind):
    with sim_rig({"schedule": [{"kind": kind, "at": 3, "count": 1}]}) as rig:
        t0 = rig.clock.now()
        with pytest.raises(InstrumentFault) as info:
            rig.read_synapses(FIELDS, WIRES, N)  # bursts 1-4 are transactions 1-4: the third faults
        assert info.value.kind == kind
        assert "burst 3/4 (wire 1, 5 mT, 40 reads)" in str(info.value)
        assert rig.faults["fast_path"].log == [(3, kind)]
        assert rig.clock.now() > t0  # the bursts played before the fault took bench time
        reads = rig.read_synapses(FIELDS, WIRES, N)  # the fault has passed: a whole, valid result
        assert reads.counts.shape == FIELDS.shape and np.all((reads.counts >= 0) & (reads.counts <= N))
        assert rig.faults["fast_path"].transaction == 3 + 4  # the faulty call stopped at its third burst


def test_garbage_in_a_fetched_buffer_is_a_wrong_length_or_nans_and_is_detected():
    with sim_rig({"schedule": [{"kind": "truncated", "at": 1}, {"kind": "garbled", "at": 2}]}) as rig:
        with pytest.raises(InstrumentFault, match=r"returned \d+ buffered values, expected 80"):
            rig.read_synapses(FIELDS, WIRES, N)
        with pytest.raises(InstrumentFault, match=r"non-finite buffered value\(s\) of 80 .*nan"):
            rig.read_synapses(FIELDS, WIRES, N)


def test_without_fast_path_faults_the_numbers_are_those_of_the_world_alone():
    # a fault-free rig, one whose fault table cannot fire in these calls, and the bare world: same draws
    outs = []
    for fast_path in (None, {"schedule": [{"kind": "timeout", "at": 10**6}], "overload": 0.0}):
        with sim_rig(fast_path) as rig:
            outs.append([_outcome(rig) for _ in range(5)])
    assert outs[0] == outs[1]
    with sim_rig() as rig:
        t = rig.clock.now()
        reads = rig.world.read_synapses(FIELDS, WIRES, N)
        bare = ("ok", reads.counts.tolist(), reads.bench_time_s, reads.energy_J, t + reads.bench_time_s)
    assert outs[0][0] == bare


def test_the_injected_fault_count_follows_the_configured_rate_per_burst():
    p, n_bursts = 0.05, 1500
    with sim_rig({"timeout": p}) as rig:
        faults = 0
        for _ in range(n_bursts):  # one request: one burst per call
            try:
                rig.read_synapses(np.array([4.0]), np.array([0]), 4)
            except InstrumentFault:
                faults += 1
        assert rig.faults["fast_path"].transaction == n_bursts
        assert len(rig.faults["fast_path"].log) == faults
    lo, hi = stats.binom.interval(0.999, n_bursts, p)  # a correct injector fails this 0.1 % of the time
    assert lo <= faults <= hi


def test_the_same_seed_gives_the_same_faults_and_results_and_a_restored_state_continues_identically():
    table = {"timeout": 0.1, "garbled": 0.05, "disconnect": 0.03}
    with sim_rig(table) as a, sim_rig(table) as b, sim_rig(table, seed=4) as c:
        ra, rb, rc = ([_outcome(r) for _ in range(30)] for r in (a, b, c))
        assert ra == rb and ra != rc
        assert {o[0] for o in ra} == {"ok", "fault"}
        state = json.loads(json.dumps(a.state_dict()))  # a checkpoint (JSON round trip)
        cont_a = [_outcome(a) for _ in range(20)]
    with sim_rig(table) as d:
        d.load_state_dict(state)
        assert [_outcome(d) for _ in range(20)] == cont_a


def test_a_block_of_transactions_draws_exactly_as_one_tick_at_a_time():
    def make():
        return FaultInjector("fast_path", {"timeout": 0.01, "garbled": 0.004}, seed=9, kinds=FAST_PATH_KINDS,
                             schedule=[{"kind": "disconnect", "at": 700, "count": 3}])

    one, block = make(), make()
    looped, blocked = [], []
    for size in [1, 50, 333, 1000, 7, 2000] * 3:
        for i in range(size):
            one.tick()
            kind = next((k for k in FAST_PATH_KINDS if one.take(k)), None)
            if kind is not None:
                looped.append((i, kind))
                break
        else:
            looped.append(None)
        blocked.append(block.run_transactions(size, FAST_PATH_KINDS))
    assert blocked == looped and any(blocked)
    assert block.state_dict() == one.state_dict()


def test_a_fast_path_fault_table_is_checked_like_the_others():
    with pytest.raises(ConfigError, match=r"fast_path.compliance: unknown fault kind 'compliance'"):
        sim_rig({"compliance": 0.1})
    with pytest.raises(ConfigError, match=r"fast_path.timeout: probability 1.5 outside \[0, 1\]"):
        sim_rig({"timeout": 1.5})
    with pytest.raises(ConfigError, match=r"fast_path.timeout: probability 'x' is not a number"):
        sim_rig({"timeout": "x"})


# ------------------------------------------------------------------ the run engine rides them out
TRAIN = {"n": 1, "epochs": 3, "patience": 0, "train_size": 60, "test_size": 20, "test_passes": 1,
         "batch_size": 20, "backend": "rig", "rig": "sim", "seed": 5}
WATCHDOG = {"retries": 2, "backoff_s": 0.05, "poll_s": 0.5}


def _train(run_dir, fast_path):
    with sim_rig(fast_path, seed=1) as rig:
        eng = RunEngine(progress=False, handle_sigint=False, watchdog=Watchdog(**WATCHDOG))
        # and one more fault in the final evaluation on the rig (after the last epoch, outside any step)
        eng.subscribe(lambda ev, p: rig.faults["fast_path"].inject("timeout")
                      if ev == "step" and p["step"] == TRAIN["epochs"] else None)
        plan = trainer_plan("train-synapses", **TRAIN)
        out = eng.run(plan, run_dir, rig=rig)
        assert rig.guard.setpoint_A == 0.0 and rig.world.coil.setpoint_A == 0.0
        injected = len(rig.faults["fast_path"].log)
    return out, runs.load(run_dir), injected


def test_in_the_loop_training_rides_out_fast_path_timeouts_and_counts_them(tmp_path):
    # ~300 bursts per epoch: a rate of 0.003 per burst gives a fault every epoch or so
    out, run, injected = _train(tmp_path / "train", {"timeout": 0.003})
    assert out.status == "success"
    assert [r["epoch"] for r in run.series("epochs")] == [0, 1, 2]  # every epoch exactly once
    assert injected > 1 and run.meta["faults"] == {"total": injected, "timeout": injected}
    fault_steps = [e["step"] for e in run.meta["events"] if e["event"] == "fault"]
    assert len(fault_steps) == injected and fault_steps[-1] == TRAIN["epochs"]  # the evaluation's
    assert "final" in run.meta["results"]  # the evaluation was redone and recorded


DEPIN = {"wire": 0, "field_start": "3 mT", "field_stop": "7 mT", "field_points": 6, "reads": 40,
         "write_calibration": False}


def _depin(run_dir, fast_path, states=None, **watchdog):
    with sim_rig(fast_path, seed=2) as rig:
        eng = RunEngine(progress=False, handle_sigint=False, watchdog=Watchdog(**{**WATCHDOG, **watchdog}))
        if states is not None:
            eng.subscribe(lambda ev, p: states.append((ev, rig.guard.setpoint_A, rig.world.coil.setpoint_A))
                          if ev in ("safe", "suspend") else None)
        out = run_protocol("depinning-calibration", DEPIN, rig=rig, run_dir=run_dir, engine=eng)
        assert rig.guard.setpoint_A == 0.0 and rig.world.coil.setpoint_A == 0.0
    return out, runs.load(run_dir)


def _fields(run):
    return sorted(float(r["Field (mT)"]) for r in run.series("data"))


def test_depinning_calibration_rides_out_fast_path_faults_with_every_point_once(tmp_path):
    # one burst per point; after a fault, the probe's status query and the redone point are the next two
    schedule = [{"kind": "timeout", "at": 2}, {"kind": "garbled", "at": 5}, {"kind": "truncated", "at": 8},
                {"kind": "overload", "at": 11}]
    out, run = _depin(tmp_path / "depin", {"schedule": schedule})
    assert out["status"] == "success"
    assert _fields(run) == pytest.approx(np.linspace(3, 7, 6).tolist())  # each field exactly once
    assert run.meta["faults"] == {"total": 4, "timeout": 1, "garbled": 1, "truncated": 1, "overload": 1}
    assert "suspend-fault" not in [e["event"] for e in run.meta["events"]]


def test_a_lasting_fast_path_disconnect_suspends_with_the_field_at_zero_then_continues(tmp_path):
    states = []
    out, run = _depin(tmp_path / "depin", {"schedule": [{"kind": "disconnect", "at": 3, "count": 8}]}, states)
    assert out["status"] == "success"
    events = [e["event"] for e in run.meta["events"]]
    assert "suspend-fault" in events and events.index("safe-state") < events.index("fault-cleared")
    assert states and all(s[1:] == (0.0, 0.0) for s in states)  # suspended at zero field
    assert _fields(run) == pytest.approx(np.linspace(3, 7, 6).tolist())
    assert run.meta["faults"] == {"total": 1, "disconnect": 1}


def test_a_fast_path_disconnect_that_never_clears_aborts_cleanly_at_zero_field(tmp_path):
    states = []
    forever = {"schedule": [{"kind": "disconnect", "at": 3, "count": -1}]}  # until reconnect()
    out, run = _depin(tmp_path / "depin", forever, states, suspend_timeout_s=20)
    assert out["status"] == "aborted" and "did not clear within 20 s" in out["reason"]
    assert states and all(s[1:] == (0.0, 0.0) for s in states)
    assert len(run.series("data")) == 2  # the points measured before the fault are kept


def test_a_run_under_fast_path_faults_resumed_from_its_checkpoint_ends_as_the_uninterrupted_run(tmp_path):
    table = {"timeout": 0.12, "garbled": 0.08}

    def rows(run):
        return [(r["Field (mT)"], r["Passes"]) for r in run.series("data")]

    ref_out, ref = _depin(tmp_path / "ref", table)
    with sim_rig(table, seed=2) as rig:
        eng = RunEngine(progress=False, handle_sigint=False, watchdog=Watchdog(**WATCHDOG),
                        on_pause=lambda e, step: "suspend")
        eng.subscribe(lambda ev, p: eng.request_pause() if ev == "step" and p["step"] == 1 else None)
        out = run_protocol("depinning-calibration", DEPIN, rig=rig, run_dir=tmp_path / "cut", engine=eng)
    assert out["status"] == "paused"
    with sim_rig(table, seed=2) as rig:  # a fresh process would build the same rig, then restore its state
        out = RunEngine(progress=False, handle_sigint=False, watchdog=Watchdog(**WATCHDOG)).resume(
            tmp_path / "cut", rig=rig)
    cut = runs.load(tmp_path / "cut")
    assert out.status == ref_out["status"] == "success"
    fault_steps = [e["step"] for e in ref.meta["events"] if e["event"] == "fault"]
    assert min(fault_steps) < 1 <= max(fault_steps)  # faults before the cut and after it
    assert cut.meta["faults"] == ref.meta["faults"]
    assert rows(cut) == rows(ref)  # same faults, same draws: the same counts, every point once
