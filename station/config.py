"""The station configuration a person writes (YAML), validated strictly: a misspelt key is an error."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from inspection.validation import StrictModel, parse_model
from inspection.yaml_file import read_yaml_mapping
from station.signalling.register_map import MAP_SIZE


class StationIdentity(StrictModel):
    id: str = Field(default="station-1", min_length=1)
    lot: str = Field(default="LOT-0001", min_length=1)
    operator: str = Field(default="operator", min_length=1)
    recipe: str = ""

    @field_validator("id", "lot", "operator", "recipe")
    @classmethod
    def _one_printable_line(cls, value: str) -> str:
        # These go into every audit record, the PLC's registers and report file names: a newline or
        # tab there would make a CSV row or a log line say something else.
        if not value.isprintable():
            raise ValueError(f"{value!r} holds a control character (newline, tab, ...); write it as one line of printable text")
        return value


class BackendSettings(StrictModel):
    kind: Literal["auto", "onnxruntime", "torch", "tensorrt"] = "onnxruntime"  # auto: the fastest measured here
    device: Literal["cpu", "cuda"] = "cpu"
    # auto: the fastest measured of what the device and bundle offer (int8 only with its parity gate passed)
    precision: Literal["auto", "fp32", "fp16", "int8"] = "fp32"
    threads: int | None = Field(default=None, ge=1, le=256)
    # ONNX Runtime only: let idle worker threads spin. Off by default at a station, where capture and
    # the reject gate need the cores too (measured: benchmarks/results/station_cpu.json).
    spin_wait: bool = False


class SyntheticSourceSettings(StrictModel):
    kind: Literal["synthetic"] = "synthetic"
    rate_hz: float | None = Field(default=None, gt=0, le=100_000)
    defect_rate: float = Field(default=0.02, ge=0, le=1)
    pool_size: int = Field(default=256, ge=8, le=100_000)
    width_px: int = Field(default=640, ge=32, le=8192)
    height_px: int = Field(default=480, ge=32, le=8192)
    seed: int = Field(default=0, ge=0)
    product: str = "mixed"  # one product of inspection.synthetic.products for every item, or mixed

    @field_validator("product")
    @classmethod
    def _known_product(cls, value: str) -> str:
        from inspection.synthetic.products import PRODUCT_NAMES

        if value not in PRODUCT_NAMES:
            raise ValueError(f"unknown product; expected one of {', '.join(PRODUCT_NAMES)}")
        return value


class FolderSourceSettings(StrictModel):
    kind: Literal["folder"]
    path: Path
    rate_hz: float | None = Field(default=None, gt=0, le=100_000)
    loop: bool = False


class OpenCvSourceSettings(StrictModel):
    kind: Literal["opencv"]
    target: str  # a video file, a camera index ("0") or a stream URL
    rate_hz: float | None = Field(default=None, gt=0, le=100_000)


class PylonSourceSettings(StrictModel):
    kind: Literal["pylon"]
    serial: str | None = None  # None: the first camera found
    exposure_us: float | None = Field(default=None, gt=0)
    gain_db: float | None = Field(default=None, ge=0)
    frame_rate_hz: float | None = Field(default=None, gt=0)
    hardware_trigger: bool = False
    trigger_line: str = "Line1"
    grab_timeout_ms: int = Field(default=1000, ge=1)
    emulator_images: Path | None = None  # feeds pylon's camera emulator from a folder (tests, demos)


SourceSettings = Annotated[
    SyntheticSourceSettings | FolderSourceSettings | OpenCvSourceSettings | PylonSourceSettings,
    Field(discriminator="kind"),
]


class BatchingSettings(StrictModel):
    max_batch: int = Field(default=8, ge=1, le=4096)
    max_wait_ms: float = Field(default=2.0, ge=0, le=1000)
    queue_size: int = Field(default=64, ge=1, le=100_000)
    # Threads that resize frames to the model's input. 1: the capture thread does it (2-core stations:
    # more threads only compete with inference); a GPU station with spare cores needs several.
    prepare_threads: int = Field(default=1, ge=1, le=64)
    # Worker processes that prepare the frames instead (0: none). Threads share one interpreter, so on
    # many cores processes can prepare more frames a second; each frame costs the station process a
    # hand-over (and a copy, for sources that cannot build frames in shared memory: the video source).
    # Frames alive at once then live in /dev/shm. See the README's GPU section for what was measured.
    prepare_processes: int = Field(default=0, ge=0, le=64)
    # Threads that each take a batch and run the model, so that one batch's inference overlaps the
    # next one's gathering and the last one's decisions. None: 2 for ONNX Runtime on a CPU (each with
    # its share of the cores; measured faster on 2 cores, see the README's Station section), 1 for
    # torch and TensorRT, whose backends run one batch at a time.
    inference_workers: int | None = Field(default=None, ge=1, le=16)

    @model_validator(mode="after")
    def _one_way_to_prepare(self) -> "BatchingSettings":
        if self.prepare_processes and self.prepare_threads > 1:
            raise ValueError(f"batching.prepare_threads {self.prepare_threads} and prepare_processes "
                             f"{self.prepare_processes}: choose one (set the other to its default: threads 1, processes 0)")
        return self


class GateSettings(StrictModel):
    transport_delay_ms: float = Field(default=250.0, ge=0, le=600_000)
    window_ms: float = Field(default=20.0, ge=0, le=60_000)
    # realtime: the gate's thread runs at SCHED_FIFO priority (root or CAP_SYS_NICE), so a busy CPU
    # delays it less; refused at start where not permitted (no silent fallback).
    thread_priority: Literal["normal", "realtime"] = "normal"


class SimulatedOutputSettings(StrictModel):
    kind: Literal["simulated"] = "simulated"


class ModbusOutputSettings(StrictModel):
    kind: Literal["modbus"]
    host: str = "127.0.0.1"
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=247)
    base_address: int = Field(default=0, ge=0, le=0xFFFF - MAP_SIZE)  # the first of the map's holding registers
    timeout_s: float = Field(default=0.5, gt=0, le=60)
    heartbeat_interval_s: float = Field(default=0.5, gt=0, le=60)


OutputSettings = Annotated[SimulatedOutputSettings | ModbusOutputSettings, Field(discriminator="kind")]


class ArchiveSettings(StrictModel):
    path: Path | None = None  # None: nothing archived (replay and benchmarks only)
    pass_sample_every: int = Field(default=100, ge=0)  # archive every Nth pass; 0: none
    max_queue: int = Field(default=4096, ge=1)
    # Records arriving within this many ms of the first one waiting are committed together: every
    # commit costs two fsyncs, and one per record cost the station 3-4% of its throughput.
    group_commit_ms: float = Field(default=50.0, ge=0, le=1000)
    # "fast" (ISA-L level-1 deflate, about 0.57 of a camera frame's raw size, 2.3 ms) or "none"
    # (stored, raw size, 0.9 ms): both lossless PNG (inspection.image_io.PNG_COMPRESSIONS).
    png_compression: Literal["fast", "none"] = "fast"
    # A failed archive writer stops the line or only alarms; either way no pass is released after it.
    on_failure: Literal["stop_line", "alarm"] = "stop_line"


class MetricsSettings(StrictModel):
    enabled: bool = False
    host: str = "127.0.0.1"  # localhost by default: metrics say how the line runs
    port: int = Field(default=9108, ge=1, le=65535)


class StationConfig(StrictModel):
    station: StationIdentity = StationIdentity()
    bundle: Path
    backend: BackendSettings = BackendSettings()
    source: SourceSettings = SyntheticSourceSettings()
    batching: BatchingSettings = BatchingSettings()
    gate: GateSettings = GateSettings()
    output: OutputSettings = SimulatedOutputSettings()
    archive: ArchiveSettings = ArchiveSettings()
    metrics: MetricsSettings = MetricsSettings()

    @model_validator(mode="after")
    def _rate_fits_the_gate(self) -> "StationConfig":
        rate = getattr(self.source, "rate_hz", None)
        if rate and self.gate.transport_delay_ms and rate * self.gate.transport_delay_ms / 1000 > 100_000:
            raise ValueError("rate_hz x transport_delay_ms puts more than 100,000 items between camera and gate")
        return self

    @model_validator(mode="after")
    def _concurrent_inference_needs_onnxruntime(self) -> "StationConfig":
        workers = self.batching.inference_workers
        if workers is not None and workers > 1 and self.backend.kind != "onnxruntime":
            raise ValueError(f"batching.inference_workers {workers} needs backend.kind onnxruntime (the torch and "
                             "TensorRT backends run one batch at a time); set it to 1 or leave it out")
        return self


def load_station_config(path: Path) -> StationConfig:
    """Read and validate a station YAML; relative paths in it are relative to the file."""
    path = Path(path)
    raw = read_yaml_mapping(path, "station config", "see station/examples/ for the settings: station:, bundle:, source:, ...")
    config = parse_model(StationConfig, raw, str(path))
    return _resolve_paths(config, path.parent)


def _is_file_target(target: str) -> bool:
    """A video file, as opposed to a camera index ("0", "-1"), a stream URL (rtsp://...) or a GStreamer
    pipeline ("... ! appsink")."""
    return not target.strip().lstrip("-").isdigit() and "://" not in target and "!" not in target


def _resolve_paths(config: StationConfig, base: Path) -> StationConfig:
    def resolve(p: Path | None) -> Path | None:
        if p is None or p.is_absolute():
            return p
        return base / p

    updates: dict = {"bundle": resolve(config.bundle)}
    if config.archive.path is not None:
        updates["archive"] = config.archive.model_copy(update={"path": resolve(config.archive.path)})
    if isinstance(config.source, FolderSourceSettings):
        updates["source"] = config.source.model_copy(update={"path": resolve(config.source.path)})
    if isinstance(config.source, OpenCvSourceSettings) and _is_file_target(config.source.target):
        updates["source"] = config.source.model_copy(update={"target": str(resolve(Path(config.source.target)))})
    if isinstance(config.source, PylonSourceSettings) and config.source.emulator_images is not None:
        updates["source"] = config.source.model_copy(update={"emulator_images": resolve(config.source.emulator_images)})
    return config.model_copy(update=updates)
