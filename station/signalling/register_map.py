"""The holding-register map the station writes to the PLC (Modbus TCP, function codes 3/6/16).

Every address here is an OFFSET from the output's `base_address`, so the block can sit anywhere in
the PLC's memory. All registers are written by the station; the PLC only reads them.
docs/plc_register_map.md is the same map as a table for the PLC programmer; keep the two in step
and bump MAP_VERSION whenever an offset or meaning changes.

Handshake: for each item the station first writes the result block (RESULT_SEQUENCE_HI ..
RESULT_LATE) in one request, and only then, in a second request, RESULT_COUNTER and RESULT_TOGGLE.
A Modbus server applies one request as a whole, so a PLC that acts on a change of RESULT_COUNTER
always reads a complete result.
"""

from __future__ import annotations

from enum import IntEnum

from inspection.errors import ConfigError

MAP_VERSION = 1

# --- Station status block: written at connect in one request -------------------------------------
MAP_VERSION_REG = 0  # layout version (MAP_VERSION); the PLC can refuse to run on a mismatch
READY = 1  # 1 while the station inspects and can decide; 0 = do not feed items
HEARTBEAT = 2  # +1 per heartbeat, wraps 65535 -> 0; the PLC's watchdog stops the line when it freezes
ALARM = 3  # 1 = station demands a line stop; stays 1 until the station clears it
ALARM_REASON = 4  # AlarmReason code; 0 when ALARM is 0
STATUS_FIRST, STATUS_COUNT = MAP_VERSION_REG, 5
# 5..7 reserved (left untouched)

# --- Result block: one request per item, written BEFORE the handshake -----------------------------
RESULT_SEQUENCE_HI = 8  # item sequence number, high word (big-endian word order; wraps at 2**32)
RESULT_SEQUENCE_LO = 9  # item sequence number, low word
RESULT_REJECT = 10  # 1 = fire the reject gate for this item, 0 = pass
RESULT_VERDICT = 11  # VERDICT_CODES: 0 pass, 1 reject, 2 uncertain, 3 fault
RESULT_DEFECT_CLASS = 12  # 0 = none; n = class_names[n - 1] of the model bundle
RESULT_ERROR = 13  # 1 = no trustworthy decision (fault: camera, model, timeout)
RESULT_LATE = 14  # 1 = decision came after the item's deadline (always rejected)
RESULT_FIRST, RESULT_COUNT = RESULT_SEQUENCE_HI, 7

# --- Handshake: one request per item, written LAST ----------------------------------------------
RESULT_COUNTER = 15  # +1 per result, wraps 65535 -> 0; a change means "new complete result"
RESULT_TOGGLE = 16  # low bit of RESULT_COUNTER, for PLCs that prefer to edge-detect a bit
HANDSHAKE_FIRST, HANDSHAKE_COUNT = RESULT_COUNTER, 2
# 17..19 reserved

# --- Identification: ASCII, 2 chars per register (first char in the high byte), NUL padded ------
LOT = 20
LOT_REGISTERS = 16  # 32 characters
RECIPE = LOT + LOT_REGISTERS  # 36
RECIPE_REGISTERS = 16  # 32 characters
TEXT_FIRST, TEXT_COUNT = LOT, LOT_REGISTERS + RECIPE_REGISTERS

MAP_SIZE = RECIPE + RECIPE_REGISTERS  # 52 registers in all

VERDICT_CODES = {"pass": 0, "reject": 1, "uncertain": 2, "fault": 3}


class AlarmReason(IntEnum):
    """ALARM_REASON codes. `set_alarm(True, "missed_gate: item 17 ...")` maps the text before ':'."""

    NONE = 0
    OTHER = 1  # a reason text that names none of the codes below
    MISSED_GATE = 2  # an item reached the gate before it could be signalled: it may have passed
    PLC_COMMUNICATION = 3  # results did not reach the PLC
    DECISION_TIMEOUT = 4  # decisions are not keeping up with the line
    CAMERA = 5
    MODEL = 6
    ARCHIVE = 7  # audit archive cannot keep up or the disk failed
    SHUTDOWN = 8  # station stopped with items still between camera and gate


def alarm_reason_code(active: bool, reason: str) -> int:
    if not active:
        return int(AlarmReason.NONE)
    key = reason.split(":", 1)[0].strip().upper()
    member = AlarmReason.__members__.get(key)
    return int(member) if member not in (None, AlarmReason.NONE) else int(AlarmReason.OTHER)


def encode_ascii(text: str, registers: int, field: str) -> list[int]:
    """`text` as `registers` registers, 2 chars each, high byte first, NUL padded."""
    if not text.isascii() or len(text) > 2 * registers:
        raise ConfigError(
            f"{field} {text!r} does not fit the PLC register map: expected at most {2 * registers} "
            f"ASCII characters; shorten it (the map reserves {registers} registers)"
        )
    raw = text.encode("ascii").ljust(2 * registers, b"\0")
    return [(raw[i] << 8) | raw[i + 1] for i in range(0, len(raw), 2)]


def decode_ascii(values: list[int]) -> str:
    raw = b"".join(bytes(((v >> 8) & 0xFF, v & 0xFF)) for v in values)
    return raw.rstrip(b"\0").decode("ascii")


def split_u32(value: int) -> tuple[int, int]:
    """(high word, low word) of `value` modulo 2**32."""
    value &= 0xFFFFFFFF
    return value >> 16, value & 0xFFFF


def join_u32(high: int, low: int) -> int:
    return (high << 16) | low
