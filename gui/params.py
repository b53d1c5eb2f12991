"""Parameter editor: one input per declared parameter of a run kind (labml.runs.kinds.Param), with
units and validation.

The form is made from the kind's `Param` specs (type, unit, range, choices, default, help), the same
declaration `labml run KIND --help` and `labml sweep` read; values are typed as text and converted and
checked by the kind's own validation (the editor's `validator`, by default `Param.parse`; the GUI's
launcher passes `RunKind.parse`, so a protocol converts units such as "500 us" itself). Unlike a spin
box, a text field does not silently clamp: an out-of-range or malformed value is refused with a
one-line message naming the parameter, the value and what is allowed, and the field turns red.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from qtpy import QtWidgets

from labml.errors import UserError
from labml.runs.kinds import REQUIRED, Param

log = logging.getLogger(__name__)

ERROR_STYLE = "QLineEdit { background: #ffd6d6; }"


class ParameterError(ValueError):
    """Bad parameter values: `errors` maps parameter name -> message."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors.values()))


def _label(param: Param) -> str:
    """The form's label: the parameter's label (else its name) with its unit, unless the name
    already ends in it (field_step_mT)."""
    text = param.label or param.name
    if not param.unit or f"({param.unit})" in text or text.endswith(f"_{param.unit}"):
        return text
    return f"{text} ({param.unit})"


def _hint(param: Param) -> str:
    """The parameter's name (its command-line option), what the field takes in words ('float in mT,
    range [0, 36]') and its help."""
    return f"{param.name}: {param.allowed()}" + (f": {param.help}" if param.help else "")


def validate_value(name: str, param: Param, raw: Any) -> Any:
    """One field's text (or value) as the parameter's checked value (`Param.parse`); UserError naming
    the parameter, the value and what is allowed."""
    if isinstance(raw, str) and raw.strip() == "" and param.default is REQUIRED:
        raise UserError(f"parameter {name}: a value is required ({param.allowed()})")
    return param.parse(raw, "form")


def _default(param: Param) -> Any:
    return None if param.default is REQUIRED else param.default


class ParameterEditor(QtWidgets.QWidget):
    """Form of fields for the declared parameters of a run kind (a bool is a check box, a parameter
    with choices a combo box, anything else a text field).

    `values()` returns the validated values or raises ParameterError; the message is also shown in
    the editor's own red label (`message`), and each bad field is highlighted.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None,
                 validator: Callable[[str, Param, Any], Any] = validate_value) -> None:
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
        self.params: dict[str, Param] = {}
        self.fields: dict[str, QtWidgets.QWidget] = {}

    def set_parameters(self, params: Iterable[Param] | Mapping[str, Param],
                       values: dict[str, Any] | None = None) -> None:
        """Rebuild the form for `params` (Param specs, or a dict name -> Param), pre-filled with
        `values` (else each parameter's default)."""
        while self.form.rowCount():
            self.form.removeRow(0)
        items = params.values() if isinstance(params, Mapping) else params
        self.params = {p.name: p for p in items}
        self.fields = {}
        values = values or {}
        # rows under the kind's headings, in the order the headings first appear (as `labml run KIND
        # --help` groups them)
        order = list(dict.fromkeys(p.group for p in self.params.values()))
        group = ""
        for name, param in sorted(self.params.items(), key=lambda item: order.index(item[1].group)):
            if param.group and param.group != group:
                group = param.group
                heading = QtWidgets.QLabel(f"<b>{group}</b>")
                heading.setObjectName(f"group_{group}")
                self.form.addRow(heading)
            field = _field(param, values.get(name, _default(param)))
            field.setObjectName(f"param_{name}")
            field.setToolTip(_hint(param))
            self.fields[name] = field
            self.form.addRow(_label(param), field)
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
            except (ValueError, TypeError, KeyError, UserError) as exc:
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


def _field(param: Param, value: Any) -> QtWidgets.QWidget:
    """The input widget of one parameter, showing `value`."""
    if param.type == "bool" and param.choices is None:
        box = QtWidgets.QCheckBox()
        box.setChecked(bool(value))
        return box
    if param.choices is not None:
        combo = QtWidgets.QComboBox()
        combo.addItems([""] * param.optional + [str(c) for c in param.choices])  # "": None
        if value is not None:
            combo.setCurrentText(str(value))
        return combo
    line = QtWidgets.QLineEdit("" if value is None else _fmt(value))
    if param.allowed() != param.type:  # a plain text field needs no "str" hint
        line.setPlaceholderText(param.allowed())
    line.textEdited.connect(lambda _t, f=line: f.setStyleSheet(""))
    return line
