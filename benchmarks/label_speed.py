"""How quick the labeling tool is with a 100,000-image dataset, measured in a real browser.

Targets (issue 4): the first page renders in under 2 s; moving to the next image takes under 200 ms.

Steps:
1. write N small distinct PNGs (default 100,000 at 32 px, two classes) into a temp folder (not the repo);
2. index them into a labeling workspace (one-time cost, reported separately);
3. start the app on a free loopback port and drive Debian's Chromium through Playwright:
   - first_page_cold_s: from pressing Login until the image, its position "1 / 100,000" and the whole
     first grid page (40 thumbnails, made on first view) are shown;
   - first_page_warm_s: the same after a reload, thumbnails cached;
   - next_image_ms: ArrowRight until the position text shows the next number and the new image is
     loaded, over --steps presses (median, p95, max), crossing a page boundary on the way.
Prints one JSON line and writes benchmarks/results/label_speed.json.
Run: python benchmarks/label_speed.py [--images 100000] [--steps 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

RESULT_PATH = Path(__file__).parent / "results" / "label_speed.json"
PASSWORD = "benchmark-pass"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def write_images(root: Path, count: int, size_px: int) -> float:
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    base = rng.integers(40, 200, (size_px, size_px), dtype=np.uint8)
    for i in range(count):
        label = "good" if i % 2 else "defect"
        image = base.copy()
        image.flat[: 4] = np.frombuffer(i.to_bytes(4, "little"), np.uint8)  # distinct bytes, distinct SHA-256
        if label == "defect":
            cv2.circle(image, (size_px // 2, size_px // 2), size_px // 5, 10, -1)
        folder = root / label / f"{i // 1000:03d}"  # 1,000 files per folder, like a camera dump
        if i % 1000 < 2:
            folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:06d}.png"), image)
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--keep", type=Path, help="reuse/keep the generated data and workspace in this folder")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from station.archive import utc_now_iso
    from training.labeling.app import LabelServerConfig, launch, open_context
    from training.labeling.users import add_user

    root = args.keep or Path(tempfile.mkdtemp(prefix="label_speed_"))
    data = root / "data"
    result: dict = {"benchmark": "label_speed", "images": args.images, "image_px": args.size}
    if not data.is_dir():
        result["write_images_s"] = round(write_images(data, args.images, args.size), 1)
    users = root / "users.yaml"
    if not users.exists():
        add_user(users, "bench", "labeler", PASSWORD, None, utc_now_iso())
    start = time.perf_counter()
    ctx = open_context(LabelServerConfig(data=data, users=users, workspace=root / "workspace"), progress=False)
    result["open_workspace_s"] = round(time.perf_counter() - start, 1)  # includes the one-time index when new
    shutil.rmtree(ctx.thumbnails.root, ignore_errors=True)  # cold thumbnail cache for the first page
    port = free_port()
    app = launch(ctx, "127.0.0.1", port, block=False)
    url = f"http://127.0.0.1:{port}/"
    total_text = f"1 / {args.images:,}"
    grid_loaded = "() => { const imgs = [...document.querySelectorAll('#label-grid img')]; return imgs.length >= 40 && imgs.every(i => i.complete && i.naturalWidth > 0); }"
    main_loaded = "() => { const i = document.querySelector('#label-image img'); return i && i.complete && i.naturalWidth > 0; }"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(120_000)
            page.goto(url)
            page.locator("input[type=password]").wait_for()
            page.locator("input[type=text]").fill("bench")
            page.locator("input[type=password]").fill(PASSWORD)
            start = time.perf_counter()
            page.get_by_role("button", name="Login").click()
            page.locator("#item-info", has_text=total_text).wait_for()
            page.wait_for_function(main_loaded)
            page.wait_for_function(grid_loaded)
            result["first_page_cold_s"] = round(time.perf_counter() - start, 3)
            start = time.perf_counter()
            page.reload()
            page.locator("#item-info", has_text=total_text).wait_for()
            page.wait_for_function(main_loaded)
            page.wait_for_function(grid_loaded)
            result["first_page_warm_s"] = round(time.perf_counter() - start, 3)
            steps = []
            for n in range(2, args.steps + 2):
                previous_src = page.locator("#label-image img").get_attribute("src")
                start = time.perf_counter()
                page.keyboard.press("ArrowRight")
                page.locator("#item-info", has_text=f"{n:,} / {args.images:,}").wait_for()
                page.wait_for_function(
                    "(prev) => { const i = document.querySelector('#label-image img'); return i && i.src !== prev && i.complete && i.naturalWidth > 0; }",
                    arg=previous_src,
                )
                steps.append((time.perf_counter() - start) * 1000)
            browser.close()
    finally:
        app.close()
        ctx.manifest.close()
    steps_sorted = sorted(steps)
    result["next_image_ms"] = {
        "median": round(statistics.median(steps), 1),
        "p95": round(steps_sorted[int(0.95 * (len(steps) - 1))], 1),
        "max": round(steps_sorted[-1], 1),
        "presses": len(steps),
    }
    result["targets"] = {"first_page_s": 2.0, "next_image_ms": 200.0}
    result["met"] = {"first_page_cold": result["first_page_cold_s"] < 2.0, "next_image_median": result["next_image_ms"]["median"] < 200.0}
    result["machine"] = {"cpu_model": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                         "load_avg_1min_after": round(os.getloadavg()[0], 2), "browser": "Debian chromium, headless"}  # fmt: skip
    print(json.dumps(result))
    RESULT_PATH.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
