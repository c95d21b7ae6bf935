"""``v4l2://`` and ``rtsp://`` through OpenCV's VideoCapture (V4L2 and FFmpeg backends), used
where GStreamer is absent or the URI asks for ``backend=opencv``. Open and read timeouts are set
so a dead camera raises instead of hanging the capture thread."""
from __future__ import annotations

import cv2

from ..errors import SourceError
from .base import READ_TIMEOUT_S, Source

OPEN_TIMEOUT_MS = 10_000


class OpenCVDeviceSource(Source):
    """Owns one OpenCV VideoCapture (V4L2 or FFmpeg), the fallback where GStreamer is absent."""

    def __init__(self, uri: str, target: str | int, backend: int, display: str | None = None,
                 size: tuple[int | None, int | None] = (None, None), fps: float | None = None):
        super().__init__(uri)
        self.target, self.backend = target, backend
        self.display = display or uri
        self.size = size  # (width, height) asked of the device; None keeps its own
        self.fps = fps
        self.cap = None

    def open(self) -> None:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(READ_TIMEOUT_S * 1000)]
        cap = cv2.VideoCapture(self.target, self.backend, params)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self.display}: OpenCV cannot open the camera "
                              "(unplugged, busy, wrong path or unreachable)")
        width, height = self.size
        if width and height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if self.fps:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        self.cap = cap

    def read(self):
        if self.cap is None:
            raise SourceError("source read before open")
        ok, frame = self.cap.read()
        if not ok or frame is None:
            raise SourceError(f"{self.display}: no frame from the camera (disconnected or stalled)")
        if frame.ndim == 2:
            return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None
