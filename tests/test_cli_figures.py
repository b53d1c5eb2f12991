"""Every protocol and training writes its figure(s) as PNG into the run folder (RUN_DIR/figures) and
the command says where: `labml run` prints "figure: PATH" lines and lists them in its --json output;
`labml train` prints them on stderr (stdout stays the results)."""

from __future__ import annotations

import json

import pytest

from labml.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, names", [
    (["hysteresis", "--field-step", "2"], ["hysteresis.png"]),
    (["depinning-calibration", "--reads", "20", "--field-points", "5", "--write-calibration", "false"],
     ["depinning_wire0.png"]),
    (["coil-calibration"], ["coil_calibration.png"]),
])
def test_a_protocol_writes_its_figure_and_names_it(tmp_path, capsys, argv, names):
    run_dir = tmp_path / "run"
    assert main(["run", *argv, "--run-dir", str(run_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["figures"] == [str(run_dir / "figures" / n) for n in names]
    for n in names:
        data = (run_dir / "figures" / n).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000  # a drawn figure, not an empty canvas
    assert main(["run", *argv, "--run-dir", str(tmp_path / "again")]) == 0
    assert f"figure: {tmp_path / 'again' / 'figures' / names[0]}" in capsys.readouterr().out


def test_a_training_writes_its_curves_and_says_where_on_stderr(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "synapses", "--epochs", "2", "--train-size", "300", "--test-passes", "1",
                 "--run-dir", str(run_dir), "--json"]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out.strip().splitlines()[-1])  # stdout: the results, JSON last
    figure = run_dir / "figures" / "training.png"
    assert f"figure: {figure}" in captured.err and figure.read_bytes().startswith(PNG)
