"""ModbusPlcOutput against a real pymodbus TCP server on 127.0.0.1 (tests/helpers/modbus_server.py)."""

from __future__ import annotations

import socket
import time

import pytest

from helpers.modbus_server import ModbusTestServer, free_port
from inspection.errors import ConfigError
from station.signalling import (
    ItemResult,
    ModbusPlcOutput,
    PlcConnectionLost,
    PlcUnavailableError,
    RejectGate,
)
from station.signalling import register_map as reg

pytestmark = pytest.mark.timeout(30)

BASE = 100  # a non-zero base address, so an offset bug cannot hide behind address 0
LOT, RECIPE = "LOT-2024-0042", "tablets-10mg v3"


@pytest.fixture
def server():
    srv = ModbusTestServer(size=256).start()
    yield srv
    srv.stop()


@pytest.fixture
def plc(server):
    output = ModbusPlcOutput(server.host, server.port, lot=LOT, recipe=RECIPE, base_address=BASE)
    output.open()
    yield output
    output.close()


def regs(server: ModbusTestServer, offset: int, count: int = 1) -> list[int]:
    return server.registers(BASE + offset, count)


def result(sequence: int) -> ItemResult:
    if sequence % 4 == 1:
        return ItemResult(sequence, reject=True, verdict="reject", defect_class_code=3, late=False, error=False)
    if sequence % 4 == 2:
        return ItemResult(sequence, reject=True, verdict="fault", defect_class_code=0, late=True, error=True)
    return ItemResult(sequence, reject=False, verdict="pass", defect_class_code=0, late=False, error=False)


def test_open_writes_identification_and_status_and_ready_follows(server, plc) -> None:
    # Raw register values checked once by hand: "LO" = 0x4C4F, so the map is not only self-consistent.
    assert regs(server, reg.LOT) == [0x4C4F]
    assert reg.decode_ascii(regs(server, reg.LOT, reg.LOT_REGISTERS)) == LOT
    assert reg.decode_ascii(regs(server, reg.RECIPE, reg.RECIPE_REGISTERS)) == RECIPE
    assert regs(server, reg.MAP_VERSION_REG, 5) == [reg.MAP_VERSION, 0, 0, 0, 0]
    assert server.registers(0, BASE) == [0] * BASE  # nothing written below the base address

    plc.set_ready(True)
    assert regs(server, reg.READY) == [1]
    plc.set_ready(False)
    assert regs(server, reg.READY) == [0]


def test_twenty_results_land_in_order_with_data_written_before_the_handshake(server, plc) -> None:
    server.set_registers(BASE + reg.RESULT_COUNTER, [41])  # the PLC still holds an earlier run's count
    plc.close()
    plc.open()  # ... and the station continues from it, so the first new result is a visible change
    server.clear_writes()
    first_sequence = 70_000  # above 65535: the 32-bit sequence must use both words
    for sequence in range(first_sequence, first_sequence + 20):
        plc.publish(result(sequence))

    data_address, handshake_address = BASE + reg.RESULT_FIRST, BASE + reg.HANDSHAKE_FIRST
    writes = server.writes
    assert len(writes) == 40
    assert [w.address for w in writes] == [data_address, handshake_address] * 20
    assert all(a.time_s <= b.time_s for a, b in zip(writes, writes[1:]))
    for index, (data, handshake) in enumerate(zip(writes[::2], writes[1::2])):
        sequence = first_sequence + index
        expected = result(sequence)
        assert reg.join_u32(data.values[0], data.values[1]) == sequence
        assert data.values[2:] == (
            int(expected.reject),
            reg.VERDICT_CODES[expected.verdict],
            expected.defect_class_code,
            int(expected.error),
            int(expected.late),
        )
        counter = 41 + index + 1
        assert handshake.values == (counter, counter & 1)
    # What a PLC reads after the last handshake is the last result, complete.
    assert regs(server, reg.RESULT_SEQUENCE_HI, 2) == [(first_sequence + 19) >> 16, (first_sequence + 19) & 0xFFFF]
    assert regs(server, reg.RESULT_COUNTER) == [61]
    assert plc.results_published == 20 and plc.results_failed == 0


def test_heartbeat_increments_and_wraps(server, plc) -> None:
    plc.heartbeat()
    plc.heartbeat()
    assert regs(server, reg.HEARTBEAT) == [2]
    plc._heartbeat = 0xFFFF  # skip 65533 beats (a minute of writes) to reach the wrap
    plc.heartbeat()
    assert regs(server, reg.HEARTBEAT) == [0]


def test_alarm_sets_line_stop_with_reason_code_and_clears(server, plc) -> None:
    plc.set_alarm(True, "missed_gate: item 17 reached the gate 0.05 s late")
    assert regs(server, reg.ALARM, 2) == [1, reg.AlarmReason.MISSED_GATE]
    plc.set_alarm(True, "someone pressed the button")
    assert regs(server, reg.ALARM, 2) == [1, reg.AlarmReason.OTHER]
    plc.set_alarm(False)
    assert regs(server, reg.ALARM, 2) == [0, 0]


def test_open_with_nothing_listening_fails_fast_with_one_line() -> None:
    port = free_port()
    output = ModbusPlcOutput("127.0.0.1", port, timeout_s=0.5)
    start_s = time.monotonic()
    with pytest.raises(PlcUnavailableError) as caught:
        output.open()
    assert time.monotonic() - start_s < 0.6
    assert str(caught.value) == (
        f"PLC at 127.0.0.1:{port} is not reachable (connection refused). "
        "Check the PLC address in the config, the network and that the PLC is running."
    )
    assert not output.connected


def test_lot_that_does_not_fit_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at most 32 ASCII"):
        ModbusPlcOutput("127.0.0.1", 1, lot="L" * 33)


def test_plc_goes_away_then_comes_back_on_the_same_port(server, plc) -> None:
    plc.set_ready(True)
    plc.publish(result(1))
    server.stop()  # the PLC goes away mid-run

    with pytest.raises(PlcConnectionLost, match=f"PLC at 127.0.0.1:{server.port}"):
        plc.publish(result(2))
    assert not plc.connected
    with pytest.raises(PlcConnectionLost):  # fails fast while down, and is counted too
        plc.publish(result(3))
    with pytest.raises(PlcConnectionLost):
        plc.set_alarm(True, "plc_communication: results 2 and 3 not signalled")
    assert (plc.results_published, plc.results_failed) == (1, 2)
    assert plc.reconnect(max_wait_s=0.2) is False

    server.start()  # back on the same port, registers cleared like a rebooted PLC
    assert plc.reconnect(max_wait_s=3.0) is True
    assert plc.connected and plc.reconnects == 1
    # The wanted state is re-written without being asked again.
    assert reg.decode_ascii(regs(server, reg.LOT, reg.LOT_REGISTERS)) == LOT
    assert reg.decode_ascii(regs(server, reg.RECIPE, reg.RECIPE_REGISTERS)) == RECIPE
    assert regs(server, reg.READY) == [1]
    assert regs(server, reg.ALARM, 2) == [1, reg.AlarmReason.PLC_COMMUNICATION]

    plc.publish(result(4))
    plc.publish(result(5))
    assert reg.join_u32(*regs(server, reg.RESULT_SEQUENCE_HI, 2)) == 5
    assert regs(server, reg.RESULT_REJECT, 2) == [1, 1]
    assert regs(server, reg.RESULT_COUNTER, 2) == [2, 0]  # continued from the rebooted PLC's 0
    assert (plc.results_published, plc.results_failed) == (3, 2)


def test_reject_gate_over_modbus_signals_each_item_once_and_survives_a_plc_restart(server, plc) -> None:
    gate = RejectGate(plc, transport_delay_ms=30, gate_window_ms=500, reconnect_max_wait_s=0.5)
    now = time.monotonic()
    for sequence in range(5):
        gate.track(sequence, now)
        gate.resolve(sequence, result(sequence))
    wait_for(lambda: gate.counts().published == 5)
    server.stop()
    gate.track(5, time.monotonic())  # times out with the PLC away: a failed publish and an alarm
    wait_for(lambda: gate.counts().publish_failures == 1)
    server.start()
    wait_for(lambda: plc.connected, "the gate's background reconnect did not restore the link")
    gate.track(6, time.monotonic())
    gate.resolve(6, result(6))
    gate.close()

    counts = gate.counts()
    assert (counts.tracked, counts.published, counts.publish_failures, counts.timed_out) == (7, 6, 1, 1)
    assert counts.balanced
    assert reg.join_u32(*regs(server, reg.RESULT_SEQUENCE_HI, 2)) == 6
    assert regs(server, reg.ALARM, 2) == [1, reg.AlarmReason.PLC_COMMUNICATION]


def wait_for(predicate, message: str = "condition not reached", timeout_s: float = 5.0) -> None:
    deadline_s = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline_s, message
        time.sleep(0.01)


def test_register_block_outside_the_plc_memory_names_base_address_and_unit_id() -> None:
    with ModbusTestServer(size=64) as small_plc:
        output = ModbusPlcOutput(small_plc.host, small_plc.port, base_address=40)
        with pytest.raises(PlcUnavailableError, match=r"refused.*base_address \(40\)"):
            output.open()
        assert not output.connected


def test_peer_that_accepts_but_never_answers_fails_within_the_timeout() -> None:
    # A hung PLC, or something other than a Modbus server, on the port.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        output = ModbusPlcOutput("127.0.0.1", port, timeout_s=0.3)
        start_s = time.monotonic()
        with pytest.raises(PlcUnavailableError, match="accepted the connection but did not answer") as caught:
            output.open()
        assert 0.25 < time.monotonic() - start_s < 1.5
        assert "\n" not in str(caught.value)
