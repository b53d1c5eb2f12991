"""Run kinds come from entry points of the ``labml.kinds`` group (pyproject.toml); `labml resume`
continues a run of another distribution's kind (a plugin) only with ``--allow-plugin NAME``."""

from __future__ import annotations

import pytest

from labml.cli import main as labml_main
from labml.runs import kinds
from labml.runs import store as runs
from labml.runs.engine import RunEngine
from labml.runs.plan import Plan


def test_the_package_kinds_come_from_its_own_entry_points():
    eps = {ep.name: ep.value for ep in kinds.entry_points() if kinds._distribution(ep) == "nanowire-labml"}
    assert eps == {"synapses": "labml.synapses.kind:run_kinds", "bm": "labml.bm.kind:run_kinds",
                   "protocols": "protocols.kinds:run_kinds"}
    names = kinds.names()
    assert {"train-synapses", "train-bm", "protocol-hysteresis"} <= set(names)
    assert all(kinds.plugin_of(n) is None for n in ("train-synapses", "train-bm", "protocol-hysteresis"))


class _Count(Plan):
    """A plugin's plan: counts to `n`, one row per step."""

    kind = "plugin-count"

    def __init__(self, n: int = 3) -> None:
        self.n = n

    def spec(self) -> dict:
        return {"kind": self.kind, "params": {"n": self.n}}

    def n_steps(self) -> int:
        return self.n

    def step(self, i, ctx):
        ctx.emit("counts", {"i": i})


class _EntryPoint:
    """An entry point of another distribution (what importlib.metadata gives for an installed plugin)."""

    def __init__(self, name: str, dist: str, provide) -> None:
        self.name, self.value, self.provide = name, f"{dist}:run_kinds", provide
        self.dist = type("Dist", (), {"name": dist})()

    def load(self):
        return self.provide


@pytest.fixture
def plugin(monkeypatch):
    """The registry as it loads with a plugin "counter" of distribution labml-counter installed."""
    own = kinds.entry_points()
    foreign = _EntryPoint("counter", "labml-counter",
                          lambda: [kinds.RunKind("plugin-count", _Count, (kinds.Param("n", "int", low=1),))])
    monkeypatch.setattr(kinds, "entry_points", lambda: [*own, foreign])
    monkeypatch.setattr(kinds, "REGISTRY", {})
    monkeypatch.setattr(kinds, "PLUGINS", {})
    monkeypatch.setattr(kinds, "_loaded", False)
    monkeypatch.setattr(kinds, "_loaded_eps", set())
    assert kinds.plugin_of("plugin-count") == ("counter", "labml-counter")
    return foreign


def test_resume_refuses_a_plugin_kind_in_one_line_and_accepts_it_with_allow_plugin(plugin, tmp_path, capsys):
    eng = RunEngine(progress=False, handle_sigint=False, on_pause=lambda e, s: "suspend")
    eng.subscribe(lambda ev, p: eng.request_pause() if ev == "step" and p["step"] == 1 else None)
    run_dir = tmp_path / "run"
    assert eng.run(_Count(3), run_dir).status == "paused"
    for extra in ([], ["--dry-run"], ["--allow-plugin", "other"]):
        assert labml_main(["resume", str(run_dir), "--no-progress", *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("labml: error: ")
        assert "run kind 'plugin-count' comes from plugin 'counter'" in err
        assert "--allow-plugin counter" in err
    assert runs.load(run_dir).meta["status"] == "paused"  # refused: untouched
    assert labml_main(["resume", str(run_dir), "--dry-run", "--allow-plugin", "counter"]) == 0
    assert labml_main(["resume", str(run_dir), "--no-progress", "--allow-plugin", "counter"]) == 0
    run = runs.load(run_dir)
    assert run.meta["status"] == "success" and [r["i"] for r in run.series("counts")] == [0, 1, 2]


def test_a_plugin_that_breaks_or_takes_a_package_name_is_left_out(monkeypatch, caplog):
    own = kinds.entry_points()

    def broken():
        raise ImportError("no module named counter_core")

    eps = [_EntryPoint("broken", "labml-broken", broken),
           _EntryPoint("a-thief", "labml-thief", lambda: [kinds.RunKind("train-bm", _Count)])]
    monkeypatch.setattr(kinds, "entry_points", lambda: [*own, *eps])
    monkeypatch.setattr(kinds, "REGISTRY", {})
    monkeypatch.setattr(kinds, "PLUGINS", {})
    monkeypatch.setattr(kinds, "_loaded", False)
    monkeypatch.setattr(kinds, "_loaded_eps", set())
    assert "train-bm" in kinds.names()
    assert kinds.get("train-bm").factory is not _Count and kinds.plugin_of("train-bm") is None
    assert "'broken'" in caplog.text and "'a-thief'" in caplog.text


def test_a_kind_is_found_loading_only_what_it_needs(monkeypatch):
    """`labml train bm` loads the bm entry point only (no protocol is imported for it)."""
    monkeypatch.setattr(kinds, "REGISTRY", {})
    monkeypatch.setattr(kinds, "PLUGINS", {})
    monkeypatch.setattr(kinds, "_loaded", False)
    monkeypatch.setattr(kinds, "_loaded_eps", set())
    assert kinds.get("train-bm").name == "train-bm"
    assert kinds._loaded_eps == {"nanowire-labml:bm"} and not kinds._loaded
    assert "protocol-hysteresis" in kinds.names() and kinds._loaded
