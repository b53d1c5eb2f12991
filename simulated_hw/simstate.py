"""The simulated bench's memory: the coil supply's state kept in a small file, so that it outlives
the process that drives it, as a real supply keeps its output when the computer's process dies.

    sf = SimStateFile(path)               # e.g. <lock dir>/sim.simstate, beside the rig lock
    attach(world, sf)                     # world's coil starts from the file; every change is written
    read_state(path) -> SupplyState | None

What is kept is what a bench supply keeps across a process death: the DC setpoint (A), the output
relay (on/off) and the compliance voltage (V). The real coil current is not stored: it relaxes to
the setpoint with L/R (milliseconds) while no process watches, so on the next attach it is the
setpoint when the output is on and 0 A when it is off. The selected wire, the generator and the
world's clock and random state are not kept: the rig's connect() and shutdown() set them, so a run
started on a bench at rest is reproducible from its seed.

The file is one fixed-size binary record (magic, version, flags, setpoint, compliance, writer PID,
wall time, CRC-32) rewritten in place with a single ``os.pwrite`` at every change: a SIGKILL cannot
tear one write system call, and the CRC catches anything else. Hand-written rather than JSON +
write-then-rename because it is written at every ramp step: one system call of 40 bytes, only when
the record changes (see docs/simulated_world.md, "The simulated bench outlives its process", for the
measured overhead).
"""

from __future__ import annotations

import math
import os
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instruments.errors import ConfigError

MAGIC = b"LMSS"
VERSION = 1
# magic, version, flags (bit 0: output on), setpoint_A, compliance_V, writer pid, wall time (s)
_BODY = struct.Struct("<4sHHddid")
_RECORD_SIZE = _BODY.size + 4  # + CRC-32 of the body
SUFFIX = ".simstate"
#: If set, every change of a persistent simulated supply is also appended to the file it names, one
#: line "PID world-time-s setpoint-A output-on" (an audit trail across processes, read by
#: benchmarks/bench_faults.py to check every step and rate the coil ever saw).
TRACE_ENV = "LABML_SIM_COIL_TRACE"


@dataclass(frozen=True)
class SupplyState:
    """The simulated coil supply as the file holds it: setpoint (A), output relay, compliance (V),
    the PID of the process that wrote it last and when (Unix time, s)."""

    setpoint_A: float
    output_on: bool
    compliance_V: float
    pid: int = 0
    wall_time_s: float = 0.0

    @property
    def current_A(self) -> float:
        """The coil current a bench would show now (A): the setpoint with the output on, else 0."""
        return self.setpoint_A if self.output_on else 0.0

    @property
    def energised(self) -> bool:
        return abs(self.current_A) > 0.0


def state_path(lock_file: str | os.PathLike) -> Path:
    """The state file beside a rig lock file: ``<dir>/<rig>.lock`` -> ``<dir>/<rig>.simstate``."""
    return Path(lock_file).with_suffix(SUFFIX)


def _decode(raw: bytes, path: Path) -> SupplyState | None:
    if len(raw) == 0:
        return None  # created, never written: the bench was never driven
    bad = None
    if len(raw) != _RECORD_SIZE:
        bad = f"{len(raw)} bytes, expected {_RECORD_SIZE}"
    elif zlib.crc32(raw[:-4]) != struct.unpack("<I", raw[-4:])[0]:
        bad = "checksum mismatch"
    else:
        magic, version, flags, setpoint, compliance, pid, wall = _BODY.unpack(raw[:-4])
        if magic != MAGIC or version != VERSION:
            bad = f"not a version-{VERSION} simulated rig state (magic {magic!r}, version {version})"
        elif not (math.isfinite(setpoint) and math.isfinite(compliance) and compliance > 0):
            bad = f"setpoint {setpoint!r} A, compliance {compliance!r} V"
    if bad:
        raise ConfigError(
            f"simulated rig state file {path} is unreadable ({bad}); it holds the simulated coil supply's "
            "state: delete it to start the simulated bench at rest"
        )
    return SupplyState(float(setpoint), bool(flags & 1), float(compliance), int(pid), float(wall))


def read_state(path: str | os.PathLike) -> SupplyState | None:
    """The state in the file at `path`, or None when there is none (no file, or never written).
    Raises ConfigError naming the file when it is corrupt."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        return None
    return _decode(raw, p)


class SimStateFile:
    """An open state file. `write(setpoint_A, output_on, compliance_V)` rewrites the record when it
    changed; `close()` closes it (later writes are ignored)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self._last: tuple | None = None
        self.writes = 0

    def read(self) -> SupplyState | None:
        """The state in the file now (None if never written)."""
        assert self._fd is not None, "state file closed"
        return _decode(os.pread(self._fd, _RECORD_SIZE + 1, 0), self.path)

    def write(self, setpoint_A: float, output_on: bool, compliance_V: float) -> bool:
        """Rewrite the record if the state changed; returns whether it was written."""
        key = (float(setpoint_A), bool(output_on), float(compliance_V))
        if self._fd is None or key == self._last:
            return False
        body = _BODY.pack(MAGIC, VERSION, int(key[1]), key[0], key[2], os.getpid(), time.time())
        os.pwrite(self._fd, body + struct.pack("<I", zlib.crc32(body)), 0)
        self._last = key
        self.writes += 1
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __deepcopy__(self, memo: dict) -> SimStateFile:
        return self  # one file, one descriptor: a copied world still names the same bench

    def __repr__(self) -> str:
        return f"SimStateFile({str(self.path)!r})"


def attach(world: Any, state_file: SimStateFile) -> SupplyState | None:
    """Make `world`'s coil supply persistent: start it from the file (setpoint, output, compliance;
    the current at the setpoint when the output is on, as it is after L/R), then write the file at
    every change of the supply. Returns the state found (None: the bench was at rest)."""
    found = state_file.read()
    coil = world.coil
    if found is not None:
        coil.setpoint_A = found.setpoint_A
        coil.output_on = found.output_on
        coil.compliance_V = found.compliance_V
        coil.current_A = found.current_A
        coil.voltage_V = found.current_A * coil.resistance_ohm

    trace_path = os.environ.get(TRACE_ENV)
    trace = open(trace_path, "a", buffering=1) if trace_path else None  # noqa: SIM115 - lives with the world

    def changed() -> None:
        if state_file.write(coil.setpoint_A, coil.output_on, coil.compliance_V) and trace is not None:
            trace.write(f"{os.getpid()} {world.clock.now()!r} {coil.setpoint_A!r} {int(coil.output_on)}\n")

    coil.on_change = changed
    changed()
    return found
