"""`labml plot RUN [--x COL --y COL] [--out FILE]`: a run's series drawn to a PNG with matplotlib,
columns defaulted as the dashboard does, a hysteresis as its branches, a long series min/max-decimated
per pixel column with every bucket's extremes kept exactly; bad input is one line."""

from __future__ import annotations

import numpy as np
import pytest

from labml import figures
from labml.cli import main
from labml.commands.plot import PIXELS
from labml.runs.store import Run

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def drawn(monkeypatch):
    """The curves labml plot hands to matplotlib: [(label, x, y)], and the axis labels."""
    seen: dict = {}
    real = figures.series

    def spy(xlabel, ylabel, curves, title):
        seen.update(xlabel=xlabel, ylabel=ylabel, curves=curves, title=title)
        return real(xlabel, ylabel, curves, title)

    monkeypatch.setattr(figures, "series", spy)
    return seen


def test_a_hysteresis_run_is_plotted_as_its_branches_with_units(tmp_path, capsys, drawn):
    run_dir = tmp_path / "h"
    assert main(["run", "hysteresis", "--field-step", "2", "--settle", "0", "--run-dir", str(run_dir)]) == 0
    capsys.readouterr()
    assert main(["plot", str(run_dir)]) == 0
    out = run_dir / "figures" / "data_Signal_vs_Field_mT.png"
    assert capsys.readouterr().out.strip() == f"figure: {out}"
    assert out.read_bytes().startswith(PNG)
    assert (drawn["xlabel"], drawn["ylabel"]) == ("Field (mT)", "Signal (V)")
    assert [c[0] for c in drawn["curves"]] == ["Signal, up branch", "Signal, down branch"]
    assert [len(c[1]) for c in drawn["curves"]] == [21, 21]  # -20..20 mT in 2 mT steps, each branch
    assert main(["plot", str(run_dir), "--x", "Field set (mT)", "--y", "Signal,Field (mT)",
                 "--out", str(tmp_path / "loop.png")]) == 0
    assert (tmp_path / "loop.png").read_bytes().startswith(PNG)
    assert len(drawn["curves"]) == 4 and drawn["xlabel"] == "Field set (mT)"


def test_a_long_series_keeps_the_min_and_max_of_every_pixel_bucket(tmp_path, capsys, drawn):
    n = 200_003
    rng = np.random.default_rng(3)
    t = np.arange(n) * 1e-3
    v = rng.normal(size=n) + np.sin(t)
    v[77_777], v[150_001] = 9.0, -9.0
    run = Run.create("test-trace", {}, run_dir=tmp_path / "trace")
    run.append_rows("trace", [{"time_s": float(a), "signal_V": float(b)} for a, b in zip(t, v, strict=True)])
    run.finish("success")
    assert main(["plot", str(tmp_path / "trace"), "--out", str(tmp_path / "t.png")]) == 0
    (label, x, y), = drawn["curves"]
    assert label == "signal_V" and drawn["xlabel"] == "time (s)" and drawn["ylabel"] == "signal (V)"
    assert len(x) <= 2 * PIXELS and "min/max per pixel" in drawn["title"]
    # every pixel column (equal ranges of t) keeps exactly its smallest and largest value
    from labml.runs.store import read_series

    rec = read_series(tmp_path / "trace", "trace")  # the values as recorded in the CSV
    t_rec = np.array([float(r["time_s"]) for r in rec])
    v = np.array([float(r["signal_V"]) for r in rec])
    bucket = np.minimum(((t_rec - t_rec[0]) / (t_rec[-1] - t_rec[0]) * PIXELS).astype(int), PIXELS - 1)
    kept_bucket = np.minimum(((x - t_rec[0]) / (t_rec[-1] - t_rec[0]) * PIXELS).astype(int), PIXELS - 1)
    for k in range(PIXELS):
        m, km = bucket == k, kept_bucket == k
        assert y[km].min() == v[m].min() and y[km].max() == v[m].max()
    assert y.max() == 9.0 and y.min() == -9.0


@pytest.mark.parametrize("argv, words", [
    (["--y", "Sgnal"], ["--y 'Sgnal'", "not a column", "did you mean 'Signal'"]),
    (["--x", "Branch"], ["--x 'Branch'", "holds text"]),
    (["--series", "dat"], ["--series 'dat'", "did you mean 'data'"]),
    (["--out", "loop.jpg"], ["must end in .png"]),
])
def test_bad_plot_options_are_one_line_errors(tmp_path, capsys, argv, words):
    run_dir = tmp_path / "h"
    assert main(["run", "hysteresis", "--field-step", "5", "--settle", "0", "--run-dir", str(run_dir)]) == 0
    capsys.readouterr()
    assert main(["plot", str(run_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for w in words:
        assert w in err


def test_a_folder_that_is_no_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "nothing" in err and "not a run folder" in err
