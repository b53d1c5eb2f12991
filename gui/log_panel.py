"""Log panel: every log record of the application, shown in the GUI thread.

Reuses pymeasure's thread-safe `LogHandler` (a logging.Handler that emits a Qt signal, so records
logged from worker threads arrive in the GUI thread). The handler is attached to the root logger
on construction and removed again by `detach()` (called when the main window closes), so tests do
not leak handlers.
"""

from __future__ import annotations

import logging

from pymeasure.display.log import LogHandler
from qtpy import QtWidgets

FMT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class LogPanel(QtWidgets.QWidget):
    """Read-only log view with a level filter. Keeps the last `max_lines` lines."""

    def __init__(self, parent: QtWidgets.QWidget | None = None, level: int = logging.INFO,
                 max_lines: int = 5000) -> None:
        super().__init__(parent)
        self.view = QtWidgets.QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(max_lines)
        self.level = QtWidgets.QComboBox()
        self.level.setObjectName("log_level")
        self.level.addItems(["DEBUG", "INFO", "WARNING", "ERROR"])
        self.level.setCurrentText(logging.getLevelName(level))
        self.level.currentTextChanged.connect(self._set_level)
        clear = QtWidgets.QPushButton("Clear")
        clear.clicked.connect(self.view.clear)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Level:"))
        top.addWidget(self.level)
        top.addStretch(1)
        top.addWidget(clear)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.view)

        self._restore: list[tuple[logging.Logger | logging.Handler, int]] = []  # undone by detach()
        self.handler = LogHandler()
        self.handler.setFormatter(logging.Formatter(FMT, datefmt="%H:%M:%S"))
        self.handler.setLevel(level)
        self.handler.connect(self.view.appendPlainText)
        root = logging.getLogger()
        root.addHandler(self.handler)
        if root.level > level or root.level == logging.NOTSET:
            root.setLevel(level)

    def _set_level(self, name: str) -> None:
        """Show records at `name` and above from now on. DEBUG (the coil's ramp steps, one record per
        step) needs the root logger at DEBUG: it is lowered, and every other root handler that had no
        level of its own keeps the old one, so the terminal does not start printing them too."""
        level = getattr(logging, name)
        self.handler.setLevel(level)
        root = logging.getLogger()
        if root.getEffectiveLevel() > level:
            old = root.getEffectiveLevel()
            for h in root.handlers:
                if h is not self.handler and h.level == logging.NOTSET:
                    h.setLevel(old)
                    self._restore.append((h, logging.NOTSET))
            self._restore.append((root, root.level))
            root.setLevel(level)

    def set_level(self, name: str) -> None:
        """Select a level in the selector (as a user would)."""
        self.level.setCurrentText(name)

    def text(self) -> str:
        return self.view.toPlainText()

    def detach(self) -> None:
        """Remove the handler from the root logger and undo the level changes of the selector
        (idempotent)."""
        logging.getLogger().removeHandler(self.handler)
        for obj, level in reversed(self._restore):
            obj.setLevel(level)
        self._restore.clear()
