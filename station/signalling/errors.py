"""Errors of reject signalling. All subclass `InspectionError`, so the CLI prints them as one line."""

from __future__ import annotations

from inspection.errors import InspectionError


class SignallingError(InspectionError):
    """Base for reject-output and reject-gate errors."""


class PlcUnavailableError(SignallingError):
    """The PLC cannot be reached or refuses the station's registers when the output is opened."""


class PlcConnectionLost(SignallingError):
    """A running PLC link failed: a result, alarm or heartbeat did not reach the PLC.

    The station treats this as an alarm and keeps rejecting fail-safe; `reconnect()` restores the link.
    """


class GateError(SignallingError):
    """The reject gate was used wrongly: unknown or duplicate sequence, or used after close()."""
