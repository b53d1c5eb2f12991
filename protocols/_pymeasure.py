"""pymeasure's experiment classes, imported without its start-up warnings about optional extras
(ZMQ, cloudpickle, IPython) that this application does not use."""

from __future__ import annotations

import logging

_logger = logging.getLogger("pymeasure.experiment")
_level = _logger.level
_logger.setLevel(logging.ERROR)
try:
    from pymeasure.experiment import (  # noqa: E402
        BooleanParameter,
        FloatParameter,
        IntegerParameter,
        ListParameter,
        Parameter,
        Procedure,
        Results,
    )
finally:
    _logger.setLevel(_level)

__all__ = [
    "BooleanParameter",
    "FloatParameter",
    "IntegerParameter",
    "ListParameter",
    "Parameter",
    "Procedure",
    "Results",
]
