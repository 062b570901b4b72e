"""The main job, `inspection demo`, end to end on a small scale (same code path, smaller constants)."""

import json

import training.demo as demo
from training.recipe import TrainRecipe


def test_demo_runs_the_whole_chain_and_reuses_only_its_own_data(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_IMAGES_PER_CLASS", 8)
    monkeypatch.setattr(demo, "DEMO_IMAGE_SIZE_PX", 64)
    monkeypatch.setattr(demo, "DEMO_RECIPE", TrainRecipe(image_size_px=64, epochs=1, batch_size=16, device="cpu"))
    monkeypatch.setattr(demo, "DEMO_LINE_FRAMES", 60)
    summary = demo.run_demo(tmp_path, progress=False)
    assert summary["bundle_verified"] and summary["parity"]["passed"]
    line = summary["line"]
    assert line["frames"] == 60 == line["passed"] + line["rejected"] + line["uncertain"] + line["fault"]
    assert line["audit_verified"] is True and line["lot_report"]
    assert json.loads((tmp_path / "data" / "synth.json").read_text())["product"] == demo.DEMO_PRODUCT

    # The next run reuses this data; data of another product (an older demo's mixed set) it replaces.
    assert demo._is_demo_data(tmp_path / "data")
    info = json.loads((tmp_path / "data" / "synth.json").read_text())
    (tmp_path / "data" / "synth.json").write_text(json.dumps(dict(info, product="mixed")))
    assert not demo._is_demo_data(tmp_path / "data")
