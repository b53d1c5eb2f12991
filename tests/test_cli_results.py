"""What the long commands tell a person: one progress style (a tqdm bar on stderr, only on a terminal
or when LABML_PROGRESS=1 forces it; stdout stays clean for --json), results with units, SI prefixes
and +/- uncertainties in a short table, and a PNG in the run folder of every run kind, named in the
output."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import plans
import pytest

from labml.cli import main
from labml.results_table import result_rows
from labml.runs import kinds
from labml.units import format_duration, format_quantity

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def _labml(args: list[str], tmp_path: Path, progress: str | None, stderr_tty: bool = False):
    """Run `python -m labml.cli ARGS` in a child process; (rc, stdout, stderr) as text. With
    `stderr_tty` stderr is a pseudo-terminal (what a person at a terminal has)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LABML_RUNS": str(tmp_path / "runs")}
    env.pop("LABML_PROGRESS", None)
    if progress is not None:
        env["LABML_PROGRESS"] = progress
    cmd = [sys.executable, "-m", "labml.cli", *args]
    if not stderr_tty:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
        return p.returncode, p.stdout, p.stderr
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, env=env, cwd=tmp_path)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    out = p.stdout.read().decode()
    p.wait(timeout=240)
    os.close(master)
    return p.returncode, out, b"".join(chunks).decode(errors="replace")


def test_a_full_hysteresis_run_prints_at_most_60_lines_with_a_progress_bar(tmp_path):
    """The must-show of issue 15: `labml run hysteresis --rig sim` with its defaults (2 x 81 fields),
    at the default log level, on a terminal: a progress bar, the results with units, the figure."""
    rc, out, err = _labml(["run", "hysteresis", "--rig", "sim"], tmp_path, None, stderr_tty=True)
    assert rc == 0, err
    # the lines a terminal shows: the bar redraws its own line with "\r", only "\n" starts a new one
    lines = out.splitlines() + err.replace("\r\n", "\n").rstrip("\n").split("\n")
    assert len(lines) <= 60, "\n".join(lines)
    assert len(lines) >= 10  # the status line, 7 results, the figure, the bar
    assert "protocol-hysteresis: 162/162 100%" in err and "success" in err  # the bar, finished
    assert "|" not in out  # no bar on stdout
    assert "coercive field" in out and " mT" in out and " mV" in out
    figure = next(line.split("figure: ", 1)[1] for line in out.splitlines() if "figure: " in line)
    assert Path(figure).read_bytes().startswith(PNG)


@pytest.mark.parametrize("progress, bar", [(None, False), ("1", True), ("0", False)])
def test_json_stdout_stays_clean_and_the_bar_is_on_stderr_only_when_forced(tmp_path, progress, bar):
    """Not a terminal: no bar unless LABML_PROGRESS=1; stdout is one JSON object whatever the bar."""
    rc, out, err = _labml(["run", "coil-calibration", "--current-max", "1 A", "--json"], tmp_path, progress)
    assert rc == 0, err
    assert json.loads(out)["status"] == "success"  # the whole of stdout is the JSON line
    assert ("protocol-coil-calibration:" in err and "100%" in err) == bar


def test_on_a_terminal_the_bar_shows_and_json_stdout_is_still_clean(tmp_path):
    rc, out, err = _labml(["run", "coil-calibration", "--current-max", "1 A", "--json"], tmp_path, None,
                          stderr_tty=True)
    assert rc == 0
    assert json.loads(out)["status"] == "success" and "100%" in err


def test_a_sweep_and_a_training_draw_the_same_bar(tmp_path):
    rc, out, err = _labml(["sweep", "coil-calibration", "--grid", "current_max=0.5,1", "--workers", "0",
                           "--json"], tmp_path, "1")
    assert rc == 0, err
    assert json.loads(out.splitlines()[-1])["status"] == "success"
    assert "sweep coil-calibration: 2/2 100%" in err
    rc, out, err = _labml(["train", "synapses", "--epochs", "2", "--train-size", "200", "--test-passes", "1",
                           "--json"], tmp_path, "1")
    assert rc == 0, err
    json.loads(out.splitlines()[-1])
    assert "train-synapses: 2/2 100%" in err and "epoch   1" in err


@pytest.mark.parametrize("value, unit, err, text", [
    (8.2134, "mT", 0.0412, "8.213 +/- 0.041 mT"),
    (4.82583, "mT", 0.103669, "4.83 +/- 0.10 mT"),
    (0.0119766, "mT", 0.0026386, "12.0 +/- 2.6 µT"),
    (1.79998, "mT/A", 0.000834398, "1.79998 +/- 0.00083 mT/A"),  # a compound unit: no prefix
    (0.447872, "V", None, "447.9 mV"),
    (217.746, "J", None, "217.7 J"),
    (0.955331, "", 0.0220559, "0.955 +/- 0.022"),
    (59.94, "s", None, "59.94 s"),  # below a minute: seconds
    (60.0, "s", None, "1 min 0 s"),  # from a minute on: min/h/d
    (10584651.8, "s", None, "122 d 12 h"),  # issue 15's "bench 10584651.8 s"
])
def test_quantities_are_shown_with_prefixes_and_uncertainties(value, unit, err, text):
    assert format_quantity(value, unit, err) == text


@pytest.mark.parametrize("seconds, text", [(0.45, "450 ms"), (3599.4, "59 min 59 s"), (3600, "1 h 0 min"),
                                           (86399, "23 h 59 min"), (86400, "1 d 0 h")])
def test_durations_at_their_boundaries(seconds, text):
    assert format_duration(seconds) == text


def test_the_results_table_pairs_values_with_their_uncertainties_and_units():
    rows = dict(result_rows({"H0": 4.82583, "H0_err": 0.103669, "k": 3.1047, "k_err": 0.524718,
                             "intercept_mT": 0.0119766, "intercept_err_mT": 0.0026386, "bench_time_s": 4000.0,
                             "signal_unit": "V", "signal_positive_saturation": 0.452, "points": 162,
                             "switching_field_up_mT": float("nan"), "neel_brown": {"f0": 1e9}}))
    assert rows == {"H0": "4.83 +/- 0.10 mT", "k": "3.10 +/- 0.52 1/mT", "intercept": "12.0 +/- 2.6 µT",
                    "bench time": "1 h 6 min", "signal positive saturation": "452 mV", "points": "162",
                    "switching field up": "nan (not found)"}


def test_a_hysteresis_of_several_loops_gives_the_coercive_field_with_its_uncertainty(tmp_path, capsys):
    assert main(["run", "hysteresis", "--field-step", "1", "--loops", "3", "--settle", "0",
                 "--run-dir", str(tmp_path / "h")]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.strip().startswith("coercive field"))
    assert "+/-" in line and line.endswith("mT")
    res = json.loads((tmp_path / "h" / "run.json").read_text())["results"]
    assert 0 < res["coercive_field_err_mT"] < 0.5 * res["coercive_field_mT"]


# ---------------------------------------------------------------- every run kind leaves a named PNG
SMALL_TRAIN = ["--epochs", "1", "--train-size", "100", "--test-size", "50", "--patience", "0",
               "--test-passes", "1"]
#: small arguments of every registered run kind (a kind added without a case here fails below)
KIND_ARGS = {
    "protocol-hysteresis": (["run", "hysteresis", "--field-step", "2", "--settle", "0"], ["hysteresis.png"]),
    "protocol-coil-calibration": (["run", "coil-calibration", "--current-max", "1 A"],
                                  ["coil_calibration.png"]),
    "protocol-depinning-calibration": (["run", "depinning-calibration", "--reads", "20", "--field-points",
                                        "5", "--write-calibration", "false"], ["depinning_wire0.png"]),
    "protocol-characterise-wires": (["run", "characterise-wires", "--reads", "20", "--field-points", "5",
                                     "--write-calibration", "false"], ["depinning_wire0.png"]),
    "protocol-infer-on-rig": (["run", "infer-on-rig", "--test-size", "20", "--rig", "sim"],
                              ["rig_vs_model.png"]),
    "train-synapses": (["train", "synapses", *SMALL_TRAIN], ["training.png"]),
    "train-bm": (["train", "bm", "--model", "rbm", "--hidden", "4", "--epochs", "1", "--train-size", "100"],
                 ["samples.png"]),
}


def test_every_registered_run_kind_has_a_figure_case():
    test_kinds = {k.name for k in plans.run_kinds()}
    assert set(kinds.names()) - test_kinds == set(KIND_ARGS)


@pytest.mark.parametrize("kind", sorted(KIND_ARGS))
def test_every_run_kind_leaves_a_png_in_its_run_folder_and_names_it(tmp_path, capsys, kind):
    argv, names = KIND_ARGS[kind]
    if kind == "protocol-infer-on-rig":
        model = tmp_path / "model"
        assert main(["train", "synapses", *SMALL_TRAIN, "--run-dir", str(model), "--json"]) == 0
        argv = [*argv, "--model-run", str(model)]
        capsys.readouterr()
    run_dir = tmp_path / "run"
    assert main([*argv, "--run-dir", str(run_dir)]) == 0
    captured = capsys.readouterr()
    said = captured.out + captured.err
    for n in names:
        figure = run_dir / "figures" / n
        assert f"figure: {figure}" in said
        data = figure.read_bytes()
        assert data.startswith(PNG) and len(data) > 5_000  # a drawn figure, not an empty canvas
