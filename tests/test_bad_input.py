"""A user's mistake ends in one clear line naming the value, where it came from and what is allowed,
before anything is built or moved; never a traceback, never a silent truncation or clamp."""

from __future__ import annotations

import argparse

import pytest

from instruments.config import builtin_rig_path
from instruments.errors import ConfigError
from labml.cli import build_parser, main


def _one_line_error(capsys, argv: list[str], *needles: str) -> str:
    """Run `labml argv`; it must exit 2 with one `labml: error:` line holding every needle."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("labml: error:"), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _sim_toml(tmp_path, extra: str) -> str:
    """The built-in simulated rig's TOML with `extra` appended to its [sim] table."""
    text = builtin_rig_path("sim_default").read_text()
    text = text.replace("[sim]\nseed = 0\n", "[sim]\n" + extra + "\n")
    assert extra in text
    path = tmp_path / "rig.toml"
    path.write_text(text)
    return str(path)


# ------------------------------------------------------------------ options spelled in full
def _all_parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_parsers(sub)


def test_no_command_accepts_an_abbreviated_option():
    parsers = list(_all_parsers(build_parser()))
    assert len(parsers) > 10
    loose = [p.prog for p in parsers if p.allow_abbrev]
    assert loose == []


def test_train_synapses_refuses_epoch_for_epochs(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "synapses", "--epoch", "3", "--dry-run"])
    assert exc.value.code == 2
    assert "--epoch" in capsys.readouterr().err


# ------------------------------------------------------------------ rig files
def test_a_rig_file_that_is_not_utf8_names_the_file_and_the_byte(tmp_path, capsys):
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "bench in Köln"\nbackend = "sim"\n'.encode("latin-1"))
    line = _one_line_error(capsys, ["rig", "check", "--rig", str(path)], str(path), "UTF-8", "byte 18")
    assert "0xf6" in line


def test_sim_seed_that_is_not_an_integer_is_refused(tmp_path, capsys):
    rig = _sim_toml(tmp_path, "seed = 1.5")
    _one_line_error(capsys, ["run", "coil-calibration", "--rig", rig, "--dry-run"], "seed", "1.5", "integer")


def test_sim_seed_negative_is_refused(tmp_path):
    from labml.rigs import rig_config

    with pytest.raises(ConfigError, match="seed"):
        rig_config(_sim_toml(tmp_path, "seed = -1"))


@pytest.mark.parametrize("key,value", [("latency_s", "-0.001"), ("latency_s", "inf"), ("timeout_s", "0"),
                                       ("timeout_s", "-1.0"), ("timeout_s", "nan")])
def test_sim_instrument_latency_and_timeout_out_of_range_are_refused(tmp_path, capsys, key, value):
    rig = _sim_toml(tmp_path, f"seed = 0\n[sim.instruments]\n{key} = {value}")
    _one_line_error(capsys, ["run", "coil-calibration", "--rig", rig, "--dry-run"], key, value)


def test_sim_instrument_latency_zero_is_allowed(tmp_path, capsys):
    rig = _sim_toml(tmp_path, "seed = 0\n[sim.instruments]\nlatency_s = 0.0")
    assert main(["run", "coil-calibration", "--rig", rig, "--dry-run"]) == 0


# ------------------------------------------------------------------ sweep
def test_sweep_with_negative_workers_is_a_one_line_error(tmp_path, capsys):
    _one_line_error(capsys, ["sweep", "coil-calibration", "--grid", "current_max=1,2", "--workers", "-3",
                             "--sweep-dir", str(tmp_path / "s")], "--workers", "-3", ">= 0")
    assert not (tmp_path / "s").exists()


def test_sweep_with_a_cluster_that_is_not_an_address_is_a_one_line_error(tmp_path, capsys):
    _one_line_error(capsys, ["sweep", "coil-calibration", "--grid", "current_max=1,2", "--cluster",
                             "notaurl", "--sweep-dir", str(tmp_path / "s")], "--cluster", "notaurl")
    assert not (tmp_path / "s").exists()


def test_sweep_workers_not_a_number_is_a_one_line_error(tmp_path, capsys):
    _one_line_error(capsys, ["sweep", "coil-calibration", "--grid", "current_max=1,2", "--workers=two",
                             "--sweep-dir", str(tmp_path / "s")], "--workers", "two")


# ------------------------------------------------------------------ training options
@pytest.mark.parametrize("value", ["inf", "nan", "0", "-0.1"])
def test_train_synapses_refuses_a_learning_rate_that_is_not_a_positive_number(capsys, value):
    _one_line_error(capsys, ["train", "synapses", "--lr", value, "--dry-run"], "--lr", value)


@pytest.mark.parametrize("value", ["inf", "0"])
def test_train_bm_refuses_a_learning_rate_that_is_not_a_positive_number(capsys, value):
    _one_line_error(capsys, ["train", "bm", "--hidden", "4", "--epochs", "1", "--lr", value, "--dry-run"],
                    f"lr={float(value)!r}", "finite number > 0")


@pytest.mark.parametrize("value", ["0", "1", "-5"])
def test_train_bm_refuses_fewer_than_two_ais_temperatures(capsys, value):
    _one_line_error(capsys, ["train", "bm", "--hidden", "4", "--epochs", "1", "--ais-betas", value,
                             "--dry-run"], "--ais-betas", value, ">= 2")


def test_train_bm_two_ais_temperatures_are_allowed(tmp_path, capsys):
    assert main(["train", "bm", "--hidden", "4", "--epochs", "1", "--ais-betas", "2", "--dry-run",
                 "--train-size", "100", "--test-size", "100"]) == 0


@pytest.mark.parametrize("cmd", [["train", "synapses"], ["train", "bm", "--hidden", "4", "--epochs", "1"]])
@pytest.mark.parametrize("option", ["--train-size", "--test-size"])
def test_negative_data_sizes_do_not_pass_dry_run(capsys, cmd, option):
    _one_line_error(capsys, [*cmd, option, "-5", "--dry-run"], option, "-5")


@pytest.mark.parametrize("option,value", [("--n", "0"), ("--epochs", "-1"), ("--batch-size", "0"),
                                          ("--test-passes", "0"), ("--patience", "-1"),
                                          ("--threads", "0"), ("--field-step", "nan"),
                                          ("--spread-H0", "-1"), ("--spread-k", "inf"),
                                          ("--rig-test-passes", "0")])
def test_train_synapses_numeric_options_out_of_range_name_the_option(capsys, option, value):
    _one_line_error(capsys, ["train", "synapses", option, value, "--dry-run"], option, value)


@pytest.mark.parametrize("option,value", [("--k", "0"), ("--temperature", "inf"), ("--batch-size", "0"),
                                          ("--momentum", "-0.5"), ("--momentum", "1"),
                                          ("--weight-decay", "-1"), ("--ais-chains", "0"),
                                          ("--pretrain-lr", "nan"), ("--hybrid-alpha", "-1"),
                                          ("--sllg-steps", "0"), ("--tau-spin", "0")])
def test_train_bm_numeric_options_out_of_range_name_the_option(capsys, option, value):
    _one_line_error(capsys, ["train", "bm", "--hidden", "4", "--epochs", "1", option, value, "--dry-run"],
                    option, value)


# ------------------------------------------------------------------ sizes that cannot fit in memory
GiB = 1 << 30


@pytest.fixture
def one_gib(monkeypatch):
    """The machine has 1 GiB available (so that the refusals do not depend on the test machine)."""
    import labml.checks

    monkeypatch.setattr(labml.checks, "available_memory_bytes", lambda: GiB)


def test_memory_check_refuses_just_above_what_is_available_and_passes_just_below():
    from labml.checks import check_memory
    from labml.errors import UserError

    check_memory("--x", 0.99 * GiB, available=GiB)
    with pytest.raises(UserError, match=r"--x needs about 1.01 GiB of memory, but 1 GiB is available"):
        check_memory("--x", 1.01 * GiB, available=GiB)


def test_available_memory_is_read_from_the_system():
    from labml.checks import available_memory_bytes

    assert 16 * (1 << 20) < available_memory_bytes() < (1 << 50)


@pytest.mark.parametrize("option", ["--n", "--hidden", "--batch-size"])
def test_train_synapses_sizes_that_cannot_fit_in_memory_are_refused_by_dry_run(capsys, option):
    line = _one_line_error(capsys, ["train", "synapses", option, "100000000000", "--dry-run"],
                           f"train synapses {option} 100000000000 needs about", "available")
    assert "TiB" in line or "PiB" in line


def test_train_synapses_default_sizes_fit(one_gib, capsys):
    assert main(["train", "synapses", "--dry-run"]) == 0


def test_train_synapses_refused_size_writes_no_run_folder(tmp_path, one_gib, capsys):
    _one_line_error(capsys, ["train", "synapses", "--hidden", "1000000", "--run-dir", str(tmp_path / "r")],
                    "--hidden", "1 GiB is available")
    assert not (tmp_path / "r").exists()


def test_train_bm_hidden_that_cannot_fit_is_refused_by_dry_run(capsys):
    _one_line_error(capsys, ["train", "bm", "--hidden", "100000000000", "--epochs", "1", "--dry-run"],
                    "--hidden", "needs about", "available")


def test_run_train_bm_sizes_that_cannot_fit_are_refused_by_dry_run(capsys):
    _one_line_error(capsys, ["run", "train-bm", "--hidden", "100000", "--batch-size", "1000000",
                             "--dry-run"], "--batch-size 1000000", "needs about", "available")


def test_run_train_synapses_hidden_that_cannot_fit_is_refused_by_dry_run(capsys):
    _one_line_error(capsys, ["run", "train-synapses", "--hidden", "100000000000", "--dry-run"],
                    "--hidden", "needs about")


def test_run_hysteresis_with_more_points_than_memory_is_refused_by_dry_run(one_gib, capsys):
    # 2 * 20 mT / 1 uT = 40001 fields per branch, 2 branches, 100 loops: 8e6 points (~2 GB of rows)
    _one_line_error(capsys, ["run", "hysteresis", "--field-max", "20 mT", "--field-step", "0.001 mT",
                             "--loops", "100", "--dry-run"], "--field-step", "needs about", "1 GiB")


def test_run_hysteresis_ordinary_sweep_fits(one_gib, capsys):
    assert main(["run", "hysteresis", "--field-max", "20 mT", "--field-step", "0.5 mT", "--dry-run"]) == 0


# ------------------------------------------------------------------ the other commands' numbers
@pytest.mark.parametrize("argv,option", [
    (["data", "download", "--data", "/nonexistent-labml", "--timeout", "-1"], "--timeout"),
    (["demo", "--n", "0"], "--n"),
    (["demo", "--train-size", "-1"], "--train-size"),
    (["resume", "/nonexistent-labml-run", "--checkpoint", "-2"], "--checkpoint"),
    (["train", "bm-compare", "--updates", "0"], "--updates"),
    (["train", "bm-compare", "--lr", "inf"], "--lr"),
    (["train", "bm-compare", "--eval-every", "0"], "--eval-every"),
])
def test_other_commands_refuse_numbers_out_of_range_before_doing_anything(capsys, argv, option):
    _one_line_error(capsys, argv, option)


@pytest.mark.parametrize("argv, hint", [
    (["trian"], "(did you mean 'train'?)"),
    (["train", "bm", "--hidden", "3", "--epoch", "2", "--dry-run"], "(did you mean '--epochs'?)"),
    (["rig", "ramp", "--to", "5mT", "--hod", "3"], "(did you mean '--hold'?)"),
    (["run", "hysterisis"], "(did you mean 'hysteresis'?)"),
    (["run", "hysteresis", "--feild-max", "3", "--dry-run"], "(did you mean 'field_max'?)"),
])
def test_a_mistyped_command_option_or_kind_gets_a_did_you_mean(capsys, argv, hint):
    """Exit 2 (argparse's own exit for a command or option it does not know), the hint on the last line."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and hint in err[-1] and "Traceback" not in "\n".join(err), err


def test_a_run_paused_without_a_terminal_names_its_folder_for_resume(tmp_path, capsys, monkeypatch):
    from plans import RegressionPlan

    from labml.runs.engine import RunEngine

    monkeypatch.setattr("sys.stdin", None)
    eng = RunEngine(progress=False, handle_sigint=False)
    eng.subscribe(lambda ev, p: eng.request_pause() if ev == "step" and p["step"] == 1 else None)
    out = eng.run(RegressionPlan(epochs=3), tmp_path / "run")
    assert out.status == "paused"
    assert f"labml resume {tmp_path / 'run'}" in capsys.readouterr().err
