"""Settings remembered between uses (QSettings, organisation "nanowire-labml", application "labml-gui").

Stored in the platform's usual place (on Linux ~/.config/nanowire-labml/labml-gui.conf). The
environment variable LABML_GUI_SETTINGS names an INI file to use instead (tests point it at a
temporary folder so they never touch the user's settings).
"""

from __future__ import annotations

import os

from qtpy import QtCore

ORG = "nanowire-labml"
APP = "labml-gui"


def make_settings() -> QtCore.QSettings:
    """The application's QSettings (an INI file at $LABML_GUI_SETTINGS when that is set)."""
    path = os.environ.get("LABML_GUI_SETTINGS")
    if path:
        return QtCore.QSettings(path, QtCore.QSettings.Format.IniFormat)
    return QtCore.QSettings(QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope, ORG, APP)
