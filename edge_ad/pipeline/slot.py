"""The latest-frame slot: capture writes, inference takes; an unread frame that is overwritten is
dropped and counted (drop policy ``drop_oldest``). Capture never waits on inference."""
from __future__ import annotations

import threading

from ..sources.base import Frame

DROP_POLICY = "drop_oldest"


class LatestFrameSlot:
    """Owns one camera's newest unread frame and the drop count."""
    def __init__(self, camera: str, wakeup: threading.Condition):
        self.camera = camera
        self._frame: Frame | None = None
        self._wakeup = wakeup  # shared by all slots so one worker waits on every camera
        self.put_count = 0
        self.taken_count = 0
        self.dropped_count = 0

    def put(self, frame: Frame) -> bool:
        """Store ``frame``; returns True when it replaced an unread one (a drop)."""
        with self._wakeup:
            dropped = self._frame is not None
            self._frame = frame
            self.put_count += 1
            self.dropped_count += dropped
            self._wakeup.notify_all()
        return dropped

    def take(self) -> Frame | None:
        """Non-blocking; call with the shared condition held or not."""
        with self._wakeup:
            frame, self._frame = self._frame, None
            if frame is not None:
                self.taken_count += 1
            return frame

    @property
    def depth(self) -> int:
        return int(self._frame is not None)
