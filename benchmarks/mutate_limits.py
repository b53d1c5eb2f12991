"""Mutation check of the coil limits: does the test suite notice a limit moved by 1 %?

Each mutant loosens or tightens ONE limit comparison of the safety layer by 1 % (or applies one of
issue 13's examples: the heating budget loosened by 50 %, the ramp wait halved). For each mutant
the tree is copied to a temporary folder, the one edit is applied there (the working tree is never
touched), and ``tests/test_safety_limits.py`` plus ``tests/test_safety.py`` are run against the
copy. A mutant "survives" when every test still passes: the limit is then not pinned at its
boundary. Goal: no survivor.

    python benchmarks/mutate_limits.py            # all mutants, a table; exit 1 if any survives
    python benchmarks/mutate_limits.py --json     # the same as JSON
    python benchmarks/mutate_limits.py -k ramp    # only mutants whose name contains "ramp"

Hand-written rather than a mutation-testing tool (mutmut, cosmic-ray): those mutate operators and
constants blindly (thousands of mutants, most irrelevant to safety); here each mutant is a named
1 % move of one limit, which is what the issue asks to be caught.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["tests/test_safety_limits.py", "tests/test_safety.py"]
SAFETY = "instruments/safety.py"
RIG = "instruments/rig.py"

#: (name, file, exact text, replacement): each text must occur exactly once in its file.
MUTANTS: list[tuple[str, str, str, str]] = []


def _pair(name: str, path: str, old: str, loose: str, tight: str) -> None:
    MUTANTS.append((f"{name} +1%", path, old, loose))
    MUTANTS.append((f"{name} -1%", path, old, tight))


_pair(
    "i_max_A (DC)",
    SAFETY,
    "abs(current_A) > lim.i_max_A * (1 + _RTOL)",
    "abs(current_A) > lim.i_max_A * 1.01",
    "abs(current_A) > lim.i_max_A * 0.99",
)
_pair(
    "dc_power_max_W",
    SAFETY,
    "power > lim.dc_power_max_W * (1 + _RTOL)",
    "power > lim.dc_power_max_W * 1.01",
    "power > lim.dc_power_max_W * 0.99",
)
_pair(
    "field_max_mT (DC current)",
    SAFETY,
    "if field > lim.field_max_mT * (1 + _RTOL):",
    "if field > lim.field_max_mT * 1.01:",
    "if field > lim.field_max_mT * 0.99:",
)
_pair(
    "field_max_mT (DC field)",
    SAFETY,
    "abs(field_mT) > self.limits.field_max_mT * (1 + _RTOL)",
    "abs(field_mT) > self.limits.field_max_mT * 1.01",
    "abs(field_mT) > self.limits.field_max_mT * 0.99",
)
_pair(
    "ramp_step_A (write check)",
    SAFETY,
    "dI > self.limits.ramp_step_A * (1 + 1e-6)",
    "dI > self.limits.ramp_step_A * 1.01",
    "dI > self.limits.ramp_step_A * 0.99",
)
_pair(
    "ramp_step_A (staircase)",
    SAFETY,
    "abs(target_A - start) / self.limits.ramp_step_A - 1e-9",
    "abs(target_A - start) / (self.limits.ramp_step_A * 1.01) - 1e-9",
    "abs(target_A - start) / (self.limits.ramp_step_A * 0.99) - 1e-9",
)
_pair(
    "ramp_rate_A_per_s (wait)",
    SAFETY,
    "dI / self.limits.ramp_rate_A_per_s",
    "dI / (self.limits.ramp_rate_A_per_s * 1.01)",
    "dI / (self.limits.ramp_rate_A_per_s * 0.99)",
)
MUTANTS.append(
    (
        "ramp wait halved",
        SAFETY,
        "dI / self.limits.ramp_rate_A_per_s",
        "0.5 * dI / self.limits.ramp_rate_A_per_s",
    )
)
MUTANTS.append(
    (
        "ramp wait doubled",
        SAFETY,
        "dI / self.limits.ramp_rate_A_per_s",
        "2.0 * dI / self.limits.ramp_rate_A_per_s",
    )
)
_pair(
    "i_max_A (waveform peak)",
    SAFETY,
    "peak > lim.i_max_A * (1 + _RTOL)",
    "peak > lim.i_max_A * 1.01",
    "peak > lim.i_max_A * 0.99",
)
_pair(
    "field_max_mT (waveform peak)",
    SAFETY,
    "peak_field > lim.field_max_mT * (1 + _RTOL)",
    "peak_field > lim.field_max_mT * 1.01",
    "peak_field > lim.field_max_mT * 0.99",
)
_pair(
    "pulse_slew_max_A_per_s",
    SAFETY,
    "lim.pulse_slew_max_A_per_s * (1 + 1e-6)",
    "lim.pulse_slew_max_A_per_s * 1.01",
    "lim.pulse_slew_max_A_per_s * 0.99",
)
_pair(
    "duty_max",
    SAFETY,
    "duty > lim.duty_max * (1 + _RTOL)",
    "duty > lim.duty_max * 1.01",
    "duty > lim.duty_max * 0.99",
)
_pair(
    "duty threshold (1 % of i_max_A)",
    SAFETY,
    "DUTY_THRESHOLD_FRACTION = 0.01",
    "DUTY_THRESHOLD_FRACTION = 0.0101",
    "DUTY_THRESHOLD_FRACTION = 0.0099",
)
_pair(
    "mean_power_max_W (heating budget)",
    SAFETY,
    "mean_power > lim.mean_power_max_W * (1 + _RTOL)",
    "mean_power > lim.mean_power_max_W * 1.01",
    "mean_power > lim.mean_power_max_W * 0.99",
)
MUTANTS.append(
    (
        "heating budget loosened 50 %",
        SAFETY,
        "mean_power > lim.mean_power_max_W * (1 + _RTOL)",
        "mean_power > lim.mean_power_max_W * 1.5",
    )
)
MUTANTS.append(("_RTOL 1e-9 -> 1 %", SAFETY, "_RTOL = 1e-9", "_RTOL = 0.01"))
_pair(
    "rig field limit (read requests)",
    RIG,
    "np.abs(f) > lim)",
    "np.abs(f) > lim * 1.01)",
    "np.abs(f) > lim * 0.99)",
)
_pair(
    "rig field limit (config)",
    "instruments/config/schema.py",
    "return min(self.limits.field_max_mT, self.limits.i_max_A * self.coil.mT_per_A)",
    "return 1.01 * min(self.limits.field_max_mT, self.limits.i_max_A * self.coil.mT_per_A)",
    "return 0.99 * min(self.limits.field_max_mT, self.limits.i_max_A * self.coil.mT_per_A)",
)
_pair("REST_MARGIN (rest padding)", RIG, "REST_MARGIN = 1.01", "REST_MARGIN = 1.0", "REST_MARGIN = 1.0201")
_pair(
    "per-wire field_range_mT",
    RIG,
    "(fw >= lo) & (fw <= hi)",
    "(fw >= lo * 0.99) & (fw <= hi * 1.01)",
    "(fw >= lo * 1.01) & (fw <= hi * 0.99)",
)
_pair(
    "supply role limit",
    "instruments/models/kepco_bop.py",
    "lo, hi = -self.supply.i_max_A, self.supply.i_max_A",
    "lo, hi = -self.supply.i_max_A * 1.01, self.supply.i_max_A * 1.01",
    "lo, hi = -self.supply.i_max_A * 0.99, self.supply.i_max_A * 0.99",
)
_pair(
    "supply driver strict_range",
    "instruments/models/kepco_bop.py",
    "self.current_setpoint_values = [-i_max_A, i_max_A]",
    "self.current_setpoint_values = [-i_max_A * 1.01, i_max_A * 1.01]",
    "self.current_setpoint_values = [-i_max_A * 0.99, i_max_A * 0.99]",
)
_pair(
    "supply limit from the rig config (sim factory)",
    "simulated_hw/rig.py",
    'options["i_max_A"] = config.limits.i_max_A',
    'options["i_max_A"] = config.limits.i_max_A * 1.01',
    'options["i_max_A"] = config.limits.i_max_A * 0.99',
)
_pair(
    "generator max_V",
    "instruments/models/agilent33500.py",
    "if peak > self.max_V:",
    "if peak > self.max_V * 1.01:",
    "if peak > self.max_V * 0.99:",
)


def copy_tree(dest: Path) -> None:
    """The packages and tests (no .git, no virtual environment, no caches)."""
    for name in ("instruments", "simulated_hw", "labml", "protocols", "tests"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "conftest.py"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)


def run_tests(tree: Path) -> tuple[bool, float, str]:
    env = dict(os.environ, PYTHONPATH=str(tree), QT_QPA_PLATFORM="offscreen", MPLBACKEND="Agg")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TESTS],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    failed = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAILED")]
    return proc.returncode == 0, time.perf_counter() - t0, (failed[0] if failed else proc.stdout[-200:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("-k", default="", help="only mutants whose name contains this text")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if args.k.lower() in m[0].lower()]
    results = []
    with tempfile.TemporaryDirectory(prefix="mutate_limits_") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        ok, seconds, detail = run_tests(tree)
        if not ok:
            print(f"the unmutated tree fails its tests: {detail}", file=sys.stderr)
            return 2
        for name, path, old, new in chosen:
            target = tree / path
            original = target.read_text()
            if original.count(old) != 1:
                print(
                    f"mutant {name!r}: {old!r} occurs {original.count(old)} times in {path}", file=sys.stderr
                )
                return 2
            target.write_text(original.replace(old, new))
            try:
                survived, seconds, detail = run_tests(tree)
            finally:
                target.write_text(original)
            results.append(
                {
                    "mutant": name,
                    "file": path,
                    "survived": survived,
                    "killed_by": "" if survived else detail.removeprefix("FAILED ").split(" - ")[0],
                    "seconds": round(seconds, 1),
                }
            )
            if not args.json:
                verdict = "SURVIVED" if survived else "killed"
                print(f"{name:48s} {verdict:9s} {results[-1]['killed_by']}", flush=True)
    survivors = [r["mutant"] for r in results if r["survived"]]
    if args.json:
        print(json.dumps({"mutants": len(results), "survivors": survivors, "results": results}, indent=1))
    else:
        print(
            f"\n{len(results)} mutants, {len(survivors)} survived" + (f": {survivors}" if survivors else "")
        )
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main())
