"""Index a folder-per-class image tree into a manifest: path, sha256, class, split, group, source.

Layouts: ROOT/<class>/<images...> or ROOT/<split>/<class>/<images...> with split in train/val/test.
An optional ROOT/groups.csv (path,label,group) names the physical item each frame shows; all
frames of one group land in one split, so near-duplicate frames cannot leak from train to test.
Nothing is written into ROOT: datasets may be read-only.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path


from inspection.console import progress_bar
from inspection.errors import ConfigError, CorruptImageError, DataError, OutputExistsError
from inspection.image_io import decode_image, is_image_path, png_damage

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = {"train": 0.70, "val": 0.15, "test": 0.15}
GROUPS_FILE = "groups.csv"


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    path: str  # POSIX path relative to the dataset root
    sha256: str
    label: str
    split: str
    group: str
    source: str  # how the label was given: "folder" (the class folder) or a labeler's name
    width: int
    height: int
    channels: int


@dataclass(frozen=True)
class DatasetIndex:
    root: Path
    entries: tuple[ManifestEntry, ...]
    classes: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]  # (path, reason) of files left out
    notes: tuple[str, ...] = field(default=())  # warnings about the split (e.g. a class missing from val)

    @property
    def dataset_hash(self) -> str:
        return dataset_hash(self.entries)

    @property
    def channels(self) -> int:
        """1 when every image is grey, else 3."""
        return 1 if all(e.channels == 1 for e in self.entries) else 3

    def split(self, name: str) -> list[ManifestEntry]:
        if name == "all":
            return list(self.entries)
        return [e for e in self.entries if e.split == name]

    def summary(self) -> dict:
        per_split = {s: dict(Counter(e.label for e in self.entries if e.split == s)) for s in SPLITS}
        return {
            "root": str(self.root),
            "images": len(self.entries),
            "classes": list(self.classes),
            "per_split": per_split,
            "groups": len({e.group for e in self.entries}),
            "skipped": len(self.skipped),
            "dataset_hash": self.dataset_hash,
            # What the camera delivered for training: a station whose frames differ warns (station.geometry).
            "train_frame_sizes": dict(Counter(f"{e.width}x{e.height}" for e in self.split("train")).most_common()),
        }


def dataset_hash(entries: tuple[ManifestEntry, ...] | list[ManifestEntry]) -> str:
    """Hash of what a model learns from: which bytes, with which label, in which split and group."""
    digest = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e.path):
        digest.update(f"{e.path}\t{e.sha256}\t{e.label}\t{e.split}\t{e.group}\n".encode("utf-8"))
    return digest.hexdigest()


def index_dataset(root: Path | str, progress: bool = True) -> DatasetIndex:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist. Pass a folder laid out as ROOT/<class>/<images>.")
    candidates = _find_candidates(root)
    if not candidates:
        raise DataError(
            f"dataset folder {root} holds no class folders with images. Lay it out as ROOT/<class>/<images> "
            "or ROOT/<train|val|test>/<class>/<images>."
        )
    groups = _read_groups(root)
    rows: list[tuple[str, str, str, str | None, int, int, int]] = []  # rel, sha, label, split, w, h, c
    skipped: list[tuple[str, str]] = []
    with progress_bar(enabled=progress, transient=True) as bar:
        task = bar.add_task("indexing images", total=len(candidates))
        for rel, label, split in candidates:
            bar.advance(task)
            path = root / rel
            if not _is_utf8(rel):
                # The manifest, the dataset hash and groups.csv are UTF-8 text: such a name cannot be recorded.
                skipped.append((_printable(rel), "its name is not valid UTF-8; rename it"))
                continue
            if not is_image_path(path):
                skipped.append((rel, "not an image file"))
                continue
            try:
                data = path.read_bytes()
                if damage := png_damage(data):
                    raise CorruptImageError(f"image {rel} is a damaged PNG ({damage}). Replace or remove the file.")
                image = decode_image(data, rel)
            except (OSError, CorruptImageError) as exc:
                skipped.append((rel, str(exc) if isinstance(exc, CorruptImageError) else f"unreadable: {exc}"))
                continue
            channels = 1 if image.ndim == 2 else 3
            rows.append((rel, hashlib.sha256(data).hexdigest(), label, split, image.shape[1], image.shape[0], channels))
    classes = tuple(sorted({row[2] for row in rows}))
    if not rows:
        raise DataError(f"dataset folder {root} has no readable images ({len(skipped)} files skipped). Add images.")
    if len(classes) < 2:
        raise DataError(f"dataset folder {root} has only one class ({classes[0]}); a classifier needs at least two. Add a folder per class.")
    group_of = {rel: groups.get(rel, rel) for rel, *_ in rows}
    assigned, notes = _assign_splits(rows, group_of)
    entries = tuple(
        ManifestEntry(rel, sha, label, assigned[rel], group_of[rel], "folder", w, h, c)
        for rel, sha, label, _split, w, h, c in rows
    )
    return DatasetIndex(root, entries, classes, tuple(skipped), tuple(notes))


def write_manifest_jsonl(entries: tuple[ManifestEntry, ...] | list[ManifestEntry], path: Path) -> None:
    lines = [json.dumps(asdict(e), sort_keys=True) + "\n" for e in entries]
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text("".join(lines), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None  # name the manifest, not its temp file


def check_manifest_target(out: Path, root: Path) -> None:
    """A manifest never goes into the dataset it describes, and refreshes only an earlier manifest."""
    out, root = Path(out), Path(root)
    if out.resolve().is_relative_to(root.resolve()):
        raise ConfigError(f"the manifest {out} would be written into the dataset {root}. Pass --out FILE outside it.")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder. Pass a file path for the manifest.")
    if out.is_file() and out.stat().st_size and not _is_manifest(out):
        raise OutputExistsError(f"{out} exists and is not a dataset manifest. Choose another --out (only a manifest is refreshed).")


def _is_manifest(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as handle:
            first = json.loads(handle.readline(1 << 20))
    except (OSError, ValueError):
        return False
    return isinstance(first, dict) and {"path", "sha256", "label"} <= first.keys()


def read_manifest_jsonl(path: Path) -> list[ManifestEntry]:
    try:
        return [ManifestEntry(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"manifest {path} cannot be read ({exc}). Re-create it with `inspection data index`.") from None


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.fsdecode keeps undecodable bytes as lone surrogates
        return False
    return True


def _printable(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _find_candidates(root: Path) -> list[tuple[str, str, str | None]]:
    """(relative path, class, split or None) of every file below a class folder."""
    top = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    has_split_folders = any(p.name in SPLITS for p in top)
    class_dirs: list[tuple[Path, str | None]] = []
    if has_split_folders:
        for split_dir in top:
            if split_dir.name not in SPLITS:
                raise DataError(
                    f"{split_dir} sits beside split folders; with split folders every top folder must be one of "
                    f"{', '.join(SPLITS)}. Move it into a split folder."
                )
            class_dirs += [(p, split_dir.name) for p in sorted(split_dir.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    else:
        class_dirs = [(p, None) for p in top]
    candidates = []
    for class_dir, split in class_dirs:
        for path in sorted(class_dir.rglob("*")):
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts):
                candidates.append((path.relative_to(root).as_posix(), class_dir.name, split))
    return candidates


def _read_groups(root: Path) -> dict[str, str]:
    path = root / GROUPS_FILE
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"path", "group"} <= set(reader.fieldnames):
            raise DataError(f"{path} must have the columns path,label,group (it has {reader.fieldnames}). Fix its header.")
        return {row["path"]: row["group"] for row in reader if row.get("group")}


def _assign_splits(rows: list, group_of: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Split folders win; otherwise a deterministic group-aware split per class."""
    if all(row[3] is not None for row in rows):
        return {row[0]: row[3] for row in rows}, []
    members: dict[str, list[str]] = defaultdict(list)
    labels_of_group: dict[str, Counter] = defaultdict(Counter)
    for rel, _sha, label, *_ in rows:
        members[group_of[rel]].append(rel)
        labels_of_group[group_of[rel]][label] += 1
    groups_by_class: dict[str, list[str]] = defaultdict(list)
    for group, counts in labels_of_group.items():
        groups_by_class[counts.most_common(1)[0][0]].append(group)
    split_of_group: dict[str, str] = {}
    notes: list[str] = []
    for label in sorted(groups_by_class):
        groups = sorted(groups_by_class[label], key=lambda g: hashlib.sha256(g.encode("utf-8")).hexdigest())
        sizes = {g: len(members[g]) for g in groups}
        split_of_group.update(_split_groups(groups, sizes))
        missing = [s for s in SPLITS if s not in {split_of_group[g] for g in groups}]
        if missing:
            notes.append(
                f"class '{label}' has only {len(groups)} independent group(s), so it is missing from: {', '.join(missing)}"
            )
    return {rel: split_of_group[group] for group, rels in members.items() for rel in rels}, notes


def _split_groups(groups: list[str], sizes: dict[str, int]) -> dict[str, str]:
    """Assign hash-ordered groups of one class to splits, each to the split furthest below its target.

    Afterwards test, then val, take the smallest train group if they got none, as long as train
    keeps at least one: with few independent items an honest test set matters more than balance.
    """
    total = sum(sizes.values())
    filled = {s: 0 for s in SPLITS}
    result: dict[str, str] = {}
    for group in groups:
        split = max(SPLITS, key=lambda s: (SPLIT_FRACTIONS[s] * total - filled[s], s == "train", s == "test"))
        result[group] = split
        filled[split] += sizes[group]
    for split in ("test", "val"):
        in_train = [g for g in groups if result[g] == "train"]
        if split not in result.values() and len(in_train) > 1:
            result[min(in_train, key=lambda g: sizes[g])] = split
    return result
