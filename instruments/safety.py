"""The safety choke point of the coil: CoilGuard.

Every change of coil current -- a GUI slider, a protocol, the learning controller, shutdown -- and
every hardware-timed waveform goes through one CoilGuard (DESIGN.md "Safety is one choke point"):

* DC requests are validated strictly against ``i_max_A`` and ``field_max_mT`` (SafetyError, never
  clamped) *before* anything is written;
* DC changes are ramped as a staircase of steps of at most ``ramp_step_A``, each written no
  sooner than ``|dI| / ramp_rate_A_per_s`` after the previous write (timed on the rig clock), with a
  stop check before every step; on a stop the current is ramped to zero at the allowed rate and
  :class:`RampStopped` is raised;
* whole waveforms are validated before they are armed: amplitude (current and field), slew
  (``pulse_slew_max_A_per_s``), duty cycle (``duty_max``), the coil's I^2 R mean-power budget
  (``mean_power_max_W``), and that they start and end at 0 A;
* every action is recorded in ``guard.log`` (a list of :class:`GuardRecord`) and logged.

Units: A, A/s, mT, s, W, J.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from instruments.config import CoilConfig, Limits
from instruments.errors import InstrumentFault, SafetyError
from instruments.roles import Clock, FieldSource, PulseSource

log = logging.getLogger(__name__)

#: Relative tolerance for float round-off in limit comparisons (1 part in 1e9).
_RTOL = 1e-9
#: |I| above this fraction of i_max_A counts as "energised" for the duty cycle.
DUTY_THRESHOLD_FRACTION = 0.01
#: A measured coil current within this (A) of 0 counts as zero in the final read-back of a zero.
ZERO_TOL_A = 1e-3
#: Failed attempts (a write or read-back that raised) a ramp to zero survives before it gives up.
ZERO_RETRIES = 8
#: First wait (s, rig clock) before retrying a failed step of a ramp to zero; doubles, capped at 1 s.
ZERO_RETRY_WAIT_S = 0.05


# Guards whose last ramp to zero could not be confirmed: guard serial -> (alert number, message).
# A later confirmed zero of the same guard removes its entry. Read by front ends (the CLI's exit
# code, the GUI banner) through unconfirmed_zero_alerts(): a process must never end claiming safety
# it has not seen.
_UNCONFIRMED: dict[int, tuple[int, str]] = {}
_serials = itertools.count(1)  # guard serials and alert numbers: never reused (unlike id())


def alert_mark() -> int:
    """A mark to pass to unconfirmed_zero_alerts(since=...): only alerts raised after it count."""
    return next(_serials)


def unconfirmed_zero_alerts(since: int = 0) -> list[str]:
    """Messages of every coil in this process whose last ramp to zero was NOT confirmed (raised
    after the mark `since`, see alert_mark)."""
    return [msg for number, msg in _UNCONFIRMED.values() if number > since]


class CoilNotZeroError(InstrumentFault):
    """Every attempt to bring the coil to 0 A and confirm it by a read-back failed: the coil may
    still be energised. Whoever catches it must say so loudly (run status, exit code, banner)."""


class RampStopped(RuntimeError):
    """A stop was requested: a ramp in progress has been ramped to zero at the allowed rate, or a
    waveform was not armed / played."""


@dataclass
class GuardRecord:
    """One entry of the guard's action log. t_s: rig-clock time (s); action: e.g. 'set', 'ramp',
    'refused', 'stop', 'arm', 'validate', 'output'; detail: numbers with units in the keys."""

    t_s: float
    action: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WaveformReport:
    """What a validated waveform will do to the coil.

    duration_s: one play; peak_A / peak_field_mT: largest |I| and |B| (DC offset included);
    max_slew_A_per_s: largest |dI/dt|; duty: fraction of the play with the program's |I| > 1 % of i_max_A;
    energy_J: I^2 R integral of one play; mean_power_W: energy_J / duration_s;
    max_voltage_V: largest |L dI/dt + I R| the program asks of the supply; follows_program: whether
    that stays within compliance_V (if not, the real current lags the program: not unsafe, but the
    pulse the wire sees is not the programmed one).
    """

    duration_s: float
    peak_A: float
    peak_field_mT: float
    max_slew_A_per_s: float
    duty: float
    energy_J: float
    mean_power_W: float
    max_voltage_V: float = float("nan")
    follows_program: bool = True


def program_energy_J(
    I_A: np.ndarray,
    resistance_ohm: float,
    sample_rate_Hz: float | None = None,
    *,
    t_s: np.ndarray | None = None,
) -> float:
    """Joule heat (J) of one play of a current program: R * integral of I^2 dt.

    The program is piecewise linear between its samples (at ``t_s``, s, or ``arange(n) /
    sample_rate_Hz``); the integral over each linear segment is exact, and with a sample rate the
    last sample is held for 1 / sample_rate_Hz (a generator holds every sample for one period).
    This is THE definition of a waveform's energy everywhere: the CoilGuard's heating budget, the
    rig's ``SynapseReads.energy_J`` and the simulated fast path all use it on the programmed
    current (what a bench knows without measuring the coil current during a pulse).
    """
    I = np.asarray(I_A, dtype=float)
    if t_s is None:
        if sample_rate_Hz is None:
            raise ValueError("program_energy_J needs t_s or sample_rate_Hz")
        t = np.arange(I.size) / float(sample_rate_Hz)
    else:
        t = np.asarray(t_s, dtype=float)
    a, b = I[:-1], I[1:]
    energy = float(np.sum((a * a + a * b + b * b) / 3.0 * np.diff(t)))
    if sample_rate_Hz is not None and t_s is None:
        energy += float(I[-1] ** 2) / float(sample_rate_Hz)
    return float(resistance_ohm) * energy


def _stop_requested(stop: threading.Event | Callable[[], bool] | None) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


class CoilGuard:
    """The single choke point for coil current.

    :param source: the coil supply (FieldSource role). Only this guard calls ``set_current_A``.
    :param coil: coil calibration (mT_per_A, R for heating).
    :param limits: safety limits (see instruments.config.Limits).
    :param clock: rig clock; waits between ramp steps use ``clock.sleep`` (simulated in tests).
    :param stop: optional extra stop condition (threading.Event or a callable returning True to
        stop), checked at every ramp step together with the guard's own ``stop_event``.
    :param pulse_source: the waveform generator (PulseSource role) armed by :meth:`arm_waveform`.
    :param amplifier_A_per_V: coil-amplifier gain turning waveform amperes into generator volts;
        defaults to ``pulse_source.amplifier_A_per_V``.
    """

    def __init__(
        self,
        source: FieldSource,
        coil: CoilConfig,
        limits: Limits,
        clock: Clock,
        stop: threading.Event | Callable[[], bool] | None = None,
        pulse_source: PulseSource | None = None,
        amplifier_A_per_V: float | None = None,
        max_log: int = 100_000,
    ) -> None:
        self.source = source
        self.coil = coil
        self.limits = limits
        self.clock = clock
        self.stop = stop
        self.stop_event = threading.Event()
        self.pulse_source = pulse_source
        self._amplifier_A_per_V = amplifier_A_per_V
        self.log: list[GuardRecord] = []
        #: callables given every GuardRecord as it is made (in the thread that made it): the
        #: dashboard follows the coil's read-backs this way, without a bus transaction of its own
        self.listeners: list[Callable[[GuardRecord], None]] = []
        self.max_log = int(max_log)
        self._setpoint_A = 0.0
        self._serial = next(_serials)
        # False until the guard has read the supply back (sync): after construction, a failed
        # write or read, a restore of saved state or a reconnect. No write is made while False.
        self._known = False
        #: result of the last ramp to zero: True (read back at 0 A), False (could not confirm),
        #: None (none yet)
        self.zero_confirmed: bool | None = None
        self._t_last_write = clock.now()
        self.armed: WaveformReport | None = None
        # serialises every write: a ramp in a worker thread and an emergency zero from another
        # thread never interleave their steps
        self._io_lock = threading.RLock()

    # ------------------------------------------------------------------ bookkeeping
    def _record(self, action: str, level: int = logging.DEBUG, **detail: Any) -> None:
        rec = GuardRecord(self.clock.now(), action, detail)
        self.log.append(rec)
        if len(self.log) > self.max_log:
            del self.log[: len(self.log) - self.max_log]
        log.log(level, "coil %s %s", action, detail)
        for listener in list(self.listeners):
            try:
                listener(rec)
            except Exception as exc:  # noqa: BLE001 - an observer must never break the coil's path
                log.debug("guard listener failed: %s", exc)

    @property
    def setpoint_A(self) -> float:
        """Last current setpoint (A) this guard wrote (or read back with :meth:`sync`)."""
        return self._setpoint_A

    @property
    def field_mT(self) -> float:
        """Field (mT) of the present setpoint, from the coil calibration."""
        return self._setpoint_A * self.coil.mT_per_A

    @property
    def amplifier_A_per_V(self) -> float:
        g = self._amplifier_A_per_V
        if g is None and self.pulse_source is not None:
            g = getattr(self.pulse_source, "amplifier_A_per_V", None)
        if g is None or not g > 0:
            raise SafetyError("coil amplifier gain amplifier_A_per_V is not configured (> 0 A/V needed)")
        return float(g)

    def request_stop(self) -> None:
        """Ask any running ramp to stop (it then ramps to zero at the allowed rate)."""
        self.stop_event.set()
        self._record("stop-requested", logging.WARNING)

    def clear_stop(self) -> None:
        self.stop_event.clear()

    def stop_requested(self) -> bool:
        return self.stop_event.is_set() or _stop_requested(self.stop)

    # ------------------------------------------------------------------ validation
    def check_current(self, current_A: float, what: str = "current", dc: bool = False) -> float:
        """Raise SafetyError unless |current_A| <= i_max_A and its field <= field_max_mT (and, for a
        DC setpoint, I^2 R <= dc_power_max_W when that limit is set)."""
        try:
            current_A = float(current_A)
        except (TypeError, ValueError):
            raise SafetyError(f"{what}: {current_A!r} is not a number (A)") from None
        lim = self.limits
        if not math.isfinite(current_A):
            raise SafetyError(f"{what}: {current_A!r} A is not finite")
        if abs(current_A) > lim.i_max_A * (1 + _RTOL):
            raise SafetyError(f"{what}: {current_A:g} A exceeds the coil limit i_max_A = {lim.i_max_A:g} A")
        if dc and lim.dc_power_max_W is not None:
            power = current_A**2 * self.coil.resistance_ohm
            if power > lim.dc_power_max_W * (1 + _RTOL):
                raise SafetyError(
                    f"{what}: {current_A:g} A dissipates {power:g} W in the coil, beyond "
                    f"dc_power_max_W = {lim.dc_power_max_W:g} W"
                )
        field = abs(current_A) * self.coil.mT_per_A
        if field > lim.field_max_mT * (1 + _RTOL):
            raise SafetyError(
                f"{what}: {current_A:g} A gives {field:g} mT, beyond field_max_mT = {lim.field_max_mT:g} mT"
            )
        return current_A

    def current_for_field(self, field_mT: float) -> float:
        """Current (A) for a field (mT), validated against the field and current limits."""
        try:
            field_mT = float(field_mT)
        except (TypeError, ValueError):
            raise SafetyError(f"field {field_mT!r} is not a number (mT)") from None
        if not math.isfinite(field_mT):
            raise SafetyError(f"field {field_mT!r} mT is not finite")
        if abs(field_mT) > self.limits.field_max_mT * (1 + _RTOL):
            raise SafetyError(
                f"field {field_mT:g} mT exceeds the limit field_max_mT = {self.limits.field_max_mT:g} mT"
            )
        return self.check_current(field_mT / self.coil.mT_per_A, what=f"field {field_mT:g} mT")

    # ------------------------------------------------------------------ DC ramps
    @property
    def known(self) -> bool:
        """Whether the guard's setpoint was read back from the supply since the last event that
        could have changed it behind the guard's back (fault, restore, reconnect)."""
        return self._known

    def invalidate(self, why: str) -> None:
        """Forget what the guard believes of the supply (after a restore of saved state, a
        reconnect, a fault): the next command first reads the supply back (:meth:`sync`)."""
        with self._io_lock:
            self._known = False
            self._record("invalidate", logging.INFO, why=why)

    def sync(self) -> float:
        """Read the supply back: its programmed setpoint (where the role offers ``setpoint_A``) and
        its measured current (``current_A``), both through the driver. The staircase of the next
        command starts from the setpoint (the value the supply regulates to); a role without a
        setpoint query starts from the measured current. Returns that value (A).

        Raises (InstrumentFault) when the supply does not answer; the guard then stays unknown and
        refuses to write."""
        return self._read_back()[0]

    def _read_back(self) -> tuple[float, float]:
        """(setpoint, measured current) in A, read through the driver; the guard is known after."""
        with self._io_lock:
            self._known = False
            measured = float(self.source.current_A)
            has_setpoint = "setpoint_A" in dir(self.source)  # dir(): no property evaluated here
            setpoint = float(self.source.setpoint_A) if has_setpoint else measured
            if not (math.isfinite(measured) and math.isfinite(setpoint)):
                raise InstrumentFault(
                    f"coil supply read back non-finite values (setpoint {setpoint!r} A, "
                    f"current {measured!r} A)"
                )
            self._setpoint_A = setpoint
            self._t_last_write = self.clock.now()
            self._known = True
            self._record("sync", setpoint_A=setpoint, measured_A=measured)
            return setpoint, measured

    def _ensure_known(self) -> None:
        if not self._known:
            self.sync()

    def _write(self, current_A: float) -> None:
        """Write one staircase step, waiting first so |dI| / dt <= ramp_rate_A_per_s."""
        if not self._known:  # internal invariant: callers sync first
            raise SafetyError("internal: coil write while the supply state is unknown")
        dI = abs(current_A - self._setpoint_A)
        if dI > self.limits.ramp_step_A * (1 + 1e-6):  # internal invariant, never expected
            raise SafetyError(
                f"internal: step of {dI:g} A exceeds ramp_step_A = {self.limits.ramp_step_A:g} A"
            )
        wait = self._t_last_write + dI / self.limits.ramp_rate_A_per_s - self.clock.now()
        if wait > 0:
            self.clock.sleep(wait)
        try:
            self.source.set_current_A(current_A)
        except BaseException:
            # The command may or may not have reached the supply (or it did and then reported a
            # fault such as compliance). The guard no longer knows the setpoint: the next command
            # reads it back first, so no step is ever computed from a guess.
            self._known = False
            self._t_last_write = self.clock.now()
            self._record("set-uncertain", logging.WARNING, current_A=current_A)
            raise
        self._setpoint_A = current_A
        self._t_last_write = self.clock.now()
        self._record("set", current_A=current_A)

    def _staircase(self, target_A: float) -> np.ndarray:
        start = self._setpoint_A
        n = int(math.ceil(abs(target_A - start) / self.limits.ramp_step_A - 1e-9))
        if n <= 0:
            return np.array([target_A]) if target_A != start else np.array([])
        steps = start + (target_A - start) * np.arange(1, n + 1) / n
        steps[-1] = target_A
        return steps

    def _output_is_on(self) -> bool:
        """Whether the supply output is on (a role without ``output_enabled`` counts as on)."""
        if "output_enabled" not in dir(self.source):  # dir(): no property is evaluated here
            return True
        return bool(self.source.output_enabled)  # a failing query raises (nothing written yet)

    def ramp_to_current(
        self, current_A: float, stop: threading.Event | Callable[[], bool] | None = None
    ) -> float:
        """Ramp the DC coil current to `current_A` (A) at <= ramp_rate_A_per_s.

        Validates first (SafetyError, nothing written). Reads the supply back first when the guard
        does not know its state (after a fault, restore or reconnect). Checks for a stop
        (guard.stop_event, the guard's `stop` and the `stop` argument) before every step; on a
        stop, ramps to zero at the allowed rate and raises RampStopped. A ramp to a non-zero target
        with the supply output off would move only the setpoint, not the field: the guard then
        switches the output on itself (0 A programmed and read back first), logs a WARNING and
        records ``output-was-off``. Ramps to 0 A (zero, shutdown) never switch an output on.
        A failed write ends the ramp (the fault propagates; the caller brings the coil to zero).
        Returns the final setpoint (A).
        """
        try:
            target = self.check_current(current_A, dc=True)
        except SafetyError as exc:
            self._record("refused", logging.WARNING, what="DC current", reason=str(exc))
            raise
        if self.stop_requested() or _stop_requested(stop):
            self._record("refused", logging.WARNING, target_A=target, reason="stop requested")
            raise RampStopped(f"ramp to {target:g} A not started: stop requested")
        with self._io_lock:
            self._ensure_known()
            if target != 0.0 and not self._output_is_on():
                # a setpoint behind an open output relay makes no field: switch on through the guard
                # (0 A programmed before the relay closes), say so, then ramp
                self._record(
                    "output-was-off",
                    logging.WARNING,
                    target_A=target,
                    reason="supply output was off: enabling it at 0 A before the ramp",
                )
                self._switch_on_at_zero()
            start = self._setpoint_A
            rate = self.limits.ramp_rate_A_per_s
            self._record(  # one INFO line per ramp; its steps are DEBUG ("set")
                "ramp", logging.INFO, from_A=start, to_A=target, rate_A_per_s=rate,
                duration_s=round(abs(target - start) / rate, 6),
            )
            for value in self._staircase(target):
                if self.stop_requested() or _stop_requested(stop):
                    self._record("stop", logging.WARNING, at_A=self._setpoint_A, target_A=target)
                    self.zero()
                    raise RampStopped(
                        f"ramp to {target:g} A stopped at {self._setpoint_A:g} A; coil ramped to 0 A"
                    )
                self._write(float(value))
            self.settle()
            self._read_current_after("ramp-done")
            return self._setpoint_A

    def _read_current_after(self, action: str) -> None:
        """Read the supply's measured current once at the end of a ramp and record it (`action`,
        with measured_A and setpoint_A): the run's own reading of where the coil went, which the
        dashboard shows while a run holds the rig. A failed read is recorded and not raised: the
        ramp itself is done, and the next command reads the supply back anyway if it must."""
        try:
            measured = float(self.source.current_A)
        except Exception as exc:  # noqa: BLE001 - a reading for the record, not a command
            self._record(f"{action}-unread", logging.DEBUG, error=str(exc))
            return
        self._record(action, measured_A=measured, setpoint_A=self._setpoint_A)

    def ramp_to_field(
        self, field_mT: float, stop: threading.Event | Callable[[], bool] | None = None
    ) -> float:
        """Ramp to the DC field `field_mT` (mT) via the coil calibration; returns the field (mT)."""
        try:
            current = self.current_for_field(field_mT)
        except SafetyError as exc:
            self._record("refused", logging.WARNING, what="DC field", reason=str(exc))
            raise
        return self.ramp_to_current(current, stop=stop) * self.coil.mT_per_A

    def zero(self) -> None:
        """Bring the coil to 0 A and confirm it: THE path to zero of every stop, abort, emergency,
        signal, fault and shutdown.

        A staircase to 0 A at the allowed step and rate (stop requests are ignored: this is where a
        stop goes), then a read-back through the driver: setpoint 0 A and measured |I| <=
        ZERO_TOL_A. A failed write or read (a fault) does not end it: the guard waits (backoff on
        the rig clock), reads the supply back and continues the staircase from the value read, up
        to ZERO_RETRIES failures. If zero still cannot be confirmed it raises CoilNotZeroError and
        ``zero_confirmed`` is False.
        """
        with self._io_lock:
            failures = 0
            wait = ZERO_RETRY_WAIT_S
            last_error: BaseException | None = None
            while True:
                try:
                    self._ensure_known()
                    if self._setpoint_A != 0.0:
                        self._record("zero", logging.INFO, from_A=self._setpoint_A)
                        for value in self._staircase(0.0):
                            self._write(float(value))
                    self._confirm_zero()
                    self.zero_confirmed = True
                    _UNCONFIRMED.pop(self._serial, None)
                    return
                except (SafetyError, RampStopped):
                    raise
                except Exception as exc:  # noqa: BLE001 - any instrument failure: retry from a read-back
                    self._known = False
                    failures += 1
                    last_error = exc
                    self._record("zero-retry", logging.WARNING, attempt=failures, error=str(exc))
                    if failures > ZERO_RETRIES:
                        break
                    self.clock.sleep(wait)
                    wait = min(2 * wait, 1.0)
            self.zero_confirmed = False
            self._record("zero-failed", logging.ERROR, attempts=failures, error=str(last_error))
            message = (
                f"coil NOT confirmed at 0 A after {failures} failed attempts "
                f"(last setpoint known {self._setpoint_A:g} A): {last_error}"
            )
            _UNCONFIRMED[self._serial] = (next(_serials), message)
            raise CoilNotZeroError(message) from last_error

    def _confirm_zero(self) -> None:
        """Settle, then read the supply back: setpoint 0 A and |measured| <= ZERO_TOL_A (the
        current of the last 0.1 A step decays with L/R: read again after another settle while it
        is above the tolerance and falling)."""
        self.settle()
        for attempt in range(4):
            setpoint, measured = self._read_back()
            if setpoint != 0.0:
                raise InstrumentFault(f"read-back after zero: setpoint {setpoint:g} A, not 0 A")
            if abs(measured) <= ZERO_TOL_A:
                self._record("zero-confirmed", logging.INFO, measured_A=measured)
                return
            if attempt < 3:
                self.settle()
        raise InstrumentFault(
            f"read-back after zero: measured coil current {measured:g} A, beyond {ZERO_TOL_A:g} A"
        )

    def settle(self) -> None:
        """Wait 5 coil time constants (L/R) on the rig clock so the current follows the last step."""
        self.clock.sleep(5.0 * self.coil.time_constant_s)

    def emergency_zero(self) -> None:
        """Stop everything and bring the coil to zero: the stop event is set first (a ramp running
        in another thread stops at its next step and ramps to zero itself), then :meth:`zero` (the
        same stepped ramp with retries and read-back as every other path to zero). The stop stays
        in force (no new ramp or waveform) until ``clear_stop()``. Raises CoilNotZeroError when
        zero cannot be confirmed."""
        self.stop_event.set()
        self._record("emergency-zero", logging.WARNING, from_A=self._setpoint_A)
        self.zero()

    def enable_output(self) -> None:
        """Switch the supply output on safely: if it is off, program 0 A (read back) first; if it is
        already on, ramp to 0 A first."""
        with self._io_lock:
            self._ensure_known()
            if not self._output_is_on():
                self._switch_on_at_zero()
                return
            if self._setpoint_A != 0.0:
                self.zero()
            self.source.enable_output()
            self._record("output", logging.INFO, enabled=True)

    def _switch_on_at_zero(self) -> None:
        """Output found off: program 0 A (no current flows through an open output, so this is no
        step), read the setpoint back, and only at 0 A close the output relay."""
        self._known = False
        self.source.set_current_A(0.0)
        if self.sync() != 0.0:
            raise InstrumentFault(
                f"coil supply setpoint reads {self._setpoint_A:g} A after programming 0 A: "
                "output left off"
            )
        self._t_last_write = self.clock.now()
        self.source.enable_output()
        self._record("output", logging.INFO, enabled=True)

    def disable_output(self) -> None:
        """Bring the coil to zero (confirmed), then switch the supply output off. If zero cannot
        be confirmed the output is left on (opening it under current would be a step beyond the
        ramp limits) and CoilNotZeroError propagates."""
        with self._io_lock:
            self.zero()
            self.source.disable_output()
            self._record("output", logging.INFO, enabled=False)

    # ------------------------------------------------------------------ waveforms
    def validate_waveform(
        self,
        I_A: np.ndarray,
        sample_rate_Hz: float | None = None,
        *,
        t_s: np.ndarray | None = None,
        offset_A: float | None = None,
    ) -> WaveformReport:
        """Check a current program before it is armed; raise SafetyError naming the violation.

        The program is piecewise linear between samples: at times ``t_s`` or ``arange(n) /
        sample_rate_Hz``; one play lasts n / sample_rate_Hz (or t_s[-1] - t_s[0]); played back to
        back its mean power is the same. ``offset_A`` (default: the present DC setpoint) adds to
        the program when the supply's DC setpoint and the generator drive the same coil.
        Checks: finite 1-D program of >= 2 samples starting and ending at 0 A; |I| <= i_max_A and
        |B| <= field_max_mT; |dI/dt| <= pulse_slew_max_A_per_s; duty <= duty_max; I^2 R mean power
        <= mean_power_max_W.
        """
        lim = self.limits
        I = np.asarray(I_A, dtype=float)
        if I.ndim != 1 or I.size < 2:
            raise SafetyError(f"waveform must be a 1-D array of >= 2 samples, got shape {I.shape}")
        if not np.all(np.isfinite(I)):
            raise SafetyError("waveform contains non-finite samples")
        if t_s is not None:
            t = np.asarray(t_s, dtype=float)
            if t.shape != I.shape or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
                raise SafetyError("waveform times t_s must be finite, strictly increasing and match I_A")
            duration = float(t[-1] - t[0])
        else:
            if sample_rate_Hz is None or not (sample_rate_Hz > 0 and math.isfinite(sample_rate_Hz)):
                raise SafetyError(f"waveform sample rate must be > 0 Hz, got {sample_rate_Hz!r}")
            t = np.arange(I.size) / float(sample_rate_Hz)
            duration = I.size / float(sample_rate_Hz)
        tol0 = 1e-9 * lim.i_max_A
        if abs(I[0]) > tol0 or abs(I[-1]) > tol0:
            raise SafetyError(
                f"waveform must start and end at 0 A (got {I[0]:g} A and {I[-1]:g} A): "
                "a program that ends energised leaves the coil on"
            )
        offset = self._setpoint_A if offset_A is None else float(offset_A)
        total = I + offset
        k = int(np.argmax(np.abs(total)))
        peak = float(abs(total[k]))
        if peak > lim.i_max_A * (1 + _RTOL):
            raise SafetyError(
                f"waveform peak {peak:g} A at t = {t[k] - t[0]:.6g} s exceeds i_max_A = {lim.i_max_A:g} A"
            )
        peak_field = peak * self.coil.mT_per_A
        if peak_field > lim.field_max_mT * (1 + _RTOL):
            raise SafetyError(
                f"waveform peak field {peak_field:g} mT at t = {t[k] - t[0]:.6g} s exceeds "
                f"field_max_mT = {lim.field_max_mT:g} mT"
            )
        dt = np.diff(t)
        slew = np.abs(np.diff(total)) / dt
        j = int(np.argmax(slew))
        max_slew = float(slew[j])
        if max_slew > lim.pulse_slew_max_A_per_s * (1 + 1e-6):
            raise SafetyError(
                f"waveform slew {max_slew:g} A/s at t = {t[j] - t[0]:.6g} s exceeds "
                f"pulse_slew_max_A_per_s = {lim.pulse_slew_max_A_per_s:g} A/s"
            )
        energised = np.abs(I) > DUTY_THRESHOLD_FRACTION * lim.i_max_A
        if t_s is None:
            duty = float(np.count_nonzero(energised)) / I.size
        else:
            seg_on = energised[:-1] | energised[1:]
            duty = float(np.sum(dt[seg_on])) / duration
        if duty > lim.duty_max * (1 + _RTOL):
            raise SafetyError(f"waveform duty cycle {duty:.3g} exceeds duty_max = {lim.duty_max:g}")
        a, b = total[:-1], total[1:]
        energy = program_energy_J(total, self.coil.resistance_ohm, sample_rate_Hz, t_s=t_s)
        mean_power = energy / duration
        if mean_power > lim.mean_power_max_W * (1 + _RTOL):
            raise SafetyError(
                f"waveform mean coil power {mean_power:.4g} W (I^2 R, R = {self.coil.resistance_ohm:g} ohm) "
                f"exceeds the heating budget mean_power_max_W = {lim.mean_power_max_W:g} W"
            )
        v_need = np.abs(
            self.coil.inductance_H * np.diff(total) / dt + self.coil.resistance_ohm * 0.5 * (a + b)
        )
        max_voltage = float(v_need.max())
        report = WaveformReport(
            duration_s=duration,
            peak_A=peak,
            peak_field_mT=peak_field,
            max_slew_A_per_s=max_slew,
            duty=duty,
            energy_J=energy,
            mean_power_W=mean_power,
            max_voltage_V=max_voltage,
            follows_program=max_voltage <= self.coil.compliance_V * (1 + 1e-6),
        )
        if not report.follows_program:
            log.debug(
                "waveform needs %.3g V > compliance %.3g V: the coil current will lag",
                max_voltage,
                self.coil.compliance_V,
            )
        return report

    def arm_waveform(
        self, I_A: np.ndarray, sample_rate_Hz: float, n_cycles: int = 1, **arm_kwargs: Any
    ) -> WaveformReport:
        """Validate a current program (A) and arm it on the pulse source as generator volts.

        Nothing is sent to the generator if validation fails. `arm_kwargs` are passed on to
        ``pulse_source.arm`` (e.g. an injection delay where the generator supports one).
        """
        if self.pulse_source is None:
            raise SafetyError("no pulse source configured: cannot arm a waveform")
        try:
            report = self.validate_waveform(I_A, sample_rate_Hz)
        except SafetyError as exc:
            self._record("refused", logging.WARNING, what="waveform", reason=str(exc))
            raise
        if self.stop_requested():
            self._record("refused", logging.WARNING, what="waveform", reason="stop requested")
            raise RampStopped("waveform not armed: stop requested")
        volts = np.asarray(I_A, dtype=float) / self.amplifier_A_per_V
        with self._io_lock:
            self.pulse_source.arm(volts, float(sample_rate_Hz), int(n_cycles), **arm_kwargs)
            self.armed = report
        self._record(
            "arm",
            logging.DEBUG,
            n_samples=int(volts.size),
            sample_rate_Hz=float(sample_rate_Hz),
            n_cycles=int(n_cycles),
            peak_A=report.peak_A,
            mean_power_W=report.mean_power_W,
            duty=report.duty,
            energy_J=report.energy_J,
        )
        return report

    def disarm(self) -> None:
        """Switch the generator's coil output off."""
        if self.pulse_source is not None:
            self.pulse_source.disarm()
        self.armed = None
        self._record("disarm")
