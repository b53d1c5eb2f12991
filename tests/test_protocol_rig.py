"""Measurement protocols on the simulated rig: coil calibration, hysteresis loops (also across a pause
in the middle of a branch), characterisation of every wire, and the coil never outside its limits."""

from __future__ import annotations

import numpy as np
import pytest

from labml.runs.engine import RunEngine
from protocols.runner import run_protocol


def _signal_rows(run_dir):
    from labml.runs.store import load

    rows = load(run_dir).series("data")
    return [(r["Branch"], float(r["Field set (mT)"]), float(r["Signal"])) for r in rows]


def test_coil_calibration_recovers_the_configured_mT_per_A(tmp_path):
    out = run_protocol(
        "coil-calibration",
        {"current_max": "5 A", "points": 11, "hall_reads": 3},
        rig="sim",
        run_dir=tmp_path / "coil",
        progress=False,
    )
    r = out["results"]
    assert out["status"] == "success"
    # 3.3 standard errors: a correct calibration fails this with probability < 0.1 %
    assert abs(r["mT_per_A"] - 1.8) < 3.3 * r["mT_per_A_err"], r
    assert r["mT_per_A_err"] < 0.01 and r["residual_rms_mT"] < 0.1
    assert np.isfinite(r["remanence_mT"]) and np.isfinite(r["zero_offset_mT"])


HYST = {"wire": 0, "field_max": "8 mT", "field_step": "1 mT", "settle": "10 ms"}


def test_hysteresis_loop_switches_up_and_down_symmetrically(tmp_path):
    out = run_protocol("hysteresis", HYST, rig="sim", run_dir=tmp_path / "loop", progress=False)
    r = out["results"]
    assert out["status"] == "success" and r["points"] == 34
    # the wall passes the notch at its depinning field on the way up, and back on the way down
    assert 2.0 < r["switching_field_up_mT"] < 8.0
    assert -8.0 < r["switching_field_down_mT"] < -2.0
    assert abs(r["loop_shift_mT"]) < 1.0
    assert r["signal_positive_saturation"] != r["signal_negative_saturation"]


def test_a_pause_mid_branch_gives_the_same_loop_as_an_uninterrupted_run(tmp_path):
    """The engine ramps the field to zero on the pause; on resume the protocol re-saturates and
    re-walks the branch, so every point of the loop sees the same magnetic state."""
    run_protocol("hysteresis", HYST, rig="sim", run_dir=tmp_path / "straight", progress=False)
    engine = RunEngine(progress=False, handle_sigint=False, on_pause=lambda e, step: "resume")
    fields_at_pause = []

    def pause_mid_up_branch(event, payload):
        if event == "step" and payload["step"] == 12:  # up branch at +3 mT, near the switch
            engine.request_pause()
        if event == "pause":
            fields_at_pause.append(engine.rig.guard.field_mT)

    engine.subscribe(pause_mid_up_branch)
    out = run_protocol("hysteresis", HYST, rig="sim", run_dir=tmp_path / "paused", engine=engine)
    assert out["status"] == "success"
    assert fields_at_pause == [0.0]  # the pause ramped the field to zero
    a, b = _signal_rows(tmp_path / "straight"), _signal_rows(tmp_path / "paused")
    assert [(x[0], x[1]) for x in a] == [(x[0], x[1]) for x in b]
    sa, sb = np.array([x[2] for x in a]), np.array([x[2] for x in b])
    mid = 0.5 * (np.median(sa[:5]) + np.median(sa[12:17]))  # negative / positive saturation levels
    # the magnetic state at every point is the same (the read-out noise is not)
    assert np.mean((sa > mid) == (sb > mid)) >= 0.9


def test_characterise_wires_measures_every_wire_and_the_spread(tmp_path):
    out = run_protocol(
        "characterise-wires",
        {"reads": 40, "field_points": 6, "write_calibration": False},
        rig="sim",
        run_dir=tmp_path / "all",
        progress=False,
    )
    r = out["results"]
    assert r["n_wires"] == 4 and set(r["wires"]) == {"0", "1", "2", "3"}
    assert r["H0_std"] > 0 and r["H0_min"] <= r["H0_mean"] <= r["H0_max"]
    for w in r["wires"].values():
        assert 2.0 < w["H0"] < 8.0 and w["H0_err"] > 0


def test_every_coil_request_stays_inside_the_limits(tmp_path):
    from labml.rigs import open_rig

    with open_rig("sim") as rig:
        run_protocol(
            "hysteresis",
            {**HYST, "field_max": "6 mT", "field_step": "2 mT"},
            rig=rig,
            run_dir=tmp_path / "h",
            progress=False,
        )
        limits = rig.config.limits
        sets = [rec.detail["current_A"] for rec in rig.guard.log if rec.action == "set"]
        assert sets and max(abs(i) for i in sets) <= limits.i_max_A
        assert max(abs(i) for i in sets) * rig.config.coil.mT_per_A == pytest.approx(6.0)
        assert rig.guard.setpoint_A == 0.0  # the protocol leaves the field at zero
