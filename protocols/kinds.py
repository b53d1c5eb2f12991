"""The protocols' run kinds (entry point ``protocols = "protocols.kinds:run_kinds"`` of the
``labml.kinds`` group, read by labml.runs.kinds): one kind ``protocol-<name>`` per protocol, its
declared parameters made from the protocol's pymeasure Parameters (type, units, range, choices,
default; the one place they are derived), its text converted by the protocol itself
(`protocol_value`: units). The GUI's forms, sweeps and the demo build protocols through these kinds,
so their run folders name them too."""

from __future__ import annotations

from typing import Any

from protocols.base import RigProcedure
from protocols.runner import make_procedure


def protocol_plan(protocol: str, **params: Any) -> RigProcedure:
    """Factory of the run kinds ``protocol-<name>`` (labml.runs.kinds): `protocol` is fixed by the kind;
    the protocol itself is the plan."""
    return make_procedure(protocol, params)


def protocol_value(protocol: str, name: str, raw: Any) -> Any:
    """One parameter of `protocol` given as text ("500 us", "3 mT") or a value, converted and checked
    by the protocol's own pymeasure Parameter (protocols.parameters.coerce): the ``text`` converter
    of the kinds ``protocol-<name>`` (labml.runs.kinds.RunKind.parse; the GUI's form). Empty text is
    the default of a text or list parameter whose default is empty; UserError naming the parameter."""
    from labml.errors import UserError, did_you_mean
    from protocols import get_protocol
    from protocols.parameters import coerce

    known = get_protocol(protocol)()._parameters
    if name not in known:
        raise UserError(f"protocol {protocol!r} has no parameter {name!r}{did_you_mean(name, known)}; its "
                        f"parameters: {', '.join(sorted(known))}")
    param = known[name]
    if isinstance(raw, str) and raw.strip() == "":
        if param.default in ("", [], ()):
            return param.default
        raise UserError(f"protocol {protocol!r}, parameter {name!r}: a value is required")
    return coerce(protocol, name, param, raw)


#: heading of the parameters every rig protocol shares (RigProcedure's: the random seeds)
COMMON_GROUP = "Random seeds"


def _in_declared_order(cls: type) -> list[tuple[str, str]]:
    """(name, group) of a protocol's pymeasure parameters in the order its classes declare them: the
    protocol's own first (group: its GROUP, default "Measurement"), then those it inherits from
    RigProcedure (COMMON_GROUP). pymeasure itself lists them alphabetically."""
    from protocols._pymeasure import Parameter

    own, common = [], []
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, Parameter):
                target = common if klass is RigProcedure else own
                if name not in (n for n, _ in own + common):
                    target.append((name, COMMON_GROUP if klass is RigProcedure else
                                   str(getattr(cls, "GROUP", "Measurement"))))
    return own + common


def _declared(name: str, param: Any, group: str = "", path: str = "") -> Any:
    """labml.runs.kinds.Param of one pymeasure parameter of a protocol (type, units, range, choices)."""
    from labml.runs.kinds import Param
    from protocols._pymeasure import BooleanParameter, FloatParameter, IntegerParameter, ListParameter
    from protocols.parameters import FloatListParameter

    common = {"unit": getattr(param, "units", None) or "", "label": str(param.name),
              "help": str(getattr(param, "description", "") or param.name), "group": group, "path": path}
    if param.default is not None:
        common["default"] = param.default
    else:
        common["optional"] = True
    if isinstance(param, BooleanParameter):
        return Param(name, "bool", **common)
    if isinstance(param, IntegerParameter):
        return Param(name, "int", low=param.minimum, high=param.maximum, **common)
    if isinstance(param, FloatParameter):
        return Param(name, "float", low=param.minimum, high=param.maximum, **common)
    if isinstance(param, FloatListParameter):
        return Param(name, "list", item="float", low=param.minimum, high=param.maximum, **common)
    if isinstance(param, ListParameter):
        return Param(name, "str", choices=tuple(param.choices), **common)
    return Param(name, "str", **common)


def run_kinds() -> list:
    """One run kind ``protocol-<name>`` per protocol (provider of labml.runs.kinds); sweeps and the demo
    run protocols, so their run folders name these kinds too."""
    from labml.runs.kinds import RunKind
    from protocols import PROTOCOLS, get_protocol

    kinds = []
    for protocol in PROTOCOLS:
        cls = get_protocol(protocol)
        known = cls()._parameters
        paths = dict(getattr(cls, "PATH_PARAMETERS", {}))
        params = tuple(_declared(name, known[name], group, paths.get(name, ""))
                       for name, group in _in_declared_order(cls) if name in known)
        kinds.append(RunKind(f"protocol-{protocol}", "protocols.kinds:protocol_plan", params,
                             help=str(getattr(cls, "DESCRIPTION", "")), fixed={"protocol": protocol},
                             text="protocols.kinds:protocol_value"))
    return kinds
