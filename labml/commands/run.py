"""`labml run KIND ...` and `labml sweep PROTOCOL --grid ...`: runs of every registered kind from the shell.

    labml run                                  # list the protocols and the other run kinds
    labml run depinning-calibration --help     # the protocol's parameters (units, ranges, defaults)
    labml run depinning-calibration --wire 0 --reads 200 --nb-durations "0.1 ms,10 ms" --json
    labml sweep depinning-calibration --grid reads=50,100 --grid wire=0,1 --workers 2 --json
    labml sweep --resume runs/sweep-...        # finish the points a killed sweep left
    labml run hysteresis --sample S12 --device W0 --operator ana --notes "after anneal"

    labml run train-bm --hidden 16 --epochs 5  # a training kind (= labml train bm ...)

KIND is a run kind of the registry (labml.runs.kinds), or a protocol by its name (kind
``protocol-<name>``). Protocol parameters are given as `--name value` (or `--name=value`; dashes and
underscores are the same); values may carry compatible units ("500 us", "3 mT"). Any other kind's
options are generated from its declared parameters (labml.commands.kind_cli). Everything is validated
before the rig is opened. With --json the last stdout line is one JSON object. This module imports
no protocol: it finds them through the registry.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path

from labml.errors import UserError
from labml.runs.store import to_jsonable

_RUN_FLAGS = {
    "--rig": "rig",
    "--run-dir": "run_dir",
    "--sweep-dir": "sweep_dir",
    "--cluster": "cluster",
    "--workers": "workers",
    "--plot-x": "plot_x",
    "--plot-y": "plot_y",
    "--resume": "resume",
    "--sample": "sample",
    "--device": "device",
    "--operator": "operator",
    "--notes": "notes",
}
_RECORD = ("sample", "device", "operator", "notes")


def _add_record_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run record (written into run.json)")
    g.add_argument("--sample", default=None, help="sample ID")
    g.add_argument("--device", default=None, help="device / wire ID")
    g.add_argument("--operator", default=None, help="operator (default $LABML_OPERATOR or $USER)")
    g.add_argument("--notes", default=None, help="free-text notes")


def _record(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k, None) for k in _RECORD}
_RUN_SWITCHES = {"--dry-run": "dry_run", "--json": "json"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run",
        allow_abbrev=False,
        help="run a measurement protocol on a rig",
        description="Run a scripted protocol (hysteresis, coil-calibration, depinning-calibration, "
        "characterise-wires, infer-on-rig) or another run kind (train-synapses, train-bm, ...). "
        "`labml run KIND --help` lists its parameters.",
        add_help=False,
    )
    p.add_argument("protocol", nargs="?", help="protocol or run kind (omit to list them)")
    p.add_argument("--rig", default=None, help="rig config file, or 'sim' for the built-in simulated rig "
                   "(protocols: default sim)")
    p.add_argument("--run-dir", default=None, help="run folder (default runs/<time>-protocol-<name>-<id>)")
    p.add_argument("--dry-run", action="store_true", help="validate the plan against the rig config only")
    p.add_argument("--json", action="store_true", help="last stdout line: one JSON object")
    p.add_argument("-h", "--help", action="store_true", help="this help, or the protocol's parameters")
    _add_record_arguments(p)
    p.add_argument("params", nargs=argparse.REMAINDER, help="protocol parameters: --name value ...")
    p.set_defaults(func=cmd_run, _parser=p)

    s = subparsers.add_parser(
        "sweep",
        allow_abbrev=False,
        help="run a protocol or a training kind over a grid of parameters (local processes or Dask)",
        description="Run a protocol or another run kind (train-synapses, train-bm, ...) over a grid of "
        "parameter values as one queued, resumable sequence.",
        add_help=False,
    )
    s.add_argument("protocol", nargs="?", help="protocol or run kind")
    s.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="a grid axis (repeat for more axes)",
    )
    s.add_argument("--rig", default="sim", help="rig config file, or 'sim'")
    s.add_argument("--sweep-dir", default=None, help="sweep folder (default runs/sweep-<time>-<protocol>)")
    s.add_argument("--resume", default=None, metavar="SWEEP_DIR", help="finish the missing points of a sweep")
    s.add_argument("--cluster", default=None, metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786")
    s.add_argument(
        "--workers", type=int, default=None, help="local worker processes (0: run in this process)"
    )
    s.add_argument("--plot-x", default=None, help="grid parameter on the plot's x axis")
    s.add_argument("--plot-y", default=None, help="comma-separated result keys to plot")
    s.add_argument("--dry-run", action="store_true", help="validate every point, run nothing")
    s.add_argument("--json", action="store_true", help="last stdout line: one JSON object")
    s.add_argument("-h", "--help", action="store_true", help="this help")
    _add_record_arguments(s)
    s.add_argument("params", nargs=argparse.REMAINDER, help="fixed protocol parameters: --name value ...")
    s.set_defaults(func=cmd_sweep, _parser=s)


def split_params(args: argparse.Namespace, tokens: list[str]) -> dict[str, str]:
    """Split the free tokens into run options (set on `args`) and protocol parameters {name: value}."""
    params: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or tok == "--":
            raise UserError(f"unexpected argument {tok!r}; protocol parameters are given as --name value")
        name, eq, value = tok[2:].partition("=")
        flag = "--" + name
        if flag in _RUN_SWITCHES and not eq:
            setattr(args, _RUN_SWITCHES[flag], True)
            i += 1
            continue
        if flag in ("--help", "-h"):
            args.help = True
            i += 1
            continue
        if flag == "--grid":
            if not eq:
                if i + 1 >= len(tokens):
                    raise UserError("--grid needs NAME=V1,V2,...")
                value = tokens[i + 1]
                i += 1
            if hasattr(args, "grid"):
                args.grid.append(value)
                i += 1
                continue
        if not eq:
            if i + 1 >= len(tokens):
                raise UserError(f"parameter {tok!r} needs a value")
            value = tokens[i + 1]
            i += 1
        i += 1
        if flag in _RUN_FLAGS and hasattr(args, _RUN_FLAGS[flag]):
            attr = _RUN_FLAGS[flag]
            if attr == "workers":
                try:
                    value = int(value)
                except ValueError:
                    raise UserError(f"--workers {value!r}: must be an integer >= 0") from None
            setattr(args, attr, value)
            continue
        key = name.replace("-", "_")
        if key in params:
            raise UserError(f"parameter --{name} given twice")
        params[key] = value
    return params


def _print_kinds() -> None:
    from labml.commands.kind_cli import short_name, takes_text
    from labml.runs import kinds

    listed = [kinds.get(n) for n in kinds.names()]
    print("protocols:")
    for kind in listed:
        if takes_text(kind):
            print(f"  {short_name(kind):24s} {kind.help}")
    print("other run kinds:")
    for kind in listed:
        if not takes_text(kind):
            print(f"  {kind.name:24s} {kind.help}")


def _print_params(kind) -> None:
    from labml.commands.kind_cli import describe_params, short_name

    name = short_name(kind)
    print(f"labml run {name} [--name value ...] [--rig FILE|sim] [--run-dir DIR] [--dry-run] [--json]")
    print(f"\n{kind.help}\n\nparameters:")
    for line in describe_params(kind):
        print(line)


def _outer_tokens(args: argparse.Namespace) -> list[str]:
    """The run options given before KIND, as tokens for the kind's own parser."""
    tokens = [flag for flag, dest in _RUN_SWITCHES.items() if getattr(args, dest, False)]
    for flag, dest in _RUN_FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None and dest in ("rig", "run_dir", *_RECORD):
            tokens += [flag, str(value)]
    return tokens


def cmd_run(args: argparse.Namespace) -> int:
    from labml.commands.kind_cli import find_kind, takes_text

    if args.protocol is None:
        if args.help or args.params:
            args._parser.print_help()
            return 0
        _print_kinds()
        return 0
    kind = find_kind(args.protocol)
    if not takes_text(kind):  # options generated from the kind's declared parameters
        from labml.commands.train import run_kind

        tokens = [*_outer_tokens(args), *(["--help"] if args.help else []), *args.params]
        return run_kind(kind, tokens, prog=f"labml run {kind.name}")
    params = split_params(args, list(args.params))
    if args.help:
        _print_params(kind)
        return 0
    out = _run_text_kind(kind, args.protocol, params, args)
    _report(out, args.json)
    # as `labml resume` and `labml train`: a stopped or paused (resumable) run is not a failure
    return 0 if out.get("status") in ("success", "planned", "stopped", "paused") else 1


def _run_text_kind(kind, name: str, params: dict, args: argparse.Namespace) -> dict:
    """Run (or dry-run) a kind whose parameters are text (a protocol): the plan is built and checked
    against the rig config (limits, waveforms, durations) before the engine opens the rig."""
    from labml.runs import engine as eng

    plan = kind.make(params)
    rig = args.rig or "sim"
    if args.dry_run:
        summary = eng.dry_run(plan, rig, args.run_dir)
        return {"protocol": name, "dry_run": True, "status": "planned", "plan": summary, "results": {},
                "run_dir": None}
    if not plan.needs_rig:
        plan.validate(None)  # its settings, before any folder is made
    outcome = eng.RunEngine().run(plan, args.run_dir, rig_spec=rig if plan.needs_rig else None,
                                  **_record(args))
    return {"protocol": name, **outcome.to_dict()}


def _report(out: dict, as_json: bool) -> None:
    if not as_json:
        if out.get("dry_run"):
            print(f"plan OK for {out['protocol']}: " + json.dumps(out.get("plan", {}), default=str))
        else:
            from labml.results_table import results_table

            why = f": {out['reason']}" if out.get("reason") and out.get("status") != "success" else ""
            print(f"{out.get('protocol')}: {out.get('status')}{why}  run folder: {out.get('run_dir')}")
            for line in results_table(out.get("results", {})):
                print(line)
            for path in out.get("figures", []):
                print(f"  figure: {path}")
    else:
        sys.stdout.flush()
        print(json.dumps(_strict(out)))


def _strict(out: dict) -> object:
    """`out` as strict JSON data: numpy values converted, anything else by its str, NaN/inf as null
    (as in run.json)."""
    return to_jsonable(out, other_as_str=True)


def _one_real_rig(rig, protocol: str, fixed: dict, args: argparse.Namespace) -> None:
    """A real rig (backend "visa") is one piece of hardware: its points run one after another in this
    process (a cluster or parallel workers would fight over the rig's lock)."""
    if rig is None:
        return
    from labml.commands.kind_cli import find_kind
    from labml.rigs import rig_config

    try:
        needs_rig = find_kind(protocol).plan(dict(fixed)).needs_rig
    except UserError:
        needs_rig = True
    if not needs_rig and "backend" not in fixed:
        return
    if rig_config(rig).backend != "visa":
        return
    if args.cluster:
        raise UserError(
            f"rig {rig!r} is a real bench (backend visa): its sweep runs here, one point after "
            "another; leave out --cluster"
        )
    if args.workers not in (None, 0, 1):
        print(f"labml: rig {rig!r} is a real bench: running the points one after another", file=sys.stderr)
    args.workers = 0


def _run_sweep_with_progress(sweep, args: argparse.Namespace) -> dict:
    """Run the sweep's pending points with the progress bar on stderr (labml.progress: a terminal or
    LABML_PROGRESS=1), else one "point N done" line on stderr per point."""
    from labml.progress import ProgressBar, enabled, say

    bar = ProgressBar(unit="point") if enabled() else None
    total = len(sweep.points)
    done = [total - len(sweep.pending())]
    if bar is not None:
        bar.start(done[0], total, f"sweep {sweep.manifest.get('protocol', '')}")

    def progress(point: dict, out: dict) -> None:
        done[0] += 1
        if bar is not None:
            bar.update(done[0])
        else:
            say(f"point {point['index']} done: {point['params']}")

    try:
        out = sweep.run(workers=args.workers, cluster=args.cluster, on_done=progress)
    finally:
        if bar is not None:
            bar.close(done[0], "done")
    return out


def cmd_sweep(args: argparse.Namespace) -> int:
    fixed = split_params(args, list(args.params))
    if args.help:
        args._parser.print_help()
        return 0
    from labml.runs.sweeps import Sweep, check_run_options, parse_grid

    check_run_options(args.workers, args.cluster)  # before any folder is made or point validated
    if args.resume:
        sweep = Sweep.open(args.resume)
        if args.grid or fixed:
            raise UserError("--resume takes no --grid or parameters: the sweep folder's manifest fixes them")
        m = sweep.manifest
        _one_real_rig(m.get("rig"), m["protocol"], m.get("fixed", {}), args)
    else:
        if not args.protocol:
            raise UserError("labml sweep needs a PROTOCOL (or --resume SWEEP_DIR)")
        from labml.runs.sweeps import plan_validator

        if args.rig and Path(args.rig).is_file():
            args.rig = str(Path(args.rig).resolve())  # workers may run in another folder
        validate = plan_validator(args.protocol, args.rig)  # the kind, then the rig config
        grid = parse_grid(args.grid)

        path = args.sweep_dir
        if path is None:
            from labml.runs.store import default_runs_root

            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            path = default_runs_root() / f"sweep-{stamp}-{args.protocol}"
        if args.dry_run:
            from labml.runs.sweeps import expand_grid

            points = expand_grid(grid)
            for p in points:
                validate({**fixed, **p})
            out = {"dry_run": True, "protocol": args.protocol, "points": len(points), "status": "planned"}
            print(json.dumps(out) if args.json else f"plan OK: {len(points)} points of {args.protocol}")
            return 0
        _one_real_rig(args.rig, args.protocol, fixed, args)
        sweep = Sweep.create(Path(path), args.protocol, grid, fixed=fixed, rig=args.rig, validate=validate,
                             record=_record(args))

    out = _run_sweep_with_progress(sweep, args)
    if args.plot_x or args.plot_y:
        plot = sweep.write_plot(x=args.plot_x, y=args.plot_y.split(",") if args.plot_y else None)
        out["plot"] = str(plot) if plot else None
    out["status"] = "success" if not out["failed"] else "incomplete"
    if args.json:
        print(json.dumps(_strict(out)))
    else:
        print(
            f"sweep {out['sweep_dir']}: {out['points']} points, ran {out['ran']}, "
            f"already done {out['reused']}, "
            f"failed {len(out['failed'])}\n  table: {out['table']}\n  plot: {out['plot']}"
        )
    return 0 if not out["failed"] else 1
