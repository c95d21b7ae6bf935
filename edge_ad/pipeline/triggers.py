"""PLC triggers: "inspect the first frame captured after now, for part X, within T".

A trigger is matched to the first frame of its camera captured after the trigger arrived; its
result carries the part id. A trigger whose deadline passes without such a frame is answered
with a FAULT result for that part, never with silence or with an older frame's verdict.
"""
from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field


@dataclass
class Trigger:
    """A PLC's request to inspect the next frame of a camera for a part."""
    camera: str
    part_id: str
    received_at: float  # wall clock
    deadline: float  # wall clock
    lot_id: str | None = None  # a PLC's custom input, recorded with the result
    future: Future = field(default_factory=Future)


MAX_PENDING = 16  # per camera: a PLC has one or two parts in flight, not dozens


class TriggersFull(Exception):
    """A camera already has ``MAX_PENDING`` triggers waiting for frames."""


class TriggerBook:
    """Owns the pending triggers of every camera, oldest first."""
    def __init__(self, cameras, max_pending: int = MAX_PENDING):
        self._pending: dict[str, deque[Trigger]] = {c: deque() for c in cameras}
        self._lock = threading.Lock()
        self.max_pending = max_pending

    def add(self, trigger: Trigger) -> Future:
        with self._lock:
            queue = self._pending[trigger.camera]
            if len(queue) >= self.max_pending:
                raise TriggersFull(f"camera {trigger.camera} has {len(queue)} triggers waiting for frames")
            queue.append(trigger)
        return trigger.future

    def match(self, camera: str, captured_at: float) -> Trigger | None:
        """The oldest pending trigger this frame answers (captured after it arrived)."""
        with self._lock:
            queue = self._pending[camera]
            if queue and queue[0].received_at <= captured_at:
                return queue.popleft()
        return None

    def expired(self, now: float) -> list[Trigger]:
        """Every trigger past its deadline, wherever it waits: deadlines differ, so one with a
        short deadline queued behind a long one must not wait for it (it did: 300 ms answered
        after 4905 ms)."""
        out = []
        with self._lock:
            for camera, queue in self._pending.items():
                if any(t.deadline <= now for t in queue):
                    out += [t for t in queue if t.deadline <= now]
                    self._pending[camera] = deque(t for t in queue if t.deadline > now)
        return out

    def next_deadline(self) -> float | None:
        with self._lock:
            deadlines = [t.deadline for q in self._pending.values() for t in q]
        return min(deadlines) if deadlines else None
