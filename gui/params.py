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

from qtpy import QtCore, QtWidgets

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
    """The form's label: the parameter's label (else its name); its unit stands beside the field."""
    return param.label or param.name


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
    with choices a drop-down, a path a text field with a folder/file picker, anything else a text
    field; the unit beside the field), under the kind's group headings in its declared order.

    Each field is validated as it changes (the kind's own parse): a bad one turns red and its
    reason shows under it (a label named ``param_error_<name>``); `valid` says whether every field
    is good and `validity_changed(bool)` tells the launcher, which disables Queue and Dry run.
    `values()` returns the validated values or raises ParameterError; the message is also shown in
    the editor's own red label (`message`), and each bad field is highlighted.
    """

    validity_changed = QtCore.Signal(bool)

    def __init__(self, parent: QtWidgets.QWidget | None = None,
                 validator: Callable[[str, Param, Any], Any] = validate_value) -> None:
        super().__init__(parent)
        self.errors: dict[str, str] = {}
        self.error_labels: dict[str, QtWidgets.QLabel] = {}
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
        self.errors = {}
        self.error_labels = {}
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
            error = QtWidgets.QLabel("")
            error.setObjectName(f"param_error_{name}")
            error.setWordWrap(True)
            error.setStyleSheet("color: #b00000;")
            error.hide()
            self.error_labels[name] = error
            cell = QtWidgets.QWidget()
            column = QtWidgets.QVBoxLayout(cell)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(1)
            column.addLayout(_row(param, field))
            column.addWidget(error)
            self.form.addRow(_label(param), cell)
            _on_change(field, lambda _=None, n=name: self.check(n))
        self.message.setText("")
        for name in self.fields:
            self.check(name, emit=False)
        self.validity_changed.emit(self.valid)

    def label_text(self, name: str) -> str:
        """The label of a field's row."""
        cell = self.fields[name].parentWidget()
        label = self.form.labelForField(cell)
        return label.text() if label is not None else ""

    def unit_text(self, name: str) -> str:
        """The unit shown beside a field ("" when none is)."""
        unit = self.findChild(QtWidgets.QLabel, f"param_unit_{name}")
        return unit.text() if unit is not None else ""

    @property
    def valid(self) -> bool:
        return not self.errors

    def check(self, name: str, emit: bool = True) -> bool:
        """Validate one field now (as it is typed): red field and its reason under it when bad."""
        field = self.fields[name]
        was = self.valid
        try:
            self.validator(name, self.params[name], self.raw_values_of(name))
            self.errors.pop(name, None)
            self.error_labels[name].hide()
            field.setStyleSheet("")
        except (ValueError, TypeError, KeyError, UserError) as exc:
            self.errors[name] = str(exc)
            self.error_labels[name].setText(str(exc))
            self.error_labels[name].show()
            field.setStyleSheet(ERROR_STYLE)
        if emit and self.valid != was:
            self.validity_changed.emit(self.valid)
        return name not in self.errors

    def raw_values_of(self, name: str) -> Any:
        field = self.fields[name]
        if isinstance(field, QtWidgets.QCheckBox):
            return field.isChecked()
        if isinstance(field, QtWidgets.QComboBox):
            return field.currentText()
        return field.text()

    def raw_values(self) -> dict[str, Any]:
        return {name: self.raw_values_of(name) for name in self.fields}

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
    return line


def _on_change(field: QtWidgets.QWidget, slot: Callable[..., None]) -> None:
    """Call `slot` whenever the field's value changes (typed or set by the program)."""
    if isinstance(field, QtWidgets.QCheckBox):
        field.toggled.connect(slot)
    elif isinstance(field, QtWidgets.QComboBox):
        field.currentTextChanged.connect(slot)
    else:
        field.textChanged.connect(slot)


def _row(param: Param, field: QtWidgets.QWidget) -> QtWidgets.QHBoxLayout:
    """The field, its folder/file picker for a path, and its unit beside it."""
    row = QtWidgets.QHBoxLayout()
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(field, 1)
    if param.path and isinstance(field, QtWidgets.QLineEdit):
        pick = QtWidgets.QPushButton("Browse...")
        pick.setObjectName(f"param_browse_{param.name}")
        pick.clicked.connect(lambda: _pick_path(field, param.path))
        row.addWidget(pick)
    if param.unit and not param.name.endswith(f"_{param.unit}"):  # field_step_mT says it already
        unit = QtWidgets.QLabel(param.unit)
        unit.setObjectName(f"param_unit_{param.name}")
        unit.setMinimumWidth(24)
        row.addWidget(unit)
    return row


def _pick_path(field: QtWidgets.QLineEdit, kind: str) -> None:
    if kind == "dir":
        path = QtWidgets.QFileDialog.getExistingDirectory(field, "Choose a folder", field.text())
    else:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(field, "Choose a file", field.text())
    if path:
        field.setText(path)
