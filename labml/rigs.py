"""The rig factory: the one module that knows both backends (DESIGN.md "One rig, two backends").

    open_rig()                  # or open_rig("sim"): the built-in simulated rig (sim_default.toml)
    open_rig("sim_default")     # a built-in rig by name (instruments/rigs/<name>.toml)
    open_rig("bench.toml")      # a rig config file (backend "visa" or "sim")
    open_rig(config)            # an instruments.config.RigConfig
    open_rig("sim", sim={"seed": 3}, limits={"i_max_A": 18})   # table overrides, merged before validation

Backend "visa": takes the rig lock, opens one pymeasure VISAAdapter per ``[instruments.<role>]``
(address, timeout, terminations, visa_library), builds each role with
``<class>.from_config(adapter, options, clock)`` (instruments.drivers.roles) and composes an
instruments.rig.NanowireRig (which configures the roles and ramps down a rig left energised).
Backend "sim": takes the rig lock too, then ``simulated_hw.rig.build_sim_rig(config,
state_file=<lock dir>/<rig name>.simstate)``: a simulated bench whose coil supply state outlives the
process (see open_rig). Imports of pyvisa/pymeasure/simulated_hw
are lazy (inside the functions).

Use the rig as a context manager: ``with open_rig("sim") as rig: ...`` shuts it down on exit,
exception or Ctrl+C.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from instruments.config import RigConfig, builtin_rig_names, builtin_rig_path, load_rig_config
from instruments.errors import ConfigError, InstrumentFault, RigLockedError

log = logging.getLogger(__name__)

RigSpec = str | os.PathLike | RigConfig | None


def rig_config(spec: RigSpec = None, overrides: dict | None = None) -> RigConfig:
    """Resolve a rig spec to a validated RigConfig (nothing connects).

    None or "sim" -> the built-in simulated rig; a built-in name (see
    instruments.config.builtin_rig_names()) when no such file exists; a path -> that TOML file;
    a RigConfig -> itself (re-validated with the overrides, if any).
    """
    if isinstance(spec, RigConfig):
        if not overrides:
            return spec
        raw = dict(spec.raw)
        raw["__source__"] = spec.source
        return load_rig_config(raw, overrides)
    if spec is None or spec == "sim":
        return load_rig_config(builtin_rig_path("sim_default"), overrides)
    p = Path(spec)
    if not p.exists() and isinstance(spec, str) and spec in builtin_rig_names():
        p = builtin_rig_path(spec)
    if not p.exists():
        raise ConfigError(
            f"{spec}: rig config file not found (built-in rigs: {', '.join(builtin_rig_names())}; "
            'or "sim" for the built-in simulated rig)'
        )
    return load_rig_config(p, overrides)


def import_class(config: RigConfig, role: str) -> type:
    """The implementation class named by ``[instruments.<role>] class``; ConfigError if missing."""
    dotted = config.instruments[role].cls
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"{config.source}: [instruments.{role}] key 'class': cannot import {dotted!r}: {exc}"
        ) from None


def role_options(config: RigConfig, role: str) -> dict[str, Any]:
    """The role-specific keys handed to the role class (the rig's own read-out keys removed;
    wire -> selector channel mapping added from [[wires]] channel keys)."""
    from instruments.rig import RIG_READOUT_KEYS

    opts = dict(config.instruments[role].options)
    if role == "readout":
        for k in RIG_READOUT_KEYS:
            opts.pop(k, None)
    if (
        role == "channel_selector"
        and "wire_channels" not in opts
        and any(w.channel is not None for w in config.wires)
    ):
        opts["wire_channels"] = [w.channel if w.channel is not None else w.id + 1 for w in config.wires]
    return opts


def build_role(config: RigConfig, role: str, clock: Any, adapters: list) -> Any:
    """Open the VISA connection of one role and build its implementation object."""
    from pymeasure.adapters import VISAAdapter

    ic = config.instruments[role]
    cls = import_class(config, role)
    try:
        adapter = VISAAdapter(ic.address, **ic.visa_kwargs())
    except Exception as exc:
        raise InstrumentFault(f"{role}: cannot open {ic.address!r} ({ic.cls}): {exc}") from exc
    adapters.append(adapter)
    opts = role_options(config, role)
    if role == "field_source":
        accepted = getattr(cls, "OPTIONS", ())
        if "i_max_A" in accepted and "i_max_A" not in opts:
            opts["i_max_A"] = config.limits.i_max_A  # the strict driver's own limit: a second line of defence
        if "compliance_V" in accepted and "compliance_V" not in opts:
            opts["compliance_V"] = config.coil.compliance_V  # the coil's compliance, not the model rating
    try:
        if hasattr(cls, "from_config"):
            return cls.from_config(adapter, opts, clock)
        return cls(adapter, **opts)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{config.source}: [instruments.{role}] ({ic.cls}): {exc}") from exc


def _close_all(adapters: list) -> None:
    for a in adapters:
        try:
            a.close()
        except Exception as exc:  # pragma: no cover - best effort
            log.warning("closing %r failed: %s", a, exc)


def open_rig(
    spec: RigSpec = None,
    *,
    lock: bool | None = None,
    lock_dir: str | os.PathLike | None = None,
    stop: threading.Event | Callable[[], bool] | None = None,
    **overrides: Any,
) -> Any:
    """Open a rig (see the module docstring). Returns an instruments.rig.NanowireRig (the simulated
    backend returns its subclass). `overrides` are config tables merged before validation.

    lock: take the rig lock (default True, for both backends). A simulated rig opened with its lock
    is a simulated bench that outlives this process: its coil supply's state (setpoint, output,
    compliance) is kept in ``<lock dir>/<rig name>.simstate`` beside the lock and updated at every
    command, so a run killed with the coil energised leaves it energised, and the next open (or
    ``labml rig zero``) ramps it down through the guard, as on a bench. ``lock=False`` on a
    simulated rig: a world that lives in this process only, at rest when opened.
    Raises ConfigError, RigLockedError or InstrumentFault (naming the role) before any coil current
    changes.
    """
    config = rig_config(spec, overrides or None)
    if config.backend == "sim":
        return _open_sim_rig(config, lock=True if lock is None else lock, lock_dir=lock_dir, stop=stop)
    return _open_visa_rig(config, lock=True if lock is None else lock, lock_dir=lock_dir, stop=stop)


def sim_state_path(rig_name: str, lock_dir: str | os.PathLike | None = None) -> Path:
    """Where a simulated bench keeps its coil supply's state: beside its lock file."""
    from instruments.lock import lock_path

    return lock_path(rig_name, lock_dir).with_suffix(".simstate")


def _open_sim_rig(config: RigConfig, *, lock: bool, lock_dir, stop, connect: bool = True) -> Any:
    try:
        from simulated_hw.rig import build_sim_rig
    except ImportError as exc:
        raise ConfigError(f"{config.source}: the simulated backend is not available: {exc}") from exc
    from instruments.lock import RigLock

    rig_lock = RigLock(config.name, lock_dir).acquire() if lock else None
    try:
        return build_sim_rig(
            config,
            stop=stop,
            lock=rig_lock,
            connect=connect,
            state_file=sim_state_path(config.name, lock_dir) if lock else None,
        )
    except BaseException:
        if rig_lock is not None:
            rig_lock.release()
        raise


def _open_visa_rig(config: RigConfig, *, lock: bool, lock_dir, stop) -> Any:
    from instruments.lock import RigLock
    from instruments.rig import NanowireRig, WallClock

    rig_lock = RigLock(config.name, lock_dir).acquire() if lock else None
    adapters: list = []
    clock = WallClock()
    try:
        roles = {role: build_role(config, role, clock, adapters) for role in config.instruments}
        return NanowireRig(
            config,
            clock=clock,
            stop=stop,
            lock=rig_lock,
            closers=[a.close for a in adapters],
            **roles,
        )
    except BaseException:
        _close_all(adapters)
        if rig_lock is not None:
            rig_lock.release()
        raise


def zero_rig(
    spec: RigSpec = None, *, force: bool = False, lock_dir: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Bring a rig to a safe state from outside: coil ramped to 0 A at the allowed rate through the
    CoilGuard, pulse and supply outputs off, the current and output read back, connections closed.

    Only the field source and pulse source are driven (a dead read-out cannot prevent it). A rig
    locked by a live process is refused (RigLockedError naming the holder) unless `force` (bench
    only); a dead holder's lock is taken over. The same holds for a simulated rig, whose coil lives
    in its state file beside the lock (see open_rig): it is zeroed there, so a run killed with the
    simulated coil energised is brought to rest as a bench would be. `force` cannot zero a simulated
    coil underneath a live holder (its world is in that process), so it is refused there too.
    Returns a summary dict: current before/after (A), output after, holder, ramp steps and the
    largest step (A), errors.
    """
    from instruments.lock import RigLock, holder_alive, lock_holder

    config = rig_config(spec)
    holder = lock_holder(config.name, lock_dir)
    summary: dict[str, Any] = {"rig": config.name, "backend": config.backend, "lock_holder": None}
    if holder is not None:
        summary["lock_holder"] = {"pid": holder.pid, "host": holder.host, "alive": holder_alive(holder)}
    sim = config.backend == "sim"
    rig_lock = None
    if holder is not None and holder_alive(holder):
        who = f"live {holder.describe()}"
        if sim:
            raise RigLockedError(
                f"rig {config.name!r} is locked by {who}; its simulated coil lives in that process: stop it "
                "(its shutdown zeroes the coil); --force cannot zero a simulated coil underneath it"
            )
        if not force:
            raise RigLockedError(
                f"rig {config.name!r} is locked by {who}; stop that process first, or use --force to zero "
                "the coil underneath it"
            )
        log.warning("--force: zeroing rig %r while PID %d holds its lock", config.name, holder.pid)
    else:
        rig_lock = RigLock(config.name, lock_dir).acquire()
    from instruments.safety import CoilGuard

    adapters: list = []
    errors: list[str] = []
    sim_rig = None
    try:
        if sim:
            from simulated_hw.rig import build_sim_rig

            # the simulated bench as the dead run left it (state file), nothing configured yet
            sim_rig = build_sim_rig(config, connect=False, state_file=sim_state_path(config.name, lock_dir))
            source, pulse, guard = sim_rig.field_source, sim_rig.pulse_source, sim_rig.guard
        else:
            from instruments.rig import WallClock

            clock = WallClock()
            source = build_role(config, "field_source", clock, adapters)
            pulse = (
                build_role(config, "pulse_source", clock, adapters)
                if "pulse_source" in config.instruments
                else None
            )
            guard = CoilGuard(source, config.coil, config.limits, clock, pulse_source=pulse)
        if pulse is not None:
            try:
                (getattr(pulse, "outputs_off", None) or pulse.disarm)()
            except Exception as exc:
                errors.append(f"pulse source outputs off: {exc}")
        summary["current_before_A"] = float(source.current_A)
        n_log = len(guard.log)
        start_A = guard.sync()  # the supply's own setpoint: the staircase starts there
        try:
            guard.disable_output()  # the one path to zero: stepped, retried, read back; then output off
        except Exception as exc:  # CoilNotZeroError among them: reported, exit 1
            errors.append(f"ramp to 0: {exc}")
        summary["current_after_A"] = float(source.current_A)
        summary["output_after"] = bool(source.output_enabled)
        sets = [(r.t_s, r.detail["current_A"]) for r in guard.log[n_log:] if r.action == "set"]
        summary["ramp_steps"] = len(sets)
        steps = [abs(b[1] - a[1]) for a, b in zip([(None, start_A), *sets], sets, strict=False)]
        summary["max_step_A"] = max(steps, default=0.0)
        rates = [abs(b[1] - a[1]) / max(b[0] - a[0], 1e-300) for a, b in zip(sets, sets[1:], strict=False)]
        summary["max_rate_A_per_s"] = max(rates, default=0.0)  # between successive steps (rig clock)
    finally:
        if sim_rig is not None:
            errors.extend(f"{name}: {exc}" for name, exc in sim_rig.shutdown())
        _close_all(adapters)
        if rig_lock is not None:
            rig_lock.release()
    summary["errors"] = errors
    return summary
