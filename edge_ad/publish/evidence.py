"""Evidence store: the frames behind NG and INVALID verdicts (and a sample of OK ones), each with
its overlay and a JSON sidecar, under a disk quota; exported in the MVTec layout for retraining.

Files: ``ROOT/<seq:012d>_<camera>_<verdict>.png`` (the frame, lossless: it may become training
data), ``..._overlay.jpg`` and ``....json`` (the result). Sequence numbers order them, so
eviction is oldest-first by name. A publisher's thread does the encoding and the disk work; when
it falls behind, new evidence is dropped and counted, inspection never waits.
"""
from __future__ import annotations

import json
import logging
import queue
import shutil
from pathlib import Path

import cv2
import numpy as np

from ..decision import INVALID, NG, OK
from ..overlay import encode_jpeg, render_overlay
from .base import Publication, QueuedPublisher
from .clips import ClipRings, write_clip

log = logging.getLogger(__name__)


class EvidenceStore(QueuedPublisher):
    """Owns the evidence folder: what is written, its byte count, and eviction under the quota."""

    def __init__(self, root: str | Path, quota_bytes: int, ok_every: int = 100, metrics=None,
                 queue_size: int = 32, clips: ClipRings | None = None):
        super().__init__("evidence", queue_size, metrics)
        self.clips = clips  # with evidence.clip_frames: the frames around each NG, as a clip
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.quota = quota_bytes
        self.ok_every = ok_every
        self._files = sorted(p for p in self.root.iterdir() if p.is_file())
        self.bytes = sum(p.stat().st_size for p in self._files)

    def wants(self, item: Publication) -> bool:
        if item.image_rgb is None:
            return False
        seq, verdict = item.result.seq, item.result.verdict
        return verdict in (NG, INVALID) or (verdict == OK and self.ok_every > 0 and seq % self.ok_every == 0)

    def on_drop(self, item: Publication) -> None:
        if self.metrics:
            self.metrics.evidence_dropped.inc()

    def deliver(self, item: Publication) -> None:
        try:
            self._save(item.result, item.image_rgb, item.inspection)
        except OSError as exc:  # a full or read-only disk must not stop inspection
            log.error("evidence not saved: %s", exc)

    def _save(self, result, frame_rgb, ins) -> None:
        stem = f"{result.seq:012d}_{result.camera}_{result.verdict}"
        ok, png = cv2.imencode(".png", cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))
        overlay = render_overlay(frame_rgb, ins.map_norm if ins else None, result.verdict,
                                 result.score, list(result.regions))
        body = result.to_json(now=result.captured_at)
        body.pop("age_ms", None)
        if ins is not None:  # the thresholded map, as a pseudo-mask for review and export
            mask = (ins.map_norm >= 0.5).astype(np.uint8) * 255
            ok_m, mask_png = cv2.imencode(".png", cv2.resize(mask, frame_rgb.shape[1::-1],
                                                             interpolation=cv2.INTER_NEAREST))
        written = [(self.root / f"{stem}.png", png.tobytes()),
                   (self.root / f"{stem}_overlay.jpg", encode_jpeg(overlay)),
                   (self.root / f"{stem}.json", json.dumps(body, indent=1).encode())]
        if ins is not None:
            written.append((self.root / f"{stem}_mask.png", mask_png.tobytes()))
        for path, data in written:
            path.write_bytes(data)
            self._files.append(path)
            self.bytes += len(data)
        if self.metrics:
            self.metrics.evidence_saved.labels(result.verdict).inc()
        self._evict()

    def publish(self, item: Publication) -> None:
        r = item.result
        if self.clips is not None and r.verdict == NG and item.image_rgb is not None:
            # now, on the worker: the ring still holds the frames captured before this one
            stem = f"{r.seq:012d}_{r.camera}_{r.verdict}"
            self.clips.request(r.camera, r.captured_at, lambda frames: self._queue_clip(stem, frames))
        super().publish(item)

    def _queue_clip(self, stem: str, frames) -> None:
        """On a capture thread: the clip is complete; the writer thread saves it."""
        try:
            self._queue.put_nowait(lambda: self._save_clip(stem, frames))
        except queue.Full:
            self.dropped += 1
            self.on_drop(None)

    def _save_clip(self, stem: str, frames) -> None:
        path = self.root / f"{stem}_clip.avi"
        partial = path.with_name(f"{stem}_clip.partial.avi")  # OpenCV picks the container by the suffix
        try:
            write_clip(partial, frames)
            partial.replace(path)  # a crash mid-write leaves no half clip under the final name
        except OSError as exc:
            log.error("evidence clip not saved: %s", exc)
            partial.unlink(missing_ok=True)
            return
        self._files.append(path)
        self.bytes += path.stat().st_size
        self._evict()

    def close(self, timeout: float = 30.0) -> None:
        if self.clips is not None:
            self.clips.flush()  # the clips still waiting for frames, with what they have
        super().close(timeout)

    def _evict(self) -> None:
        """Oldest first, down to 90 % of the quota (a margin, so it is not every frame)."""
        if self.bytes <= self.quota:
            return
        self._files.sort()
        while self._files and self.bytes > 0.9 * self.quota:
            path = self._files.pop(0)
            try:
                self.bytes -= path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                pass
        if self.metrics:
            self.metrics.evidence_bytes.set(self.bytes)


def export_mvtec(store: str | Path, out: str | Path) -> dict[str, int]:
    """Evidence → MVTec layout: OK frames to ``train/good``; NG frames to ``test/ng`` with their
    thresholded maps as ``ground_truth/ng/*_mask.png``; INVALID frames to ``invalid/`` for a look
    (they are not training data). The labels are the model's verdicts: review them before
    training on them."""
    store, out = Path(store), Path(out)
    if not store.is_dir():
        from ..errors import EdgeAdError

        raise EdgeAdError(f"evidence store not found: {store}")
    counts = {"good": 0, "ng": 0, "invalid": 0}
    for sidecar in sorted(store.glob("*.json")):
        stem = sidecar.stem
        frame = store / f"{stem}.png"
        if not frame.is_file():
            continue
        verdict = json.loads(sidecar.read_text()).get("verdict")
        if verdict == OK:
            target, kind = out / "train" / "good", "good"
        elif verdict == NG:
            target, kind = out / "test" / "ng", "ng"
            mask = store / f"{stem}_mask.png"
            if mask.is_file():
                (out / "ground_truth" / "ng").mkdir(parents=True, exist_ok=True)
                shutil.copy2(mask, out / "ground_truth" / "ng" / f"{stem}_mask.png")
        elif verdict == INVALID:
            target, kind = out / "invalid", "invalid"
        else:
            continue
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(frame, target / f"{stem}.png")
        counts[kind] += 1
    return counts
