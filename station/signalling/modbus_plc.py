"""Results, alarm, ready and heartbeat to a PLC over Modbus TCP (holding registers, see register_map).

One synchronous pymodbus client guarded by a lock: the reject gate's scheduler publishes while the
station sends heartbeats and alarms from other threads. Any failed call (exception, exception
response, no answer within timeout_s) closes the socket and marks the output disconnected; from then
on calls fail fast with PlcConnectionLost and nothing talks to the PLC until `reconnect()` has
restored the link AND re-written lot, recipe, ready, alarm and heartbeat. pymodbus would otherwise
reconnect silently inside the next request and the PLC could see results without the state around them.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from station.signalling import register_map as reg
from station.signalling.errors import PlcConnectionLost, PlcUnavailableError
from station.signalling.output import ItemResult

log = logging.getLogger(__name__)
# pymodbus logs each failed request on stderr itself ("No response received ..."); the station reports
# PLC trouble as alarms and one error line. Raise its level again to debug a PLC connection.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 2.0


class _WriteFailed(Exception):
    """Internal: one Modbus request failed; carries a one-line reason."""

    def __init__(self, reason: str, refused: bool) -> None:
        super().__init__(reason)
        self.refused = refused  # the PLC answered with an exception response (vs. no answer at all)


class ModbusPlcOutput:
    def __init__(
        self,
        host: str,
        port: int,
        unit_id: int = 1,
        timeout_s: float = 0.5,
        lot: str = "",
        recipe: str = "",
        base_address: int = 0,
    ) -> None:
        if not 0 <= base_address <= 0xFFFF - reg.MAP_SIZE:
            raise ValueError(f"base_address {base_address} leaves no room for {reg.MAP_SIZE} registers")
        self.host, self.port, self.unit_id, self.timeout_s = host, port, unit_id, timeout_s
        self.base_address = base_address
        # Validated now, so a lot that does not fit fails at configuration time, not at the first item.
        self._text_registers = reg.encode_ascii(lot, reg.LOT_REGISTERS, "lot") + reg.encode_ascii(
            recipe, reg.RECIPE_REGISTERS, "recipe"
        )
        self.lot, self.recipe = lot, recipe
        # retries=0: a dead PLC must cost one timeout_s, not (retries + 1) of them, on the reject path.
        self._client = ModbusTcpClient(host, port=port, timeout=timeout_s, retries=0)
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._connected = False
        self._backoff_s = _BACKOFF_FIRST_S
        # Wanted state, kept while disconnected and re-written on reconnect.
        self._ready = False
        self._alarm_active = False
        self._alarm_reason = ""
        self._heartbeat = 0
        self._result_counter = 0
        self.results_published = 0
        self.results_failed = 0
        self.reconnects = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._connected

    # --- lifecycle -------------------------------------------------------------------------------

    def open(self) -> None:
        self._closing.clear()
        sock = self._open_socket()
        with self._lock:
            self._restore(sock)

    def reconnect(self, max_wait_s: float) -> bool:
        """Try to restore the link, backing off exponentially (kept across calls), for up to max_wait_s."""
        deadline_s = time.monotonic() + max_wait_s
        while not self._closing.is_set():
            if self._connected:
                return True
            try:
                # The connect may block up to timeout_s (an unplugged cable): not under the lock, so
                # publishes meanwhile fail fast instead of queueing behind it.
                sock = self._open_socket()
                with self._lock:
                    if self._connected or self._closing.is_set():  # another caller won, or close() ran
                        sock.close()
                        return self._connected
                    self._restore(sock)
            except PlcUnavailableError as exc:
                log.debug("reconnect failed: %s", exc)
            else:
                self.reconnects += 1
                self._backoff_s = _BACKOFF_FIRST_S
                log.info("PLC at %s reconnected; state re-written", self.address)
                return True
            remaining_s = deadline_s - time.monotonic()
            if remaining_s <= 0:
                return False
            self._closing.wait(min(self._backoff_s, remaining_s))
            self._backoff_s = min(2 * self._backoff_s, _BACKOFF_MAX_S)
        return False

    def close(self) -> None:
        """Best effort: tell the PLC the station is no longer ready, then drop the link."""
        self._closing.set()
        with self._lock:
            if self._connected:
                try:
                    self._write(reg.READY, [0])
                except _WriteFailed:
                    pass
            self._ready = False
            self._connected = False
            self._client.close()

    # --- the ResultOutput calls ------------------------------------------------------------------

    def publish(self, result: ItemResult) -> None:
        high, low = reg.split_u32(result.sequence)
        data = [high, low, int(result.reject), reg.VERDICT_CODES[result.verdict]]
        data += [result.defect_class_code, int(result.error), int(result.late)]
        with self._lock:
            counter = (self._result_counter + 1) & 0xFFFF
            try:
                self._require_link(f"result {result.sequence}")
                self._write(reg.RESULT_FIRST, data)
                # Separate, later request: the PLC acts on the counter, so the data must be complete first.
                self._write(reg.HANDSHAKE_FIRST, [counter, counter & 1])
            except PlcConnectionLost:
                self.results_failed += 1
                raise
            except _WriteFailed as exc:
                self.results_failed += 1
                raise self._lost(f"result {result.sequence}", exc) from None
            self._result_counter = counter
            self.results_published += 1

    def set_alarm(self, active: bool, reason: str = "") -> None:
        with self._lock:
            self._alarm_active, self._alarm_reason = active, reason if active else ""
            self._send("the alarm", reg.ALARM, [int(active), reg.alarm_reason_code(active, reason)])

    def set_ready(self, ready: bool) -> None:
        with self._lock:
            self._ready = ready
            self._send("the ready flag", reg.READY, [int(ready)])

    def heartbeat(self) -> None:
        with self._lock:
            self._heartbeat = (self._heartbeat + 1) & 0xFFFF
            self._send("the heartbeat", reg.HEARTBEAT, [self._heartbeat])

    # --- internals -------------------------------------------------------------------------------

    def _send(self, what: str, offset: int, values: list[int]) -> None:
        self._require_link(what)
        try:
            self._write(offset, values)
        except _WriteFailed as exc:
            raise self._lost(what, exc) from None

    def _require_link(self, what: str) -> None:
        if not self._connected:
            raise PlcConnectionLost(
                f"PLC at {self.address} is disconnected; {what} was not delivered. "
                "The station keeps rejecting and reconnects in the background."
            )

    def _lost(self, what: str, exc: _WriteFailed) -> PlcConnectionLost:
        self._drop()
        return PlcConnectionLost(
            f"PLC at {self.address} stopped answering ({exc}); {what} was not delivered. "
            "Check the PLC and the network; the station reconnects in the background."
        )

    def _drop(self) -> None:
        self._connected = False
        # A fresh socket on reconnect: a late answer to a timed-out request must not be read as the next one's.
        self._client.close()

    def _open_socket(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except ConnectionRefusedError:
            raise self._unavailable("connection refused") from None
        except TimeoutError:
            raise self._unavailable(f"no answer within {self.timeout_s:g} s") from None
        except OSError as exc:
            raise self._unavailable(exc.strerror or str(exc)) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _restore(self, sock: socket.socket) -> None:
        """Under the lock: adopt `sock`, continue the PLC's result counter, write lot/recipe, then status."""
        self._drop()
        # Connected by hand because pymodbus's connect() logs the OSError and returns only False,
        # losing the reason the operator needs; the sync client then uses this socket as its own.
        self._client.socket = sock
        try:
            # Continue from the PLC's counter so the first new result is always a change it can see.
            self._result_counter = self._read(reg.RESULT_COUNTER)
            self._write(reg.TEXT_FIRST, self._text_registers)
            status = [reg.MAP_VERSION, int(self._ready), self._heartbeat, int(self._alarm_active)]
            status.append(reg.alarm_reason_code(self._alarm_active, self._alarm_reason))
            self._write(reg.STATUS_FIRST, status)
        except _WriteFailed as exc:
            self._drop()
            if not exc.refused:
                raise PlcUnavailableError(
                    f"PLC at {self.address} accepted the connection but did not answer ({exc}). "
                    f"Check that this is the PLC's Modbus TCP server and that unit_id {self.unit_id} is right."
                ) from None
            raise PlcUnavailableError(
                f"PLC at {self.address} does not accept the station's registers ({exc}). "
                f"Check unit_id ({self.unit_id}) and base_address ({self.base_address}) against the PLC's "
                f"register map ({reg.MAP_SIZE} holding registers)."
            ) from None
        self._connected = True

    def _unavailable(self, reason: str) -> PlcUnavailableError:
        return PlcUnavailableError(
            f"PLC at {self.address} is not reachable ({reason}). "
            "Check the PLC address in the config, the network and that the PLC is running."
        )

    def _write(self, offset: int, values: list[int]) -> None:
        address = self.base_address + offset
        try:
            if len(values) == 1:
                response = self._client.write_register(address, values[0], device_id=self.unit_id)
            else:
                response = self._client.write_registers(address, values, device_id=self.unit_id)
        except (ModbusException, OSError) as exc:
            raise _WriteFailed(f"write to register {address}: {_one_line(exc)}", refused=False) from None
        if response is None or response.isError():
            raise _WriteFailed(f"write to register {address} refused: {_one_line(response)}", refused=True)

    def _read(self, offset: int) -> int:
        address = self.base_address + offset
        try:
            response = self._client.read_holding_registers(address, count=1, device_id=self.unit_id)
        except (ModbusException, OSError) as exc:
            raise _WriteFailed(f"read of register {address}: {_one_line(exc)}", refused=False) from None
        if response is None or response.isError():
            raise _WriteFailed(f"read of register {address} refused: {_one_line(response)}", refused=True)
        return int(response.registers[0])


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
