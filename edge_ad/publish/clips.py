"""Event clips: the frames a camera captured around an NG, not only the ones inspected.

Each capture thread appends every frame it reads, shrunk to ``width`` pixels wide (never
enlarged), to its camera's ring of the last 2N+1. As soon as an NG is judged (on the worker,
when evidence is handed the result), the N frames captured before it and the frame itself are
taken from the ring, which still holds them while inspection lags capture by fewer than N
frames; the N after it are collected as they are captured. The complete clip goes to the
evidence writer, which saves it as a lossless FFV1 AVI beside the frame, within the quota.

An NG captured while a clip is still collecting its after-frames is inside that clip: it gets
no clip of its own. So at most ``MAX_PENDING`` clips wait per camera, and the memory bound per
camera is the ring plus the pending clips, at most 3 x (2N + 1) frames of width x height x 3
bytes (the height at the frame's aspect ratio): ``bound_bytes``. Frames are shared by reference.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

MAX_PENDING = 2  # clips waiting for their after-frames, per camera (overlaps coalesce)


@dataclass
class _Pending:
    captured_at: float
    frames: list[tuple[float, np.ndarray]]  # (captured_at, image_rgb)
    wanted_after: int
    done: Callable[[list[tuple[float, np.ndarray]]], None]
    after: int = 0


@dataclass
class _Ring:
    frames: deque = field(default_factory=deque)  # (captured_at, image_rgb small)
    pending: list[_Pending] = field(default_factory=list)


class ClipRings:
    """Owns each camera's ring of recent captured frames (small) and the clips waiting to fill."""

    def __init__(self, cameras, frames: int, width: int = 640):
        self.n, self.width = frames, width
        self._rings = {c: _Ring(deque(maxlen=2 * frames + 1)) for c in cameras}
        self._lock = threading.Lock()
        self.refused = 0  # NGs that got no clip (too many pending)

    def shrink(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if w <= self.width:
            return image  # frames are never written to once captured: shared, not copied
        size = (self.width, max(1, round(h * self.width / w)))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    def bound_bytes(self, height: int, width: int) -> int:
        """The memory bound for one camera whose frames are ``width`` x ``height``: the ring and
        the pending clips."""
        w = min(width, self.width)
        h = max(1, round(height * w / width))
        return (1 + MAX_PENDING) * (2 * self.n + 1) * w * h * 3

    def append(self, camera: str, captured_at: float, image_rgb: np.ndarray) -> None:
        """Called by the capture thread with every frame it reads."""
        small = self.shrink(image_rgb)
        complete = []
        with self._lock:
            ring = self._rings[camera]
            ring.frames.append((captured_at, small))
            for p in list(ring.pending):
                if captured_at > p.captured_at:
                    p.frames.append((captured_at, small))
                    p.after += 1
                    if p.after >= p.wanted_after:
                        ring.pending.remove(p)
                        complete.append(p)
        for p in complete:  # outside the lock: the callback queues the write
            p.done(p.frames)

    def request(self, camera: str, captured_at: float,
                done: Callable[[list[tuple[float, np.ndarray]]], None]) -> bool:
        """A clip around the frame captured at ``captured_at``; ``done([(t, image)])`` when it is
        complete (on a capture thread, or in ``flush``). False when the frame is inside a clip
        still collecting (it is in that one) or too many wait."""
        with self._lock:
            ring = self._rings[camera]
            if any(p.captured_at < captured_at for p in ring.pending):
                return False  # inside a pending clip's after-frames
            if len(ring.pending) >= MAX_PENDING:
                self.refused += 1
                return False
            before = [f for f in ring.frames if f[0] <= captured_at][-(self.n + 1):]
            after = [f for f in ring.frames if f[0] > captured_at]
            pending = _Pending(captured_at, before + after, self.n, done, len(after))
            if pending.after < pending.wanted_after:
                ring.pending.append(pending)
                return True
        done(pending.frames[: len(before) + self.n])
        return True

    def flush(self) -> None:
        """At a stop: every pending clip with what it has."""
        with self._lock:
            pending = [p for r in self._rings.values() for p in r.pending]
            for r in self._rings.values():
                r.pending.clear()
        for p in pending:
            p.done(p.frames)


def write_clip(path, frames: list[tuple[float, np.ndarray]]) -> None:
    """A lossless FFV1 AVI of ``frames`` at the rate they were captured."""
    h, w = frames[0][1].shape[:2]
    span = frames[-1][0] - frames[0][0]
    fps = (len(frames) - 1) / span if len(frames) > 1 and span > 0 else 1.0
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), min(120.0, max(1.0, fps)), (w, h))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write an FFV1 clip to {path}")
    try:
        for _, frame in frames:
            if frame.shape[:2] != (h, w):
                frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
