"""``push://``: a camera whose images are posted to ``POST /v1/push`` (a smart camera, a
vision controller, a test rig). Each posted image goes through the same pipeline as a live
frame (quality guard, ROI, decision, journal, evidence) and its result answers the post.

One image is in flight per camera at a time (the handler serialises posts), so the latest-frame
slot never drops a posted part."""
from __future__ import annotations

import threading

import numpy as np

from ..errors import SourceError
from .base import NO_FRAME, READ_TIMEOUT_S, Source


class PushSource(Source):
    """Owns the one posted image in flight of a ``push://`` camera."""
    event_driven = True

    def __init__(self, uri: str):
        super().__init__(uri)
        self._frame: np.ndarray | None = None
        self._ready = threading.Condition()
        self._open = False

    def open(self) -> None:
        with self._ready:
            self._open, self._frame = True, None

    def push(self, image_rgb: np.ndarray) -> None:
        with self._ready:
            if not self._open:
                raise SourceError("push camera is not running")
            if self._frame is not None:
                raise SourceError("push camera is busy with the previous image")
            self._frame = image_rgb
            self._ready.notify_all()

    def read(self):
        with self._ready:
            if self._frame is None:
                self._ready.wait(READ_TIMEOUT_S / 2)
            frame, self._frame = self._frame, None
        return NO_FRAME if frame is None else frame

    def close(self) -> None:
        with self._ready:
            self._open, self._frame = False, None
