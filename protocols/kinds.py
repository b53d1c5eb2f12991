"""The protocols' run kinds (entry point ``protocols = "protocols.kinds:run_kinds"`` of the
``labml.kinds`` group, read by labml.runs.kinds): one kind ``protocol-<name>`` per protocol, its
declared parameters made from the protocol's pymeasure Parameters (type, units, range, choices,
default). Sweeps and the demo run protocols, so their run folders name these kinds too."""

from __future__ import annotations

from typing import Any

from protocols.base import RigProcedure
from protocols.runner import make_procedure


def protocol_plan(protocol: str, **params: Any) -> RigProcedure:
    """Factory of the run kinds ``protocol-<name>`` (labml.runs.kinds): `protocol` is fixed by the kind;
    the protocol itself is the plan."""
    return make_procedure(protocol, params)


def _declared(name: str, param: Any) -> Any:
    """labml.runs.kinds.Param of one pymeasure parameter of a protocol (type, units, range, choices)."""
    from labml.runs.kinds import Param
    from protocols._pymeasure import BooleanParameter, FloatParameter, IntegerParameter, ListParameter
    from protocols.parameters import FloatListParameter

    common = {"unit": getattr(param, "units", None) or "", "help": str(getattr(param, "description", "") or
                                                                      param.name)}
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
        params = tuple(_declared(name, p) for name, p in cls()._parameters.items())
        kinds.append(RunKind(f"protocol-{protocol}", "protocols.kinds:protocol_plan", params,
                             help=str(getattr(cls, "DESCRIPTION", "")), fixed={"protocol": protocol}))
    return kinds
