"""Review by exception: roles, dispositions, sign-off rules, export; the occlusion heatmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.labeling import PASSWORDS, make_labeling_setup
from station.archive import Archive, verify_archive
from training.labeling.catalog import Catalog, build_catalog
from training.labeling.errors import LabelingError, PermissionDenied
from training.labeling.review import Action, ReviewService
from training.labeling.users import load_users
from training.labeling.workspace import open_workspace


@pytest.fixture()
def setup(tmp_path: Path) -> dict:
    paths = make_labeling_setup(tmp_path, per_class=3, unlabeled=0)
    return {**paths, "review": ReviewService(paths["archive"]), "users": load_users(paths["users"])}


def test_exceptions_are_the_non_pass_items(setup: dict) -> None:
    items = setup["review"].exceptions("LOT1")
    assert [(i.sequence, i.verdict) for i in items] == [(2, "reject"), (5, "reject"), (7, "uncertain")]
    assert items[0].scores == {"good": 0.3, "chipped": 0.7} and items[0].image_sha256


def test_only_reviewers_dispose_and_sign(setup: dict) -> None:
    review, users = setup["review"], setup["users"]
    item = review.exceptions("LOT1")[0]
    for user in ("leo", "ada", "nobody"):
        with pytest.raises(PermissionDenied, match="may not review"):
            review.dispose(users, user, item, Action.OVERTURN, "fine")
        with pytest.raises(PermissionDenied, match="may not sign"):
            review.sign_lot(users, user, PASSWORDS.get(user, "x"), "LOT1")
    with Archive.open(setup["archive"], create=False) as archive:
        assert list(archive.dispositions()) == [] and list(archive.signatures()) == []


def test_sign_off_needs_every_exception_reviewed_and_the_password(setup: dict) -> None:
    review, users = setup["review"], setup["users"]
    items = review.exceptions("LOT1")
    with pytest.raises(LabelingError, match="reason"):
        review.dispose(users, "rita", items[0], Action.OVERTURN, "  ")
    review.dispose(users, "rita", items[0], Action.OVERTURN, "dust")
    with pytest.raises(LabelingError, match="2 exception\\(s\\) without a disposition"):
        review.sign_lot(users, "rita", PASSWORDS["rita"], "LOT1")
    review.dispose(users, "rita", items[1], Action.CONFIRM, "chip")
    review.dispose(users, "rita", items[2], Action.RELABEL, "crack", new_class="cracked")
    with pytest.raises(PermissionDenied, match="password"):
        review.sign_lot(users, "rita", "wrong", "LOT1")
    review.sign_lot(users, "rita", PASSWORDS["rita"], "LOT1")
    (signature,) = review.signatures("LOT1")
    assert signature["full_name"] == "Rita Reviewer" and signature["lot_entries"] == 11
    assert verify_archive(setup["archive"]).ok
    current = [(i.current_verdict, i.current_defect_class) for i in review.exceptions("LOT1")]
    assert current == [("pass", None), ("reject", "chipped"), ("reject", "cracked")]


def test_export_adds_overturned_and_relabeled_items_to_the_dataset(setup: dict) -> None:
    review, users = setup["review"], setup["users"]
    items = review.exceptions("LOT1")
    review.dispose(users, "rita", items[0], Action.OVERTURN, "dust")
    review.dispose(users, "rita", items[1], Action.CONFIRM, "chip")  # unchanged: not exported
    review.dispose(users, "rita", items[2], Action.RELABEL, "crack", new_class="cracked")
    catalog = Catalog.open(open_workspace(setup["data"], setup["workspace"]))
    build_catalog(catalog, progress=False)
    with pytest.raises(PermissionDenied):
        review.export_to_dataset(users, "leo", "LOT1", catalog, "good")
    assert review.export_to_dataset(users, "rita", "LOT1", catalog, "good") == 2
    assert review.export_to_dataset(users, "rita", "LOT1", catalog, "good") == 0  # idempotent
    rows = catalog.query("SELECT path, label, split FROM items WHERE origin='import' ORDER BY label")
    assert [(r[1], r[2]) for r in rows] == [("cracked", "train"), ("good", "train")]
    assert "cracked" in catalog.classes()
    for path, *_ in rows:
        assert catalog.path_of("import", path).is_file()


def test_occlusion_heatmap_finds_what_drives_the_defect_score(tiny_bundle: Path) -> None:
    from inspection.bundle import load_bundle
    from training.labeling.heatmap import GRID, occlusion_heatmap, overlay

    bundle = load_bundle(tiny_bundle)
    good = [i for i, name in enumerate(bundle.meta.class_names) if name in bundle.meta.good_classes]

    class BrightCornerModel:
        """Defect score = brightness of the top-left quarter: occluding that quarter must light up there."""

        def infer(self, batch: np.ndarray) -> np.ndarray:
            size = bundle.meta.input.size_px
            images = batch if batch.shape[-1] in (1, 3) else batch.transpose(0, 2, 3, 1)
            corner = images[:, : size // 2, : size // 2].astype(np.float32).mean(axis=(1, 2, 3)) / 255.0
            corner = (corner - corner.min()) / max(float(np.ptp(corner)), 1e-6) * 0.8 + 0.1
            probabilities = np.zeros((len(batch), len(bundle.meta.class_names)), np.float32)
            probabilities[:, good[0]] = 1.0 - corner
            probabilities[:, [i for i in range(probabilities.shape[1]) if i not in good][0]] = corner
            return probabilities

    image = np.full((96, 96, 3), 40, np.uint8)
    image[:48, :48] = 250
    heat, base = occlusion_heatmap(image, bundle, BrightCornerModel())
    assert heat.shape == (GRID, GRID) and heat.max() == pytest.approx(1.0)
    assert heat[: GRID // 2, : GRID // 2].mean() > 0.5 and heat[GRID // 2 :, GRID // 2 :].max() == 0.0
    assert overlay(image, heat).shape == image.shape


def test_heatmap_lies_over_the_item_crop_not_the_whole_frame():
    from inspection.input_spec import default_input_spec
    from inspection.item_crop import item_crop_box
    from training.labeling.heatmap import GRID, overlay

    frame = np.full((120, 160, 3), 40, np.uint8)
    frame[70:110, 100:140] = 230  # the item, bottom right
    spec = default_input_spec(32, 3, item_crop_fraction=0.5)
    left, top, side = item_crop_box(frame, 0.5)
    assert (left, top, side) == (90, 60, 60)
    hot = overlay(frame, np.ones((GRID, GRID), np.float32), spec).astype(np.int16)
    cold = overlay(frame, np.zeros((GRID, GRID), np.float32), spec).astype(np.int16)
    changed = np.abs(hot - cold).max(axis=2) > 0
    assert changed[top : top + side, left : left + side].all() and not changed[:top].any() and not changed[:, :left].any()
