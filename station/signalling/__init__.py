"""Reject signalling: item results to the line (PLC over Modbus TCP, or simulated), fired at the gate."""

from station.signalling.errors import GateError, PlcConnectionLost, PlcUnavailableError, SignallingError
from station.signalling.modbus_plc import ModbusPlcOutput
from station.signalling.output import ItemResult, PublishRecord, ResultOutput, SimulatedRejector
from station.signalling.register_map import AlarmReason
from station.signalling.reject_gate import (
    ClockPosition,
    GateCounts,
    GateEvent,
    Outcome,
    PositionSource,
    RejectGate,
    Resolution,
)

__all__ = [
    "AlarmReason",
    "ClockPosition",
    "GateCounts",
    "GateError",
    "GateEvent",
    "ItemResult",
    "ModbusPlcOutput",
    "Outcome",
    "PlcConnectionLost",
    "PlcUnavailableError",
    "PositionSource",
    "PublishRecord",
    "RejectGate",
    "Resolution",
    "ResultOutput",
    "SignallingError",
    "SimulatedRejector",
]
