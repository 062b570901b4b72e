"""The thumbnail cache: small JPEGs named by the image's SHA-256, made once, on first view.

An image the browser can show that is already no larger than a thumbnail is served as it is (no
re-encoding, nothing written). A page of missing thumbnails is made in parallel (OpenCV releases
the GIL while decoding and resizing), and `prefetch` makes the next page's in the background, so
that paging on does not wait for them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

THUMBNAIL_PX = 128
BROWSER_FORMATS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif"})
WORKERS = max(1, min(8, os.cpu_count() or 1))


class ThumbnailCache:
    def __init__(self, root: Path, size_px: int = THUMBNAIL_PX) -> None:
        self.root = Path(root)
        self.size_px = size_px
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._pending: set[str] = set()
        self._lock = threading.Lock()

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.jpg"

    def serves_as_is(self, source: Path, width: int | None, height: int | None) -> bool:
        """True for a browser-viewable image already no larger than a thumbnail (its size known from the catalog)."""
        return bool(width and height) and max(width, height) <= self.size_px and source.suffix.lower() in BROWSER_FORMATS

    def get(self, sha256: str, source: Path, width: int | None = None, height: int | None = None) -> Path:
        """The thumbnail of `source` (whose content hash is sha256), made if missing; the source itself when already small."""
        if self.serves_as_is(source, width, height):
            return source
        path = self.path_for(sha256)
        if path.is_file():
            return path
        image = cv2.imread(str(source), cv2.IMREAD_COLOR)  # BGR, 8-bit; thumbnails need no 16-bit depth
        if image is None:
            image = np.full((self.size_px, self.size_px, 3), 128, np.uint8)  # unreadable: a grey tile, not an error
        scale = self.size_px / max(image.shape[:2])
        if scale < 1.0:
            image = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))), interpolation=cv2.INTER_AREA)
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data.tobytes())
        os.replace(tmp, path)  # two sessions (or a prefetch) may make the same thumbnail: last rename wins, same bytes
        return path

    def get_many(self, requests: Sequence[tuple[str, Path, int | None, int | None]]) -> list[Path]:
        """Thumbnails of (sha256, source, width, height) in order; the missing ones are made in parallel."""
        missing = [r for r in requests if not self.serves_as_is(r[1], r[2], r[3]) and not self.path_for(r[0]).is_file()]
        if len(missing) > 1:
            list(self._executor("page", WORKERS).map(lambda r: self.get(*r), missing))
        return [self.get(*r) for r in requests]

    def prefetch(self, requests: Sequence[tuple[str, Path, int | None, int | None]]) -> None:
        """Make these thumbnails in the background (each at most once at a time); returns at once."""
        for request in requests:
            sha = request[0]
            if self.serves_as_is(request[1], request[2], request[3]) or self.path_for(sha).is_file():
                continue
            with self._lock:
                if sha in self._pending:
                    continue
                self._pending.add(sha)
            self._executor("prefetch", 1).submit(self._make_pending, request)

    def _make_pending(self, request: tuple[str, Path, int | None, int | None]) -> None:
        try:
            self.get(*request)
        finally:
            with self._lock:
                self._pending.discard(request[0])

    def _executor(self, kind: str, workers: int) -> ThreadPoolExecutor:
        """One pool for the page a user waits for, one single-thread pool for prefetching: a prefetch never queues ahead of a page."""
        with self._lock:
            if kind not in self._pools:
                self._pools[kind] = ThreadPoolExecutor(workers, thread_name_prefix=f"thumbnails-{kind}")
            return self._pools[kind]
