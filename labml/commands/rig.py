"""`labml rig check|scan|zero`: look at a rig, list VISA resources, bring a rig to a safe state.

    labml rig check [--rig FILE|sim]      identities, coil current/field, output state, limits, wires
    labml rig scan [--visa-library @py]   list VISA resources (nothing is opened or written)
    labml rig zero [--rig FILE|sim] [--force]
                                          coil to 0 A at the allowed rate, outputs off, read back
                                          (from outside; a simulated rig: its persisted coil state)

Exit status: 0 ok; 1 an instrument did not answer (the message names it) or zero was not confirmed
by the read-back; 2 bad input (config, lock held by a live process).
"""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "rig",
        allow_abbrev=False,
        help="check, scan or zero a rig",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="rig_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    c = sub.add_parser(
        "check", allow_abbrev=False, help="identities and state of every instrument of a rig"
    )
    c.add_argument("--rig", default="sim", help="rig config TOML, a built-in rig name, or 'sim' (default)")
    c.add_argument(
        "--lock-dir",
        default=None,
        help="folder of rig lock files (default $LABML_LOCK_DIR or ~/.cache/labml/locks)",
    )
    c.set_defaults(func=cmd_check)

    s = sub.add_parser(
        "scan", allow_abbrev=False, help="list VISA resources without opening or writing to them"
    )
    s.add_argument(
        "--visa-library",
        default=None,
        help="VISA library ('@py' for pyvisa-py, a path for NI/Keysight VISA; default: "
        "the --rig file's visa_library, else pyvisa's default)",
    )
    s.add_argument("--rig", default=None, help="take visa_library from this rig config")
    s.add_argument("--query", default="?*::INSTR", help="VISA resource query (default '?*::INSTR')")
    s.set_defaults(func=cmd_scan)

    z = sub.add_parser(
        "zero", allow_abbrev=False, help="ramp the coil to 0 A and switch outputs off, from outside"
    )
    z.add_argument("--rig", default="sim", help="rig config TOML, a built-in rig name, or 'sim' (default)")
    z.add_argument(
        "--force", action="store_true", help="zero the coil even while a live process holds the rig lock"
    )
    z.add_argument("--lock-dir", default=None, help="folder of rig lock files")
    z.set_defaults(func=cmd_zero)


def _print_config(cfg, out) -> None:
    lim, coil = cfg.limits, cfg.coil
    print(
        f"limits: i_max {lim.i_max_A:g} A, field_max {lim.field_max_mT:g} mT, "
        f"ramp {lim.ramp_rate_A_per_s:g} A/s "
        f"(steps <= {lim.ramp_step_A:g} A), pulse slew {lim.pulse_slew_max_A_per_s:g} A/s, duty <= "
        f"{lim.duty_max:g}, mean power <= {lim.mean_power_max_W:g} W",
        file=out,
    )
    print(
        f"coil: {coil.mT_per_A:g} mT/A, L {coil.inductance_H:g} H, R {coil.resistance_ohm:g} ohm, "
        f"compliance {coil.compliance_V:g} V",
        file=out,
    )
    for w in cfg.wires:
        c = w.calibration
        lo, hi = w.field_range_mT
        src = f" ({w.calibration_file})" if w.calibration_file else ""
        print(
            f"wire {w.id}: H0 {c.H0:.4g} mT, k {c.k:.4g} /mT, a {c.a:.4g}; "
            f"drive range [{lo:.3g}, {hi:.3g}] mT{src}",
            file=out,
        )


def cmd_check(args: argparse.Namespace) -> int:
    from instruments.errors import InstrumentFault
    from labml.rigs import open_rig, rig_config

    out = sys.stdout
    cfg = rig_config(args.rig)
    print(f"rig {cfg.name} (backend {cfg.backend}, {cfg.source})", file=out)
    try:
        rig = open_rig(cfg, lock_dir=args.lock_dir)
    except InstrumentFault as exc:
        print(f"labml: error: rig check failed while connecting: {exc}", file=sys.stderr)
        return 1
    with rig:
        try:
            ids = rig.identities()
            st = rig.status()
        except InstrumentFault as exc:
            print(f"labml: error: rig check failed: {exc}", file=sys.stderr)
            return 1
        print("instruments:", file=out)
        for role, ident in ids.items():
            addr = cfg.instruments[role].address if role in cfg.instruments else None
            print(f"  {role:17s} {ident}" + (f"  [{addr}]" if addr else ""), file=out)
        hall = f", Hall probe {st['hall_field_mT']:.4g} mT" if "hall_field_mT" in st else ""
        print(
            f"coil: current {st['current_A']:.4g} A "
            f"({st['field_from_current_mT']:.4g} mT from the calibration"
            f"{hall}), setpoint {st['setpoint_A']:.4g} A, output {'on' if st['output_enabled'] else 'off'}",
            file=out,
        )
        _print_config(cfg, out)
    print("rig check: ok", file=out)
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    import pyvisa

    lib = args.visa_library
    if lib is None and args.rig:
        from labml.rigs import rig_config

        cfg = rig_config(args.rig)
        libs = {ic.visa_library for ic in cfg.instruments.values() if ic.visa_library}
        lib = sorted(libs)[0] if libs else None
    try:
        rm = pyvisa.ResourceManager(lib or "")
    except (OSError, ValueError) as exc:
        print(f"labml: error: cannot load VISA library {lib or '(default)'!r}: {exc}", file=sys.stderr)
        return 1
    try:
        resources = rm.list_resources(args.query)
    except pyvisa.errors.VisaIOError:
        resources = ()  # pyvisa raises VI_ERROR_RSRC_NFOUND when there is nothing
    print(f"VISA library: {rm.visalib}")
    if not resources:
        print("no VISA resources found")
    for r in resources:
        print(r)
    rm.close()
    return 0


def cmd_zero(args: argparse.Namespace) -> int:
    from instruments.errors import InstrumentFault
    from labml.rigs import zero_rig

    try:
        s = zero_rig(args.rig, force=args.force, lock_dir=args.lock_dir)
    except InstrumentFault as exc:
        print(f"labml: error: rig zero failed: {exc}", file=sys.stderr)
        return 1
    h = s.get("lock_holder")
    if h:
        print(f"lock holder: PID {h['pid']} on {h['host']} ({'alive' if h['alive'] else 'dead'})")
    after, output_on = s.get("current_after_A", float("nan")), s.get("output_after", False)
    print(
        f"rig {s['rig']}: coil current {s.get('current_before_A', float('nan')):.4g} A -> {after:.4g} A "
        f"(read back; {s.get('ramp_steps', 0)} ramp steps of at most {s.get('max_step_A', 0.0):.4g} A, "
        f"<= {s.get('max_rate_A_per_s', 0.0):.4g} A/s), "
        + ("supply output ON" if output_on else "outputs off")
    )
    for e in s.get("errors", []):
        print(f"warning: {e}", file=sys.stderr)
    from instruments.rig import ENERGISED_TOL_A

    if not abs(after) <= ENERGISED_TOL_A or output_on:
        print(
            f"labml: error: rig {s['rig']} is NOT confirmed at rest: read back {after:.4g} A, "
            f"output {'on' if output_on else 'off'}",
            file=sys.stderr,
        )
        return 1
    return 0
