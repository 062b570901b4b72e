"""The thumbnail cache: small JPEGs named by the image's SHA-256, made once, on first view."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np

THUMBNAIL_PX = 128


class ThumbnailCache:
    def __init__(self, root: Path, size_px: int = THUMBNAIL_PX) -> None:
        self.root = Path(root)
        self.size_px = size_px

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.jpg"

    def get(self, sha256: str, source: Path) -> Path:
        """The thumbnail of `source` (whose content hash is sha256), made if missing."""
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
        os.replace(tmp, path)  # two sessions may make the same thumbnail: last rename wins, same bytes
        return path
