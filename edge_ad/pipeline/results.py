"""Results with sequence numbers in a bounded ring buffer: lossless polling for any client that
polls within the ring's span, and a clear answer (the oldest seq still held) when it does not."""
from __future__ import annotations

import threading
import uuid
from collections import deque
from dataclasses import replace

from ..decision.result import Result


class Evicted(Exception):
    """The results after that seq are no longer in the ring."""
    def __init__(self, oldest_seq: int):
        super().__init__(oldest_seq)
        self.oldest_seq = oldest_seq


def new_boot_id() -> str:
    return uuid.uuid4().hex[:16]


class ResultStore:
    """Owns the seq counter and the ring of the newest results. With a journal, it is the
    journal that reserves numbers (``reserve(seq) -> highest reserved``) and commits each
    result (``sink``) before the ring, and so any poller, can see it."""

    def __init__(self, capacity: int = 10_000, first_seq: int = 1, sink=None, reserve=None,
                 boot_id: str | None = None):
        self._ring: deque[Result] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._next_seq = first_seq
        self._sink = sink  # e.g. Journal.append: sees every result, in seq order
        self._reserve = reserve
        self._reserved = first_seq - 1
        self.boot_id = boot_id or new_boot_id()
        self.journal = None  # the Journal behind sink and reserve, when built by ``journaled``

    @classmethod
    def journaled(cls, journal, capacity: int = 10_000, boot_id: str | None = None) -> "ResultStore":
        """A store whose numbers continue past every seq the journal ever served or reserved,
        and which commits each result to it before the ring sees it."""
        boot_id = boot_id or new_boot_id()
        store = cls(capacity, journal.resume(boot_id), sink=journal.append, reserve=journal.reserve,
                    boot_id=boot_id)
        store.journal = journal
        return store

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
