"""SCPI message handling shared by the simulated instruments.

A simulated instrument receives the exact strings a pymeasure driver writes, splits program
messages at ';', matches each command against its table and either changes state or queues a
reply. Like a real instrument:

- an unknown header puts -113 "Undefined header" in the error queue (SCPI instruments) and a query
  of it produces no reply, so the driver's read times out;
- a bad parameter puts -224 "Illegal parameter value" / -222 "Data out of range" in the queue;
- ``*IDN?``, ``*RST``, ``*CLS``, ``*OPC?`` and ``SYST:ERR?`` are built in for SCPI instruments.

Patterns use SCPI notation: ``SOURce#:CURRent[:LEVel]`` matches SOUR:CURR, SOURCE1:CURRENT:LEV,
... (short or long form, any case, optional nodes in [], ``#`` an optional numeric suffix captured
as a group). Non-SCPI instruments (SR830, LakeShore) register raw regular expressions.
"""

from __future__ import annotations

import copy
import logging
import re
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

Handler = Callable[..., "str | None"]


class SimCommandError(Exception):
    """Raised by a command handler: goes to the instrument's error queue as (code, message)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code},{message}")
        self.code = int(code)
        self.message = message


def _mnemonic_regex(word: str) -> str:
    suffix = word.endswith("#")
    word = word.rstrip("#")
    if word.startswith("*"):
        body = re.escape(word)
    else:
        short = "".join(ch for ch in word if ch.isupper() or ch.isdigit())
        rest = word[len(short) :]
        body = re.escape(short) + (f"(?:{re.escape(rest.upper())})?" if rest else "")
    return body + (r"(\d*)" if suffix else "")


def scpi_header_regex(pattern: str) -> str:
    """Compile SCPI notation (``SOURce#:CURRent[:LEVel]``) into a regex for the header."""
    tokens = [
        (t.startswith("["), t.strip("[]").lstrip(":")) for t in re.findall(r"\[:?[^\]]+\]|:?[^:\[]+", pattern)
    ]
    out = []
    need_colon = False
    for i, (optional, word) in enumerate(tokens):
        body = _mnemonic_regex(word)
        if i == 0 and optional:
            out.append(f"(?:{body}:)?")  # optional root node takes its colon with it
            continue
        piece = (":" if need_colon else "") + body
        out.append(f"(?:{piece})?" if optional else piece)
        need_colon = True
    return "".join(out)


def parse_float(text: str, name: str = "value") -> float:
    """Parse a numeric SCPI parameter (also MIN/MAX are not supported: -224)."""
    try:
        return float(str(text).strip())
    except ValueError:
        raise SimCommandError(-104, f"Data type error: {name} {text!r}") from None


def parse_bool(text: str) -> bool:
    t = str(text).strip().upper()
    if t in ("1", "ON"):
        return True
    if t in ("0", "OFF"):
        return False
    raise SimCommandError(-224, f"Illegal parameter value {text!r}")


class SimInstrument:
    """Base of the simulated instruments: command table, output queue, error queue, faults.

    :param world: the shared simulated World (simulated_hw.world.World).
    :param idn: the ``*IDN?`` reply.
    :param scpi: whether the SCPI common commands and ``SYST:ERR?`` exist.
    :param seed: seed of this instrument's own noise stream (replies are deterministic).
    """

    @classmethod
    def from_options(cls, world: Any, options: dict, seed: int = 0) -> SimInstrument:
        """The twin of a rig role with that role's config options (simulated_hw.twins); most
        instruments need none of them."""
        return cls(world, seed=seed)

    def __init__(self, world: Any, idn: str, scpi: bool = True, seed: int = 0) -> None:
        self.world = world
        self.idn = idn
        self.is_scpi = scpi
        self.faults = None  # simulated_hw.faults.FaultInjector, attached by the adapter/rig
        self.rng = np.random.default_rng(seed)
        self._commands: list[tuple[re.Pattern, bool, Handler]] = []
        self._replies: deque[str] = deque()
        self.errors: deque[tuple[int, str]] = deque()
        self.history: deque[str] = deque(maxlen=200)  # last commands seen, for debugging
        if scpi:
            self.scpi("*IDN", lambda: self.idn, query=True)
            self.scpi("*RST", self._rst)
            self.scpi("*CLS", self._cls)
            self.scpi("*OPC", lambda: "1", query=True)
            self.scpi("*WAI", lambda: None)
            self.scpi("SYSTem:ERRor[:NEXT]", self._next_error, query=True)
            self.scpi("STATus:QUEue:CLEar", self._cls)
            self.scpi("STATus:PRESet", lambda: None)

    # -- command table ------------------------------------------------------------------------

    def scpi(self, pattern: str, handler: Handler, query: bool = False) -> None:
        """Register a SCPI command (``query=True``: the pattern is queried with '?')."""
        header = scpi_header_regex(pattern)
        q = r"\?" if query else ""
        self._commands.append((re.compile(rf":?{header}{q}", re.IGNORECASE), True, handler))

    def raw(self, regex: str, handler: Handler, query: bool = False) -> None:
        """Register a raw regex (non-SCPI syntax such as ``SENS25`` or ``OUTP?1``); named group
        ``args`` (if any) and positional groups are passed to the handler."""
        self._commands.append((re.compile(regex, re.IGNORECASE | re.DOTALL), False, handler))

    # -- I/O from the adapter -----------------------------------------------------------------

    def write(self, message: str) -> None:
        """Execute a program message (commands separated by ';')."""
        replies = []
        for command in self._split(message):
            self.history.append(command)
            reply = self.execute(command)
            if reply is not None:
                replies.append(reply)
        if replies:
            self._replies.append(";".join(replies))

    def read(self) -> str | None:
        """Next reply, or None (nothing to read: the adapter raises a timeout)."""
        return self._replies.popleft() if self._replies else None

    def clear_output(self) -> None:
        self._replies.clear()

    @staticmethod
    def _split(message: str) -> list[str]:
        parts = []
        for part in message.replace("\r", "").replace("\n", "").split(";"):
            part = part.strip()
            if part:
                parts.append(part)
        return parts

    def execute(self, command: str) -> str | None:
        if self.faults is not None:
            self.faults.on_command(self, command)
        parts = command.split(None, 1)  # header, parameters (SCPI: separated by white space)
        header = parts[0]
        for rx, is_scpi, handler in self._commands:
            if is_scpi:
                m = rx.fullmatch(header)
                if m is None:
                    continue
                groups = list(m.groups())
                args = parts[1] if len(parts) > 1 else None
            else:
                m = rx.fullmatch(command)
                if m is None:
                    continue
                groups = [g for k, g in enumerate(m.groups(), 1) if k != rx.groupindex.get("args")]
                args = m.groupdict().get("args")
            try:
                kwargs = {}
                if args is not None:
                    kwargs["args"] = args.strip()
                result = handler(*groups, **kwargs) if (groups or kwargs) else handler()
            except SimCommandError as exc:
                self.push_error(exc.code, exc.message)
                return None
            except TypeError as exc:  # wrong arity: parameter missing or unexpected
                self.push_error(-109 if "missing" in str(exc) else -108, f"Parameter error in {command!r}")
                log.debug("%s: %s -> %s", self.idn, command, exc)
                return None
            return None if result is None else str(result)
        self.push_error(-113, "Undefined header")
        log.debug("%s: undefined header %r", self.idn, command)
        return None

    # -- error queue and common commands ------------------------------------------------------

    def push_error(self, code: int, message: str) -> None:
        if len(self.errors) >= 20:
            self.errors[-1] = (-350, "Queue overflow")
            return
        self.errors.append((int(code), message))

    def _next_error(self) -> str:
        if not self.errors:
            return '+0,"No error"'
        code, message = self.errors.popleft()
        return f'{code:+d},"{message}"'

    def _cls(self) -> None:
        self.errors.clear()

    def _rst(self) -> None:
        self.reset_state()

    def reset_state(self) -> None:
        """Instrument-specific *RST (subclasses override)."""

    def close(self) -> None:
        """Called when the adapter closes the connection."""

    # -- helpers ------------------------------------------------------------------------------

    def fault_active(self, kind: str) -> bool:
        return self.faults is not None and self.faults.active(kind)

    def noise(self, sigma: float) -> float:
        return float(self.rng.normal(0.0, sigma)) if sigma > 0 else 0.0

    #: attributes (plain values, lists, dicts) that make up the instrument's settings
    _state_attrs: tuple[str, ...] = ()

    def state_dict(self) -> dict:
        """Noise RNG, error queue, pending replies and settings (plain Python values)."""
        return {
            "rng": self.rng.bit_generator.state,
            "errors": [list(e) for e in self.errors],
            "replies": list(self._replies),
            "attrs": {a: copy.deepcopy(getattr(self, a)) for a in self._state_attrs},
        }

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.errors = deque(tuple(e) for e in state["errors"])
        self._replies = deque(state.get("replies", []))
        for a, v in state.get("attrs", {}).items():
            setattr(self, a, copy.deepcopy(v))
