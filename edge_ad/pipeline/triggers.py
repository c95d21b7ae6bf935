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
    camera: str
    part_id: str
    received_at: float  # wall clock
    deadline: float  # wall clock
    future: Future = field(default_factory=Future)


class TriggerBook:
    def __init__(self, cameras):
        self._pending: dict[str, deque[Trigger]] = {c: deque() for c in cameras}
        self._lock = threading.Lock()

    def add(self, trigger: Trigger) -> Future:
        with self._lock:
            self._pending[trigger.camera].append(trigger)
        return trigger.future

    def match(self, camera: str, captured_at: float) -> Trigger | None:
        """The oldest pending trigger this frame answers (captured after it arrived)."""
        with self._lock:
            queue = self._pending[camera]
            if queue and queue[0].received_at <= captured_at:
                return queue.popleft()
        return None

    def expired(self, now: float) -> list[Trigger]:
        out = []
        with self._lock:
            for queue in self._pending.values():
                while queue and queue[0].deadline <= now:
                    out.append(queue.popleft())
        return out

    def next_deadline(self) -> float | None:
        with self._lock:
            heads = [q[0].deadline for q in self._pending.values() if q]
        return min(heads) if heads else None
