"""A real pymodbus TCP server on 127.0.0.1, run in a background thread, standing in for a PLC.

Every write is recorded with a monotonic timestamp, and the holding registers can be read (and preset)
by the test. `stop()` closes the listener and every client connection, like a PLC that goes away;
`start()` again brings it back on the same port, with its registers cleared (a rebooted PLC) unless
`keep_registers=True`.

It uses the SimDevice `action` hook, the datastore API of pymodbus 3.16 (the old
ModbusSequentialDataBlock/ModbusDeviceContext are deprecated there and no longer have a setValues
that could be subclassed).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

_WRITE_CODES = {6, 16, 23}


@dataclass(frozen=True, slots=True)
class WriteRecord:
    time_s: float  # time.monotonic() when the server handled the request
    function_code: int
    address: int
    values: tuple[int, ...]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ModbusTestServer:
    def __init__(self, port: int | None = None, size: int = 256, device_id: int = 1) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.size = size
        self.device_id = device_id
        self.writes: list[WriteRecord] = []
        self._registers = [0] * size
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusTcpServer | None = None
        self._thread: threading.Thread | None = None

    # --- what the test reads ---------------------------------------------------------------------

    def registers(self, address: int, count: int = 1) -> list[int]:
        with self._lock:
            return self._registers[address : address + count]

    def set_registers(self, address: int, values: list[int]) -> None:
        """Preset registers as a PLC's own program would."""
        with self._lock:
            self._registers[address : address + len(values)] = values

    def writes_to(self, address: int) -> list[WriteRecord]:
        with self._lock:
            return [w for w in self.writes if w.address == address]

    def clear_writes(self) -> None:
        with self._lock:
            self.writes.clear()

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self, keep_registers: bool = False, timeout_s: float = 5.0) -> ModbusTestServer:
        if self._thread is not None:
            raise RuntimeError("server already running")
        if not keep_registers:
            with self._lock:
                self._registers = [0] * self.size
        started = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(started, failure), name="modbus-test-server", daemon=True)
        self._thread.start()
        if not started.wait(timeout_s):
            raise RuntimeError(f"Modbus test server on port {self.port} did not start in {timeout_s} s")
        if failure:
            self._thread.join(timeout_s)
            self._thread = None
            raise RuntimeError(f"Modbus test server on port {self.port} failed to start: {failure[0]}")
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._thread is None or self._loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        future.result(timeout_s)
        self._thread.join(timeout_s)
        self._thread = None

    def __enter__(self) -> ModbusTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the server thread -----------------------------------------------------------------------

    def _run(self, started: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:  # reported to start(), which raises it in the test thread
            failure.append(exc)
            started.set()
            loop.close()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    async def _listen(self) -> None:
        block = SimData(0, count=self.size, values=0, datatype=DataType.REGISTERS)
        device = SimDevice(self.device_id, simdata=[block], action=self._action)
        self._server = ModbusTcpServer(device, address=(self.host, self.port))
        await self._server.serve_forever(background=True)

    async def _shutdown(self) -> None:
        assert self._server is not None
        await self._server.shutdown()  # closes the listener and every client connection
        await asyncio.sleep(0.02)  # let the transports finish closing before the loop stops
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
        asyncio.get_running_loop().call_soon(asyncio.get_running_loop().stop)

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        # Our list is the truth: reads see presets from the test, writes land in it and in the log.
        with self._lock:
            if function_code in _WRITE_CODES and set_values is not None:
                values = tuple(int(v) for v in set_values)
                self.writes.append(WriteRecord(time.monotonic(), function_code, address, values))
                self._registers[address : address + len(values)] = list(values)
            offset = address - start_address
            current_registers[offset : offset + count] = self._registers[address : address + count]
        return None
