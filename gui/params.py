"""Parameter editor: one input per pymeasure Parameter of a protocol, with units and validation.

Values are typed as text and validated by the protocol's own pymeasure Parameter objects
(FloatParameter/IntegerParameter check type and [minimum, maximum], ListParameter the choices),
so the editor never re-implements a protocol's limits. Unlike a spin box, a text field does not
silently clamp: an out-of-range or malformed value is refused with a message naming the parameter,
the value and the problem, and the field turns red.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

from pymeasure.experiment import parameters as pm
from qtpy import QtWidgets

from labml.errors import UserError

log = logging.getLogger(__name__)

ERROR_STYLE = "QLineEdit { background: #ffd6d6; }"


class ParameterError(ValueError):
    """Bad parameter values: `errors` maps parameter name -> message."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors.values()))


def _label(name: str, param: pm.Parameter) -> str:
    units = getattr(param, "units", None)
    text = param.name or name
    return f"{text} ({units})" if units else text


def _range_hint(param: pm.Parameter) -> str:
    lo, hi = getattr(param, "minimum", None), getattr(param, "maximum", None)
    if isinstance(param, pm.ListParameter):
        return "one of " + ", ".join(map(str, param.choices))
    if lo is not None and hi is not None:
        return f"{lo:g} to {hi:g}"
    return ""


def validate_value(name: str, param: pm.Parameter, raw: Any) -> Any:
    """Parse and validate one value with the pymeasure Parameter; ValueError names name, value, problem."""
    probe = copy.deepcopy(param)
    if isinstance(raw, str):
        raw = raw.strip()
        if raw == "" and param.default in ("", [], ()):
            return param.default
        if raw == "" and not isinstance(param, pm.ListParameter):
            raise ValueError(f"{name}: a value is required")
    try:
        probe.value = raw
    except (ValueError, TypeError) as exc:
        hint = _range_hint(param)
        units = f" {param.units}" if getattr(param, "units", None) else ""
        msg = f"{name} = {raw!r}{units} refused: {exc}"
        if hint and hint not in msg:
            msg += f" (allowed: {hint}{units})"
        raise ValueError(msg) from None
    return probe.value


class ParameterEditor(QtWidgets.QWidget):
    """Form of text fields for a dict name -> pymeasure Parameter.

    `values()` returns the validated values or raises ParameterError; the message is also shown in
    the editor's own red label (`message`), and each bad field is highlighted.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None,
                 validator: Callable[[str, pm.Parameter, Any], Any] = validate_value) -> None:
        super().__init__(parent)
        self.validator = validator
        self.form = QtWidgets.QFormLayout()
        self.message = QtWidgets.QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #b00000; font-weight: bold;")
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(self.form)
        lay.addWidget(self.message)
        self.params: dict[str, pm.Parameter] = {}
        self.fields: dict[str, QtWidgets.QWidget] = {}

    def set_parameters(self, params: dict[str, pm.Parameter], values: dict[str, Any] | None = None) -> None:
        """Rebuild the form for `params`, pre-filled with `values` (else each parameter's value/default)."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.params = dict(params)
        self.fields = {}
        values = values or {}
        for name, param in self.params.items():
            value = values.get(name, param.value if param.is_set() else param.default)
            if isinstance(param, pm.BooleanParameter):
                field: QtWidgets.QWidget = QtWidgets.QCheckBox()
                field.setChecked(bool(value))
            elif isinstance(param, pm.ListParameter):
                field = QtWidgets.QComboBox()
                field.addItems([str(c) for c in param.choices])
                if value is not None:
                    field.setCurrentText(str(value))
            else:
                field = QtWidgets.QLineEdit("" if value is None else _fmt(value))
                field.setToolTip(_range_hint(param))
                field.setPlaceholderText(_range_hint(param))
                field.textEdited.connect(lambda _t, f=field: f.setStyleSheet(""))
            field.setObjectName(f"param_{name}")
            self.fields[name] = field
            self.form.addRow(_label(name, param), field)
        self.message.setText("")

    def raw_values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, field in self.fields.items():
            if isinstance(field, QtWidgets.QCheckBox):
                out[name] = field.isChecked()
            elif isinstance(field, QtWidgets.QComboBox):
                out[name] = field.currentText()
            else:
                out[name] = field.text()
        return out

    def set_raw_value(self, name: str, text: str) -> None:
        field = self.fields[name]
        if isinstance(field, QtWidgets.QLineEdit):
            field.setText(text)
        elif isinstance(field, QtWidgets.QComboBox):
            field.setCurrentText(text)
        elif isinstance(field, QtWidgets.QCheckBox):
            field.setChecked(text.lower() in ("1", "true", "yes", "on"))

    def values(self) -> dict[str, Any]:
        """Validated values; raises ParameterError (and shows it) if any field is bad."""
        errors: dict[str, str] = {}
        out: dict[str, Any] = {}
        for name, raw in self.raw_values().items():
            field = self.fields[name]
            try:
                out[name] = self.validator(name, self.params[name], raw)
                if isinstance(field, QtWidgets.QLineEdit):
                    field.setStyleSheet("")
            except (ValueError, TypeError, UserError) as exc:
                errors[name] = str(exc)
                if isinstance(field, QtWidgets.QLineEdit):
                    field.setStyleSheet(ERROR_STYLE)
        if errors:
            self.show_error("; ".join(errors.values()))
            raise ParameterError(errors)
        self.message.setText("")
        return out

    def show_error(self, text: str) -> None:
        self.message.setStyleSheet("color: #b00000; font-weight: bold;")
        self.message.setText(text)
        log.warning("parameters refused: %s", text)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    return str(value)
