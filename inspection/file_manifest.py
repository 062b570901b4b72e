"""SHA-256 manifest of every file in a directory (a bundle): written when sealed, verified before use.

Format is that of `sha256sum` ("<hex>  <relative path>"), so `sha256sum -c manifest.sha256` also
checks a bundle without this tool.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from inspection.errors import BundleError, BundleIntegrityError

MANIFEST_NAME = "manifest.sha256"
_CHUNK_BYTES = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def list_files(root: Path) -> list[str]:
    """Every regular file below root except the manifest, as sorted POSIX relative paths."""
    return sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_NAME
    )


def write_manifest(root: Path) -> str:
    """Hash every file under root into root/manifest.sha256; returns the manifest's own SHA-256."""
    lines = [f"{sha256_file(root / rel)}  {rel}\n" for rel in list_files(root)]
    text = "".join(lines)
    (root / MANIFEST_NAME).write_text(text, encoding="utf-8")
    return sha256_bytes(text.encode("utf-8"))


def read_manifest(root: Path) -> dict[str, str]:
    path = root / MANIFEST_NAME
    if not path.is_file():
        if not (root / "bundle.json").is_file() and not (root / "model.onnx").is_file():
            raise BundleError(f"{root} is not a model bundle (it has neither {MANIFEST_NAME} nor bundle.json). "
                              "Check the path: a bundle is the folder `inspection train` or `inspection bundle import` wrote.")
        raise BundleIntegrityError(
            f"{path} is missing; this folder is not a sealed bundle. Re-create it with `inspection train` or `inspection bundle import`.",
            str(path),
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BundleIntegrityError(f"{path} is not UTF-8 text; the manifest was edited.", str(path)) from None
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64:
            raise BundleIntegrityError(f"{path}:{number} is not a '<sha256>  <path>' line; the manifest was edited.", str(path))
        entries[rel] = digest
    return entries


def verify_manifest(root: Path) -> str:
    """Check every file against the manifest; raise naming the first bad file. Returns the bundle hash."""
    root = Path(root)
    expected = read_manifest(root)
    present = set(list_files(root))
    for rel in sorted(expected):
        if rel not in present:
            raise BundleIntegrityError(f"{root / rel} is listed in the manifest but missing. Restore the bundle from its source.", str(root / rel))
        if sha256_file(root / rel) != expected[rel]:
            raise BundleIntegrityError(
                f"{root / rel} does not match its SHA-256 in the manifest (the file was changed). Restore the bundle from its source.",
                str(root / rel),
            )
    unlisted = sorted(present - set(expected))
    if unlisted:
        raise BundleIntegrityError(
            f"{root / unlisted[0]} is not listed in the manifest (a file was added). Remove it or re-seal the bundle.",
            str(root / unlisted[0]),
        )
    return sha256_file(root / MANIFEST_NAME)
