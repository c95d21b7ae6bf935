"""Results with sequence numbers in a bounded ring buffer: lossless polling for any client that
polls within the ring's span, and a clear answer (the oldest seq still held) when it does not."""
from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace

from ..decision import FAULT, OK


@dataclass(frozen=True)
class Result:
    seq: int
    camera: str
    frame_index: int
    captured_at: float  # wall clock of the inspected frame
    published_at: float
    verdict: str
    score: float | None
    raw_score: float | None
    threshold: float | None
    model: dict
    regions: tuple = ()
    part_id: str | None = None
    reason: str | None = None
    latency_ms: dict = field(default_factory=dict)
    boot_id: str = ""  # the process that numbered it: a gateway tells a restart from a gap

    def to_json(self, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        return {
            "seq": self.seq, "camera": self.camera, "frame_index": self.frame_index,
            "timestamp": round(self.captured_at, 6),
            "age_ms": round(max(0.0, now - self.captured_at) * 1000, 1),
            "verdict": self.verdict,
            "score": None if self.score is None else round(self.score, 5),
            "raw_score": self.raw_score, "threshold": self.threshold, "model": self.model,
            "regions": [r.to_json() for r in self.regions], "part_id": self.part_id,
            "reason": self.reason, "latency_ms": self.latency_ms, "boot_id": self.boot_id,
        }


def as_stale(result: Result, reason: str, now: float) -> dict:
    """A result that cannot vouch for the line right now: never served as a fresh OK."""
    body = result.to_json(now)
    if result.verdict == OK:
        body["verdict"] = FAULT
        body["reason"] = f"stale: {reason}"
    body["stale"] = True
    return body


class Evicted(Exception):
    def __init__(self, oldest_seq: int):
        super().__init__(oldest_seq)
        self.oldest_seq = oldest_seq


def new_boot_id() -> str:
    return uuid.uuid4().hex[:16]


class ResultStore:
    """Numbers results and holds the newest in a ring. With a journal, it is the journal that
    reserves numbers (``reserve(seq) -> highest reserved``) and commits each result
    (``sink``) before the ring, and so any poller, can see it."""

    def __init__(self, capacity: int = 10_000, first_seq: int = 1, sink=None, reserve=None,
                 boot_id: str | None = None):
        self._ring: deque[Result] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._next_seq = first_seq
        self._sink = sink  # e.g. Journal.append: sees every result, in seq order
        self._reserve = reserve
        self._reserved = first_seq - 1
        self.boot_id = boot_id or new_boot_id()

    def publish(self, make) -> Result:
        """``make(seq)`` builds the result; numbering, journaling and append are one atomic step."""
        with self._lock:
            seq = self._next_seq
            if self._reserve is not None and seq > self._reserved:
                self._reserved = self._reserve(seq)
            result = make(seq)
            if result.boot_id != self.boot_id:
                result = replace(result, boot_id=self.boot_id)
            if self._sink is not None:
                self._sink(result)
            self._next_seq += 1
            self._ring.append(result)
        return result

    def oldest_available(self) -> int:
        """The lowest seq the ring still holds (the next one when it is empty)."""
        with self._lock:
            return self._ring[0].seq if self._ring else self._next_seq

    def latest(self, camera: str | None = None) -> Result | None:
        with self._lock:
            for r in reversed(self._ring):
                if camera is None or r.camera == camera:
                    return r
        return None

    def by_part(self, part_id: str) -> Result | None:
        """The newest result for a triggered part (None when unknown or evicted)."""
        with self._lock:
            for r in reversed(self._ring):
                if r.part_id == part_id:
                    return r
        return None

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def after(self, seq: int, limit: int = 100) -> list[Result]:
        """Results with seq > ``seq``, oldest first. Raises Evicted when some were lost."""
        with self._lock:
            if not self._ring:
                if seq < self._next_seq - 1:  # e.g. after a restart: older results are not here
                    raise Evicted(self._next_seq)
                return []
            oldest = self._ring[0].seq
            if seq < oldest - 1:
                raise Evicted(oldest)
            start = max(0, seq - oldest + 1)
            return [self._ring[i] for i in range(start, min(len(self._ring), start + limit))]
