"""A small labeling setup for tests: a two-class dataset with unlabeled images, users, and an archive lot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers.images import blob_image, make_two_class_dataset, write_png
from station.archive import Archive, ItemRecord, utc_now_iso
from training.labeling.users import add_user

PASSWORDS = {"rita": "reviewer-pass", "leo": "labeler-pass", "ada": "admin-pass-1"}
EXCEPTION_SEQUENCES = {2: "reject", 5: "reject", 7: "uncertain"}  # the rest of lot LOT1 passed


def make_labeling_setup(root: Path, per_class: int = 12, unlabeled: int = 5, class_names: tuple[str, ...] = ("good", "chipped")) -> dict[str, Path]:
    data = make_two_class_dataset(root / "data", per_class=per_class, size_px=48)
    rng = np.random.default_rng(1)
    for i in range(unlabeled):
        write_png(data / "unlabeled" / f"u_{i}.png", blob_image(rng, 48, bool(i % 2)))
    users = root / "users.yaml"
    now = utc_now_iso()
    add_user(users, "rita", "reviewer", PASSWORDS["rita"], "Rita Reviewer", now)
    add_user(users, "leo", "labeler", PASSWORDS["leo"], None, now)
    add_user(users, "ada", "admin", PASSWORDS["ada"], None, now)
    archive = root / "archive"
    defect = class_names[-1]
    with Archive.open(archive) as store:
        for sequence in range(1, 9):
            verdict = EXCEPTION_SEQUENCES.get(sequence, "pass")
            scores = [0.0] * len(class_names)
            scores[0], scores[-1] = (0.9, 0.1) if verdict == "pass" else (0.3, 0.7)
            t = utc_now_iso()
            store.append(ItemRecord(
                "LOT1", "S1", sequence, t, t, t, verdict, None if verdict == "pass" else defect, f"station said {verdict}",
                tuple(scores), class_names, "ab" * 32, "v1", "operator", image=blob_image(rng, 64, verdict == "pass"),
            ))  # fmt: skip
    return {"data": data, "users": users, "archive": archive, "workspace": root / "workspace"}
