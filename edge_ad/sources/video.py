"""``file://PATH[?loop=1][&fps=N]``: a video file through OpenCV, played at its own frame rate
(or ``fps``; ``fps=0`` as fast as it decodes), optionally looping."""
from __future__ import annotations

from pathlib import Path

import cv2

from ..errors import SourceError
from .base import Source, SourceURI


class VideoFileSource(Source):
    """Owns one OpenCV capture of a video file (``file://``)."""
    def __init__(self, uri: str, parsed: SourceURI):
        super().__init__(uri)
        self.path = Path(parsed.path)
        self.loop = parsed.flag("loop")
        self._fps_param = parsed.number("fps", None)
        self.cap = None

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"video file not found: {self.path}")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise SourceError(f"OpenCV cannot open video {self.path} (unsupported codec or corrupt file)")
        self.cap = cap
        native = cap.get(cv2.CAP_PROP_FPS) or 0.0
        fps = self._fps_param if self._fps_param is not None else (native if native > 0 else 25.0)
        self.pace_fps = fps if fps > 0 else None

    def read(self):
        if self.cap is None:
            raise SourceError("source read before open")
        ok, frame = self.cap.read()
        if not ok and self.loop:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.cap.read()
        if not ok:
            return None
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None
