"""What every role adapter shares: turning driver failures into InstrumentFault, resynchronising a
connection after a failed transaction, reading the SCPI error queue, checking role options.

Role adapters (one per instrument model module in instruments.models) wrap one driver instance and
turn instrument misbehaviour into instruments.errors.InstrumentFault (timeouts, garbled replies,
error-queue entries, compliance, overload, no light), naming the instrument and what failed.
Limit violations raise instruments.errors.SafetyError *before* anything is written.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_range
from pyvisa.errors import VisaIOError

from instruments.errors import InstrumentFault, SafetyError
from instruments.models.registry import spec_for

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


@contextlib.contextmanager
def instrument_io(name: str, what: str, device: Any = None) -> Iterator[None]:
    """Turn communication failures into InstrumentFault naming `name` and `what` was done.

    VISA errors (timeout, connection lost) and unparsable replies (ValueError/IndexError/KeyError/
    TypeError raised while pymeasure casts a reply) become InstrumentFault; the original
    exception is chained as ``__cause__``. After such a failure the reply stream of `device`
    (the pymeasure instrument) is resynchronised (:func:`resync`), so a late or partial reply of
    the failed query is never read as the answer to the next one.
    """
    try:
        yield
    except InstrumentFault:
        raise
    except SafetyError:
        raise
    except VisaIOError as exc:
        resync(device, name)
        raise InstrumentFault(f"{name}: {what} failed: {exc.description or exc}") from exc
    except (ValueError, IndexError, TypeError, KeyError) as exc:
        resync(device, name)
        raise InstrumentFault(f"{name}: {what}: unreadable reply ({exc})") from exc


def resync(device: Any, name: str = "") -> None:
    """Discard whatever is pending on a driver's connection after a failed transaction: the
    adapter's input buffer (pymeasure ``flush_read_buffer``) and, where the connection offers it,
    a VISA device clear (``clear()``: the instrument drops its output queue). Best effort: a
    connection that is down stays down and the next transaction reports it."""
    adapter = getattr(device, "adapter", None)
    if adapter is None:
        return
    for action in ("flush_read_buffer", "clear"):
        target = adapter if action == "flush_read_buffer" else getattr(adapter, "connection", None)
        fn = getattr(target, action, None)
        if fn is None:
            continue
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - best effort; the next transaction tells
            log.debug("%s: %s after a failed transaction: %s", name, action, exc)


def raise_on_errors(instrument: Any, name: str, what: str) -> None:
    """Read the SCPI error queue (SYST:ERR?) and raise InstrumentFault if it holds errors."""
    with instrument_io(name, f"{what} (error query)", instrument):
        errors = instrument.check_errors()
    if errors:
        listed = "; ".join(f"{e[0]}, {e[1] if len(e) > 1 else ''}".strip() for e in errors)
        raise InstrumentFault(f"{name}: {what}: instrument error queue: {listed}")


def check_options(options: dict | None, allowed: Sequence[str], role: str) -> dict:
    options = dict(options or {})
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{role}: unknown option(s) {unknown}; allowed: {sorted(allowed)}")
    return options



def driver_for_model(cls: type, options: dict) -> type:
    """The driver class that the registration of role adapter `cls` (:func:`role_adapter`) gives
    for ``options["model"]`` (its first model when there is none); "model" is popped from
    `options`. ValueError naming `cls` and its models for a model it does not know."""
    spec = spec_for(cls)
    if spec is None:
        raise TypeError(f"{cls.__name__} is not a registered role adapter")
    driver = spec.driver_for(options)
    model = options.pop("model", spec.default_model)
    if driver is None:
        names = " or ".join(repr(name) for name in spec.drivers)
        raise ValueError(f"{cls.__name__}: model must be {names}, got {model!r}")
    return driver


def strict_control(get_command: str, set_command: str, doc: str, span: float) -> Any:
    """A pymeasure control whose setter raises ValueError outside [-span, span] before anything
    is written (``strict_range``). It is dynamic: a driver narrows the range to its configured
    limit with ``self.<name>_values = [-limit, limit]``."""
    return Instrument.control(
        get_command, set_command, doc, validator=strict_range, values=[-span, span], dynamic=True
    )
