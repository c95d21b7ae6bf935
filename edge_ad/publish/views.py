"""The last inspected view of each camera and the recent rejects: what ``/v1/frame.jpg``, the
MJPEG stream and the dashboard's gallery render overlays from, on request."""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..decision.scoring import Inspection
from ..decision.verdict import NG
from .base import Publication, Publisher

GALLERY = 16  # recent NG views kept for the dashboard


@dataclass(frozen=True)
class View:
    """A camera's inspected frame, for overlays rendered on request."""
    seq: int
    frame_rgb: np.ndarray
    inspection: Inspection | None


class ViewCache(Publisher):
    """Owns the latest view per camera and the last ``GALLERY`` rejects. Inline: a reference
    swap under a lock (microseconds) costs the worker less than waking a thread would, and the
    cache is its own bound (one view per camera, ``GALLERY`` rejects)."""

    name = "views"

    def __init__(self):
        self._lock = threading.Lock()
        self._latest: dict[str, View] = {}
        self._rejects: deque[View] = deque(maxlen=GALLERY)

    def publish(self, item: Publication) -> None:
        if item.image_rgb is None:  # a missed trigger: the camera's last view still stands
            return
        view = View(item.result.seq, item.image_rgb, item.inspection)
        with self._lock:
            self._latest[item.result.camera] = view
            if item.result.verdict == NG:
                self._rejects.append(view)

    def latest(self, camera: str) -> View | None:
        with self._lock:
            return self._latest.get(camera)

    def rejects(self) -> tuple[View, ...]:
        with self._lock:
            return tuple(self._rejects)

    def by_seq(self, seq: int) -> View | None:
        """A retained view: one of the recent rejects, or a camera's latest."""
        with self._lock:
            return next((v for v in (*self._rejects, *self._latest.values()) if v.seq == seq), None)
