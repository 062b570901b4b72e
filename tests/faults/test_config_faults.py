"""A table of broken station configs: each must end `inspection station run` with ONE line on stderr
that names the problem, and exit code 2, before any item is inspected.

tests/integration/test_station_run.py has five such cases (a misspelt section, a negative rate, an
unknown source kind, max_batch 0, a text delay); this table covers the rest of the schema, files
that do not exist and ports that are taken. It calls the CLI's own main() in-process: the same code
path as the console script, without 40 interpreter start-ups.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
import yaml

from inspection.cli import main
from helpers.faults import small_line
from helpers.modbus_server import free_port

# (case id, change to the base config, text the one error line must contain)
CASES = [
    # wrong types
    ("station id is a number", {"station": {"id": 123}}, "station.id"),
    ("lot is a list", {"station": {"lot": ["L1"]}}, "station.lot"),
    ("rate is text", {"source": small_line(rate_hz="fast")}, "source.synthetic.rate_hz"),
    ("pool size is a float", {"source": small_line(pool_size=8.5)}, "pool_size"),
    ("metrics enabled is not a bool", {"metrics": {"enabled": "maybe"}}, "metrics.enabled"),
    ("loop is not a bool", {"source": {"kind": "folder", "path": ".", "loop": "often"}}, "loop"),
    ("gate is a number", {"gate": 5}, "gate"),
    ("source is a list", {"source": ["synthetic"]}, "source"),
    ("port is text", {"output": {"kind": "modbus", "port": "plc"}}, "output.modbus.port"),
    ("register block past the address space", {"output": {"kind": "modbus", "base_address": 70000}}, "output.modbus.base_address"),
    # unknown keys and values
    ("misspelt top-level key", {"bundel": "x"}, "unknown key 'bundel'"),
    ("misspelt key of a source kind", {"source": {"kind": "folder", "pathx": "."}}, "valid keys here are: kind, loop, path, rate_hz. Did you mean 'path'?"),
    ("source without a kind", {"source": {"path": "."}}, "'source' needs a valid 'kind:' (synthetic, folder, opencv, pylon)"),
    ("negative synthetic seed", {"source": small_line(seed=-1)}, "source.synthetic.seed"),
    ("misspelt nested key", {"source": {"kind": "synthetic", "rate": 100}}, "unknown key 'source.synthetic.rate'"),
    ("unknown station key", {"station": {"line": "3"}}, "unknown key 'station.line'"),
    ("unknown output kind", {"output": {"kind": "profinet"}}, "output"),
    ("unknown backend", {"backend": {"kind": "tflite"}}, "backend.kind"),
    ("unknown device", {"backend": {"device": "tpu"}}, "backend.device"),
    ("unknown precision", {"backend": {"precision": "int4"}}, "backend.precision"),
    ("unknown archive policy", {"archive": {"on_failure": "ignore"}}, "archive.on_failure"),
    # impossible values
    ("defect rate above 1", {"source": small_line(defect_rate=1.5)}, "defect_rate"),
    ("zero rate", {"source": small_line(rate_hz=0)}, "rate_hz"),
    ("rate beyond any line", {"source": small_line(rate_hz=1e7)}, "rate_hz"),
    ("pool too small", {"source": small_line(pool_size=2)}, "pool_size"),
    ("frame too narrow", {"source": small_line(width_px=8)}, "width_px"),
    ("batch beyond the limit", {"batching": {"max_batch": 5000}}, "max_batch"),
    ("negative batching wait", {"batching": {"max_wait_ms": -1}}, "max_wait_ms"),
    ("empty inference queue", {"batching": {"queue_size": 0}}, "queue_size"),
    ("negative gate window", {"gate": {"window_ms": -5}}, "window_ms"),
    ("rate x delay overfills the belt", {"source": small_line(rate_hz=100_000), "gate": {"transport_delay_ms": 600_000}},
     "100,000 items between camera and gate"),
    ("port out of range", {"output": {"kind": "modbus", "port": 70000}}, "output.modbus.port"),
    ("unit id out of range", {"output": {"kind": "modbus", "unit_id": 300}}, "unit_id"),
    ("zero PLC timeout", {"output": {"kind": "modbus", "timeout_s": 0}}, "timeout_s"),
    ("zero heartbeat", {"output": {"kind": "modbus", "heartbeat_interval_s": 0}}, "heartbeat_interval_s"),
    ("negative pass sample", {"archive": {"pass_sample_every": -1}}, "pass_sample_every"),
    ("empty archive queue", {"archive": {"max_queue": 0}}, "max_queue"),
    ("zero threads", {"backend": {"threads": 0}}, "backend.threads"),
    ("empty station id", {"station": {"id": ""}}, "station.id"),
    ("lot name with a newline", {"station": {"lot": "LOT-1\nverdict: pass"}}, "station.lot"),
    ("metrics port zero", {"metrics": {"enabled": True, "port": 0}}, "metrics.port"),
    # missing things
    ("no bundle key", {"bundle": None}, "bundle"),
    ("bundle folder missing", {"bundle": "no/such/bundle"}, "does not exist"),
    ("replay folder missing", {"source": {"kind": "folder", "path": "no/such/frames"}}, "no/such/frames"),
    ("video file missing", {"source": {"kind": "opencv", "target": "no/such/video.mp4"}}, "no/such/video.mp4"),
    ("camera emulator folder missing", {"source": {"kind": "pylon", "emulator_images": "no/such/images"}},
     "no/such/images"),
    ("lot too long for the PLC", {"station": {"lot": "L" * 40}, "output": {"kind": "modbus", "port": "{PLC_PORT}"}},
     "does not fit the PLC register map"),
    ("cuda without a GPU", {"backend": {"device": "cuda"}}, "CUDA"),
    # ports
    ("nothing listens on the PLC port", {"output": {"kind": "modbus", "port": "{FREE_PORT}", "timeout_s": 0.3}},
     "not reachable"),
    ("PLC port taken by something that is no PLC", {"output": {"kind": "modbus", "port": "{MUTE_PORT}", "timeout_s": 0.3}},
     "did not answer"),
    ("metrics port in use", {"metrics": {"enabled": True, "port": "{BUSY_PORT}"}}, "metrics.port"),
]


@pytest.fixture(scope="module")
def ports():
    """A free port, one taken by a listener that never answers, and a Modbus server for the lot case."""
    from helpers.modbus_server import ModbusTestServer

    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        mute.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(mute.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    plc = ModbusTestServer().start()
    yield {"{FREE_PORT}": free_port(), "{MUTE_PORT}": mute.getsockname()[1], "{BUSY_PORT}": mute.getsockname()[1],
           "{PLC_PORT}": plc.port}
    stop.set()
    plc.stop()
    for conn in accepted:
        conn.close()
    mute.close()


def _fill(value, ports: dict):
    if isinstance(value, dict):
        return {k: _fill(v, ports) for k, v in value.items()}
    return ports.get(value, value) if isinstance(value, str) else value


def test_the_table_is_large_enough():
    assert len(CASES) >= 30 and len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("change, needle", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_broken_config_is_one_line_and_exit_2(change, needle, tiny_bundle, tmp_path, ports, capsys, monkeypatch):
    import torch

    if change.get("backend", {}).get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.chdir(tmp_path)  # relative paths in the table resolve inside the test's folder
    config = {"bundle": str(tiny_bundle), "source": small_line(), **_fill(change, ports)}
    config = {k: v for k, v in config.items() if v is not None}
    path = Path("station.yaml")
    path.write_text(yaml.safe_dump(config))
    code = main(["station", "run", str(path), "--frames", "1", "--json"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert needle in lines[0], lines[0]


def test_a_key_given_twice_is_an_error_not_last_wins(tmp_path, capsys):
    from inspection.cli import main

    config = tmp_path / "twice.yaml"
    config.write_text("station:\n  id: a\n  lot: L\nsource:\n  kind: synthetic\nsource:\n  kind: folder\n")
    assert main(["station", "run", str(config)]) == 2
    err = capsys.readouterr().err
    assert "'source' appears twice at line 6" in err and len(err.strip().splitlines()) == 1, err


def test_yaml_anchors_and_merge_keys_still_load(tmp_path, tiny_bundle):
    """The duplicate-key check must not refuse `<<:` merges, nor an explicit key that overrides a merged one."""
    from station.config import load_station_config

    config = tmp_path / "anchors.yaml"
    config.write_text(f"station: &who {{id: a, lot: L}}\nbundle: {tiny_bundle}\n"
                      "source: {<<: {kind: synthetic, rate_hz: 50, defect_rate: 0.1}, rate_hz: 20}\n")
    loaded = load_station_config(config)
    assert (loaded.source.rate_hz, loaded.source.defect_rate, loaded.station.id) == (20, 0.1, "a")
