"""Locks that hold, measured: concurrent rig-lock takers and concurrent resumes of one run folder.

    .venv/bin/python benchmarks/bench_locks.py [--lock-rounds 200] [--takers 4]
                                               [--resume-rounds 200] [--steps 12] [--json]

Part 1, rig lock (instruments.lock.RigLock): each round forks `--takers` processes that wait on one
pipe and are released together; each tries the lock once. A taker that gets it creates a marker
file with O_EXCL (which fails if another holder is inside), checks that the lock file's record
names itself, sleeps 2 ms, removes the marker and releases. Odd rounds start from a stale lock
file (the record of a process that has exited), so that the takers also race on the takeover path.
Reported: acquisitions, refusals, rounds with two holders (must be 0), records that did not name
their holder (must be 0), rounds where nobody got the lock (must be 0).

Part 2, run folder (labml.runs.engine.RunEngine.resume): a tiny plan (`--steps` steps of a few ms, one
"metrics" row each, a checkpoint after every step) is suspended after 4 steps once; each round
copies that folder and forks two processes that call ``RunEngine().resume(folder)`` at the same
moment. Reported: rounds where exactly one resume ran and the other was refused naming the holder
(or came after the end and was told the run had finished), rounds where both ran (must be 0),
rounds whose "metrics" series does not hold every step exactly once and in order or whose run.json does
not parse or records more than one resume (must be 0).

Children are forked from this process (which has imported labml and torch before the first round)
so a round costs milliseconds, not two interpreter starts; each child opens its locks itself, so for
the locks they are independent processes. Runs on the code found on PYTHONPATH, so the same script
measures an older checkout (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # PYTHONPATH (e.g. an older checkout) comes first


# ------------------------------------------------------------------------------ part 1: rig lock
def _taker(lock_dir: Path, go_r: int, out_w: int) -> None:
    """Child: wait for go, try the lock once, report one line; never returns."""
    code = 0
    try:
        from instruments.errors import RigLockedError
        from instruments.lock import RigLock, lock_holder

        os.read(go_r, 1)
        try:
            lock = RigLock("bench", lock_dir).acquire()
        except RigLockedError as exc:
            msg = "refused " + " ".join(str(exc).split())
        else:
            try:
                fd = os.open(lock_dir / "inside", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                msg = "TWO-HOLDERS"
            else:
                holder = lock_holder("bench", lock_dir)
                ok = holder is not None and holder.pid == os.getpid() and holder.host == socket.gethostname()
                time.sleep(0.002)
                os.close(fd)
                os.unlink(lock_dir / "inside")
                msg = "held" if ok else "BAD-RECORD"
            lock.release()
        os.write(out_w, (msg + "\n").encode())
    except BaseException as exc:  # noqa: BLE001 - report, never fall back into the parent's code
        os.write(out_w, f"ERROR {type(exc).__name__}: {exc}\n".encode())
        code = 1
    os._exit(code)


def bench_lock(rounds: int, takers: int, tmp: Path) -> dict:
    import logging

    logging.disable(logging.WARNING)  # one takeover warning per stale round
    lock_dir = tmp / "locks"
    lock_dir.mkdir()
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)  # a PID that no longer exists: the holder of the stale lock files
    stale = json.dumps({"pid": dead, "host": socket.gethostname(), "started_utc": "2000-01-01T00:00:00+00:00",
                        "argv": ["killed"], "lock": "flock"})
    res = {"rounds": rounds, "takers": takers, "acquisitions": 0, "refusals": 0, "two_holders": 0,
           "bad_records": 0, "rounds_nobody_held": 0, "errors": 0, "refusal_named_a_holder": 0,
           "stale_rounds": 0}
    t0 = time.perf_counter()
    for r in range(rounds):
        if r % 2:
            (lock_dir / "bench.lock").write_text(stale)
            res["stale_rounds"] += 1
        go_r, go_w = os.pipe()
        out_r, out_w = os.pipe()
        pids = []
        for _ in range(takers):
            pid = os.fork()
            if pid == 0:
                os.close(go_w)
                os.close(out_r)
                _taker(lock_dir, go_r, out_w)
            pids.append(pid)
        os.close(go_r)
        os.close(out_w)
        os.write(go_w, b"x" * takers)  # all released at once
        os.close(go_w)
        for pid in pids:
            os.waitpid(pid, 0)
        with os.fdopen(out_r) as fh:
            lines = fh.read().splitlines()
        held = sum(line == "held" for line in lines)
        res["acquisitions"] += held
        res["refusals"] += sum(line.startswith("refused") for line in lines)
        res["refusal_named_a_holder"] += sum(line.startswith("refused") and "in use by PID" in line
                                             for line in lines)
        res["two_holders"] += any(line == "TWO-HOLDERS" for line in lines)
        res["bad_records"] += sum(line == "BAD-RECORD" for line in lines)
        res["errors"] += sum(line.startswith("ERROR") for line in lines)
        res["rounds_nobody_held"] += held == 0
        if any(line.startswith("ERROR") for line in lines):
            print(r, [line for line in lines if line.startswith("ERROR")][:1], file=sys.stderr)
    res["wall_s"] = round(time.perf_counter() - t0, 2)
    res["ok"] = (res["two_holders"] == 0 and res["bad_records"] == 0 and res["rounds_nobody_held"] == 0
                 and res["errors"] == 0)
    return res


# ------------------------------------------------------------------------------ part 2: run folder
def _count_plan(steps: int, step_s: float):
    from labml.runs.engine import Plan

    class CountPlan(Plan):
        """`steps` steps; step i sleeps `step_s` and emits {"step": i, "value": i*i}."""

        kind = "bench-count"

        def n_steps(self) -> int:
            return steps

        def step(self, i: int, ctx) -> None:
            time.sleep(step_s)
            ctx.emit("metrics", {"step": i, "value": i * i})

        def results(self) -> dict:
            return {"steps": steps}

    return CountPlan()


def _resumer(folder: Path, steps: int, step_s: float, out_w: int) -> None:
    code = 0
    try:
        import logging

        logging.disable(logging.WARNING)
        from labml.errors import UserError
        from labml.runs.engine import RunEngine

        try:
            engine = RunEngine(progress=False, handle_sigint=False)
            out = engine.resume(folder, plan=_count_plan(steps, step_s))
            msg = f"ran {out.status}"
        except UserError as exc:
            msg = ("refused-multiline " if "\n" in str(exc) else "refused ") + " ".join(str(exc).split())
        os.write(out_w, (f"{os.getpid()} {msg}\n").encode())
    except BaseException as exc:  # noqa: BLE001
        os.write(out_w, f"{os.getpid()} ERROR {type(exc).__name__}: {exc}\n".encode())
        code = 1
    os._exit(code)


def _check_folder(folder: Path, steps: int) -> tuple[bool, bool]:
    """(rows each exactly once and in order, run.json parses with status success and one resume)."""
    from labml.errors import UserError
    from labml.runs import store

    try:
        rows = store.load(folder).series("metrics")
        rows_ok = [int(r["step"]) for r in rows] == list(range(steps)) and all(
            int(r["value"]) == int(r["step"]) ** 2 for r in rows)
    except (OSError, ValueError, KeyError, TypeError, UserError):
        rows_ok = False
    try:
        meta = json.loads((folder / "run.json").read_text())
        resumes = sum(e.get("event") == "resume" for e in meta.get("events", []))
        meta_ok = meta.get("status") == "success" and resumes == 1
    except (OSError, ValueError):
        meta_ok = False
    return rows_ok, meta_ok


def bench_resume(rounds: int, steps: int, step_s: float, tmp: Path) -> dict:
    import logging

    import torch  # noqa: F401 - imported once here, before the children are forked

    from labml.runs.engine import RunEngine

    logging.disable(logging.WARNING)
    template = tmp / "template"
    eng = RunEngine(progress=False, handle_sigint=False, on_pause=lambda e, step: "suspend")
    eng.subscribe(lambda ev, p: eng.request_pause() if ev == "step" and p["step"] == 4 else None)
    out = eng.run(_count_plan(steps, step_s), template)
    assert out.status == "paused", out
    res = {"rounds": rounds, "steps": steps, "step_s": step_s, "one_ran_other_refused_in_use": 0,
           "one_ran_other_told_finished": 0, "both_ran": 0, "none_ran": 0, "bad_rows": 0,
           "bad_run_json": 0, "lock_left_behind": 0, "errors": 0, "multi_line_errors": 0}
    t0 = time.perf_counter()
    for r in range(rounds):
        folder = tmp / f"round-{r}"
        shutil.copytree(template, folder)
        go_r, go_w = os.pipe()
        out_r, out_w = os.pipe()
        pids = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                os.close(go_w)
                os.close(out_r)
                os.read(go_r, 1)
                _resumer(folder, steps, step_s, out_w)
            pids.append(pid)
        os.close(go_r)
        os.close(out_w)
        os.write(go_w, b"xx")
        os.close(go_w)
        for pid in pids:
            os.waitpid(pid, 0)
        with os.fdopen(out_r) as fh:
            lines = [line.split(" ", 1) for line in fh.read().splitlines()]
        ran = [p for p, m in lines if m.startswith("ran")]
        refused = [m for _, m in lines if m.startswith("refused")]
        res["errors"] += sum(m.startswith("ERROR") for _, m in lines)
        res["multi_line_errors"] += sum(m.startswith("refused-multiline") for _, m in lines)
        if any(m.startswith("ERROR") for _, m in lines):
            print(r, [m for _, m in lines if m.startswith("ERROR")][:1], file=sys.stderr)
        if len(ran) == 2:
            res["both_ran"] += 1
        elif len(ran) == 0:
            res["none_ran"] += 1
        elif refused and f"in use by PID {ran[0]}" in refused[0]:
            res["one_ran_other_refused_in_use"] += 1
        elif refused and "has finished" in refused[0]:
            res["one_ran_other_told_finished"] += 1
        rows_ok, meta_ok = _check_folder(folder, steps)
        res["bad_rows"] += not rows_ok
        res["bad_run_json"] += not meta_ok
        res["lock_left_behind"] += (folder / ".lock").exists()
        shutil.rmtree(folder)
    res["wall_s"] = round(time.perf_counter() - t0, 2)
    res["ok"] = (res["both_ran"] == 0 and res["none_ran"] == 0 and res["bad_rows"] == 0
                 and res["bad_run_json"] == 0 and res["errors"] == 0 and res["multi_line_errors"] == 0
                 and res["one_ran_other_refused_in_use"] + res["one_ran_other_told_finished"] == rounds)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lock-rounds", type=int, default=200, help="rounds of concurrent lock takers (200)")
    ap.add_argument("--takers", type=int, default=4, help="lock takers per round (4)")
    ap.add_argument("--resume-rounds", type=int, default=200, help="rounds of two concurrent resumes (200)")
    ap.add_argument("--steps", type=int, default=12, help="steps of the resumed plan (12)")
    ap.add_argument("--step-s", type=float, default=0.003, help="seconds per step of the plan (0.003)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_locks_") as d:
        tmp = Path(d)
        (tmp / "lock").mkdir()
        (tmp / "resume").mkdir()
        lock = bench_lock(args.lock_rounds, args.takers, tmp / "lock") if args.lock_rounds else None
        resume = (bench_resume(args.resume_rounds, args.steps, args.step_s, tmp / "resume")
                  if args.resume_rounds else None)
    import instruments.lock as lk

    out = {"code": str(Path(lk.__file__).resolve().parents[1]), "host": socket.gethostname(),
           "cpus": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
           "lock": lock, "resume": resume,
           "ok": all(p is None or p["ok"] for p in (lock, resume))}
    if args.json:
        print(json.dumps(out))
    else:
        for name, part in (("rig lock", lock), ("run folder resume", resume)):
            if part is not None:
                print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in part.items()))
        print("all held" if out["ok"] else "FAILED: a lock did not hold")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
