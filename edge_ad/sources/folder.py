"""``dir://PATH[?loop=1][&fps=N][&preload=1]``: the images of a folder in name order, paced at
``fps`` (default 10; 0 = as fast as possible). A file that cannot be decoded is skipped and
counted, never served."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import ImageError, SourceError
from ..imageio import IMAGE_SUFFIXES, read_image
from .base import Source, SourceURI

log = logging.getLogger(__name__)


class FolderSource(Source):
    """Owns a folder of images played as a camera (``dir://``)."""
    def __init__(self, uri: str, parsed: SourceURI):
        super().__init__(uri)
        self.folder = Path(parsed.path)
        self.loop = parsed.flag("loop")
        self.preload = parsed.flag("preload")
        fps = parsed.number("fps", 10.0)
        self.pace_fps = fps if fps and fps > 0 else None
        self.paths: list[Path] = []
        self._cache: dict[int, np.ndarray] = {}
        self._pos = 0
        self.skipped = 0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"image folder not found: {self.folder}")
        self.paths = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise SourceError(f"no .png/.jpg/.bmp images in {self.folder}")
        self._pos = 0
        if self.preload:  # benchmarks: take disk and decode out of the measured path
            self._cache = {i: read_image(p) for i, p in enumerate(self.paths)}

    def read(self):
        for _ in range(len(self.paths)):
            if self._pos >= len(self.paths):
                if not self.loop:
                    return None
                self._pos = 0
            i = self._pos
            self._pos += 1
            if i in self._cache:
                return self._cache[i]
            try:
                return read_image(self.paths[i])
            except ImageError as exc:
                self.skipped += 1
                log.warning("skipping %s", exc)
        raise SourceError(f"no readable image left in {self.folder}")

    def close(self) -> None:
        self._cache = {}
