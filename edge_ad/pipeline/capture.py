"""One capture thread per camera: read → latest-frame slot. Never waits on inference.

A failing source is reopened with exponential backoff (0.5 s doubling to 30 s, with jitter);
the camera is marked down meanwhile, so readiness and results reflect it at once.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass

from ..errors import SourceError
from ..prometheus import Metrics
from ..sources.base import NO_FRAME, Frame, Source
from .slot import DROP_POLICY, LatestFrameSlot

UPSTREAM_DROP = "source_leaky"  # frames the source numbered but dropped before we read them

log = logging.getLogger(__name__)
BACKOFF_START_S, BACKOFF_MAX_S = 0.5, 30.0


@dataclass
class CameraState:
    """A camera's live state as capture sees it (up, error, frames, period)."""
    name: str
    uri: str
    up: bool = False
    ended: bool = False
    error: str | None = None
    frames: int = 0
    reconnects: int = 0
    last_frame_mono: float | None = None
    period_s: float | None = None  # smoothed interval between captured frames


def backoff_delays(start: float = BACKOFF_START_S, cap: float = BACKOFF_MAX_S):
    delay = start
    while True:
        yield delay * random.uniform(0.8, 1.2)
        delay = min(cap, delay * 2)


class CaptureThread(threading.Thread):
    """Owns one camera's source: reads, reconnects with backoff, fills the slot."""
    def __init__(self, source: Source, slot: LatestFrameSlot, state: CameraState, metrics: Metrics,
                 stop: threading.Event, clips=None):
        super().__init__(name=f"capture-{state.name}", daemon=True)
        self._upstream_seen = 0
        self._delays = backoff_delays()
        self._frame_since_open = False
        self.source, self.slot, self.state, self.metrics, self.stop_event = source, slot, state, metrics, stop
        self.clips = clips  # publish.clips.ClipRings: every captured frame, for event clips

    def _open_with_backoff(self) -> bool:
        """Open, retrying with backoff. The backoff carries over a source that opens and then
        fails before its first frame (a camera that errors at once), so it cannot spin."""
        while not self.stop_event.is_set():
            try:
                self.source.open()
                self.state.error = None
                self._frame_since_open = False
                self._upstream_seen = self.source.dropped_upstream
                if self.source.event_driven:  # open = ready; frames come when posted
                    self._up()
                return True
            except SourceError as exc:
                self._down(str(exc))
                self.state.reconnects += 1
                self.metrics.reconnects.labels(self.state.name).inc()
                self.stop_event.wait(next(self._delays))
        return False

    def _reconnect(self, reason: str) -> bool:
        """The source failed mid-stream (error, EOS, stall): tear it down and rebuild it."""
        self._down(reason)
        self.source.close()
        self.state.reconnects += 1
        self.metrics.reconnects.labels(self.state.name).inc()
        if not self._frame_since_open:  # it failed again before any frame: back off first
            self.stop_event.wait(next(self._delays))
        return self._open_with_backoff()

    def _up(self) -> None:
        if not self.state.up:
            self.state.up, self.state.error = True, None
            self.metrics.camera_up.labels(self.state.name).set(1)

    def _count_upstream_drops(self) -> None:
        seen = self.source.dropped_upstream
        if seen > self._upstream_seen:
            self.metrics.frames_dropped.labels(self.state.name, UPSTREAM_DROP).inc(seen - self._upstream_seen)
            self._upstream_seen = seen

    def _down(self, reason: str) -> None:
        if self.state.error != reason:
            log.error("camera %s: %s", self.state.name, reason)
        self.state.up, self.state.error = False, reason
        self.metrics.camera_up.labels(self.state.name).set(0)

    def run(self) -> None:
        name = self.state.name
        self.metrics.camera_up.labels(name).set(0)
        self.metrics.frames_dropped.labels(name, DROP_POLICY)  # export the series at 0
        if not self._open_with_backoff():
            return
        next_due = time.perf_counter()
        index = 0
        while not self.stop_event.is_set():
            fps = self.source.pace_fps
            if fps:  # files and folders play at their frame rate; live devices pace themselves
                now = time.perf_counter()
                if next_due > now:
                    self.stop_event.wait(next_due - now)
                next_due = max(next_due + 1.0 / fps, time.perf_counter() - 1.0 / fps)
            try:
                image = self.source.read()
            except SourceError as exc:
                if not self._reconnect(str(exc)):
                    break
                continue
            if image is NO_FRAME:
                continue
            if image is None:
                self.state.ended = True
                self._down("end of stream")
                break
            if not self._frame_since_open:  # a working source: the next failure starts afresh
                self._frame_since_open, self._delays = True, backoff_delays()
            now_mono = time.perf_counter()
            frame = Frame(name, index, image, time.time(), now_mono)
            index += 1
            if self.state.last_frame_mono is not None:
                dt = now_mono - self.state.last_frame_mono
                self.state.period_s = dt if self.state.period_s is None else 0.9 * self.state.period_s + 0.1 * dt
            self.state.last_frame_mono = now_mono
            self.state.frames += 1
            self._up()
            self._count_upstream_drops()
            self.metrics.frames_captured.labels(name).inc()
            if self.clips is not None:
                self.clips.append(name, frame.captured_at, image)
            if self.slot.put(frame):
                self.metrics.frames_dropped.labels(name, DROP_POLICY).inc()
        self.source.close()
