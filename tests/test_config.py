"""The rig config loader refuses bad files with a message naming the file, the key and the problem,
and calibration files are versioned and never overwritten."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from instruments.calibration import Logistic, NeelBrown
from instruments.config import (
    builtin_rig_path,
    calibration_versions,
    latest_calibration,
    load_calibration,
    load_rig_config,
    write_calibration,
)
from instruments.errors import ConfigError

GOOD = textwrap.dedent(
    """
    name = "bench"
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
    pulse_slew_max_A_per_s = 2e4
    duty_max = 0.5
    mean_power_max_W = 150.0

    [instruments.field_source]
    class = "instruments.drivers.roles.KepcoFieldSource"
    address = "GPIB0::6::INSTR"
    timeout_s = 2.0

    [instruments.pulse_source]
    class = "instruments.drivers.roles.AwgPulseSource"
    address = "TCPIP::192.168.1.20::INSTR"
    amplifier_A_per_V = 2.0

    [instruments.readout]
    class = "instruments.drivers.roles.MokeLockinReadout"
    address = "GPIB0::8::INSTR"

    [[wires]]
    id = 0
    calibration = { H0 = 4.6, k = 2.7, a = 0.98 }
    """
)


def write(tmp_path: Path, text: str, name: str = "rig.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def expect_error(tmp_path: Path, text: str, *fragments: str) -> str:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load_rig_config(p)
    msg = str(ei.value)
    assert str(p) in msg, msg
    for f in fragments:
        assert f in msg, msg
    return msg


def test_good_bench_file_loads_with_units_and_visa_settings(tmp_path):
    cfg = load_rig_config(write(tmp_path, GOOD))
    assert cfg.backend == "visa" and cfg.n_wires == 1
    assert cfg.coil.mT_per_A == 1.8 and cfg.limits.i_max_A == 20.0
    assert cfg.instruments["field_source"].visa_kwargs() == {"timeout": 2000}
    assert cfg.instruments["pulse_source"].options == {"amplifier_A_per_V": 2.0}
    lo, hi = cfg.wires[0].field_range_mT
    assert 0 <= lo < 4.6 < hi <= 36


def test_builtin_sim_rig_has_nominal_wire_0():
    cfg = load_rig_config(builtin_rig_path("sim_default"))
    assert cfg.backend == "sim" and cfg.n_wires >= 2
    assert cfg.wires[0].calibration == Logistic()
    assert cfg.wires[0].neel_brown == NeelBrown()


def test_unknown_key_is_named(tmp_path):
    expect_error(
        tmp_path,
        GOOD.replace("duty_max = 0.5", "duty_max = 0.5\nfoo_bar = 3"),
        "[limits]",
        "'foo_bar'",
        "unknown key",
    )


def test_unknown_top_level_table_is_named(tmp_path):
    expect_error(tmp_path, GOOD + "\n[coils]\nx_A = 1\n", "'coils'", "unknown key", "did you mean 'coil'")


def test_missing_unit_suggests_the_key_with_its_unit(tmp_path):
    msg = expect_error(tmp_path, GOOD.replace("i_max_A = 20.0", "i_max = 20.0"), "[limits]", "'i_max'")
    assert "missing unit" in msg and "i_max_A" in msg


def test_role_specific_key_without_unit_is_refused(tmp_path):
    expect_error(
        tmp_path,
        GOOD.replace("amplifier_A_per_V = 2.0", "amplifier_gain = 2.0"),
        "[instruments.pulse_source]",
        "'amplifier_gain'",
        "unit",
    )


def test_missing_calibration_is_named(tmp_path):
    text = GOOD.replace("calibration = { H0 = 4.6, k = 2.7, a = 0.98 }", "")
    expect_error(tmp_path, text, "[[wires]] #0", "missing calibration")


def test_missing_calibration_file_is_named(tmp_path):
    text = GOOD.replace(
        "calibration = { H0 = 4.6, k = 2.7, a = 0.98 }", 'calibration_file = "cal/wire0-v1.toml"'
    )
    expect_error(tmp_path, text, "calibration_file", "not found")


def test_limits_out_of_order_are_refused(tmp_path):
    expect_error(
        tmp_path,
        GOOD.replace("ramp_rate_A_per_s = 50.0", "ramp_rate_A_per_s = 5e4"),
        "'ramp_rate_A_per_s'",
        "out of order",
    )
    text = GOOD.replace("a = 0.98 }", "a = 0.98 }\nfield_range_mT = [7.0, 2.0]")
    expect_error(tmp_path, text, "field_range_mT", "out of order")
    expect_error(tmp_path, GOOD + "\n[cycle]\nreset_field_mT = -40.0\n", "reset_field_mT", "exceeds")


def test_negative_drive_field_range_is_refused_before_learning_can_request_it(tmp_path):
    text = GOOD.replace("a = 0.98 }", "a = 0.98 }\nfield_range_mT = [-2.0, 8.0]")
    expect_error(tmp_path, text, "field_range_mT", "negative")
    # the default range starts at 0 mT at the lowest, even for a shallow logistic (H0 - 8/k < 0)
    text = GOOD.replace("k = 2.7", "k = 0.5")
    path = tmp_path / "shallow.toml"
    path.write_text(text)
    lo, hi = load_rig_config(path).wires[0].field_range_mT
    assert lo == 0.0 and hi > lo


def test_negative_or_non_numeric_limit_is_refused(tmp_path):
    expect_error(tmp_path, GOOD.replace("i_max_A = 20.0", "i_max_A = -1"), "'i_max_A'", "> 0")
    expect_error(tmp_path, GOOD.replace("i_max_A = 20.0", 'i_max_A = "20"'), "'i_max_A'", "number")


def test_visa_rig_needs_addresses_and_core_roles(tmp_path):
    expect_error(tmp_path, GOOD.replace('address = "GPIB0::6::INSTR"\n', ""), "field_source", "'address'")
    no_readout = re.sub(r"\[instruments\.readout\][^\[]*", "", GOOD)
    expect_error(tmp_path, no_readout, "[instruments.readout]", "missing")


def test_bad_backend_and_bad_toml(tmp_path):
    expect_error(tmp_path, GOOD.replace('backend = "visa"', 'backend = "usb"'), "'backend'")
    expect_error(tmp_path, GOOD + "\n[[[", "not valid TOML")


def test_dict_config_and_overrides():
    import tomllib

    raw = tomllib.loads(GOOD)
    cfg = load_rig_config(raw, overrides={"limits": {"i_max_A": 17.0}})
    assert cfg.limits.i_max_A == 17.0 and cfg.field_limit_mT == pytest.approx(30.6)
    with pytest.raises(ConfigError, match="<dict>.*'i_max_A'"):
        load_rig_config(raw, overrides={"limits": {"i_max_A": 0}})


def test_calibration_files_are_versioned_and_never_overwritten(tmp_path):
    d = tmp_path / "cal"
    p1 = write_calibration(d, 0, Logistic(4.5, 2.5, 0.97), NeelBrown(), {"run": "abc", "n_reads": 200})
    p2 = write_calibration(d, 0, Logistic(4.7, 2.6, 0.96), None, {"run": "def"})
    p3 = write_calibration(d, 1, Logistic(5.0, 3.0, 0.99))
    assert [p.name for p in (p1, p2, p3)] == ["wire0-v1.toml", "wire0-v2.toml", "wire1-v1.toml"]
    first = p1.read_text()
    cal, nb, meta = load_calibration(p1)
    assert cal == Logistic(4.5, 2.5, 0.97) and nb == NeelBrown() and meta["n_reads"] == 200
    assert load_calibration(p2)[1] is None
    assert p1.read_text() == first  # untouched by later writes
    assert [v for v, _ in calibration_versions(d, 0)] == [1, 2]
    assert latest_calibration(d, 0) == p2


def test_rig_uses_a_calibration_file_for_the_right_wire(tmp_path):
    p = write_calibration(tmp_path / "cal", 0, Logistic(5.1, 2.2, 0.95))
    text = GOOD.replace("calibration = { H0 = 4.6, k = 2.7, a = 0.98 }", f'calibration_file = "cal/{p.name}"')
    cfg = load_rig_config(write(tmp_path, text))
    assert cfg.wires[0].calibration == Logistic(5.1, 2.2, 0.95)
    p1 = write_calibration(tmp_path / "cal", 1, Logistic(5.1, 2.2, 0.95))
    text = GOOD.replace(
        "calibration = { H0 = 4.6, k = 2.7, a = 0.98 }", f'calibration_file = "cal/{p1.name}"'
    )
    expect_error(tmp_path, text, "wire_id", "wire 1")


def test_bench_template_loads_and_every_option_is_one_its_role_class_accepts():
    from labml.rigs import import_class, role_options

    cfg = load_rig_config(builtin_rig_path("bench_example"))
    assert cfg.backend == "visa" and cfg.instruments["field_source"].visa_kwargs()["visa_library"] == "@py"
    for role in cfg.instruments:
        cls = import_class(cfg, role)
        assert set(role_options(cfg, role)) <= set(getattr(cls, "OPTIONS", ())), role


def test_unknown_instrument_class_is_named_when_the_rig_opens(tmp_path):
    from labml.rigs import open_rig

    p = write(tmp_path, GOOD.replace("roles.KepcoFieldSource", "roles.KepcoFieldSauce"))
    with pytest.raises(ConfigError, match=r"\[instruments.field_source\] key 'class'.*KepcoFieldSauce"):
        open_rig(p, lock=False)


def test_wire_channel_keys_become_the_selector_mapping():
    from labml.rigs import role_options

    text = GOOD + textwrap.dedent(
        """
        [instruments.channel_selector]
        class = "instruments.drivers.roles.SwitchSelector"
        address = "GPIB0::7::INSTR"

        [[wires]]
        id = 1
        calibration = { H0 = 5.0, k = 3.0, a = 0.99 }
        channel = 7
        """
    )
    import tomllib

    cfg = load_rig_config(tomllib.loads(text))
    assert role_options(cfg, "channel_selector") == {"wire_channels": [1, 7]}
