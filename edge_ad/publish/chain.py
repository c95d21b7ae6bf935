"""Model chaining: on the chosen verdicts, the inspected frame goes to a second stage.

The result, once served, never changes under its seq: the stage's answer is a record of its
own, ``{seq, stage, label, confidence, latency_ms, regions}`` (or ``{seq, stage, error,
latency_ms}``), linked by seq. It is journaled, kept in memory for the newest results, shown
with its result in ``/v1/results`` and ``/v1/result``, and handed to the outputs that take
chain records (MQTT publishes it on ``{topic}/chain``).

It never holds up the line: a bounded queue whose drops are counted, one stage call at a time
on this publisher's thread, and an answer slower than ``timeout_s`` recorded as an error.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Callable

import numpy as np

from .base import Publication, QueuedPublisher

log = logging.getLogger(__name__)
BOOK_SIZE = 10_000  # chain records kept in memory; older ones are read from the journal
PAD = 0.25  # a region's crop is its box grown by this share on each side: the stage sees context


class ChainBook:
    """Owns the newest chain records by seq (the journal holds them all)."""

    def __init__(self, journal=None, size: int = BOOK_SIZE):
        self.journal, self.size = journal, size
        self._records: OrderedDict[int, dict] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, record: dict) -> None:
        with self._lock:
            self._records[record["seq"]] = record
            while len(self._records) > self.size:
                self._records.popitem(last=False)
        if self.journal is not None:
            self.journal.put_chain(record["seq"], record)

    def get_many(self, seqs: list[int]) -> dict[int, dict]:
        with self._lock:
            found = {s: self._records[s] for s in seqs if s in self._records}
        missing = [s for s in seqs if s not in found]
        if missing and self.journal is not None and self._older_than_memory(missing):
            found.update(self.journal.chains(missing))
        return found

    def _older_than_memory(self, seqs: list[int]) -> bool:
        with self._lock:
            oldest = next(iter(self._records), None)
        return oldest is None or min(seqs) < oldest


def crops_of(image_rgb: np.ndarray, regions, whole_frame: bool, max_regions: int) -> tuple[list, list]:
    """The images the stage classifies: each region's box with context, or the whole frame."""
    if whole_frame or not regions:
        return [image_rgb], [None]
    h, w = image_rgb.shape[:2]
    crops, boxes = [], []
    for region in sorted(regions, key=lambda r: -r.area_px)[:max_regions]:
        x, y, bw, bh = region.bbox_xywh
        px, py = max(2, int(bw * PAD)), max(2, int(bh * PAD))
        x0, y0, x1, y1 = max(0, x - px), max(0, y - py), min(w, x + bw + px), min(h, y + bh + py)
        crops.append(image_rgb[y0:y1, x0:x1])
        boxes.append(list(region.bbox_xywh))
    return crops, boxes


class ChainPublisher(QueuedPublisher):
    """Owns the second stage and its queue; every answer goes to the book and the listeners."""

    def __init__(self, stage, config, book: ChainBook, metrics=None):
        super().__init__("chain", config.queue_size, metrics)
        self.stage, self.config, self.book = stage, config, book
        self.listeners: list[Callable[[dict], None]] = []  # outputs that publish chain records

    def wants(self, item: Publication) -> bool:
        return item.image_rgb is not None and str(item.result.verdict) in self.config.on

    def on_drop(self, item: Publication) -> None:
        if self.dropped == 1 or self.dropped % 100 == 0:  # counted always, logged not once per frame
            log.warning("chain: queue full, result %d not sent to %s (%d dropped so far)", item.result.seq,
                        self.stage.name, self.dropped)

    def deliver(self, item: Publication) -> None:
        r, c = item.result, self.config
        crops, boxes = crops_of(item.image_rgb, r.regions, c.input == "frame", c.max_regions)
        t0 = time.perf_counter()
        record = {"seq": r.seq, "camera": r.camera, "stage": self.stage.name}
        try:
            answers = self.stage.classify(crops, c.timeout_s)
            elapsed = time.perf_counter() - t0
            if elapsed > c.timeout_s:
                raise TimeoutError(f"the stage answered after {elapsed * 1000:.0f} ms "
                                   f"(chain.timeout_s {c.timeout_s:g} s)")
            best = max(range(len(answers)), key=lambda i: answers[i][1])
            record.update(label=answers[best][0], confidence=round(answers[best][1], 4),
                          regions=[{"bbox": b, "label": a[0], "confidence": round(a[1], 4)}
                                   for b, a in zip(boxes, answers) if b is not None])
            outcome = "ok"
        except Exception as exc:  # a failed or slow stage is recorded, never raised at the line
            record["error"] = f"{type(exc).__name__}: {exc}"[:300]
            outcome = "error"
            log.warning("chain: %s failed on result %d: %s", self.stage.name, r.seq, record["error"])
        record["latency_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        if self.metrics is not None:
            self.metrics.chain_results.labels(outcome).inc()
            self.metrics.chain_latency.observe(record["latency_ms"] / 1000)
        self.book.add(record)
        for listener in self.listeners:
            try:
                listener(record)
            except Exception:
                log.exception("chain: an output failed to take the answer for %d", r.seq)
