"""The one progress style of the command line: a tqdm bar on stderr, for every long command
(`labml run`, `labml train`, `labml resume`, `labml sweep`).

tqdm rather than rich: it is one small pure-Python package with no dependencies (rich pulls in
pygments and markdown-it and costs ~100 ms more to import), it writes to stderr by default, and
`tqdm.write` puts a message above a live bar without breaking it.

When a bar is drawn: stderr is a terminal, or ``LABML_PROGRESS=1`` forces it (a log file, a
test); ``LABML_PROGRESS=0`` turns it off; `labml resume --no-progress` too. Stdout never carries a
bar, so `--json` output stays one clean JSON line.
"""

from __future__ import annotations

import os
import sys
from typing import Any

#: The environment variable that forces the bar on ("1") or off ("0"); unset: only on a terminal.
ENV = "LABML_PROGRESS"


def enabled(stream: Any = None) -> bool:
    """Whether a bar is drawn on `stream` (default stderr): $LABML_PROGRESS, else a terminal."""
    forced = os.environ.get(ENV, "").strip().lower()
    if forced in ("1", "yes", "true", "always"):
        return True
    if forced in ("0", "no", "false", "never"):
        return False
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


_active: list[Any] = []  # the bars now drawn (so `say` writes above them)


def say(message: str) -> None:
    """One line on stderr, above the bar if one is drawn."""
    if _active:
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)
    else:
        print(message, file=sys.stderr, flush=True)


class ProgressBar:
    """Steps done of `total` with rate and time left (tqdm), on stderr.

    `start(done, total, label)`, `update(done)`, `close(done, status)`: done is the absolute count of
    steps (a resumed run starts part-way). Updates are throttled by tqdm (at most 10 a second)."""

    def __init__(self, stream: Any = None, unit: str = "step") -> None:
        self.stream = stream or sys.stderr
        self.unit = unit
        self._bar: Any = None

    def start(self, done: int, total: int | None, label: str) -> None:
        from tqdm import tqdm

        self.close_quietly()
        cols, rows = _size(self.stream)
        self._bar = tqdm(total=total, initial=done, desc=label, unit=self.unit, file=self.stream,
                         ncols=cols, nrows=rows, mininterval=0.1, leave=True,
                         bar_format="{desc}: {n_fmt}/{total_fmt} {percentage:3.0f}%|{bar}| "
                         "[elapsed {elapsed}, left {remaining}{postfix}]" if total else None)
        _active.append(self._bar)

    def update(self, done: int, force: bool = False) -> None:
        if self._bar is None:
            return
        self._bar.update(done - self._bar.n)
        if force:
            self._bar.refresh()

    def close(self, done: int, status: str) -> None:
        if self._bar is None:
            return
        self._bar.update(done - self._bar.n)
        self._bar.set_postfix_str(status, refresh=False)  # drawn once, by close
        self.close_quietly()

    def close_quietly(self) -> None:
        if self._bar is not None:
            self._bar.close()
            if self._bar in _active:
                _active.remove(self._bar)
            self._bar = None


def _size(stream: Any) -> tuple[int, int]:
    """The terminal's (columns, lines); 100 x 24 where unknown (a file, a pipe, a terminal that reports
    0 x 0, on which tqdm would draw nothing)."""
    try:
        size = os.get_terminal_size(stream.fileno())
        return size.columns or 100, size.lines or 24
    except (AttributeError, OSError, ValueError):
        return 100, 24


def format_clock(seconds: float) -> str:
    """H:MM:SS (a time left or elapsed on a progress line)."""
    s = int(round(max(0.0, seconds)))
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"
