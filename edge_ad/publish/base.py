"""The publisher interface, and the bounded queue + thread that every slow output sits behind."""
from __future__ import annotations

import logging
import queue
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ..bundle import Manifest
from ..decision.result import Result
from ..decision.scoring import Inspection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Publication:
    """A served result and what it was judged on."""
    result: Result
    image_rgb: np.ndarray | None  # the inspected image (after ROI and rotation), the raw frame, or
    # None for a result no frame belongs to (a PLC trigger whose deadline passed)
    inspection: Inspection | None  # None for INVALID and FAULT
    manifest: Manifest  # of the model that judged it (thresholds, calibration)


class Publisher(ABC):
    """One output of results. ``publish`` is called on the inference worker, in seq order, for
    every result, and must return at once: the line waits while it runs."""

    name = "publisher"

    @abstractmethod
    def publish(self, item: Publication) -> None: ...

    def start(self) -> None:
        """Called once before the first result."""

    def close(self) -> None:
        """Called once after the last result; delivers what is queued, then stops."""


class QueuedPublisher(Publisher):
    """A publisher whose work (``deliver``) runs on its own thread behind a bounded queue.
    ``publish`` never waits: when the queue is full the item is dropped and counted."""

    def __init__(self, name: str, queue_size: int = 64, metrics=None):
        self.name = name
        self.metrics = metrics
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._loop, name=f"publish-{name}", daemon=True)

    def wants(self, item: Publication) -> bool:
        """Whether this output takes ``item`` at all (filtering costs no queue slot)."""
        return True

    @abstractmethod
    def deliver(self, item: Publication) -> None:
        """The output's work, on its own thread."""

    def deliver_many(self, items: list[Publication]) -> None:
        """Everything that waited in the queue at once (an output with a per-call cost, such
        as a disk commit, overrides this to pay it once)."""
        for item in items:
            self.deliver(item)

    def publish(self, item: Publication) -> None:
        if not self.wants(item):
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self.metrics is not None:
                self.metrics.publisher_dropped.labels(self.name).inc()
            self.on_drop(item)

    def on_drop(self, item: Publication) -> None:
        """Hook for an output with a drop counter of its own."""

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        if self._thread.is_alive():
            self._queue.put(None)  # after everything queued: delivered first
            self._thread.join(timeout)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is delivered (tests, clean stops)."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def _loop(self) -> None:
        done = False
        while not done:
            batch, marks = [self._queue.get()], []
            while len(batch) < 64:  # and whatever else already waits
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if None in batch:  # close(): deliver what came before it, then stop
                batch, done = batch[:batch.index(None)], True
            marks = [i for i in batch if isinstance(i, threading.Event)]
            for job in (i for i in batch if callable(i) and not isinstance(i, threading.Event)):
                try:  # work an output queued for itself (start-up backfill), in order with the items
                    job()
                except Exception:
                    log.exception("publisher %s: queued job failed", self.name)
            items = [i for i in batch if isinstance(i, Publication)]
            try:
                if items:
                    self.deliver_many(items)
            except Exception:  # an output's failure must not stop it, or the line
                log.exception("publisher %s failed on seqs %s..%s", self.name, items[0].result.seq,
                              items[-1].result.seq)
            for mark in marks:  # flush(): everything queued before it is delivered
                mark.set()
