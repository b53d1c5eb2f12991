"""What the command line prints can be used as it is: strict JSON, whole paths, one-line errors."""

import json

from labml.cli import main


def _strict(text: str) -> dict:
    def refuse(c):
        raise ValueError(f"non-standard JSON constant {c}")

    return json.loads(text, parse_constant=refuse)


def test_run_json_is_strict_even_when_a_result_is_not_a_number(tmp_path, capsys):
    # a coarse loop whose switching fields the protocol cannot locate (NaN inside)
    rc = main(["run", "hysteresis", "--field-max", "5 mT", "--field-step", "1 mT", "--settle", "1 ms",
               "--run-dir", str(tmp_path / "h"), "--json"])
    assert rc == 0
    out = _strict(capsys.readouterr().out.strip().splitlines()[-1])
    assert None in out["results"].values()


def test_labml_runs_prints_whole_paths_that_resume_accepts(tmp_path, capsys):
    long_dir = tmp_path / ("a-run-folder-with-a-name-much-longer-than-forty-eight-characters-" + "x" * 20)
    assert main(["run", "coil-calibration", "--current-max", "1 A", "--run-dir", str(long_dir)]) == 0
    capsys.readouterr()
    assert main(["runs", str(tmp_path)]) == 0
    assert str(long_dir) in capsys.readouterr().out


def test_gui_with_a_bad_rig_file_is_a_one_line_error_before_any_window(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nbackend = "sim"\n')
    rc = main(["gui", "--rig", str(bad), "--screenshot", str(tmp_path / "x.png"), "--view", "rig"])
    assert rc == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()
