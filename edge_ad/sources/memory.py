"""Frames held in memory, cycled at a set rate: the benchmark's source (no decode, no disk in
the measured path) and the tests' deterministic one. Not addressable by URI."""
from __future__ import annotations

import numpy as np

from .base import Source


class MemorySource(Source):
    """Frames from a list, played at a rate (benchmarks and tests)."""
    def __init__(self, frames: list[np.ndarray], fps: float | None, loop: bool = True,
                 name: str = "memory"):
        super().__init__(f"memory://{name}")
        if not frames:
            raise ValueError("MemorySource needs at least one frame")
        self.frames = frames
        self.pace_fps = fps
        self.loop = loop
        self._pos = 0

    def open(self) -> None:
        self._pos = 0

    def read(self):
        if self._pos >= len(self.frames):
            if not self.loop:
                return None
            self._pos = 0
        frame = self.frames[self._pos]
        self._pos += 1
        return frame

    def close(self) -> None:
        pass
