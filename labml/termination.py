"""Termination signals (SIGTERM, SIGHUP, SIGQUIT) unwound like Ctrl+C, so that every open rig's
``with`` block shuts it down (field to zero, outputs off, confirmed) before the process ends: used
by the CLI for its whole command and by the scripting API while a script holds a rig. A run's
engine installs its own handlers while it runs (abort with a resumable status)."""

from __future__ import annotations

import signal
import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM, SIGHUP or SIGQUIT outside a run: unwinds like Ctrl+C."""


def _raise_terminated(signum, frame):
    raise Terminated(signal.Signals(signum).name)


def terminate_like_ctrl_c(only_default: bool = False) -> dict:
    """Route the termination signals through Terminated (main thread only; elsewhere nothing is
    changed). `only_default`: leave alone a signal whose handler is not the default one (a
    script's own handler, or a signal it chose to ignore). Returns the handlers replaced, for
    :func:`give_back_handlers`."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for name in ("SIGTERM", "SIGHUP", "SIGQUIT"):
        sig = getattr(signal, name, None)
        if sig is None or (only_default and signal.getsignal(sig) is not signal.SIG_DFL):
            continue
        previous[sig] = signal.signal(sig, _raise_terminated)
    return previous


def give_back_handlers(previous: dict) -> None:
    """Put back the handlers :func:`terminate_like_ctrl_c` replaced (main thread only)."""
    if not previous or threading.current_thread() is not threading.main_thread():
        return
    for sig, old in previous.items():
        signal.signal(sig, old if old is not None else signal.SIG_DFL)
