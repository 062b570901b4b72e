"""The benchmark suite's bookkeeping: which rows run, regressions flagged, results written with the machine."""

import json

import pytest

from inspection.errors import ConfigError
from training.bench.report import markdown_table, regressions, write_results
from training.bench.suite import combinations

MACHINE = {"cpu": "Test CPU, 2 cores", "gpu": None, "tensorrt": None, "versions": {"torch": "x", "onnxruntime": "y"}}


def row(key_model="m", backend="onnxruntime", precision="fp32", batch=1, images_per_s=100.0):
    return {"key": f"{key_model}/{backend}/cpu/{precision}/b{batch}", "model": key_model, "backend": backend, "device": "cpu",
            "precision": precision, "batch_size": batch, "images_per_s": images_per_s,
            "latency_ms": {"p50": 1.0, "p99": 2.0, "calls": 10}, "description": "d"}


def test_cpu_machine_gets_no_gpu_rows_and_no_cpu_fp16():
    combos = combinations(["m"], ["onnxruntime", "torch", "tensorrt"], ["fp32", "fp16", "int8"], [1, 8], cuda=False)
    keys = {c.key() for c in combos}
    assert "m/onnxruntime/cpu/int8/b8" in keys and "m/torch/cpu/fp32/b1" in keys
    assert not any("torch/cuda" in k or "torch/cpu/fp16" in k for k in keys)
    assert "m/tensorrt/cuda/fp16/b1" in keys  # measured as a row that says why it was skipped


def test_gpu_machine_measures_torch_on_the_gpu():
    keys = {c.key() for c in combinations(["m"], ["torch"], ["fp32", "fp16"], [256], cuda=True)}
    assert keys == {"m/torch/cuda/fp32/b256", "m/torch/cuda/fp16/b256"}


def test_unknown_backend_is_an_error():
    with pytest.raises(ConfigError, match="unknown backend"):
        combinations(["m"], ["openvino"], ["fp32"], [1], cuda=False)


def test_drops_over_ten_percent_are_regressions_and_skipped_rows_are_not():
    previous = {"backends": [row(images_per_s=100.0), row(batch=8, images_per_s=100.0), row(batch=64, images_per_s=50.0)]}
    current = {"backends": [row(images_per_s=89.0), row(batch=8, images_per_s=91.0),
                            {"key": "m/onnxruntime/cpu/fp32/b64", "skipped": "no GPU"}]}
    found = regressions(current, previous)
    assert [r["key"] for r in found] == ["m/onnxruntime/cpu/fp32/b1"] and found[0]["change"] == pytest.approx(-0.11)


def test_results_are_written_as_json_markdown_and_png_and_compared_with_the_file_they_replace(tmp_path):
    out = tmp_path / "bench.json"
    first = {"created_utc": "t0", "machine": MACHINE, "backends": [row(images_per_s=100.0)], "station": [], "training": []}
    write_results(first, out, previous=None)
    second = {"created_utc": "t1", "machine": MACHINE, "backends": [row(images_per_s=50.0)], "station": [], "training": []}
    paths = write_results(second, out, previous=None)
    assert [p.suffix for p in paths] == [".json", ".md", ".png"] and all(p.is_file() for p in paths)
    saved = json.loads(out.read_text())
    assert saved["regressions"][0]["change"] == pytest.approx(-0.5)
    table = markdown_table(saved)
    assert "Test CPU, 2 cores" in table and "Regressions over 10%" in table


def test_a_previous_row_of_zero_images_per_s_is_no_regression_and_no_crash() -> None:
    from training.bench.report import regressions

    previous = {"backends": [{"key": "k", "images_per_s": 0.0}]}
    assert regressions({"backends": [{"key": "k", "images_per_s": 10.0}]}, previous) == []


def test_training_rows_report_the_loops_steady_pace_apart_from_the_start_up():
    from training.bench.training_speed import EPOCHS, measure_training, steady_images_per_s

    history = [{"seconds": 10.0}, {"seconds": 1.0}, {"seconds": 3.0}]
    assert steady_images_per_s(history, 100) == 50.0
    assert steady_images_per_s(history[:1], 100) == 10.0
    row = measure_training("mobilenet_v3_small", 32, 64, "cpu")
    assert EPOCHS >= 2 and row["device"] == "cpu"
    assert row["loop_images_per_s"] > 0 and row["run_images_per_s"] > 0 and row["compute_images_per_s"] > 0


def test_station_rows_name_who_prepared_the_frames_including_rows_from_before_processes():
    station = {"model": "m", "backend": "torch", "device": "cuda", "precision": "fp16", "max_batch": 64,
               "throughput_fps": 3000.0, "backend_raw_fps": 20000.0, "throughput_vs_raw": 0.15}
    result = {"created_utc": "t0", "machine": MACHINE, "backends": [], "training": [],
              "station": [{**station, "preparation": {"processes": 8}}, {**station, "preparation": {"threads": 1}},
                          {**station, "prepare_threads": 8}]}
    rows = [line for line in markdown_table(result).splitlines() if line.startswith("| m | torch cuda fp16")]
    assert [row.split(" | ")[3] for row in rows] == ["8 processes", "1 thread", "8 threads"]


def test_a_station_row_that_fails_is_kept_with_its_error_and_the_suite_goes_on(tmp_path, monkeypatch):
    import training.bench.suite as suite
    from station.shared_frames import SharedMemoryFull

    monkeypatch.setattr(suite, "machine_record", lambda: {**MACHINE, "gpu": "Test GPU"})
    monkeypatch.setattr(suite, "bundle_for", lambda *args, **kwargs: tmp_path)
    monkeypatch.setattr(suite, "measure_training", lambda *args: {"loop_images_per_s": 1.0})

    def station(path, backend, device, precision, batch, frames, threads, preparation):
        if "prepare_processes" in preparation:
            raise SharedMemoryFull("cannot allocate 921,600 bytes of shared memory (No space left on device): free space "
                                   "in /dev/shm, or set batching.prepare_processes to 0")
        return {"backend": backend, "device": device, "precision": precision, "max_batch": batch, "throughput_fps": 3000.0,
                "backend_raw_fps": 20000.0, "throughput_vs_raw": 0.15, "preparation": {"threads": 8}}

    monkeypatch.setattr(suite, "measure_station", station)
    result = suite.run_suite(["m"], ["torch"], ["fp16"], [], 1.0, 64, None, 10, True, tmp_path, progress=False)
    threads, processes = result["station"]
    assert threads["throughput_fps"] == 3000.0 and "failed" not in threads
    assert processes["failed"].startswith("cannot allocate") and processes["preparation"]["processes"] >= 1
    assert len(result["training"]) == 1  # measured after the failed row
    table = markdown_table({**result, "machine": MACHINE, "created_utc": "t0", "training": []})
    failed_row = next(line for line in table.splitlines() if "failed:" in line)
    assert failed_row.startswith("| m | torch cuda fp16 | 64 | ") and " process" in failed_row
    assert "| failed: cannot allocate 921,600 bytes of shared memory (No space left on device)" in failed_row


def test_every_row_measured_is_handed_on_at_once_and_kept_beside_the_result(tmp_path, monkeypatch):
    import training.bench.suite as suite
    from training.bench.report import partial_path, write_partial

    monkeypatch.setattr(suite, "machine_record", lambda: MACHINE)
    monkeypatch.setattr(suite, "bundle_for", lambda *args, **kwargs: tmp_path)
    monkeypatch.setattr(suite, "load_bundle", lambda path: path)
    monkeypatch.setattr(suite, "measure_combination", lambda bundle, combo, budget_s, threads: row(batch=combo.batch_size))
    monkeypatch.setattr(suite, "measure_station", lambda *args: {"throughput_fps": 1.0})
    monkeypatch.setattr(suite, "measure_training", lambda *args: {"loop_images_per_s": 1.0})
    seen = []
    out = tmp_path / "bench.json"

    def keep(result_so_far):
        seen.append(sum(len(result_so_far[section]) for section in ("backends", "station", "training")))
        write_partial(result_so_far, out)

    result = suite.run_suite(["m"], ["onnxruntime"], ["fp32"], [1, 8], 1.0, 64, None, 10, True, tmp_path, progress=False, on_row=keep)
    assert seen == [1, 2, 3, 4]  # two backend rows, one station row, one training row
    kept = json.loads(partial_path(out).read_text())
    assert partial_path(out).name == "bench.partial.json" and kept["partial"] is True
    assert kept["backends"] == result["backends"] and kept["training"] == result["training"]


def test_json_names_the_result_file_or_alone_prints_the_result():
    from pathlib import Path

    from inspection.cli import bench_outputs

    assert bench_outputs(None, None) == (None, False)
    assert bench_outputs("-", None) == (None, True)  # `--json` alone
    assert bench_outputs("r.json", None) == (Path("r.json"), False)  # `--json r.json`
    assert bench_outputs("-", Path("r.json")) == (Path("r.json"), True)
    with pytest.raises(ConfigError, match="both name the result file. Pass one."):
        bench_outputs("r.json", Path("s.json"))
    with pytest.raises(ConfigError, match="r.md does not end in .json"):
        bench_outputs("r.md", None)
