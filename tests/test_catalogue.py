"""The run catalogue (labml.runs.catalogue) and `labml runs` on it: answers equal to a scan of the
run.json files, kept up to date by the store and reconciled with the folders, rebuilt after deletion
or damage, safe with two writing processes, and fast and light enough to list thousands of runs."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import load_benchmark

from labml.cli import main as labml_main
from labml.errors import UserError
from labml.runs import catalogue, store

ROOT = Path(__file__).resolve().parents[1]
N_RUNS = 2000


def _bench():
    return load_benchmark("bench_catalogue")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """2,000 synthetic run folders (benchmarks/bench_catalogue.py's generator) and their run.json
    contents, the truth every answer is checked against."""
    root = tmp_path_factory.mktemp("lab") / "runs"
    truth = _bench().make_runs(root, N_RUNS, seed=3)
    return root, truth


def _cli_json(capsys, *argv) -> list[dict]:
    capsys.readouterr()
    assert labml_main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def _paths(entries) -> list[str]:
    return sorted(e["path"] for e in entries)


def _expect(truth, pred) -> list[str]:
    return sorted(r["path"] for r in truth if pred(r))


def test_where_kind_sample_and_dates_give_what_a_scan_of_run_json_gives(lab, capsys):
    root, truth = lab
    p, r = (lambda m: m["parameters"]), (lambda m: m["results"])
    got = _cli_json(capsys, "runs", str(root), "--where", "n=8", "--where", "test_accuracy>0.85", "--json")
    want = _expect(truth, lambda m: p(m).get("n") == 8 and (r(m).get("test_accuracy") or 0) > 0.85)
    assert len(want) > 10 and _paths(got) == want
    # every operator, at its boundary: a value equal to the bound is in <= and >=, not in < and >
    bound = sorted(r(m)["test_accuracy"] for m in truth if "test_accuracy" in r(m))[100]
    for op, test in (("<", float.__lt__), ("<=", float.__le__), (">", float.__gt__), (">=", float.__ge__),
                     ("=", float.__eq__), ("!=", float.__ne__)):
        got = _cli_json(capsys, "runs", str(root), "--where", f"test_accuracy{op}{bound!r}", "--json")
        want = _expect(truth, lambda m, t=test: "test_accuracy" in r(m)
                       and t(float(r(m)["test_accuracy"]), bound))
        assert _paths(got) == want, op
    # text values, nested results, parameters only, a column, dates, the kind by a protocol's name
    got = _cli_json(capsys, "runs", str(root), "--where", "backend=rig", "--where", "neel_brown.Hc_mT>0",
                    "--json")
    assert got == []  # no run is both a training and a depinning calibration
    got = _cli_json(capsys, "runs", str(root), "--where", "neel_brown.Hc_mT>6.2", "--json")
    assert _paths(got) == _expect(truth, lambda m: r(m).get("neel_brown", {}).get("Hc_mT", 0) > 6.2)
    got = _cli_json(capsys, "runs", str(root), "--where", "params.n>=16", "--json")
    assert _paths(got) == _expect(truth, lambda m: p(m).get("n", 0) >= 16)
    got = _cli_json(capsys, "runs", str(root), "--kind", "hysteresis", "--sample", "S13", "--json")
    assert _paths(got) == _expect(truth, lambda m: m["kind"] == "protocol-hysteresis"
                                  and m["sample"] == "S13")
    since, until = truth[300]["start_time"], truth[700]["start_time"]
    got = _cli_json(capsys, "runs", str(root), "--since", since, "--until", until, "--kind", "train",
                    "--json")
    assert _paths(got) == _expect(truth, lambda m: since <= m["start_time"] <= until
                                  and m["kind"].startswith("train"))


def test_sort_desc_and_limit(lab, capsys):
    root, truth = lab
    got = _cli_json(capsys, "runs", str(root), "--sort", "coercive_field_mT", "--desc", "--limit", "5",
                    "--json")
    values = sorted((m["results"]["coercive_field_mT"] for m in truth if "coercive_field_mT" in m["results"]),
                    reverse=True)
    assert [e["results"]["coercive_field_mT"] for e in got] == values[:5]
    got = _cli_json(capsys, "runs", str(root), "--sort", "reads", "--where", "reads>=100", "--json")
    reads = [e["parameters"]["reads"] for e in got]
    assert reads == sorted(reads) and reads[0] == 100


@pytest.mark.parametrize("argv, message", [
    (["--where", "tst_accuracy>0.5"], "no run under .* records a parameter or result 'tst_accuracy' "
                                      r"\(did you mean 'test_accuracy'\?\)"),
    (["--where", "n=>8"], r"unknown operator '=>' \(did you mean '>='\?\)"),
    (["--where", "n~8"], "expected KEY OP VALUE"),
    (["--sort", "coercive_feld_mT"], r"did you mean 'coercive_field_mT'\?"),
    (["--limit", "-1"], "--limit -1: must be >= 0"),
])
def test_a_wrong_key_or_operator_is_one_line_with_a_hint(lab, capsys, argv, message):
    import re

    root, _ = lab
    capsys.readouterr()
    assert labml_main(["runs", str(root), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(message, err), err


def test_delete_the_index_and_reindex_gives_the_same_answers(lab, capsys):
    root, truth = lab
    queries = (["--where", "n=8", "--json"], ["--kind", "depinning", "--where", "reads=400", "--json"],
               ["--sort", "start_time", "--desc", "--limit", "50", "--json"], ["--json"])
    before = [_cli_json(capsys, "runs", str(root), *q) for q in queries]
    catalogue.catalogue_path(root).unlink()
    assert _cli_json(capsys, "runs", str(root), "--reindex", *queries[0]) == before[0]
    assert [_cli_json(capsys, "runs", str(root), *q) for q in queries] == before
    sweeps = {str(Path(m["path"]).parents[1]) for m in truth if "/points/" in m["path"]}
    assert len(before[-1]) == N_RUNS + len(sweeps)  # every run and one entry per sweep folder
    assert {e["path"] for e in before[-1] if e["kind"] == "sweep"} == sweeps and sweeps


def test_listing_thousands_of_runs_is_fast_and_imports_no_torch(lab):
    """Wall time of whole `labml runs --where` processes on 2,000 runs, extrapolated to 10,000 runs:
    the fixed cost (the same command on an empty root) + 5 x what the 2,000 runs add; best of 3 of
    each (the shared machine's load only ever adds). benchmarks/bench_catalogue.py measures 10,000."""
    root, _ = lab
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: from compiled bytecode
    code = ("import sys; from labml.cli import main; rc = main(sys.argv[1:]); "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'numba', 'numpy', 'qtpy', 'PyQt5', 'PyQt6', 'PySide6', 'pyqtgraph', 'protocols', "
            "'gui')); "
            "print(heavy, file=sys.stderr); sys.exit(rc)")

    def run(*argv) -> tuple[float, str]:
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code, *argv], env=env, cwd=ROOT, capture_output=True,
                             text=True, check=True)
        return time.perf_counter() - t, out.stderr

    empty = root.parent / "empty"
    empty.mkdir(exist_ok=True)
    run("runs", str(root), "--where", "n=8", "--json")  # index up to date, bytecode written
    full = min(run("runs", str(root), "--where", "n=8", "--where", "test_accuracy>0.85", "--json")[0]
               for _ in range(3))
    fixed = min(run("runs", str(empty))[0] for _ in range(3))
    extrapolated = fixed + (10_000 / N_RUNS) * (full - fixed)
    assert extrapolated < 1.0, f"{full:.3f} s for {N_RUNS} runs, {fixed:.3f} s fixed"
    _, heavy = run("runs", str(root), "--where", "n=8", "--sort", "test_accuracy", "--json")
    assert heavy.strip().splitlines()[-1] == "[]", heavy  # no torch, numba, numpy, Qt, protocols


# ======================================================================================= up to date
def _entry(root, name):
    return next(e for e in catalogue.query(root, reconcile_first=False) if e["path"].endswith(name))


def test_the_store_indexes_a_run_at_start_and_end_without_a_listing(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setenv("LABML_RUNS", str(root))
    run = store.Run.create("train-synapses", {"n": 8}, root / "a", sample="S1")
    assert catalogue.catalogue_path(root).is_file()  # made for the runs root at the run's start
    e = _entry(root, "a")
    assert (e["status"], e["sample"], e["parameters"]) == ("running", "S1", {"n": 8})
    run.finish("success", test_accuracy=0.91)
    e = _entry(root, "a")
    assert e["status"] == "success" and e["results"] == {"test_accuracy": 0.91}
    assert [x["path"] for x in catalogue.query(root, reconcile_first=False, where=["test_accuracy>0.9"])] == \
        [str(root / "a")]
    # written twice, indexed once (idempotent): one row, one value per key
    run.save_meta()
    con = catalogue.connect(root)
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM vals WHERE key='n'").fetchone()[0] == 1


def test_a_listing_reconciles_changed_new_and_deleted_folders(tmp_path, capsys):
    root = tmp_path / "runs"
    for name, n in (("a", 1), ("b", 2), ("c", 3)):
        store.Run.create("train-bm", {"n": n}, root / name).finish("success")
    assert [e["path"] for e in _cli_json(capsys, "runs", str(root), "--json")] == \
        [str(root / x) for x in "abc"]
    shutil.rmtree(root / "b")  # deleted
    shutil.copytree(root / "c", root / "d")  # copied in by hand: not through the store
    f = root / "a" / "run.json"  # edited in place (same folder, new contents)
    meta = json.loads(f.read_text())
    meta["parameters"]["n"] = 7
    with open(f, "w") as fh:
        fh.write(json.dumps(meta))
    got = _cli_json(capsys, "runs", str(root), "--json")
    assert sorted(Path(e["path"]).name for e in got) == ["a", "c", "d"]
    assert _paths(_cli_json(capsys, "runs", str(root), "--where", "n=7", "--json")) == [str(root / "a")]
    (root / "c" / "run.json").write_text("{broken")  # damaged: skipped with a warning, as before
    assert sorted(Path(e["path"]).name for e in _cli_json(capsys, "runs", str(root), "--json")) == ["a", "d"]


def test_a_sweep_entry_follows_its_points(tmp_path, capsys):
    root = tmp_path / "runs"
    from labml.runs.sweeps import Sweep

    sweep = Sweep.create(root / "sw", "depinning-calibration", {"reads": [10, 20]}, rig="sim")
    points = [store.Run.create("protocol-depinning-calibration", {"reads": r}, sweep.path / p["run_dir"])
              for r, p in zip((10, 20), sweep.points, strict=True)]
    status = {e["path"]: e["status"] for e in _cli_json(capsys, "runs", str(root), "--json")}
    assert status[str(sweep.path)] == "incomplete"
    for run in points:
        run.finish("success")
    status = {e["path"]: e["status"] for e in _cli_json(capsys, "runs", str(root), "--json")}
    assert status[str(sweep.path)] == "success"


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign"])
def test_a_damaged_or_foreign_index_is_rebuilt_with_one_warning(tmp_path, capsys, damage):
    root = tmp_path / "runs"
    store.Run.create("train-bm", {"n": 4}, root / "a").finish("success")
    before = _cli_json(capsys, "runs", str(root), "--json")
    path = catalogue.catalogue_path(root)
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    if damage == "garbage":
        path.write_bytes(b"not a database at all" * 100)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:1500])
    else:
        path.unlink()
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE t(x)")
        con.commit()
        con.close()
    capsys.readouterr()
    assert labml_main(["runs", str(root), "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == before
    warnings = [line for line in out.err.splitlines() if "run catalogue" in line]
    assert len(warnings) == 1 and "rebuilding it" in warnings[0] and "Traceback" not in out.err


def test_two_processes_writing_runs_at_once_leave_a_whole_index(tmp_path):
    """Two processes each create and finish 40 runs under one root at the same moment (the store
    updates the catalogue after each run.json): every run is indexed with its final status, the file
    passes SQLite's integrity check, and a rebuild from the folders gives the same rows."""
    root = tmp_path / "runs"
    root.mkdir()
    catalogue.connect(root).close()
    code = ("import sys, time; from pathlib import Path; from labml.runs import store\n"
            "root, tag, start = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])\n"
            "time.sleep(max(0.0, start - time.time()))\n"
            "for i in range(40):\n"
            "    r = store.Run.create('train-bm', {'n': i, 'writer': tag}, root / f'{tag}{i:02d}')\n"
            "    r.finish('success', score=i / 40)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", code, str(root), tag, str(start)], env=env, cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    con = catalogue.connect(root)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = sorted(con.execute("SELECT rel, status FROM runs"))
    assert rows == sorted((f"{t}{i:02d}", "success") for t in "ab" for i in range(40))
    indexed = catalogue.query(root, reconcile_first=False, where=["score>=0.5"])
    assert len(indexed) == 40
    con.close()
    catalogue.rebuild(root)
    assert catalogue.query(root, reconcile_first=False, where=["score>=0.5"]) == indexed


def test_find_runs_and_the_old_filters_go_through_the_catalogue(tmp_path):
    a = store.Run.create("train-synapses", {"n": 4}, tmp_path / "a", sample="S1")
    a.finish("success", test_accuracy=0.9)
    store.Run.create("protocol-hysteresis", {"field_max": 12.0}, tmp_path / "b", sample="S1")
    found = store.find_runs(tmp_path, where=["test_accuracy>0.85"], sample="S1")
    assert [r.path for r in found] == [tmp_path / "a"] and found[0].meta["uid"] == a.uid
    assert [r.path.name for r in store.find_runs(tmp_path, kind="hysteresis")] == ["b"]
    with pytest.raises(UserError, match="unknown run filter"):
        store.find_runs(tmp_path, knd="x")


def test_a_catalogue_that_cannot_be_written_never_fails_a_run(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("LABML_CATALOGUE_DIR", str(blocker / "catalogues"))
    monkeypatch.setenv("LABML_RUNS", str(tmp_path / "runs"))
    run = store.Run.create("train-bm", {"n": 1}, tmp_path / "runs" / "a")
    run.finish("success")  # run.json written; the catalogue update is skipped
    assert store.load(tmp_path / "runs" / "a").meta["status"] == "success"
    capsys.readouterr()
    assert labml_main(["runs", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("labml: error: run catalogue ") and "Traceback" not in err
