"""`labml train synapses ...` and `labml train bm ...`: thin aliases of `labml run train-synapses` and
`labml run train-bm` (same options, same code path), and `labml train bm-compare`.

    labml train synapses --n 1 --epochs 100 --data /path/to/mnist --json
    labml train synapses --n 4 --epochs 5 --backend rig --rig sim --train-size 500 --json
    labml train bm --model rbm --hidden 16 --epochs 5 --json
    labml train bm-compare --hidden 16 --updates 500 --run-dir DIR    (options: labml.bm.compare)

The options are made from the kinds' declared parameters (labml.synapses.kind, labml.bm.kind; see
labml.commands.kind_cli). Every run is a run of the engine: a run folder (run.json, the per-epoch
CSV, checkpoints/, model.npz), Ctrl+C pauses, `labml resume RUN_DIR` continues, --dry-run validates.
With --json the last line of stdout is one JSON object; progress goes to stderr.

This module also holds how a kind's run talks on the command line (`run_kind`, the front ends
`Front`, `SynapseFront`, `BMFront`): progress lines with the time left, the checks of option
combinations, what runs after the training (inference on the rig) and the summary printed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from labml.errors import UserError
from labml.units import format_duration

#: `labml train WHAT` -> the run kind it is an alias of
ALIASES = {"synapses": "train-synapses", "bm": "train-bm"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", allow_abbrev=False, help="train a learning model (stochastic synapses, Boltzmann machines)"
    )
    sub = p.add_subparsers(dest="train_what", metavar="WHAT")
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])
    helps = {
        "synapses": "stochastic-synapse network (Ellis et al. 2023) on the model or in the loop on a rig "
        "(= labml run train-synapses)",
        "bm": "Boltzmann machine / RBM / classification RBM (gradient or learning by relaxation) "
        "(= labml run train-bm)",
    }
    for what, kind in ALIASES.items():
        # The options are the kind's, parsed when the command runs (the kind's module is loaded then):
        # every token goes to the kind's generated parser ("+" prefix: no option is taken here).
        a = sub.add_parser(what, help=helps[what], add_help=False, allow_abbrev=False, prefix_chars="+")
        a.add_argument("tokens", nargs="*")
        a.set_defaults(func=lambda args, kind=kind: run_alias(kind, args.tokens))

    c = sub.add_parser(
        "bm-compare",
        allow_abbrev=False,
        help="compare CD, PCD, Metropolis, sLLG and the relaxation device on one budget of updates",
        description="Train the same RBM with each sampler on the same budget of parameter updates and "
        "write a table (CSV, Markdown) and a plot of log-likelihood and accuracy against updates and "
        "against wall time (see labml.bm.compare).",
    )
    from labml.bm.compare import add_arguments as add_compare_arguments

    add_compare_arguments(c)
    c.set_defaults(func=_compare_bm)


def run_alias(kind_name: str, tokens: list[str]) -> int:
    """`labml train WHAT TOKENS` = `labml run KIND TOKENS`."""
    from labml.runs import kinds

    kind = kinds.get(kind_name, where="labml train")
    what = next(w for w, k in ALIASES.items() if k == kind_name)
    return run_kind(kind, list(tokens), prog=f"labml train {what}")


def _compare_bm(args: argparse.Namespace) -> int:
    from labml.bm.compare import main as compare_main

    # labml.bm.compare records its arguments in run.json: hand it the options only (no dispatch function)
    options = {k: v for k, v in vars(args).items() if not callable(v) and k not in ("command", "train_what")}
    return int(compare_main(argparse.Namespace(**options)) or 0)


# ======================================================================================= front ends
def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _plain(v: Any) -> Any:
    import numpy as np

    return float(v) if isinstance(v, np.floating) else v


def say(msg: str) -> None:
    """A line on stderr, above the progress bar when one is drawn (labml.progress)."""
    from labml.progress import say as progress_say

    progress_say(msg)


class TimeLeft:
    """Time remaining of a training from the engine's events (start: first epoch and total; each
    finished epoch): elapsed wall time per epoch of this process x epochs still to run. With early
    stopping (patience) the run may end sooner, so it is an upper bound."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.first = 0
        self.total: int | None = None

    def start(self, payload: dict) -> None:
        self.t0, self.first, self.total = time.monotonic(), int(payload["step"]), payload.get("total")

    def text(self, done: int) -> str:
        """ " left H:MM:SS" after `done` epochs in all (resumed ones included); "" when unknown."""
        from labml.progress import format_clock as _fmt_s

        ran = done - self.first
        if not self.total or ran <= 0:
            return ""
        return f"  left {_fmt_s((time.monotonic() - self.t0) / ran * max(0, self.total - done))}"


class Front:
    """How a run of a kind talks on the command line (this default serves any kind, a plugin's too)."""

    def __init__(self) -> None:
        self.left = TimeLeft()

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Options of the command that are no parameter of the kind."""

    def check(self, args: argparse.Namespace, plan: Any) -> None:
        """Option combinations (UserError), before anything is made."""
        if plan.needs_rig and not args.rig:
            raise UserError(f"{plan.kind} runs on a rig: give --rig FILE|sim")

    def opens_rig(self, args: argparse.Namespace, plan: Any) -> bool:
        return bool(plan.needs_rig and args.rig)

    def progress(self, args: argparse.Namespace, plan: Any, event: str, payload: dict) -> None:
        if event == "start":
            self.left.start(payload)
        elif event in ("pause", "fault"):
            say(f"{event}: {payload}")

    def finish(self, args: argparse.Namespace, plan: Any, outcome: Any, rig: Any) -> dict:
        """The results of a successful run (recorded in run.json and printed)."""
        return {k: v for k, v in plan.results().items() if not isinstance(v, dict)}

    def report(self, args: argparse.Namespace, results: dict) -> None:
        if args.json:
            print(json.dumps(results))
        else:
            from labml.results_table import results_table

            for line in results_table(results, indent=""):
                print(line)


class SynapseFront(Front):
    """`labml run train-synapses` / `labml train synapses`: "epoch   3  loss ..." lines with the time
    left; after the training, inference on the rig (--rig-test-size); the test accuracy last."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--rig-test-size",
            type=int,
            default=0,
            metavar="M",
            help="after training, run inference on --rig for a stratified test subset of M images",
        )

    def check(self, args: argparse.Namespace, plan: Any) -> None:
        rig_test = int(args.rig_test_size or 0)
        if plan.needs_rig and not args.rig:
            raise UserError("--backend rig needs --rig FILE|sim")
        if rig_test and not args.rig:
            raise UserError("--rig-test-size needs --rig FILE|sim")
        if rig_test < 0:
            raise UserError(f"--rig-test-size must be >= 0, got {rig_test}")
        if args.rig and not plan.needs_rig and not rig_test:
            raise UserError("--rig is used by --backend rig or --rig-test-size; neither was given")

    def opens_rig(self, args: argparse.Namespace, plan: Any) -> bool:
        return bool(args.rig)

    def progress(self, args: argparse.Namespace, plan: Any, event: str, payload: dict) -> None:
        super().progress(args, plan, event, payload)
        if event == "start":
            say(f"run folder {payload['run_dir']} (from epoch {payload['step']} of {payload['total']})")
        elif event == "row" and payload["series"] == plan.series:
            m = payload["row"]
            extra = f" bench {format_duration(m['bench_time_s'])}" if "bench_time_s" in m else ""
            say(
                f"epoch {m['epoch']:3d}  loss {m['train_loss']:.4f}  train {m['train_accuracy']:.4f}  "
                f"val {m['val_accuracy']:.4f}  binary {m['frac_binary']:.3f}  {m['sec']:.2f} s{extra}"
                + self.left.text(int(m["epoch"]) + 1)
            )

    def finish(self, args: argparse.Namespace, plan: Any, outcome: Any, rig: Any) -> dict:
        result = dict(plan.summary_)
        rig_test = int(args.rig_test_size or 0)
        if rig_test:
            from labml.synapses.rig import evaluate_on_rig

            say(f"inference on the rig: {rig_test} stratified test images")
            cfg = plan.params
            result.update(
                evaluate_on_rig(
                    plan.trainer,
                    rig,
                    test_size=rig_test,
                    field_step_mT=cfg["field_step_mT"],
                    seed=cfg["seed"],
                )
            )
        return result

    def report(self, args: argparse.Namespace, results: dict) -> None:
        say(
            f"test accuracy {results['test_accuracy']:.4f} (mean of {results['test_passes']} passes), "
            f"epochs {results['epochs']}, binary synapses {results['frac_binary']}"
        )
        super().report(args, results)


class BMFront(Front):
    """`labml run train-bm` / `labml train bm`: "epoch 1/5: ..." lines (without --json); the results
    last (JSON, or one "key: value" line each)."""

    def check(self, args: argparse.Namespace, plan: Any) -> None:
        if plan.needs_rig and not args.rig:
            raise UserError("--kernel rig needs --rig FILE|sim")
        if args.rig and not plan.needs_rig:
            raise UserError(f"--rig is only used by --kernel rig (got --kernel {plan.cfg.kernel})")

    def progress(self, args: argparse.Namespace, plan: Any, event: str, payload: dict) -> None:
        super().progress(args, plan, event, payload)
        if event == "row" and payload["series"] == plan.series and not args.json:
            m = payload["row"]
            say(
                f"epoch {m['epoch'] + 1}/{plan.epochs}: {m['sec']:.2f} s, recon {m['recon_error']:.4f}"
                + (f", disc loss {m['disc_loss']:.4f}" if m.get("disc_loss") is not None else "")
                + self.left.text(int(m["epoch"]) + 1)
            )

    def finish(self, args: argparse.Namespace, plan: Any, outcome: Any, rig: Any) -> dict:
        return dict(plan.summary_)


FRONTS: dict[str, type[Front]] = {"train-synapses": SynapseFront, "train-bm": BMFront}


def _dry_run(args: argparse.Namespace, plan: Any) -> int:
    """Validate the plan (labml.runs.engine.dry_run) and its data folder, print the plan's summary
    (JSON or 'plan OK: ...'); exit 0."""
    from labml.runs.engine import dry_run

    params = getattr(plan, "params", None)
    if isinstance(params, dict) and "data" in params:  # a kind that loads MNIST from a folder
        from labml.data import DIGITS, find_mnist_files, resolve_data_dir

        folder = resolve_data_dir(params["data"])
        if folder != DIGITS:
            find_mnist_files(folder)  # UserError naming the folder or the missing file, as a real run would
    summary = dry_run(plan, args.rig if plan.needs_rig else None, args.run_dir)
    print(json.dumps(summary) if args.json else f"plan OK: {summary}")
    return 0


def _unsuccessful(outcome: Any, as_json: bool) -> int:
    """Report a run that did not succeed (stderr; with as_json also a JSON line on stdout) and
    return the exit code: 0 when stopped or paused (resumable), else 3."""
    why = f": {outcome.reason}" if outcome.reason else ""
    say(f"run {outcome.status}{why}")
    if as_json:
        print(
            json.dumps({"status": outcome.status, "reason": outcome.reason, "run_dir": str(outcome.run_dir)})
        )
    return 0 if outcome.status in ("stopped", "paused") else 3


def run_kind(kind: Any, tokens: list[str], prog: str) -> int:
    """`labml run KIND TOKENS`: parse the tokens with the kind's generated parser, build the plan,
    dry-run it or run it on the engine with the kind's front end; returns the exit code."""
    from labml.commands.kind_cli import kind_parser, params_from_args

    front = FRONTS.get(kind.name, Front)()
    args = kind_parser(kind, prog, extra=front.add_arguments).parse_args(tokens)
    plan = kind.make(params_from_args(kind, args))  # validates, naming the options
    front.check(args, plan)
    if args.dry_run:
        return _dry_run(args, plan)
    return _run_plan(args, plan, front)


def _run_plan(args: argparse.Namespace, plan: Any, front: Front) -> int:
    from labml.runs.engine import RunEngine
    from labml.runs.store import load

    eng = RunEngine()  # the progress bar on stderr when it is a terminal (labml.progress)
    eng.subscribe(lambda event, payload: front.progress(args, plan, event, payload))
    record = {k: getattr(args, k, None) for k in ("sample", "device", "operator", "notes")}
    rig = None
    try:
        if front.opens_rig(args, plan):
            from labml.rigs import open_rig

            rig = open_rig(args.rig)
        outcome = eng.run(plan, args.run_dir, rig=rig if plan.needs_rig else None, **record)
        if outcome.status != "success":
            return _unsuccessful(outcome, args.json)
        results = front.finish(args, plan, outcome, rig)
    finally:
        if rig is not None:
            rig.__exit__(None, None, None)
    results = {k: _finite(_plain(v)) for k, v in results.items()}
    run = load(outcome.run_dir)
    run.update(results={**run.meta.get("results", {}), **results})  # as `labml resume` records them
    results["run_dir"] = str(outcome.run_dir)  # printed, not recorded: the folder is the run's own
    front.report(args, results)
    from labml.runs.store import figures_of

    for path in figures_of(outcome.run_dir):
        say(f"figure: {path}")  # stderr: stdout stays the results (JSON with --json)
    return 0
