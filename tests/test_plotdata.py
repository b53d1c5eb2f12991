"""labml.plotdata, the data shaping shared by the CLI's figures and the dashboard: units of recorded
columns, hysteresis branches, pulse-length groups, SI prefixes, and min/max decimation that keeps
every pixel column's extremes exactly."""

from __future__ import annotations

import numpy as np
import pytest

from labml import plotdata


@pytest.mark.parametrize("name, label, unit, scale", [
    ("Field (mT)", "Field", "T", 1e-3),
    ("field_mT", "field", "T", 1e-3),
    ("Pulse length (s)", "Pulse length", "s", 1.0),
    ("current_A", "current", "A", 1.0),
    ("Signal (ohm)", "Signal", "Ω", 1.0),
    ("duration (us)", "duration", "s", 1e-6),
    ("P_pass", "P_pass", "", 1.0),
    ("loss", "loss", "", 1.0),
    ("rate (counts/s)", "rate (counts/s)", "", 1.0),  # a unit it does not know stays in the label
])
def test_a_recorded_column_gives_its_quantity_si_unit_and_scale(name, label, unit, scale):
    col = plotdata.column(name)
    assert (col.label, col.unit) == (label, unit)
    assert col.scale == pytest.approx(scale)


def test_the_natural_x_column_is_the_field_then_epoch_step_time():
    assert plotdata.default_x(["Loop", "Field set (mT)", "Field (mT)", "Signal"]) == "Field (mT)"
    assert plotdata.default_x(["loss", "epoch"]) == "epoch"
    assert plotdata.default_x(["V", "time_s"]) == "time_s"
    assert plotdata.default_x(["a", "b"]) == "a"
    assert plotdata.default_x([]) == ""


def test_inferred_branches_are_the_protocols_own_labels():
    """The hysteresis protocol's order (loops of -H..H up, then H..-H down; the turning field is
    measured twice): the inference from the set field alone gives back the recorded labels."""
    from protocols.hysteresis import Hysteresis

    proc = Hysteresis()
    proc.field_max, proc.field_step, proc.loops = 3.0, 0.5, 3
    points = [proc._point(i) for i in range(proc.n_steps())]
    loop = np.array([p[0] for p in points], dtype=float)
    labels = [p[1] for p in points]
    field = np.array([p[2] for p in points])
    want = np.array([b == "up" for b in labels])
    assert np.array_equal(plotdata.hysteresis_up(field, loop), want)
    assert np.array_equal(plotdata.hysteresis_up(field, loop, labels), want)
    # a loop cut short on its up branch (a live run): all up so far
    assert plotdata.hysteresis_up(field[:5], loop[:5]).all()
    curves = plotdata.branch_curves(field, field, want, loop)
    assert [c[0] for c in curves] == ["up branch", "down branch"]
    assert np.isnan(curves[0][1]).sum() == 2  # 3 loops: two gaps


def test_depinning_points_are_grouped_by_pulse_length_shortest_first():
    d = np.array([1e-2, 1e-4, 1e-2, 1e-4, np.nan])
    groups = plotdata.by_pulse_length(d, 5)
    assert [g[0] for g in groups] == ["pulse 100 µs", "pulse 10 ms", "measured"]
    assert [int(g[1].sum()) for g in groups] == [2, 2, 1]
    assert plotdata.by_pulse_length(None, 3)[0][0] == "measured"


@pytest.mark.parametrize("value, unit, text", [
    (8.21e-3, "T", "8.21 mT"), (0.0, "s", "0 s"), (1.0, "s", "1 s"), (999e-6, "s", "999 µs"),
    (1e-3, "s", "1 ms"), (-4.5e-3, "T", "-4.5 mT"), (2.5e6, "Hz", "2.5 MHz"),
])
def test_si_format_picks_the_prefix_at_its_boundary(value, unit, text):
    assert plotdata.si_format(value, unit) == text


@pytest.mark.parametrize("monotonic", [True, False])
def test_decimation_keeps_the_min_and_max_of_every_pixel_bucket_exactly(monotonic):
    rng = np.random.default_rng(7)
    n, pixels = 1_000_003, 800
    x = np.sort(rng.uniform(0, 10, n)) if monotonic else np.cumsum(rng.normal(size=n))
    y = rng.normal(size=n)
    y[123_456] = 40.0
    y[999_000] = -40.0
    xd, yd = plotdata.decimate_minmax(x, y, pixels)
    assert len(xd) <= 2 * pixels
    # the buckets, by the rule the function documents: equal ranges of x, else equal counts
    if monotonic:
        b = np.minimum(((x - x[0]) / (x[-1] - x[0]) * pixels).astype(int), pixels - 1)
    else:
        b = np.arange(n) * pixels // n
    kept = np.isin(x, xd)  # x values are distinct with probability 1 (continuous draws)
    assert kept.sum() == len(xd)
    for k in np.unique(b):
        m = b == k
        assert y[m & kept].min() == y[m].min() and y[m & kept].max() == y[m].max()
    idx = np.flatnonzero(kept)
    assert np.array_equal(x[idx], xd) and np.array_equal(y[idx], yd)  # original order kept
    assert yd.max() == 40.0 and yd.min() == -40.0


def test_decimation_leaves_a_short_series_alone_and_drops_non_finite_points():
    x = np.arange(10.0)
    y = x.copy()
    y[3] = np.nan
    xd, yd = plotdata.decimate_minmax(x, y, 100)
    assert len(xd) == 9 and 3.0 not in xd
