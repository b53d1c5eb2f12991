"""`labml runs` (list and filter runs through the run catalogue, labml.runs.catalogue) and `labml resume
RUN_DIR` (continue a run)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from labml.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "runs",
        allow_abbrev=False,
        help="list recorded runs (filter by kind, status, sample, device, operator, date, parameter)",
        description="List the run folders under ROOT (default: labml --runs-root, else $LABML_RUNS, else "
        "./runs), oldest first: every run at any depth (demo steps, sweep points) and every sweep folder. "
        "Run folders of the old layouts are listed too; --migrate converts one so it can be resumed.",
    )
    p.add_argument("root", nargs="?", default=None, help="folder holding run folders (or one run folder)")
    p.add_argument("--migrate", default=None, metavar="RUN_DIR",
                   help="convert an old-layout run folder in place to the current layout (run.json "
                   "schema_version 2, model.npz, figures/) so that `labml resume` can continue it")
    p.add_argument("--kind", help="run kind or its prefix, e.g. train, protocol-hysteresis")
    p.add_argument("--status",
                   choices=["running", "killed", "paused", "success", "stopped", "aborted", "failed"],
                   help="killed: recorded as running but its process is gone (resumable)")
    p.add_argument("--sample")
    p.add_argument("--device")
    p.add_argument("--operator")
    p.add_argument("--since", help="start time on or after this ISO date/time (UTC), e.g. 2026-11-24")
    p.add_argument("--until", help="start time before this ISO date/time (UTC)")
    p.add_argument("--text", help="substring of the notes, reason or kind (case-insensitive)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="parameter equals value (repeatable)")
    p.add_argument("--where", action="append", default=[], metavar="EXPR",
                   help="KEY OP VALUE on a parameter or result (or params.KEY / results.KEY, or a column "
                   "such as sample), OP one of = != < <= > >=, e.g. 'n=8', 'test_accuracy>0.85' "
                   "(repeatable; all must hold)")
    p.add_argument("--sort", default=None, metavar="KEY",
                   help="sort by a parameter, result or column (default: start time)")
    p.add_argument("--desc", action="store_true", help="sort in descending order")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="list at most N runs")
    p.add_argument("--reindex", action="store_true",
                   help="rebuild the run catalogue of ROOT from the run folders before listing")
    p.add_argument("--resumable", action="store_true",
                   help="only runs that `labml resume` can continue (paused or killed, in the current run "
                   "folder layout, and run.json names a registered run kind with valid parameters)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=cmd_runs)

    r = subparsers.add_parser(
        "resume",
        allow_abbrev=False,
        help="continue a paused or killed run from its last checkpoint",
        description="Continue RUN_DIR from its newest checkpoint: rows written after it are cut and "
        "redone, so nothing is lost or duplicated. The run keeps its folder and uid.",
    )
    r.add_argument("run_dir", help="the run folder (a path, or a folder name under the runs root)")
    r.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout")
    r.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    r.add_argument("--checkpoint", type=int, default=None, metavar="STEP",
                   help="resume from the kept checkpoint of this step instead of the newest")
    r.add_argument("--dry-run", action="store_true",
                   help="check that the run can be resumed (run.json, plan, checkpoint, rig config) and "
                   "stop; "
                   "opens nothing and changes nothing")
    r.add_argument("--accept-rig-change", action="store_true",
                   help="continue although the local rig config's limits or instrument addresses differ from "
                   "the run's snapshot (the local config applies; the change is recorded in run.json)")
    r.add_argument("--allow-plugin", action="append", default=[], metavar="NAME",
                   help="resume a run of a kind that the installed plugin NAME (an entry point of the "
                   "labml.kinds group of another distribution) provides (repeatable)")
    r.set_defaults(func=cmd_resume)


def add_record_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every run command can offer for its run.json (use with `record_metadata(args)`)."""
    g = parser.add_argument_group("run record")
    g.add_argument("--run-dir", default=None, help="run folder (default: runs/<date>-<kind>-<uid>)")
    g.add_argument("--sample", default=None, help="sample ID recorded in run.json")
    g.add_argument("--device", default=None, help="device / wire ID recorded in run.json")
    g.add_argument("--operator", default=None, help="operator (default $LABML_OPERATOR or $USER)")
    g.add_argument("--notes", default=None, help="free-text notes recorded in run.json")


def record_metadata(args: argparse.Namespace) -> dict:
    """sample/device/operator/notes from `add_record_arguments` options, for RunEngine.run(**...)."""
    return {k: getattr(args, k, None) for k in ("sample", "device", "operator", "notes")}


def _param_filters(items: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UserError(f"--param {item!r}: expected NAME=VALUE")
        out.append((name.strip(), value.strip()))
    return out


def _migrate(args: argparse.Namespace) -> int:
    from labml.runs import store as runs

    out = runs.migrate(runs.resolve_run_dir(args.migrate))
    if args.json:
        print(json.dumps(out))
    else:
        what = "; ".join(out["changes"]) or "nothing to change"
        old = out["from"]
        done = "already current" if old == "current" else f"migrated from the {old!r} layout"
        print(f"{out['run_dir']}: {done} ({what})")
    return 0


#: what `labml runs --json` prints of each run
JSON_KEYS = ("path", "uid", "kind", "status", "layout", "reason", "start_time", "stop_time", "sample",
             "device", "operator", "notes", "steps", "parameters", "results")


def cmd_runs(args: argparse.Namespace) -> int:
    from labml.runs import catalogue
    from labml.runs.store import to_jsonable

    if args.migrate:
        return _migrate(args)
    if args.limit is not None and args.limit < 0:
        raise UserError(f"--limit {args.limit}: must be >= 0")
    if args.reindex:
        catalogue.rebuild(args.root)
    want = args.status
    filters = {
        "kind": args.kind, "sample": args.sample, "device": args.device, "operator": args.operator,
        "since": args.since, "until": args.until, "text": args.text,
        "where": [*args.where, *(f"params.{n}={v}" for n, v in _param_filters(args.param))],
        "sort": args.sort, "desc": args.desc,
        # running and killed are told apart by the process, not the record: filtered below
        "status": "running" if want in ("running", "killed") else want,
    }
    post = want in ("running", "killed") or args.resumable
    found = catalogue.query(args.root, **filters, limit=None if post else args.limit)
    for e in found:
        if e["status"] == "running" and not _process_alive(e, Path(e["path"])):
            e["status"] = "killed"  # the process that ran it is gone: `labml resume` continues it
    if want:
        found = [e for e in found if e["status"] == want]
    if args.resumable:
        found = [e for e in found if _resumable(e)]
    if args.limit is not None:
        found = found[: args.limit]
    if args.json:
        sys.stdout.write(json.dumps(to_jsonable([{k: e.get(k) for k in JSON_KEYS} for e in found]), indent=2)
                         + "\n")
        return 0
    if not found:
        print("no runs found", file=sys.stderr)
        return 0
    _print_table(found)
    return 0


def _resumable(entry: dict) -> bool:
    from labml.runs.store import is_resumable

    meta = {**entry, "status": "running" if entry["status"] == "killed" else entry["status"]}
    return is_resumable(meta) and entry["layout"] == "current" and _plan_ok(entry)


def _print_table(found: list[dict]) -> None:
    rows = [dict(e) for e in found]
    for r in rows:  # an old run folder layout: listed and loadable, resumed after `labml runs --migrate`
        if r["layout"] not in ("current", "sweep"):
            r["status"] = f"{r['status']} (old {r['layout']} layout)"
    cols = ["start_time", "kind", "status", "steps", "sample", "reason", "path"]
    # every column but the last is cut at 48 characters; the path (last) is printed whole, so that it
    # can be pasted into `labml resume`
    widths = {c: min(48, max(len(c), *(len(str(r.get(c) or "")) for r in rows))) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    for r in rows:
        cells = [str(r.get(c) or "")[: widths[c]].ljust(widths[c]) for c in cols[:-1]]
        lines.append("  ".join([*cells, str(r.get(cols[-1]) or "")]).rstrip())
    sys.stdout.write("\n".join(lines) + "\n")


def _plan_ok(entry: dict) -> bool:
    """Whether run.json's plan names a registered run kind with valid parameters (checked through
    the registry: nothing named in the folder is imported)."""
    from labml.runs import kinds

    try:
        kinds.kind_and_params(entry.get("plan"))
    except UserError:
        return False
    return True


def _process_alive(meta: dict, run_dir: Path | None = None) -> bool:
    """False if the run folder's lock is free (its holder is gone), or, for a folder without a lock
    record, if run.json names a process on this host that no longer exists. Only looks: never takes
    the lock."""
    import socket

    from instruments.lock import pid_alive
    from labml.runs.lock import run_lock_holder

    holder = run_lock_holder(run_dir) if run_dir is not None else None
    if holder is not None and holder.locked is not None:
        return holder.locked

    pid, host = meta.get("pid"), meta.get("pid_host")
    if not pid or host != socket.gethostname():
        return True  # cannot tell: assume it runs
    return pid_alive(int(pid))


def cmd_resume(args: argparse.Namespace) -> int:
    from labml.runs import engine
    from labml.runs import store as runs

    run_dir = runs.resolve_run_dir(args.run_dir)
    if args.checkpoint is not None:
        from labml.checks import check_int

        check_int("--checkpoint", args.checkpoint, 0)
    run = runs.load(run_dir)
    if args.dry_run:
        # every check of a resume; the rig is not opened and the folder is not changed
        prep = engine.prepare_resume(run_dir, checkpoint=args.checkpoint,
                                     accept_rig_change=args.accept_rig_change,
                                     allow_plugins=args.allow_plugin)
        state, plan = prep.state, prep.plan
        out = {"run_dir": str(run_dir), "resumable": True, "kind": plan.kind,
               "from_step": 0 if state is None else state["step"], "steps": plan.n_steps(),
               "rig_changes": prep.rig_changes}
        print(json.dumps(out) if args.json else f"{run_dir}: resumable from step {out['from_step']}"
              f" of {out['steps']}")
        return 0
    recorded = run.meta.get("engine") or {}
    wd = recorded.get("watchdog") or {}
    eng = engine.RunEngine(
        progress=False if args.no_progress else None,
        checkpoint_every=int(recorded.get("checkpoint_every", 1)),
        checkpoint_interval_s=recorded.get("checkpoint_interval_s"),
        watchdog=engine.Watchdog(**{k: v for k, v in wd.items()
                                    if k in ("retries", "backoff_s", "poll_s", "suspend_timeout_s")}),
    )
    outcome = eng.resume(run_dir, checkpoint=args.checkpoint, accept_rig_change=args.accept_rig_change,
                         allow_plugins=args.allow_plugin)
    if args.json:
        print(json.dumps(runs.to_jsonable(outcome.to_dict())))
    else:
        from labml.results_table import results_table

        print(f"{outcome.run_dir}: {outcome.status}" + (f" ({outcome.reason})" if outcome.reason else ""))
        for line in results_table(runs.load(outcome.run_dir).meta.get("results") or {}):
            print(line)
        for path in runs.figures_of(outcome.run_dir):
            print(f"  figure: {path}")
    return {"success": 0, "stopped": 0, "paused": 0, "aborted": 3}.get(outcome.status, 1)
