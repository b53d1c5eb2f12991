"""Test doubles shared by several test files (imported as ``from helpers import ...``)."""

from __future__ import annotations


class FakeClock:
    """An instruments.roles.Clock that never sleeps: `sleep(s)` advances `t` by s seconds and
    records s in `sleeps`; a negative sleep fails the test."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        assert s >= 0
        self.sleeps.append(s)
        self.t += s
