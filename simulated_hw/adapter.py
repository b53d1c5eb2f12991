"""A pymeasure Adapter that connects a real driver to a simulated instrument.

    supply = KepcoBOPStrict(SimAdapter(SimKepco(world)))

The driver is used unchanged: every string it writes is executed by the simulated instrument and
every read returns the instrument's queued reply. Like VISA:

- a read with nothing to return raises ``pyvisa.errors.VisaIOError`` (VI_ERROR_TMO) after the
  configured ``timeout_s`` has passed on the world clock;
- a disconnected instrument raises VisaIOError (VI_ERROR_CONN_LOST) on every transaction;
- each transaction may cost ``latency_s`` of simulated bench time (0 by default).

Faults (simulated_hw.faults.FaultInjector) are applied here (transaction faults: timeout,
garbled, truncated, disconnect) and inside the instrument (error queue, compliance, overload,
laser off).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from pymeasure.adapters import Adapter
from pyvisa.constants import StatusCode
from pyvisa.errors import VisaIOError

from simulated_hw.faults import FaultInjector

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


class _Connection:
    """The 'connection' object of the adapter (pymeasure expects one with close())."""

    def __init__(self, instrument: Any) -> None:
        self.instrument = instrument
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.instrument.close()


class SimAdapter(Adapter):
    """pymeasure Adapter over a simulated instrument (simulated_hw.instruments).

    :param instrument: the simulated instrument.
    :param faults: its FaultInjector (a fault-free one is made if None); also attached to the
        instrument as ``instrument.faults``.
    :param timeout_s: VISA timeout (s of simulated time consumed by a read that gets no reply).
    :param latency_s: simulated bench time per transaction (s).
    :param clock: clock to charge time to (default: ``instrument.world.clock`` if it exists).
    """

    def __init__(
        self,
        instrument: Any,
        faults: FaultInjector | None = None,
        timeout_s: float = 2.0,
        latency_s: float = 0.0,
        clock: Any = None,
        log: logging.Logger | None = None,
        **kwargs,
    ) -> None:
        super().__init__(log=log, **kwargs)
        self.instrument = instrument
        self.faults = faults if faults is not None else FaultInjector(type(instrument).__name__)
        instrument.faults = self.faults
        self.timeout_s = float(timeout_s)
        self.latency_s = float(latency_s)
        if not (math.isfinite(self.latency_s) and self.latency_s >= 0):
            raise ValueError(f"latency_s must be a finite number of seconds >= 0, got {latency_s!r}")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"timeout_s must be a finite number of seconds > 0, got {timeout_s!r}")
        if clock is None:
            clock = getattr(getattr(instrument, "world", None), "clock", None)
        self.clock = clock
        self.connection = _Connection(instrument)
        self.n_writes = 0
        self.n_reads = 0

    def __repr__(self) -> str:
        return f"<SimAdapter({self.instrument.idn.split(',')[1] if ',' in self.instrument.idn else ''})>"

    def _spend(self, seconds: float) -> None:
        if seconds > 0 and self.clock is not None:
            self.clock.sleep(seconds)

    def _check_open(self) -> None:
        if self.connection.closed:
            raise VisaIOError(StatusCode.error_connection_lost)

    def _write(self, command: str, **kwargs) -> None:
        self._check_open()
        self.faults.tick()
        self.n_writes += 1
        if self.faults.take("disconnect"):
            raise VisaIOError(StatusCode.error_connection_lost)
        self._spend(self.latency_s)
        self.instrument.write(command)

    def _write_bytes(self, content: bytes, **kwargs) -> None:
        self._write(content.decode("ascii", errors="replace"), **kwargs)

    def _read(self, **kwargs) -> str:
        self._check_open()
        self.faults.tick()
        self.n_reads += 1
        if self.faults.take("disconnect"):
            raise VisaIOError(StatusCode.error_connection_lost)
        reply = self.instrument.read()
        if reply is None or self.faults.take("timeout"):
            self._spend(self.timeout_s)
            raise VisaIOError(StatusCode.error_timeout)
        if self.faults.take("truncated"):
            # tail and terminator lost: VISA waits for the terminator and times out; the partial
            # bytes stay in the buffer and are glued to the front of the next reply
            self.faults.set_partial(self.faults.partial + reply[: len(reply) // 2])
            self._spend(self.timeout_s)
            raise VisaIOError(StatusCode.error_timeout)
        if self.faults.partial:
            reply = self.faults.partial + reply
            self.faults.set_partial("")
        if self.faults.take("garbled"):
            reply = self.faults.garble(reply)
        self._spend(self.latency_s)
        return reply

    def _read_bytes(self, count: int, break_on_termchar: bool = False, **kwargs) -> bytes:
        data = (self._read(**kwargs) + "\n").encode("ascii", errors="replace")
        return data if count < 0 else data[:count]

    def flush_read_buffer(self) -> None:
        """Discard pending replies and partial bytes (like pyvisa's flush of the read buffer)."""
        self.instrument.clear_output()
        self.faults.set_partial("")

    def reconnect(self) -> None:
        """End an injected disconnect and discard stale input."""
        self.faults.reconnect()
        self.flush_read_buffer()
