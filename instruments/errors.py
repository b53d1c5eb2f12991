"""Errors of the instrument layer. Every message names the problem (file, key, value, limit)."""


class ConfigError(ValueError):
    """A rig configuration or calibration file is invalid. Raised before anything connects."""


class SafetyError(ValueError):
    """A requested current, field, ramp rate or waveform is outside the configured limits.
    Raised before anything is written to an instrument (strict: never clamped)."""


class InstrumentFault(RuntimeError):
    """An instrument misbehaved: timeout, garbled reply, error in its queue, compliance, overload.

    ``kind`` (optional keyword) names the fault ("timeout", "garbled", ...) where the raiser knows
    it; the run engine counts faults per kind in run.json."""

    def __init__(self, *args: object, kind: str | None = None) -> None:
        super().__init__(*args)
        self.kind = kind


class RigLockedError(RuntimeError):
    """Another live process holds the rig's lock."""
