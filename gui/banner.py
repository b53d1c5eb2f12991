"""The danger banner: a red strip across the top of the main window that says the coil is NOT
confirmed at 0 A.

It is not a modal dialog that one click sends away unread: it sits above every tab until the
operator presses its "Acknowledge" button, and comes back with the next alert. Alerts come from a
rig job whose run ended with ``coil_at_zero: false`` (or whose job process exited with the CLI's
EXIT_COIL_NOT_ZERO), and from the rig panel's own zero / disconnect when the CoilGuard could not
confirm zero (``instruments.safety.unconfirmed_zero_alerts``).
"""

from __future__ import annotations

import logging

from qtpy import QtCore, QtWidgets

log = logging.getLogger(__name__)

TITLE = "DANGER: coil NOT confirmed at 0 A"
HINT = "The magnet may still be energised. Check the bench; run `labml rig zero`."


class CoilAlertBanner(QtWidgets.QFrame):
    """Red banner listing the unacknowledged "coil NOT at zero" alerts (newest last).

    `raise_alert(text)` adds an alert and shows the banner; `acknowledge()` (the button) hides it
    and forgets the alerts it showed.
    """

    acknowledged = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("coil_alert_banner")
        self.setStyleSheet(
            "#coil_alert_banner { background: #b00000; border: 3px solid #ffd400; }"
            " #coil_alert_banner QLabel { color: white; background: transparent; }")
        self.title = QtWidgets.QLabel(TITLE)
        self.title.setStyleSheet("font-size: 22px; font-weight: bold;")
        self.message = QtWidgets.QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("font-size: 14px;")
        self.message.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hint = QtWidgets.QLabel(HINT)
        self.hint.setStyleSheet("font-size: 15px; font-weight: bold;")
        self.ack_button = QtWidgets.QPushButton("Acknowledge")
        self.ack_button.setToolTip("I have read this and will check the bench (hides the banner until the "
                                   "next alert)")
        self.ack_button.setStyleSheet(
            "QPushButton { background: white; color: #b00000; font-size: 15px; font-weight: bold;"
            " padding: 8px 18px; border-radius: 4px; }")
        self.ack_button.clicked.connect(self.acknowledge)
        text = QtWidgets.QVBoxLayout()
        text.addWidget(self.title)
        text.addWidget(self.message)
        text.addWidget(self.hint)
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(14, 8, 14, 8)
        lay.addLayout(text, 1)
        lay.addWidget(self.ack_button, 0, QtCore.Qt.AlignmentFlag.AlignVCenter)
        self.alerts: list[str] = []
        self.hide()

    def raise_alert(self, text: str) -> None:
        """Show the banner with `text` (which rig or job, last known setpoint, cause) added."""
        text = str(text).strip()
        if text and text not in self.alerts:
            self.alerts.append(text)
        self.message.setText("\n".join(self.alerts))
        log.critical("%s: %s", TITLE, text)
        self.show()
        self.raise_()

    def acknowledge(self) -> None:
        """The operator has read the alerts: hide the banner until the next one."""
        log.warning("coil alert acknowledged by the operator: %s", " | ".join(self.alerts))
        self.alerts.clear()
        self.message.setText("")
        self.hide()
        self.acknowledged.emit()
