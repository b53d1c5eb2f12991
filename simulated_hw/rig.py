"""The simulated rig: real drivers and role implementations over SCPI-speaking simulated
instruments on one simulated World, plus the vectorised fast path for ``read_synapses``.

    rig = build_sim_rig(load_rig_config("sim"))      # or labml.rigs.open_rig("sim")
    rig.cycle(5.0)                                   # SCPI path: every command through the drivers
    rig.read_synapses(fields, wires, n=16)           # fast path: world.read_synapses (one physics)

Each ``[instruments.<role>]`` of the config names a role class (instruments.models.<model>); the
simulated instrument that answers its driver is the twin registered for the driver class that the
role builds with its ``model`` option (simulated_hw.twins).
Faults come from ``[sim.faults]`` (see simulated_hw.faults) and can be injected at run time with
``rig.faults[role].inject(kind, count)``; the fast path has its own injector,
``rig.faults["fast_path"]`` (``[sim.faults.fast_path]``, one transaction per burst of the bench
planner). ``[sim.instruments]`` may set ``latency_s`` (simulated bench time per bus transaction,
default 0) and ``timeout_s`` (default: the role's timeout_s).
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import replace
from typing import Any

import numpy as np
from pyvisa.constants import StatusCode
from pyvisa.errors import VisaIOError

from instruments.config import RigConfig
from instruments.errors import ConfigError, InstrumentFault
from instruments.models.registry import resolve_class
from instruments.rig import RIG_READOUT_KEYS, NanowireRig, check_buffer
from instruments.roles import SynapseReads
from instruments.safety import RampStopped
from simulated_hw import simstate
from simulated_hw.adapter import SimAdapter
from simulated_hw.faults import FAST_PATH_KINDS, FaultConfigError, FaultInjector
from simulated_hw.simstate import SimStateFile
from simulated_hw.twins import simulated_role_classes, twin_for_role
from simulated_hw.world import World

log = logging.getLogger(__name__)

#: Key of the fast path's fault injector in ``rig.faults`` and of its table in ``[sim.faults]``.
FAST_PATH = "fast_path"


def world_from_config(config: RigConfig) -> World:
    """The World of a rig config (engineer B's ``World.from_rig_config``: [sim], [coil], [cycle],
    [limits] and the raw [[wires]] tables, whose inline neel_brown is the wire's true depinning)."""
    return World.from_rig_config(config)


class SimNanowireRig(NanowireRig):
    """A NanowireRig whose roles talk SCPI to simulated instruments on `world`; ``read_synapses``
    is the world's vectorised fast path (same physics, bench time and energy reported), every
    other operation goes through the real drivers. The clock is the world clock.

    Extra attributes: ``world``, ``adapters`` (role -> SimAdapter), ``instruments`` (role ->
    simulated instrument), ``faults`` (role -> FaultInjector, plus ``"fast_path"``: the injector of
    the fast path's bench transactions).
    """

    def __init__(
        self,
        config: RigConfig,
        world: World,
        adapters: dict[str, SimAdapter],
        roles: dict[str, Any],
        fast_path_faults: FaultInjector | None = None,
        **kwargs: Any,
    ) -> None:
        self.world = world
        self.adapters = adapters
        self.instruments = {k: a.instrument for k, a in adapters.items()}
        self.faults = {k: a.faults for k, a in adapters.items()}
        if fast_path_faults is None:
            fast_path_faults = FaultInjector(FAST_PATH, kinds=FAST_PATH_KINDS)
        self.faults[FAST_PATH] = fast_path_faults
        closers = [a.close for a in adapters.values()]
        super().__init__(config, clock=world.clock, closers=closers, **roles, **kwargs)

    def read_synapses(
        self, fields_mT: np.ndarray, wires: np.ndarray, n: int, duration_s: float | None = None
    ) -> SynapseReads:
        """Fast path: ``world.read_synapses`` (binomial counts of full bench cycles incl. read-out
        error; bench time and programmed coil energy of the same sequence, as the bench planner
        reports them). Requests are validated like on the bench (equal lengths, integer wires in
        range, |field| within the rig's field limit) and, like the bench planner, nothing is read
        while a stop is in force (RampStopped until ``guard.clear_stop()``)."""
        f, w, n = self._check_requests(fields_mT, wires, n)
        if self.guard.stop_requested():
            raise RampStopped("synapse reads not run: stop requested")
        self._fast_path_transactions(f, w, n, duration_s)
        reads = self.world.read_synapses(f, w.astype(np.int64), n, pulse_duration_s=duration_s)
        self._energy_J += reads.energy_J
        return reads

    def _fast_path_transactions(
        self, f: np.ndarray, w: np.ndarray, n: int, duration_s: float | None
    ) -> None:
        """The fault model of the fast path. The batch is cut into the bench planner's transactions
        (one per (wire, field level) group, in the planner's order: select, arm, trigger, fetch of
        m * n reads) and each draws its faults from ``faults["fast_path"]`` (its own seeded stream:
        the world's physics draws are untouched). When every transaction is clean, nothing else
        happens here (the caller reads the whole batch in one vectorised draw, exactly as without
        faults). At the first faulty transaction k, the cycles a bench would have played are charged
        to the world (groups before k, and group k itself unless the link was lost before it was
        armed: bench time, coil heating, wire states, physics draws; the counts are discarded), and
        InstrumentFault (``.kind`` = the fault kind) is raised: nothing is returned."""
        inj = self.faults[FAST_PATH]
        if f.size == 0:
            return
        q = self.config.cycle.field_quantum_mT
        lv = np.round(f / q).astype(np.int64)
        lo = int(lv.min())
        key = w.astype(np.int64) * (int(lv.max()) - lo + 1) + (lv - lo)  # wire-major, as the planner
        # the sorted distinct keys: a bincount where the key range is small (it is ~10x cheaper
        # than np.unique, which would otherwise cost more than the physics of the batch)
        if int(key.max()) < max(1 << 20, 4 * key.size):
            groups = np.flatnonzero(np.bincount(key))
        else:
            groups = np.unique(key)
        fault = inj.run_transactions(groups.size, FAST_PATH_KINDS)
        if fault is not None:
            k, kind = fault
            gk = groups[k]
            played = key < gk if kind == "disconnect" else key <= gk
            if played.any():
                lost = self.world.read_synapses(
                    f[played], w[played].astype(np.int64), n, pulse_duration_s=duration_s
                )
                self._energy_J += lost.energy_J
            i = int(np.argmax(key == gk))
            m = int(np.count_nonzero(key == gk))
            self._fast_path_fault(kind, f"burst {k + 1}/{groups.size} (wire {int(w[i])}, {lv[i] * q:g} mT, "
                                        f"{m * n} reads)", m * n)

    def _fast_path_fault(self, kind: str, what: str, n_reads: int) -> None:
        """Raise the InstrumentFault a bench shows for `kind` on the read-out's fast-path link."""
        ro = getattr(self.readout, "name", "readout")
        inj = self.faults[FAST_PATH]
        if kind in ("disconnect", "timeout"):
            code = StatusCode.error_connection_lost if kind == "disconnect" else StatusCode.error_timeout
            exc = VisaIOError(code)
            if kind == "timeout":  # the fetch waited the VISA timeout for a reply that never came
                adapter = self.adapters.get("readout")
                self.clock.sleep(adapter.timeout_s if adapter is not None else 2.0)
            raise InstrumentFault(f"{ro}: fetch of {what} failed: {exc.description}", kind=kind) from exc
        if kind in ("truncated", "garbled"):
            # the fetched buffer a bench would get: short, or with NaNs where values were lost
            values = np.zeros(n_reads)
            if kind == "truncated":
                values = values[: int(inj.rng.integers(0, n_reads))]
            else:
                values[inj.rng.choice(n_reads, size=max(1, n_reads // 10), replace=False)] = np.nan
            check_buffer(values, n_reads, f"{ro} ({what})")
            raise AssertionError("check_buffer accepted a garbage buffer")  # pragma: no cover
        if kind == "overload":
            raise InstrumentFault(f"{ro}: lock-in overload reported after {what}", kind=kind)
        raise InstrumentFault(f"{ro}: no MOKE light after {what} (laser off?)", kind=kind)

    def observe(self) -> dict[str, float]:
        """An observer's reading (NanowireRig.observe) on the simulated bench: each simulated
        instrument's own `observe(rng)` with the observer's own random stream, no bus transaction
        (no fault drawn, no latency) and no simulated time, so that a dashboard polling the rig
        changes nothing a run records (tests/test_gui_readings.py). An instrument that has dropped
        off the bus (a disconnect fault in force, a closed connection) gives nothing, as on a bench."""
        rng = self.__dict__.get("_observer_rng")
        if rng is None:
            seed = int(getattr(self.world, "seed", 0))
            rng = self._observer_rng = np.random.Generator(np.random.PCG64([seed, 0x0B5E]))
        out: dict[str, float] = {}
        for role in self.OBSERVED:
            inst, adapter = self.instruments.get(role), self.adapters.get(role)
            if inst is None or not hasattr(inst, "observe"):
                continue
            if adapter.connection.closed or adapter.faults.active("disconnect"):
                continue
            out.update(inst.observe(rng))
        return out

    def probe(self) -> None:
        """Health check (NanowireRig.probe), plus one status query on the fast path's read-out
        link: a transaction of ``faults["fast_path"]`` that fails while it is disconnected (or the
        query times out)."""
        super().probe()
        inj = self.faults[FAST_PATH]
        inj.tick()
        for kind in ("disconnect", "timeout"):
            if inj.take(kind):
                self._fast_path_fault(kind, "a status query", 0)

    def state_dict(self) -> dict[str, Any]:
        """Rig state plus the full world state (RNG, clock, walls, coil) and every simulated
        instrument's noise stream, error queue and fault injector: resumes bit-identically."""
        state = super().state_dict()
        state["world"] = self.world.state_dict()
        state["instruments"] = {k: inst.state_dict() for k, inst in self.instruments.items()}
        state["faults"] = {k: f.state_dict() for k, f in self.faults.items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "world" in state:
            self._ramp_supply_to(state["world"].get("coil") or {})
            self.world.load_state_dict(state["world"])
        for k, s in state.get("instruments", {}).items():
            if k in self.instruments:
                self.instruments[k].load_state_dict(s)
        for k, s in state.get("faults", {}).items():
            if k in self.faults:
                self.faults[k].load_state_dict(s)
        super().load_state_dict(state)


    def _ramp_supply_to(self, coil: dict[str, Any]) -> None:
        """Bring the simulated supply to the saved setpoint and output state through the guard, as
        a bench operator would, before the world's state is restored: the restore then finds the
        supply where it was saved and moves nothing (restoring first would teleport the coil,
        a jump a real supply never makes). The ramp's effect on the world (clock, walls, noise
        draws) is overwritten by the restore, so a resume stays bit-identical."""
        target = float(coil.get("setpoint_A", 0.0))
        on = bool(coil.get("output_on", False))
        self.guard.invalidate("restoring saved simulated state")
        if on:
            self.guard.enable_output()  # switched on at 0 A (or already on: from its read-back)
            self.guard.ramp_to_current(target)
        elif self.field_source.output_enabled:
            self.guard.disable_output()  # confirmed zero, then off


def build_sim_rig(
    config: RigConfig,
    world: World | None = None,
    connect: bool = True,
    stop: Any = None,
    lock: Any = None,
    state_file: str | os.PathLike | None = None,
    **rig_kwargs: Any,
) -> SimNanowireRig:
    """Build the simulated rig of `config` (backend "sim"): the World, one simulated instrument and
    SimAdapter per ``[instruments.<role>]``, the real drivers and role implementations on top.

    :param world: use this World instead of building one from the config.
    :param connect: configure the roles now (as NanowireRig does).
    :param stop: extra stop condition for ramps (threading.Event or callable), see NanowireRig.
    :param lock: a held rig lock released at shutdown.
    :param state_file: keep the coil supply's state (setpoint, output, compliance) in this file
        (simulated_hw.simstate), so that it outlives the process: the world's supply starts from it
        (connect() finds a coil left energised and ramps it down, as on a bench) and every change is
        written to it. Take the rig lock first (labml.rigs.open_rig does). Default: none, the world
        lives in this process only.
    :param rig_kwargs: passed on to NanowireRig.
    Raises ConfigError naming the role and key for a role class with no simulated instrument,
    missing options or a bad ``[sim.faults]`` table.
    """
    if world is None:
        world = world_from_config(config)
    persisted = None
    if state_file is not None:
        persisted = SimStateFile(state_file)
        try:
            simstate.attach(world, persisted)
        except BaseException:
            persisted.close()
            raise
    try:
        rig = _build(config, world, stop, lock, rig_kwargs)
    except BaseException:
        if persisted is not None:
            persisted.close()
        raise
    if persisted is not None:
        rig.state_file = persisted
        rig._closers.append(persisted.close)
    if connect:
        try:
            rig.connect()
        except BaseException:
            rig.shutdown()
            raise
    return rig


def _build(config: RigConfig, world: World, stop: Any, lock: Any, rig_kwargs: dict) -> SimNanowireRig:
    sim = dict(config.sim or {})
    faults_table = sim.get("faults", {}) or {}
    unknown_fault_roles = set(faults_table) - {"seed", FAST_PATH} - set(config.instruments)
    if unknown_fault_roles:
        raise ConfigError(
            f"{config.source}: [sim.faults]: no instrument role(s) {sorted(unknown_fault_roles)}; "
            f"roles: {sorted(config.instruments)} (and {FAST_PATH!r}: the fast path)"
        )
    try:
        fast_path_faults = FaultInjector.from_config(FAST_PATH, faults_table, kinds=FAST_PATH_KINDS)
    except FaultConfigError as exc:
        raise ConfigError(f"{config.source}: [sim.{exc}]") from exc
    inst_opts = dict(sim.get("instruments", {}) or {})
    unknown = set(inst_opts) - {"latency_s", "timeout_s"}
    if unknown:
        raise ConfigError(
            f"{config.source}: [sim.instruments]: unknown key(s) {sorted(unknown)}; "
            "allowed: latency_s, timeout_s"
        )
    seed = int(sim.get("seed", 0))
    adapters: dict[str, SimAdapter] = {}
    roles: dict[str, Any] = {}
    for role, ic in config.instruments.items():
        where = f"{config.source}: [instruments.{role}]"
        role_cls = resolve_class(ic.cls)
        options = {k: v for k, v in ic.options.items() if not (role == "readout" and k in RIG_READOUT_KEYS)}
        twin = twin_for_role(role_cls, options)
        if twin is None:
            raise ConfigError(
                f"{where} key 'class': {ic.cls!r} has no simulated instrument; "
                f"simulated classes: {simulated_role_classes()}"
            )
        try:
            instrument = twin.from_options(world, options, int(zlib.crc32(f"{seed}:{role}".encode())))
            faults = FaultInjector.from_config(role, faults_table)
        except FaultConfigError as exc:
            raise ConfigError(f"{config.source}: [sim.{exc}]") from exc
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        adapter = SimAdapter(
            instrument,
            faults=faults,
            timeout_s=float(inst_opts.get("timeout_s", ic.timeout_s if ic.timeout_s is not None else 2.0)),
            latency_s=float(inst_opts.get("latency_s", 0.0)),
            clock=world.clock,
        )
        if role == "field_source":  # as labml.rigs does for a bench: the strict driver's own limits
            allowed = getattr(role_cls, "OPTIONS", ())
            if "i_max_A" in allowed and "i_max_A" not in options:
                options["i_max_A"] = config.limits.i_max_A
            if "compliance_V" in allowed and "compliance_V" not in options:
                options["compliance_V"] = config.coil.compliance_V
        try:
            roles[role] = role_cls.from_config(adapter, options, clock=world.clock)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        adapters[role] = adapter
    for needed in ("field_source", "pulse_source", "readout"):
        if needed not in roles:
            raise ConfigError(f"{config.source}: [instruments.{needed}] missing (the simulated rig needs it)")
    rig = SimNanowireRig(
        config, world, adapters, roles, fast_path_faults=fast_path_faults, connect=False, stop=stop,
        lock=lock, **rig_kwargs,
    )
    if not rig._accepts_inject_delay:
        # the rig arms reset and drive as two waveforms with a software injection between them:
        # the fast path prices that sequence (bench time), not the one-waveform cycle
        inject_s = float(getattr(rig.injector, "width_s", 0.0) or 0.0) if rig.injector is not None else 0.0
        world.cycle = replace(world.cycle, two_waveforms=True, inject_s=inject_s)
    return rig
