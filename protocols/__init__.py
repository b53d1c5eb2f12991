"""Scripted measurement protocols (pymeasure Procedures) on a nanowire rig.

    from protocols import get_protocol, protocol_names
    from protocols.runner import run_protocol
    out = run_protocol("depinning-calibration", {"wire": 0, "reads": 200}, rig="sim")
    out["results"]["H0"], out["run_dir"]

Protocols are looked up by name (the `labml run PROTOCOL` name); their classes are imported lazily.
"""

from __future__ import annotations

import importlib

from labml.errors import UserError, did_you_mean

#: protocol name -> "module:Class"
PROTOCOLS: dict[str, str] = {
    "hysteresis": "protocols.hysteresis:Hysteresis",
    "coil-calibration": "protocols.coil:CoilCalibration",
    "depinning-calibration": "protocols.depinning:DepinningCalibration",
    "characterise-wires": "protocols.depinning:CharacteriseWires",
    "infer-on-rig": "protocols.inference:InferOnRig",
}


def protocol_names() -> list[str]:
    return list(PROTOCOLS)


def get_protocol(name: str):
    """The Procedure class of protocol `name`; unknown names raise UserError listing the known ones."""
    try:
        target = PROTOCOLS[name]
    except KeyError:
        raise UserError(f"unknown protocol {name!r}{did_you_mean(name, PROTOCOLS)}; known protocols: "
                        f"{', '.join(PROTOCOLS)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)
