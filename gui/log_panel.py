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

        self.handler = LogHandler()
        self.handler.setFormatter(logging.Formatter(FMT, datefmt="%H:%M:%S"))
        self.handler.setLevel(level)
        self.handler.connect(self.view.appendPlainText)
        root = logging.getLogger()
        root.addHandler(self.handler)
        if root.level > level or root.level == logging.NOTSET:
            root.setLevel(level)

    def _set_level(self, name: str) -> None:
        self.handler.setLevel(getattr(logging, name))

    def text(self) -> str:
        return self.view.toPlainText()

    def detach(self) -> None:
        """Remove the handler from the root logger (idempotent)."""
        logging.getLogger().removeHandler(self.handler)
