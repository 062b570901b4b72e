"""The labeling and review tool in a real browser: Debian's Chromium driven by Playwright.

The test starts the Gradio server itself on a free loopback port. Screenshots of the main screens
go to a temporary folder, or to docs/screenshots/ with INSPECTION_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from helpers.labeling import PASSWORDS, make_labeling_setup
from station.archive import APPROVED_MEANING, Archive, verify_archive

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (scripts/test.sh installs it)"),
]
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path):
    from training.labeling.app import launch
    from training.labeling.server_context import LabelServerConfig, open_context
    from training.labeling.predictions import predict_missing

    root = tmp_path_factory.mktemp("labeling")
    paths = make_labeling_setup(root, class_names=("good", "chipped"))
    config = LabelServerConfig(data=paths["data"], users=paths["users"], archive=paths["archive"], bundle=tiny_bundle, workspace=paths["workspace"])
    ctx = open_context(config, progress=False)
    predict_missing(ctx.catalog, ctx.bundle, ctx.backend)  # in the foreground here, so prediction filters are complete
    port = free_port()
    app = launch(ctx, "127.0.0.1", port, block=False)
    yield {"url": f"http://127.0.0.1:{port}/", "ctx": ctx, **paths}
    app.close()
    ctx.manifest.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("INSPECTION_UPDATE_SCREENSHOTS") == "1":
        folder = REPO / "docs" / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("screenshots")


def login(page, url: str, user: str, password: str) -> None:
    page.goto(url)
    page.locator("input[type=password]").wait_for()
    page.locator("input[type=text]").fill(user)
    page.locator("input[type=password]").fill(password)
    page.get_by_role("button", name="Login").click()


def choose(page, dropdown_id: str, option: str) -> None:
    page.locator(f"#{dropdown_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def test_wrong_password_is_refused_and_logged(server, page) -> None:
    login(page, server["url"], "leo", "not-the-password")
    expect(page.get_by_text("Incorrect credentials")).to_be_visible()
    expect(page.locator("#item-info")).to_have_count(0)
    assert "'leo'\tfailed" in (server["workspace"] / "access.log").read_text()


def test_label_with_the_keyboard_filter_and_undo(server, page, shots: Path) -> None:
    catalog = server["ctx"].catalog
    login(page, server["url"], "leo", PASSWORDS["leo"])
    info = page.locator("#item-info")
    expect(info).to_contain_text("1 / 29")  # 12 good + 12 defect + 5 unlabeled
    expect(page.locator("#class-slot-1")).to_have_text("1 defect")
    page.screenshot(path=str(shots / "label.png"), full_page=True)

    choose(page, "filter-label", "(unlabeled)")
    expect(page.locator("#page-info")).to_contain_text("5 images")
    expect(info).to_contain_text("unlabeled/u_0.png")
    page.keyboard.press("1")  # u_0 -> defect; it leaves the filter, u_1 takes its place
    expect(page.locator("#label-status")).to_contain_text("unlabeled/u_0.png → defect")
    expect(page.locator("#page-info")).to_contain_text("4 images")
    expect(info).to_contain_text("unlabeled/u_1.png")
    page.keyboard.press("2")  # u_1 -> good
    expect(info).to_contain_text("unlabeled/u_2.png")
    page.keyboard.press("ArrowRight")
    expect(info).to_contain_text("unlabeled/u_3.png")
    page.keyboard.press("ArrowLeft")
    expect(info).to_contain_text("unlabeled/u_2.png")
    page.keyboard.press("z")  # undo u_1 -> good: u_1 is unlabeled again and shown
    expect(page.locator("#label-status")).to_contain_text("Undid change")
    expect(info).to_contain_text("unlabeled/u_1.png")
    expect(page.locator("#page-info")).to_contain_text("4 images")

    history = [(h["path"], h["user"], h["old_label"], h["new_label"], h["action"]) for h in catalog.history()]
    assert history[:3] == [
        ("unlabeled/u_0.png", "leo", None, "defect", "label"),
        ("unlabeled/u_1.png", "leo", None, "good", "label"),
        ("unlabeled/u_1.png", "leo", "good", None, "undo"),
    ]
    assert server["ctx"].manifest.flush()
    manifest = {e["path"]: e for e in map(json.loads, (server["workspace"] / "manifest.jsonl").read_text().splitlines())}
    assert manifest["unlabeled/u_0.png"]["label"] == "defect" and manifest["unlabeled/u_0.png"]["source"] == "leo"
    assert "unlabeled/u_1.png" not in manifest  # unlabeled again: not training data
    assert manifest["good/good_000.png"]["source"] == "folder"


def test_predicted_class_and_uncertainty_filters(server, page) -> None:
    login(page, server["url"], "leo", PASSWORDS["leo"])
    expect(page.locator("#item-info")).to_contain_text("predicted")
    choose(page, "filter-order", "most uncertain first")
    ctx = server["ctx"]
    most_uncertain = ctx.catalog.query(
        "SELECT items.path FROM items JOIN predictions p ON p.sha256 = items.sha256 AND p.bundle_hash = ? "
        "ORDER BY p.uncertainty DESC, items.path LIMIT 1", (ctx.bundle.bundle_hash,),
    )[0][0]
    expect(page.locator("#item-info")).to_contain_text(f"1 / 29 · {most_uncertain}")
    predicted = ctx.catalog.query("SELECT predicted, COUNT(*) FROM predictions GROUP BY predicted ORDER BY 2 DESC LIMIT 1")[0]
    choose(page, "filter-predicted", predicted[0])
    expect(page.locator("#page-info")).to_contain_text(f"{predicted[1]} images")


def open_review(page, server, user: str) -> None:
    login(page, server["url"], user, PASSWORDS[user])
    expect(page.locator("#who")).to_contain_text(user)
    page.get_by_role("tab", name="Review").click()
    expect(page.locator("#review-detail")).to_contain_text("3 exception(s) in lot LOT1")


def pick_exception(page, index: int, sequence: int) -> None:
    page.locator("#review-grid button.thumbnail-item").nth(index).click()
    expect(page.locator("#review-detail")).to_contain_text(f"S1 #{sequence}")


def dispose(page, action: str, reason: str) -> None:
    page.get_by_label(action, exact=True).check()
    page.locator("#review-reason textarea").fill(reason)
    page.locator("#review-submit").click()
    expect(page.locator("#review-status")).to_contain_text("Recorded")


def test_labeler_cannot_dispose_or_sign(server, page) -> None:
    open_review(page, server, "leo")
    pick_exception(page, 0, 2)
    page.get_by_label("overturn (good)", exact=True).check()
    page.locator("#review-reason textarea").fill("looks fine to me")
    page.locator("#review-submit").click()
    expect(page.locator("#review-status")).to_contain_text("may not review")
    page.locator("#sign-password input").fill(PASSWORDS["leo"])
    page.locator("#sign-button").click()
    expect(page.locator("#review-status")).to_contain_text("may not sign")
    with Archive.open(server["archive"], create=False) as archive:
        assert list(archive.dispositions("LOT1")) == [] and list(archive.signatures("LOT1")) == []
    assert "'leo'\trefused: may not sign lot LOT1" in (server["workspace"] / "access.log").read_text()


def test_review_overturn_sign_and_export(server, page, shots: Path) -> None:
    open_review(page, server, "rita")
    pick_exception(page, 0, 2)
    expect(page.locator("#review-heatmap img")).to_be_visible()
    page.screenshot(path=str(shots / "review.png"), full_page=True)
    dispose(page, "overturn (good)", "dust on the tablet, not a chip")
    expect(page.locator("#review-detail")).to_contain_text("current: pass")

    page.locator("#sign-password input").fill(PASSWORDS["rita"])
    page.locator("#sign-button").click()
    expect(page.locator("#review-status")).to_contain_text("2 exception(s) without a disposition")

    pick_exception(page, 1, 5)
    dispose(page, "confirm reject", "chip visible at 2 o'clock")
    pick_exception(page, 2, 7)
    page.get_by_label("re-label defect class", exact=True).check()
    page.locator("#review-new-class input").fill("cracked")
    page.locator("#review-new-class input").press("Enter")
    page.locator("#review-reason textarea").fill("hairline crack, not a chip")
    page.locator("#review-submit").click()
    expect(page.locator("#review-status")).to_contain_text("Recorded")

    page.locator("#sign-password input").fill("wrong password")
    page.locator("#sign-button").click()
    expect(page.locator("#review-status")).to_contain_text("password for 'rita' is wrong")
    page.locator("#sign-password input").fill(PASSWORDS["rita"])
    page.locator("#sign-button").click()
    expect(page.locator("#review-status")).to_contain_text("Lot **LOT1** signed by rita".replace("**", ""))
    expect(page.locator("#signatures-info")).to_contain_text("Signed by Rita Reviewer (rita)")
    page.screenshot(path=str(shots / "signed.png"), full_page=True)

    with Archive.open(server["archive"], create=False) as archive:
        dispositions = [(d["sequence"], d["user"], d["old_verdict"], d["new_verdict"], d["new_defect_class"], d["reason"]) for d in archive.dispositions("LOT1")]
        (signature,) = list(archive.signatures("LOT1"))
    assert dispositions == [
        (2, "rita", "reject", "pass", None, "dust on the tablet, not a chip"),
        (5, "rita", "reject", "reject", "chipped", "chip visible at 2 o'clock"),
        (7, "rita", "uncertain", "reject", "cracked", "hairline crack, not a chip"),
    ]
    assert (signature["user"], signature["full_name"], signature["meaning"], signature["lot_entries"]) == ("rita", "Rita Reviewer", APPROVED_MEANING, 11)
    result = verify_archive(server["archive"])
    assert result.ok and result.signatures_checked == 1 and result.dispositions_checked == 3

    choose(page, "export-good-class", "good")
    page.locator("#export-button").click()
    expect(page.locator("#review-status")).to_contain_text("2 item(s) of lot LOT1 added")
    imported = {row[0]: row[1] for row in server["ctx"].catalog.query("SELECT path, label FROM items WHERE origin='import'")}
    assert sorted(imported.values()) == ["cracked", "good"]


def test_files_outside_data_and_archive_are_not_served(server, page) -> None:
    anonymous = page.request.get(server["url"] + "config")
    assert anonymous.status == 401
    login(page, server["url"], "leo", PASSWORDS["leo"])
    expect(page.locator("#who")).to_contain_text("leo")
    data = server["data"]
    for target in ("/etc/passwd", str(server["users"]), f"{data}/../users.yaml", f"{data}/%2e%2e/users.yaml", str(server["workspace"] / "catalog.sqlite")):
        response = page.request.get(server["url"] + "gradio_api/file=" + target)
        assert response.status in (403, 404), (target, response.status)
        assert b"scrypt$" not in response.body()
    assert page.request.get(server["url"] + "gradio_api/file=" + str(data / "good" / "good_000.png")).status == 200


def test_admin_sees_the_users(server, page, shots: Path) -> None:
    login(page, server["url"], "ada", PASSWORDS["ada"])
    page.get_by_role("tab", name="Users").click()
    expect(page.locator("#users-table")).to_contain_text("Rita Reviewer")
    expect(page.locator("#users-table")).not_to_contain_text("scrypt")
