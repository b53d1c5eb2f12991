"""Deterministic fault injection for the simulated instruments.

One FaultInjector per simulated instrument, seeded, so a given seed and command sequence always
produces the same faults. Faults are configured in the rig config ``[sim]`` table::

    [sim.faults]
    seed = 7
    [sim.faults.readout]                 # key = role name of the instrument
    timeout = 0.01                       # probability per bus transaction
    garbled = 0.005
    schedule = [{ kind = "overload", at = 20, count = 2 }]   # at the 20th transaction, twice

or at run time: ``injector.inject("disconnect", count=5)``.

Kinds and how they surface (at the driver / role):

========== ======================================================================================
timeout    the reply is lost: pyvisa-like ``VisaIOError`` (VI_ERROR_TMO) at the driver's read
garbled    reply characters replaced by noise: the driver cannot parse it -> InstrumentFault
truncated  the reply's tail and terminator are lost: the read times out (VisaIOError) and the
           partial bytes stay in the input buffer, corrupting the next reply unless flushed
error      an instrument error (-310,"System error") is put in the error queue -> InstrumentFault
           when a role checks the queue
disconnect every transaction raises ``VisaIOError`` (VI_ERROR_CONN_LOST) for `count`
           transactions (or until ``reconnect()``)
compliance the source reports compliance (Kepco STAT:QUES:COND? bit / 6221 delta overflow)
overload   the lock-in reports overload (LIAS? / CUROVLDSTAT? bits)
laser_off  the MOKE photodiode sees no light (lock-in X ~ 0 + noise)
========== ======================================================================================

``count`` is the number of occurrences (replies dropped, errors pushed, transactions refused,
states observed); ``count = None`` (or ``-1`` in TOML) lasts until ``clear()``/``reconnect()``.

The fast path (``SimNanowireRig.read_synapses``) has its own injector, ``rig.faults["fast_path"]``,
configured by ``[sim.faults.fast_path]`` with the same keys (a probability per kind, ``schedule``).
Its unit is one *bench transaction*, cut as the bench planner (instruments.rig) cuts a batch: per
(wire, field level) group, select, arm, trigger and fetch of a burst of m * n buffered reads. A
health query of the read-out link while the run engine probes a suspended rig is a transaction too.
Kinds (FAST_PATH_KINDS; any other kind in the table is a ConfigError) and how they surface, always as
``InstrumentFault`` (``.kind`` = the kind) with nothing returned:

========== ======================================================================================
timeout    the fetch gets no reply: the burst was played, the clock advances by the read-out's
           ``timeout_s``
truncated  the fetched buffer is short (wrong length), found by instruments.rig.check_buffer
garbled    the fetched buffer holds NaNs, found by instruments.rig.check_buffer
disconnect the read-out link is lost: nothing of that group is played; lasts `count` transactions
           (probes included) or until ``reconnect()``
overload   the lock-in status after the burst reports overload (the role's check)
laser_off  the light level after the burst is below the role's minimum (no MOKE light)
========== ======================================================================================
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FAULT_KINDS = (
    "timeout",
    "garbled",
    "truncated",
    "error",
    "disconnect",
    "compliance",
    "overload",
    "laser_off",
)

#: Kinds that a fast-path (burst) transaction can suffer, in the order they are checked.
FAST_PATH_KINDS = ("disconnect", "timeout", "truncated", "garbled", "overload", "laser_off")


class FaultConfigError(ValueError):
    """A fault specification is invalid (names the instrument, key and value)."""


class FaultInjector:
    """Faults of one simulated instrument.

    :param name: instrument / role name (mixed into the seed, used in messages).
    :param probabilities: kind -> probability per transaction (0..1).
    :param schedule: list of {kind, at (transaction number, 1-based), count}.
    :param seed: base seed; the stream is ``default_rng([seed, crc32(name)])``.
    :param kinds: the fault kinds this injector accepts (default: all of FAULT_KINDS).
    """

    def __init__(
        self,
        name: str,
        probabilities: Mapping[str, float] | None = None,
        schedule: list[Mapping[str, Any]] | None = None,
        seed: int = 0,
        kinds: tuple[str, ...] = FAULT_KINDS,
    ) -> None:
        self.name = name
        self.seed = int(seed)
        self.kinds = tuple(kinds)
        self.probabilities: dict[str, float] = {}
        for kind, p in (probabilities or {}).items():
            self._check_kind(kind, str(kind))
            try:
                p = float(p)
            except (TypeError, ValueError):
                raise FaultConfigError(
                    f"faults.{name}.{kind}: probability {p!r} is not a number in [0, 1]"
                ) from None
            if not 0.0 <= p <= 1.0:
                raise FaultConfigError(f"faults.{name}.{kind}: probability {p!r} outside [0, 1]")
            self.probabilities[kind] = p
        self.schedule: list[dict] = []
        for i, item in enumerate(schedule or []):
            item = dict(item)
            unknown = set(item) - {"kind", "at", "count"}
            if unknown:
                raise FaultConfigError(f"faults.{name}.schedule[{i}]: unknown key(s) {sorted(unknown)}")
            self._check_kind(item.get("kind"), f"schedule[{i}].kind")
            at = int(item.get("at", 1))
            if at < 1:
                raise FaultConfigError(f"faults.{name}.schedule[{i}].at must be >= 1, got {at}")
            self.schedule.append({"kind": item["kind"], "at": at, "count": self._count(item.get("count", 1))})
        self.rng = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
        self.transaction = 0
        self._active: dict[str, int | None] = {}
        self._partial = ""
        self.log: list[tuple[int, str]] = []  # (transaction, kind) of every manifestation

    def _check_kind(self, kind: Any, where: str) -> None:
        if kind not in self.kinds:
            raise FaultConfigError(
                f"faults.{self.name}.{where}: unknown fault kind {kind!r}; known: {', '.join(self.kinds)}"
            )

    @staticmethod
    def _count(count: Any) -> int | None:
        if count is None or int(count) < 0:
            return None
        return int(count)

    @classmethod
    def from_config(
        cls, name: str, faults_table: Mapping[str, Any] | None, kinds: tuple[str, ...] = FAULT_KINDS
    ) -> FaultInjector:
        """Build from the ``[sim.faults]`` table (its ``seed`` and the sub-table named `name`)."""
        table = dict(faults_table or {})
        seed = int(table.get("seed", 0))
        own = table.get(name, {}) or {}
        if not isinstance(own, Mapping):
            raise FaultConfigError(f"faults.{name}: expected a table, got {own!r}")
        own = dict(own)
        schedule = own.pop("schedule", [])
        return cls(name, probabilities=own, schedule=schedule, seed=seed, kinds=kinds)

    # -- run-time control ---------------------------------------------------------------------

    def inject(self, kind: str, count: int | None = 1) -> None:
        """Activate `kind` from the next transaction on, for `count` occurrences (None: until
        cleared)."""
        self._check_kind(kind, "inject")
        count = self._count(count)
        prev = self._active.get(kind, 0)
        self._active[kind] = None if (count is None or prev is None) else prev + count
        log.info("fault injected on %s: %s x %s", self.name, kind, "inf" if count is None else count)

    def clear(self, kind: str | None = None) -> None:
        if kind is None:
            self._active.clear()
        else:
            self._active.pop(kind, None)

    def reconnect(self) -> None:
        """End a disconnect (the cable is plugged back in)."""
        self.clear("disconnect")

    def active(self, kind: str) -> bool:
        return kind in self._active

    def take(self, kind: str) -> bool:
        """If `kind` is active, consume one occurrence and return True."""
        if kind not in self._active:
            return False
        left = self._active[kind]
        if left is not None:
            if left <= 1:
                del self._active[kind]
            else:
                self._active[kind] = left - 1
        self.log.append((self.transaction, kind))
        return True

    # -- hooks --------------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance one bus transaction: fire scheduled and random faults (fixed draw order)."""
        self.transaction += 1
        for item in self.schedule:
            if item["at"] == self.transaction:
                self.inject(item["kind"], item["count"])
        for kind in FAULT_KINDS:
            p = self.probabilities.get(kind, 0.0)
            if p > 0.0 and self.rng.random() < p:
                self.inject(kind, 1)

    def run_transactions(self, count: int, kinds: tuple[str, ...]) -> tuple[int, str] | None:
        """Run up to `count` transactions, each ``tick()`` then ``take()`` of the first active kind of
        `kinds`; stop at the first one where a kind is taken and return (its 0-based index, kind),
        or None when all `count` were clean.

        The same draws, schedule, counter and log as that loop, but the clean stretches between
        scheduled transactions are drawn as one block (the per-transaction loop costs ~3 us each,
        more than the fast path's physics for a batch of thousands of bursts): on a hit the stream
        is rewound and replayed up to the hit, which is then ticked as usual."""
        done = 0
        drawn = [k for k in FAULT_KINDS if self.probabilities.get(k, 0.0) > 0.0]
        p = np.array([self.probabilities[k] for k in drawn])
        while done < count:
            if not self._active:
                nxt = min((it["at"] for it in self.schedule if it["at"] > self.transaction), default=None)
                stretch = count - done if nxt is None else min(count - done, nxt - self.transaction - 1)
                if stretch > 0 and drawn:
                    state = self.rng.bit_generator.state
                    hit = (self.rng.random((stretch, len(drawn))) < p).any(axis=1)
                    if hit.any():  # rewind: draw the clean rows again, then tick the hit as usual
                        stretch = int(np.argmax(hit))
                        self.rng.bit_generator.state = state
                        self.rng.random((stretch, len(drawn)))
                if stretch > 0:
                    self.transaction += stretch
                    done += stretch
                    continue
            self.tick()
            kind = next((k for k in kinds if self.take(k)), None)
            if kind is not None:
                return done, kind
            done += 1
        return None

    def on_command(self, instrument: Any, command: str) -> None:
        """Called by the instrument for every command it executes: error-queue faults."""
        if self.take("error"):
            instrument.push_error(-310, "System error")

    def garble(self, reply: str) -> str:
        """Replace characters of `reply` with noise; always leaves it unparsable as a number."""
        chars = list(reply) or ["?"]
        n = max(1, len(chars) // 3)
        for i in self.rng.choice(len(chars), size=min(n, len(chars)), replace=False):
            chars[int(i)] = "#?~@!"[int(self.rng.integers(5))]
        return "".join(chars) + "\x7f"

    @property
    def partial(self) -> str:
        return self._partial

    def set_partial(self, text: str) -> None:
        self._partial = text

    def state_dict(self) -> dict:
        return {
            "rng": self.rng.bit_generator.state,
            "transaction": self.transaction,
            "active": dict(self._active),
            "partial": self._partial,
            "log": list(self.log),
        }

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.transaction = int(state["transaction"])
        self._active = dict(state["active"])
        self._partial = state["partial"]
        self.log = [tuple(x) for x in state["log"]]
