"""NanowireRig: a nanowire synapse rig built from role objects, the CoilGuard, a clock and the
per-wire calibrations (the `SynapseRig` role of instruments.roles).

The same class drives a real bench (roles on pymeasure drivers over VISA) and, subclassed by
simulated_hw.rig, the simulated lab. It never talks to an instrument class directly: only to the
roles, and every coil current change or waveform goes through ``rig.guard`` (CoilGuard).

One read cycle (SCIENCE.md section 1; timing from the ``[cycle]`` table)::

    reset pulse at reset_field_mT (reset_s plateau) -> gap_s at 0 -> inject -> drive pulse of
    amplitude H (pulse_duration_s plateau, edges at 95 % of the slew limit) -> settle_s at 0 -> read

Pulses are hardware-timed waveforms (generator -> coil amplifier), validated by the guard before
they are armed. A waveform whose duty cycle or mean power would exceed the limits when played back
to back is padded with rest time at 0 A (the coil needs it; the bench time counts it).

``read_synapses`` on a bench is a planner: requests are grouped by (wire, field quantised to
field_quantum_mT); per wire the selector switches once; per level the cycle is armed once and
m * n cycles are run (m requests at that level; reads at one field on one wire are exchangeable),
each bit read after its cycle, or all at once when the read-out offers buffered acquisition
(``arm_buffer(n)`` / ``fetch_buffer()``). When the pulse source can fire the injection line from
the same trigger (``arm(..., inject_delay_s=...)``) one waveform holds the whole cycle; otherwise
each cycle arms the reset and the drive waveforms in turn with a software-timed injection between.

Shutdown order: pulse output off, field ramped to 0 at the allowed rate (emergency zero if that
fails), outputs off, connections closed, lock released -- each step in its own try; it runs on
``with`` exit (normal end, exception, KeyboardInterrupt) and a second Ctrl+C cannot interrupt it.

Units: mT, A, s, J.
"""

from __future__ import annotations

import inspect
import logging
import math
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from instruments.calibration import Logistic, NeelBrown
from instruments.config import RigConfig
from instruments.errors import InstrumentFault, SafetyError
from instruments.roles import Clock, SynapseReads, WallClock
from instruments.safety import CoilGuard, RampStopped, WaveformReport, program_energy_J

log = logging.getLogger(__name__)

#: Keys of ``[instruments.readout]`` that the rig itself uses (not passed to the role class).
RIG_READOUT_KEYS = ("threshold_V", "threshold_ohm", "pass_is_high")
#: Drive edges are programmed at this fraction of pulse_slew_max_A_per_s.
EDGE_SLEW_FRACTION = 0.95
#: |I| (A) above which a supply found at connect counts as left energised.
ENERGISED_TOL_A = 1e-3
#: Rest padding makes duty and mean power this factor below their limits (round-off margin).
REST_MARGIN = 1.01


def trapezoid_samples(
    current_A: float, plateau_s: float, slew_A_per_s: float, sample_rate_Hz: float
) -> np.ndarray:
    """Samples (A, at sample_rate_Hz) of the rig's trapezoid pulse program: one 0 A sample, a
    linear edge to `current_A` in ceil(|I| / slew * fs) samples, the plateau (`plateau_s` from the
    end of the rising edge to the start of the falling edge), the mirrored edge, one 0 A sample.

    The one pulse shape of the bench: NanowireRig arms it, and the simulated fast path
    (simulated_hw.world) prices the same samples (energy with safety.program_energy_J).
    """
    fs = float(sample_rate_Hz)
    current = float(current_A)
    n_edge = max(1, int(math.ceil(abs(current) / float(slew_A_per_s) * fs)))
    edge = current * np.arange(1, n_edge + 1) / n_edge
    n_plateau = max(0, int(round(plateau_s * fs)) - 1)
    return np.concatenate([[0.0], edge, np.full(n_plateau, current), edge[::-1][1:], [0.0]])


def check_buffer(values: Any, n_expected: int, who: str = "readout") -> np.ndarray:
    """The values of one buffered fetch as a float array, or InstrumentFault when the buffer is
    garbage: a wrong length (kind "truncated") or a value that is not a finite number (NaN, inf:
    kind "garbled"). A bit is never derived from such a buffer (NaN > threshold would read 0)."""
    arr = np.asarray(values, dtype=float).ravel()
    if arr.size != n_expected:
        raise InstrumentFault(
            f"{who} returned {arr.size} buffered values, expected {n_expected}", kind="truncated"
        )
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise InstrumentFault(
            f"{who} returned {bad.size} non-finite buffered value(s) of {n_expected} "
            f"(first at index {int(bad[0])}: {arr[bad[0]]!r})",
            kind="garbled",
        )
    return arr


#: The signals that end a run the safe way (field to zero, outputs off): Ctrl+C, kill,
#: a closed terminal or dropped ssh session, Ctrl+backslash (SIGQUIT).
SHUTDOWN_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name)
)


class DeferSignals:
    """Hold back SHUTDOWN_SIGNALS while a block runs in the main thread (a shutdown, or the opening
    of a rig whose coil may be ramping down, must not be cut short); re-raise the first one received
    as KeyboardInterrupt after the block (its number in ``received``)."""

    def __init__(self, what: str = "shutdown", active: bool = True) -> None:
        self.what = what
        self.active = active  # False: a no-op (the caller lets signals through)

    def __enter__(self):
        self.received: int | None = None
        self.old: dict[int, Any] = {}
        if self.active and threading.current_thread() is threading.main_thread():
            for sig in SHUTDOWN_SIGNALS:
                try:
                    self.old[sig] = signal.signal(sig, self._handler)
                except (ValueError, OSError):  # not in the main interpreter
                    pass
        return self

    def _handler(self, signum, frame):
        if self.received is None:
            self.received = signum
        log.warning("%s during %s: finishing the %s first", signal.Signals(signum).name, self.what, self.what)

    def __exit__(self, *exc):
        for sig, old in self.old.items():
            signal.signal(sig, old)
        if self.received is not None and exc[0] is None:
            raise KeyboardInterrupt(signal.Signals(self.received).name)
        return False


class NanowireRig:
    """A nanowire synapse rig.

    :param config: the validated RigConfig (limits, cycle, wires and calibrations).
    :param field_source: FieldSource role (coil supply, DC). Only ``self.guard`` writes to it.
    :param pulse_source: PulseSource role (generator + coil amplifier), armed via the guard.
    :param readout: MagnetisationReadout role (signal() in V or ohm).
    :param clock: rig clock (default: wall time).
    :param field_sensor: optional FieldSensor (Hall probe).
    :param channel_selector: optional ChannelSelector (switch matrix / spot stage); required when
        the rig has more than one wire.
    :param injector: optional role with ``inject()``; default: ``pulse_source.inject()``.
    :param stop: optional extra stop condition for ramps (threading.Event or callable).
    :param lock: optional held lock (instruments.lock.RigLock) released at shutdown.
    :param closers: callables that close connections (adapters), run last at shutdown.
    :param connect: configure the roles and check for a rig left energised now.
    """

    def __init__(
        self,
        config: RigConfig,
        *,
        field_source: Any,
        pulse_source: Any,
        readout: Any,
        clock: Clock | None = None,
        field_sensor: Any = None,
        channel_selector: Any = None,
        injector: Any = None,
        stop: threading.Event | Callable[[], bool] | None = None,
        lock: Any = None,
        closers: Sequence[Callable[[], Any]] = (),
        connect: bool = True,
    ) -> None:
        self.config = config
        self.clock: Clock = clock if clock is not None else WallClock()
        self.field_source = field_source
        self.pulse_source = pulse_source
        self.readout = readout
        self.field_sensor = field_sensor
        self.channel_selector = channel_selector
        self.injector = injector
        self.lock = lock
        self._closers = list(closers)
        amp = getattr(pulse_source, "amplifier_A_per_V", None)
        if amp is None:
            amp = (
                config.instruments.get("pulse_source").options.get("amplifier_A_per_V")
                if ("pulse_source" in config.instruments)
                else None
            )
        self.guard = CoilGuard(
            field_source,
            config.coil,
            config.limits,
            self.clock,
            stop=stop,
            pulse_source=pulse_source,
            amplifier_A_per_V=amp,
        )
        self._calibrations: list[Logistic] = [w.calibration for w in config.wires]
        self._neel_brown: list[NeelBrown | None] = [w.neel_brown for w in config.wires]
        ro = config.instruments.get("readout")
        opts = ro.options if ro is not None else {}
        thr = opts.get("threshold_V", opts.get("threshold_ohm"))
        self._threshold: list[float | None] = [None if thr is None else float(thr)] * config.n_wires
        self._pass_is_high: list[bool] = [bool(opts.get("pass_is_high", True))] * config.n_wires
        self.selected_wire = 0 if config.n_wires == 1 else -1
        self._output_on = False
        self._closed = False
        #: after shutdown: True if the coil was confirmed at 0 A by a read-back, False if not
        self.coil_at_zero: bool | None = None
        self._accepts_inject_delay = _accepts_kw(getattr(pulse_source, "arm", None), "inject_delay_s")
        self.shutdown_errors: list[tuple[str, BaseException]] = []
        if connect:
            try:
                self.connect()
            except BaseException:
                # a failed or interrupted connect (e.g. Ctrl+C while ramping down an energised coil)
                # still leaves the rig safe: field to 0, outputs off, connections closed
                self.shutdown()
                raise

    # ------------------------------------------------------------------ connection
    @property
    def roles(self) -> dict[str, Any]:
        """Role name -> role object (only the roles this rig has)."""
        r = {
            "field_source": self.field_source,
            "pulse_source": self.pulse_source,
            "field_sensor": self.field_sensor,
            "readout": self.readout,
            "channel_selector": self.channel_selector,
            "injector": self.injector,
        }
        return {k: v for k, v in r.items() if v is not None}

    @property
    def n_wires(self) -> int:
        return self.config.n_wires

    def connect(self) -> None:
        """Configure every role (``configure()`` where offered), then check the coil: a supply left
        energised by a dead run is reported and ramped down at the allowed rate."""
        for name, role in self.roles.items():
            if hasattr(role, "configure"):
                log.debug("configuring %s", name)
                try:
                    role.configure()
                except InstrumentFault as exc:
                    raise InstrumentFault(
                        f"{name} ({_describe(self.config, name, role)}) did not answer (configure): {exc}"
                    ) from exc
        setpoint, measured = self.guard._read_back()
        if abs(measured) > ENERGISED_TOL_A or abs(setpoint) > ENERGISED_TOL_A:
            log.warning(
                "rig %s was left energised (coil current %.4g A, setpoint %.4g A): ramping it down at "
                "%.4g A/s before use",
                self.config.name,
                measured,
                setpoint,
                self.config.limits.ramp_rate_A_per_s,
            )
            self.guard.zero()

    def _ensure_output(self) -> None:
        if not self._output_on:
            self.guard.enable_output()
            self._output_on = True

    def identities(self) -> dict[str, str]:
        """Role -> instrument identity (IDN string). Raises InstrumentFault naming the role that
        does not answer."""
        out = {}
        for name, role in self.roles.items():
            try:
                ident = getattr(role, "identity", None)
                if ident is None:
                    ident = getattr(role, "id", None) or type(role).__name__
                out[name] = str(ident).strip()
            except Exception as exc:
                raise InstrumentFault(
                    f"{name} ({_describe(self.config, name, role)}) did not answer: {exc}"
                ) from exc
        return out

    def probe(self) -> None:
        """Health check: every instrument answers, the coil current reads (raises InstrumentFault)."""
        self.identities()
        try:
            float(self.field_source.current_A)
        except Exception as exc:
            raise InstrumentFault(f"field_source did not answer a current query: {exc}") from exc

    def status(self) -> dict[str, Any]:
        """Coil current (A, measured), field (mT, from calibration and from the Hall probe if any),
        output state and setpoint."""
        st: dict[str, Any] = {}
        st["current_A"] = float(self.field_source.current_A)
        st["field_from_current_mT"] = st["current_A"] * self.config.coil.mT_per_A
        st["setpoint_A"] = self.guard.setpoint_A
        st["output_enabled"] = bool(self.field_source.output_enabled)
        if self.field_sensor is not None:
            st["hall_field_mT"] = float(self.field_sensor.field_mT)
        st["selected_wire"] = self.selected_wire
        return st

    #: what observe() reads of each role: (key, attribute or method "name()")
    OBSERVED: dict[str, tuple[tuple[str, str], ...]] = {
        "field_source": (("current_A", "current_A"), ("output_enabled", "output_enabled")),
        "field_sensor": (("field_mT", "field_mT"),),
        "readout": (("signal", "signal()"),),
    }

    def observe(self) -> dict[str, float]:
        """One reading of the live quantities for an observer (the dashboard's poll, while no run
        uses the rig): the field source's measured current (A) and output state, the field sensor's
        field (mT), the read-out's signal (V or ohm). Each is the instrument's own reading through
        its role, never the last command sent; a quantity whose instrument does not answer is left
        out (logged at DEBUG)."""
        out: dict[str, float] = {}
        roles = self.roles
        for role, table in self.OBSERVED.items():
            driver = roles.get(role)
            if driver is None:
                continue
            for key, attr in table:
                try:
                    value = getattr(driver, attr.removesuffix("()"))
                    value = value() if attr.endswith("()") else value
                    out[key] = bool(value) if isinstance(value, bool) else float(value)
                except Exception as exc:  # noqa: BLE001 - an observer's read is optional
                    log.debug("observe: %s.%s failed: %s", role, key, exc)
        return out

    # ------------------------------------------------------------------ calibrations
    def calibration(self, wire: int) -> Logistic:
        """The logistic p(H) (H in mT) of a wire."""
        return self._calibrations[self._wire(wire)]

    def neel_brown(self, wire: int) -> NeelBrown | None:
        return self._neel_brown[self._wire(wire)]

    def set_calibration(self, wire: int, logistic: Logistic, neel_brown: NeelBrown | None = None) -> None:
        """Use a new calibration for a wire (in memory; files: instruments.config.write_calibration)."""
        w = self._wire(wire)
        self._calibrations[w] = logistic
        if neel_brown is not None:
            self._neel_brown[w] = neel_brown

    def field_range_mT(self, wire: int) -> tuple[float, float]:
        """(lo, hi) drive fields (mT) that learning code may request for a wire."""
        return tuple(self.config.wires[self._wire(wire)].field_range_mT)

    def _wire(self, wire: int) -> int:
        w = int(wire)
        if not 0 <= w < self.n_wires:
            raise ValueError(f"wire {wire!r} outside 0..{self.n_wires - 1} (rig {self.config.name})")
        return w

    # ------------------------------------------------------------------ waveforms
    def _pulse_program(self, field_mT: float, plateau_s: float) -> np.ndarray:
        """Trapezoid current program (A) at the cycle sample rate: 0 -> I (edge at 95 % of the slew
        limit) -> plateau -> 0. Starts and ends with a 0 A sample."""
        current = self.guard.current_for_field(field_mT)
        slew = EDGE_SLEW_FRACTION * self.config.limits.pulse_slew_max_A_per_s
        return trapezoid_samples(current, plateau_s, slew, self.config.cycle.sample_rate_Hz)

    def _zeros(self, seconds: float) -> np.ndarray:
        return np.zeros(max(0, int(round(seconds * self.config.cycle.sample_rate_Hz))))

    def _rested(self, program: np.ndarray) -> np.ndarray:
        """Append rest (0 A) until duty and mean power are within the limits when played back to back."""
        lim, fs = self.config.limits, self.config.cycle.sample_rate_Hz
        from instruments.safety import DUTY_THRESHOLD_FRACTION

        n_on = int(np.count_nonzero(np.abs(program) > DUTY_THRESHOLD_FRACTION * lim.i_max_A))
        n_duty = int(math.ceil(n_on / lim.duty_max * REST_MARGIN))
        energy = program_energy_J(program, self.config.coil.resistance_ohm, fs)
        n_power = int(math.ceil(energy / lim.mean_power_max_W * fs * REST_MARGIN))
        n_total = max(program.size, n_duty, n_power)
        if n_total > program.size:
            program = np.concatenate([program, np.zeros(n_total - program.size)])
        return program

    def reset_program(self) -> np.ndarray:
        """Current program (A) of the reset pulse followed by the zero-field gap."""
        c = self.config.cycle
        return self._rested(
            np.concatenate([self._pulse_program(c.reset_field_mT, c.reset_s), self._zeros(c.gap_s)])
        )

    def drive_program(self, field_mT: float, duration_s: float | None = None) -> np.ndarray:
        """Current program (A) of the drive pulse followed by the settle time at 0 A."""
        c = self.config.cycle
        d = c.pulse_duration_s if duration_s is None else float(duration_s)
        return self._rested(np.concatenate([self._pulse_program(field_mT, d), self._zeros(c.settle_s)]))

    def cycle_program(self, field_mT: float, duration_s: float | None = None) -> tuple[np.ndarray, float]:
        """One-waveform cycle (reset, gap, drive, settle) and the injection time (s, mid-gap)."""
        c = self.config.cycle
        reset = np.concatenate([self._pulse_program(c.reset_field_mT, c.reset_s), self._zeros(c.gap_s)])
        t_inject = (reset.size - 0.5 * c.gap_s * c.sample_rate_Hz) / c.sample_rate_Hz
        drive = self.drive_program(field_mT, duration_s)
        return self._rested(np.concatenate([reset, drive])), t_inject

    def _arm(self, program: np.ndarray, n_cycles: int = 1, **kw) -> WaveformReport:
        self._ensure_output()
        return self.guard.arm_waveform(program, self.config.cycle.sample_rate_Hz, n_cycles, **kw)

    def _play(self, report: WaveformReport) -> None:
        if self.guard.stop_requested():
            raise RampStopped("cycle not played: stop requested")
        self.pulse_source.trigger()
        # a real trigger() returns when the burst is done (*OPC?); the rig clock must have moved on
        # by the waveform's duration in any case (simulated clocks advance in the instrument)
        log.debug("played waveform of %.4g s", report.duration_s)

    # ------------------------------------------------------------------ the synapse operations
    def select(self, wire: int) -> None:
        """Point the read-out at a wire (switch matrix / laser spot)."""
        w = self._wire(wire)
        if w == self.selected_wire:
            return
        if self.channel_selector is None:
            if self.n_wires > 1:
                raise InstrumentFault(
                    f"rig {self.config.name} has {self.n_wires} wires but no channel_selector"
                )
        else:
            self.channel_selector.select(w)
        self.selected_wire = w

    def reset(self) -> None:
        """Saturate the selected wire with the reset pulse (no domain wall afterwards)."""
        rep = self._arm(self.reset_program())
        self._play(rep)
        self._energy_J += rep.energy_J

    def inject(self) -> None:
        """Fire the injection line: a wall travels to the notch and pins."""
        if self.injector is not None:
            self.injector.inject()
        elif hasattr(self.pulse_source, "inject"):
            self.pulse_source.inject()
        else:
            raise InstrumentFault(
                f"rig {self.config.name}: no injector role and the pulse source cannot inject"
            )

    def pulse(self, field_mT: float, duration_s: float) -> None:
        """One drive pulse of amplitude field_mT (mT) and plateau duration_s (s), then settle_s at 0."""
        if not (duration_s > 0 and math.isfinite(duration_s)):
            raise SafetyError(f"pulse duration must be > 0 s, got {duration_s!r}")
        rep = self._arm(self.drive_program(field_mT, duration_s))
        self._play(rep)
        self._energy_J += rep.energy_J

    def _bit(self, value: float, wire: int) -> int:
        thr = self._threshold[wire]
        if thr is None:
            raise InstrumentFault(
                f"rig {self.config.name}: read-out threshold of wire {wire} unknown: set threshold_V / "
                "threshold_ohm in [instruments.readout] or call rig.calibrate_readout()"
            )
        return int((value > thr) == self._pass_is_high[wire])

    def _read_signal(self) -> float:
        """One read-out value; the read takes at least read_s of rig-clock time (the read window
        of the cycle), longer if the read-out itself needs longer."""
        t0 = self.clock.now()
        value = float(self.readout.signal())
        rest = self.config.cycle.read_s - (self.clock.now() - t0)
        if rest > 0:
            self.clock.sleep(rest)
        return value

    def read_bit(self) -> int:
        """Read the selected wire: 1 if the wall passed the notch, else 0."""
        w = max(self.selected_wire, 0)
        return self._bit(self._read_signal(), w)

    def calibrate_readout(self, wire: int | None = None, n: int = 3) -> tuple[float, float]:
        """Measure the read-out levels of a wire: after reset + inject (wall pinned: bit 0) and after
        a further pulse at +|reset_field_mT| (wall surely passed: bit 1); threshold = midpoint.
        Returns (level0, level1) in the read-out's unit."""
        if wire is not None:
            self.select(wire)
        w = max(self.selected_wire, 0)
        c = self.config.cycle
        lv = []
        for passed in (False, True):
            vals = []
            for _ in range(int(n)):
                self.reset()
                self.inject()
                if passed:
                    self.pulse(abs(c.reset_field_mT), c.pulse_duration_s)
                vals.append(self._read_signal())
            lv.append(float(np.mean(vals)))
        if lv[0] == lv[1]:
            raise InstrumentFault(f"rig {self.config.name}: wire {w} read-out levels are indistinguishable")
        self._threshold[w] = 0.5 * (lv[0] + lv[1])
        self._pass_is_high[w] = lv[1] > lv[0]
        log.info("wire %d read-out levels %.6g (pinned) / %.6g (passed)", w, lv[0], lv[1])
        return lv[0], lv[1]

    def _ensure_threshold(self) -> None:
        w = max(self.selected_wire, 0)
        if self._threshold[w] is None:
            self.calibrate_readout()

    def cycle(self, field_mT: float, duration_s: float | None = None) -> int:
        """One full read cycle on the selected wire at drive field field_mT (mT); returns the bit."""
        if self.selected_wire < 0:
            self.select(0)
        self._ensure_threshold()
        self.reset()
        self.inject()
        c = self.config.cycle
        self.pulse(field_mT, c.pulse_duration_s if duration_s is None else duration_s)
        return self.read_bit()

    _energy_J = 0.0

    def _check_requests(self, fields_mT, wires, n) -> tuple[np.ndarray, np.ndarray, int]:
        f = np.asarray(fields_mT, dtype=float).ravel()
        w = np.asarray(wires).ravel()
        if f.shape != w.shape:
            raise ValueError(f"fields_mT ({f.size}) and wires ({w.size}) must have the same length")
        if w.size and not np.issubdtype(w.dtype, np.integer):
            if not np.all(np.equal(np.mod(w, 1), 0)):
                raise ValueError("wires must be integer wire ids")
        w = w.astype(int)
        n = int(n)
        if n < 1:
            raise ValueError(f"n must be >= 1 reads per request, got {n}")
        if w.size and (w.min() < 0 or w.max() >= self.n_wires):
            bad = int(np.flatnonzero((w < 0) | (w >= self.n_wires))[0])
            raise ValueError(f"request {bad}: wire {w[bad]} outside 0..{self.n_wires - 1}")
        lim = self.config.field_limit_mT
        bad = np.flatnonzero(~np.isfinite(f) | (np.abs(f) > lim))
        if bad.size:
            i = int(bad[0])
            raise SafetyError(
                f"request {i}: field {float(f[i])!r} mT on wire {w[i]} is beyond the field limit {lim:g} mT"
            )
        return f, w, n

    def read_synapses(
        self, fields_mT: np.ndarray, wires: np.ndarray, n: int, duration_s: float | None = None
    ) -> SynapseReads:
        """Batched synapse reads: request i is read n times at fields_mT[i] (mT) on wire wires[i].

        Groups requests by (wire, field quantised to field_quantum_mT), selects each wire once,
        arms each level once and runs m*n cycles for the m requests at that level. Returns counts
        (passes per request), bench_time_s (rig clock) and energy_J (I^2 R of the waveforms).
        Every request is validated before anything moves.
        """
        f, w, n = self._check_requests(fields_mT, wires, n)
        if duration_s is not None and not (duration_s > 0 and math.isfinite(duration_s)):
            raise SafetyError(f"pulse duration must be > 0 s, got {duration_s!r}")
        counts = np.zeros(f.size, dtype=np.int64)
        if f.size == 0:
            return SynapseReads(counts=counts, n=n, bench_time_s=0.0, energy_J=0.0)
        q = self.config.cycle.field_quantum_mT
        levels = np.round(f / q) * q
        keys = np.stack([w.astype(float), levels], axis=1)
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        # build and validate every waveform before anything moves
        fs = self.config.cycle.sample_rate_Hz
        plans = [self._level_plan(float(lv), duration_s) for _, lv in uniq]
        for plan in plans:
            for program in plan["programs"]:
                self.guard.validate_waveform(program, fs)
        t0, e0 = self.clock.now(), self._energy_J
        for g, (wire_f, _lv) in enumerate(uniq):
            members = np.flatnonzero(inverse == g)
            self.select(int(wire_f))
            self._ensure_threshold()
            bits = self._run_level(plans[g], members.size * n)
            counts[members] = bits.reshape(members.size, n).sum(axis=1)
        return SynapseReads(
            counts=counts, n=n, bench_time_s=float(self.clock.now() - t0), energy_J=float(self._energy_J - e0)
        )

    def _buffered(self) -> bool:
        return hasattr(self.readout, "arm_buffer") and hasattr(self.readout, "fetch_buffer")

    def _level_plan(self, field_mT: float, duration_s: float | None) -> dict[str, Any]:
        """The waveforms that read one field level: one whole-cycle waveform with a timed injection
        (plus its read window when the read-out buffers, so cycles can run back to back), or the
        reset and drive waveforms with a software injection between them."""
        if self._accepts_inject_delay:
            program, t_inj = self.cycle_program(field_mT, duration_s)
            if self._buffered():
                program = self._rested(np.concatenate([program, self._zeros(self.config.cycle.read_s)]))
            return {"mode": "one", "programs": [program], "inject_delay_s": t_inj}
        return {"mode": "two", "programs": [self.reset_program(), self.drive_program(field_mT, duration_s)]}

    def _run_level(self, plan: dict[str, Any], n_reads: int) -> np.ndarray:
        """n_reads full cycles of one level plan on the selected wire; the bits (0/1)."""
        wire = max(self.selected_wire, 0)
        bits = np.zeros(n_reads, dtype=np.int64)
        if plan["mode"] == "one":
            (program,) = plan["programs"]
            if self._buffered():
                rep = self._arm(program, n_cycles=n_reads, inject_delay_s=plan["inject_delay_s"])
                self.readout.arm_buffer(n_reads)
                self._play(rep)
                self._energy_J += rep.energy_J * n_reads  # played, whatever the fetch brings
                values = check_buffer(self.readout.fetch_buffer(), n_reads)
                return np.array([self._bit(v, wire) for v in values], dtype=np.int64)
            rep = self._arm(program, n_cycles=1, inject_delay_s=plan["inject_delay_s"])
            for i in range(n_reads):
                self._play(rep)
                self._energy_J += rep.energy_J
                bits[i] = self._bit(self._read_signal(), wire)
            return bits
        # two waveforms per cycle, software-timed injection between them
        reset, drive = plan["programs"]
        for i in range(n_reads):
            rep = self._arm(reset)
            self._play(rep)
            self.inject()
            rep2 = self._arm(drive)
            self._play(rep2)
            self._energy_J += rep.energy_J + rep2.energy_J
            bits[i] = self._bit(self._read_signal(), wire)
        return bits

    # ------------------------------------------------------------------ DC field, zero, shutdown
    def ramp_to_field(self, field_mT: float) -> float:
        """Ramp the DC field to field_mT (mT) through the guard (allowed rate, stop checks)."""
        self._ensure_output()
        return self.guard.ramp_to_field(field_mT)

    def request_stop(self) -> None:
        """Ask a running ramp to stop (it ramps to zero at the allowed rate)."""
        self.guard.request_stop()

    def zero(self) -> None:
        """Pulse output off and DC field to 0 at the allowed rate; outputs stay on."""
        try:
            self.pulse_source.disarm()
        finally:
            self.guard.zero()

    def shutdown(self) -> list[tuple[str, BaseException]]:
        """Field to zero, outputs off, connections closed, lock released; each step guarded.

        Idempotent. Returns (and logs) the steps that failed; never raises (except a deferred
        Ctrl+C or termination signal after everything is done). ``coil_at_zero`` tells whether the
        coil was confirmed at 0 A by a read-back (the supply output is switched off only then).
        """
        if self._closed:
            return self.shutdown_errors
        self._closed = True
        errors: list[tuple[str, BaseException]] = []

        def step(name: str, fn: Callable[[], Any]) -> bool:
            try:
                fn()
                return True
            except Exception as exc:  # keep going: one failure must not skip the rest
                log.error("shutdown step %r failed: %s", name, exc)
                errors.append((name, exc))
                return False

        with DeferSignals():
            step("pulse output off", self.pulse_source.disarm)
            # the one path to zero: stepped ramp, retries from read-backs, final read-back
            self.coil_at_zero = step("ramp field to 0 (confirmed by read-back)", self.guard.zero)
            if self.coil_at_zero:
                step("field source output off", self.field_source.disable_output)
            else:
                # opening the output under current would be a step beyond the ramp limits; the supply
                # keeps regulating what it was last told. Say so as loudly as we can.
                log.critical(
                    "rig %s: the coil is NOT confirmed at 0 A; supply output left on. Check the bench "
                    "and run `labml rig zero`.",
                    self.config.name,
                )
            if hasattr(self.pulse_source, "outputs_off"):
                step("pulse source outputs off", self.pulse_source.outputs_off)
            if self.channel_selector is not None and hasattr(self.channel_selector, "open_all"):
                step("open selector relays", self.channel_selector.open_all)
            for name, role in self.roles.items():
                if hasattr(role, "close"):
                    step(f"close {name}", role.close)
            for i, closer in enumerate(self._closers):
                step(f"close connection {i}", closer)
            if self.lock is not None:
                step("release lock", self.lock.release)
        self._output_on = False
        self.shutdown_errors = errors
        if not errors:
            log.info("rig %s shut down: field 0, outputs off, connections closed", self.config.name)
        return errors

    close = shutdown

    def __enter__(self) -> NanowireRig:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is KeyboardInterrupt:
            log.warning("Ctrl+C: shutting the rig down (field to 0, outputs off)")
        self.shutdown()
        return False

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Rig-side state to checkpoint: selected wire, read-out thresholds, calibrations in use.
        (The simulated rig adds the full world state.)"""
        return {
            "selected_wire": self.selected_wire,
            "threshold": list(self._threshold),
            "pass_is_high": list(self._pass_is_high),
            "calibrations": [c.to_dict() for c in self._calibrations],
            "energy_J": self._energy_J,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._threshold = list(state.get("threshold", self._threshold))
        self._pass_is_high = list(state.get("pass_is_high", self._pass_is_high))
        if "calibrations" in state:
            self._calibrations = [Logistic(**c) for c in state["calibrations"]]
        self._energy_J = float(state.get("energy_J", self._energy_J))
        sel = int(state.get("selected_wire", -1))
        if sel >= 0:
            self.selected_wire = -1
            self.select(sel)
        self.resync_coil("restored saved state")

    def resync_coil(self, why: str) -> None:
        """The coil may not be where the guard last put it (a restore of saved state, a reconnect):
        make the guard read the supply back through the driver now (or, if the supply does not
        answer, before its next command)."""
        self.guard.invalidate(why)
        try:
            self.guard.sync()
        except Exception as exc:  # noqa: BLE001 - the guard stays unknown and reads back before any write
            log.warning("rig %s: coil read-back after %s failed (%s); retried before the next command",
                        self.config.name, why, exc)


def check_wire_ranges(rig: Any, fields_mT: Any, wires: Any) -> None:
    """Refuse (SafetyError, before anything moves) a request outside its wire's field_range_mT.

    The per-wire range is the limit of LEARNING code (training in the loop, inference, the rig
    kernel of a Boltzmann machine): it clips its fields into ``rig.field_range_mT(wire)`` and then
    passes every batch through this check right before ``rig.read_synapses``, so a request out of
    range is refused rather than read. Protocols that map a wire (depinning calibration,
    hysteresis) may go beyond the range, up to the rig's field limit, which ``read_synapses``
    enforces for everyone. Works on any SynapseRig (only ``field_range_mT(wire)`` is used).
    """
    f = np.asarray(fields_mT, dtype=float).ravel()
    w = np.asarray(wires).ravel()
    if f.shape != w.shape:
        raise ValueError(f"fields_mT ({f.size}) and wires ({w.size}) must have the same length")
    for wire in np.unique(w):
        lo, hi = (float(x) for x in rig.field_range_mT(int(wire)))
        sel = np.flatnonzero(w == wire)
        fw = f[sel]
        bad = np.flatnonzero(~((fw >= lo) & (fw <= hi)))  # NaN counts as outside
        if bad.size:
            i = int(sel[bad[0]])
            raise SafetyError(
                f"request {i}: field {float(f[i])!r} mT on wire {int(wire)} is outside the wire's "
                f"field_range_mT [{lo:g}, {hi:g}] mT"
            )


def _accepts_kw(fn: Any, name: str) -> bool:
    if fn is None:
        return False
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _describe(config: RigConfig, role_name: str, role: Any) -> str:
    ic = config.instruments.get(role_name)
    name = getattr(role, "name", type(role).__name__)
    if ic is not None and ic.address:
        return f"{name} at {ic.address}"
    return str(name)
