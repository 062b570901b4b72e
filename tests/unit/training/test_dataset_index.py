from collections import defaultdict

import numpy as np
import pytest

from inspection.errors import DataError
from training.dataset_index import index_dataset, read_manifest_jsonl, write_manifest_jsonl
from helpers.images import blob_image, make_two_class_dataset, write_png


def test_folder_per_class_tree_is_indexed(tmp_path):
    root = make_two_class_dataset(tmp_path / "data", per_class=20)
    index = index_dataset(root, progress=False)
    assert index.classes == ("defect", "good")
    assert len(index.entries) == 40 and not index.skipped
    assert {e.split for e in index.entries} == {"train", "val", "test"}
    assert all(len(e.sha256) == 64 and e.source == "folder" for e in index.entries)


def test_split_is_deterministic_and_stratified(tmp_path):
    root = make_two_class_dataset(tmp_path / "data", per_class=40)
    first, second = index_dataset(root, progress=False), index_dataset(root, progress=False)
    assert [e.split for e in first.entries] == [e.split for e in second.entries]
    assert first.dataset_hash == second.dataset_hash
    for label in first.classes:
        splits = [e.split for e in first.entries if e.label == label]
        assert splits.count("train") == 28 and splits.count("val") == 6 and splits.count("test") == 6


def test_split_folders_are_respected(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for label in ("good", "bad"):
            write_png(tmp_path / split / label / "x.png", blob_image(rng, 32, label == "good"))
    index = index_dataset(tmp_path, progress=False)
    assert sorted((e.split, e.label) for e in index.entries) == sorted(
        (s, c) for s in ("train", "val", "test") for c in ("good", "bad")
    )


def test_groups_never_cross_splits(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["path,label,group"]
    for label in ("good", "defect"):
        for group in range(6):
            for frame in range(5):
                rel = f"{label}/{label}_{group}_{frame}.png"
                write_png(tmp_path / rel, blob_image(rng, 32, label == "good"))
                lines.append(f"{rel},{label},{label}_run{group}")
    (tmp_path / "groups.csv").write_text("\n".join(lines) + "\n")
    index = index_dataset(tmp_path, progress=False)
    splits_of_group = defaultdict(set)
    for e in index.entries:
        splits_of_group[e.group].add(e.split)
    assert len(splits_of_group) == 12
    assert all(len(s) == 1 for s in splits_of_group.values())
    for label in ("good", "defect"):
        assert {e.split for e in index.entries if e.label == label} == {"train", "val", "test"}


def test_two_groups_put_one_in_test_and_say_val_lacks_the_class(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["path,label,group"]
    for label, groups in (("good", 2), ("defect", 4)):
        for group in range(groups):
            for frame in range(3 + group):
                rel = f"{label}/{group}_{frame}.png"
                write_png(tmp_path / rel, blob_image(rng, 32, label == "good"))
                lines.append(f"{rel},{label},{label}{group}")
    (tmp_path / "groups.csv").write_text("\n".join(lines) + "\n")
    index = index_dataset(tmp_path, progress=False)
    good_splits = {e.split for e in index.entries if e.label == "good"}
    assert good_splits == {"train", "test"}
    assert any("'good'" in note and "val" in note for note in index.notes)


def test_corrupt_and_non_image_files_are_listed_and_excluded(tmp_path):
    root = make_two_class_dataset(tmp_path / "data", per_class=5)
    (root / "good" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (root / "good" / "notes.txt").write_text("hello")
    (root / "defect" / "empty.jpg").write_bytes(b"")
    index = index_dataset(root, progress=False)
    skipped = dict(index.skipped)
    assert set(skipped) == {"good/broken.png", "good/notes.txt", "defect/empty.jpg"}
    assert len(index.entries) == 10


def test_mixed_sizes_and_grey_images_are_accepted(tmp_path):
    rng = np.random.default_rng(0)
    write_png(tmp_path / "a" / "1.png", blob_image(rng, 40, True, channels=1))
    write_png(tmp_path / "b" / "2.png", blob_image(rng, 64, False, channels=3))
    index = index_dataset(tmp_path, progress=False)
    assert {(e.width, e.channels) for e in index.entries} == {(40, 1), (64, 3)}
    assert index.channels == 3


def test_summary_counts_the_training_frames_sizes(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(12):
        write_png(tmp_path / "ab"[i % 2] / f"{i}.png", blob_image(rng, 40 if i < 8 else 64, i % 2 == 0))
    index = index_dataset(tmp_path, progress=False)
    expected: dict[str, int] = defaultdict(int)
    for e in index.split("train"):
        expected[f"{e.width}x{e.height}"] += 1
    assert index.summary()["train_frame_sizes"] == dict(expected) and sum(expected.values()) == len(index.split("train"))


def test_empty_tree_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no class folders with images"):
        index_dataset(tmp_path, progress=False)


def test_single_class_is_a_clear_error(tmp_path):
    write_png(tmp_path / "good" / "1.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match="only one class"):
        index_dataset(tmp_path, progress=False)


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        index_dataset(tmp_path / "nope", progress=False)


def test_indexing_writes_nothing_into_the_dataset(tmp_path):
    root = make_two_class_dataset(tmp_path / "data", per_class=3)
    before = sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*"))
    index_dataset(root, progress=False)
    assert sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*")) == before


def test_manifest_round_trip(tmp_path):
    index = index_dataset(make_two_class_dataset(tmp_path / "data", per_class=4), progress=False)
    write_manifest_jsonl(index.entries, tmp_path / "m.jsonl")
    assert tuple(read_manifest_jsonl(tmp_path / "m.jsonl")) == index.entries


def test_shared_pill_dataset_split_keeps_runs_together(shared_datasets):
    index = index_dataset(shared_datasets / "pill_defects", progress=False)
    assert len(index.entries) == 355
    splits_of_group = defaultdict(set)
    for e in index.entries:
        splits_of_group[e.group].add(e.split)
    assert len(splits_of_group) == 10 and all(len(s) == 1 for s in splits_of_group.values())
    assert {e.label for e in index.entries if e.split == "test"} == {"defect", "normal"}
