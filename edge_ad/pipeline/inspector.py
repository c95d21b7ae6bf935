"""One inspection: frame → model input → engine → decision. Shared by ``infer``, ``serve`` and
``bench`` so that every path scores exactly alike."""
from __future__ import annotations

import time

import numpy as np

from ..bundle import Manifest
from ..decision.camera import CameraDecision
from ..decision.scoring import Inspection, score_frame
from ..engines import Engine
from ..imageio import to_model_input
from ..tiling import fit_frame, score_tiled


class Inspector:
    """Owns the model input and one engine call per batch; the judging is decision/scoring's."""

    def __init__(self, engine: Engine, manifest: Manifest, min_region_area_px: int = 0):
        self.engine = engine
        self.manifest = manifest
        self.min_region_area_px = min_region_area_px

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        spec = self.manifest.input
        return to_model_input(frame, spec.height, spec.width, spec.channels)

    def fit_frame(self, frame: np.ndarray) -> np.ndarray:
        return fit_frame(frame, self.manifest.tiling)

    def inspect(self, frames: list[np.ndarray], decisions: list[CameraDecision | None] | None = None,
                before_call=None) -> list[Inspection]:
        """Score a batch of frames (any size, RGB or GRAY, several cameras) in one engine call;
        ``decisions`` gives each frame its camera's ROI, ignore mask and minimum defect area.
        A tiled bundle makes one engine call per tile batch, and ``before_call()`` runs before
        each: the worker's hang watchdog times engine calls, not whole frames (a 12 MP frame is
        18 batches, 18 s on two CPU cores)."""
        t0 = time.perf_counter()
        decisions = decisions or [None] * len(frames)
        frames = [d.inspected(f) if d else f for f, d in zip(frames, decisions)]
        tiling = self.manifest.tiling
        if tiling is None:
            batch = np.stack([self.prepare(f) for f in frames])
            t1 = time.perf_counter()
            raw_maps, raw_scores = self.engine.infer(batch)
        else:  # each frame tile by tile, its map stitched at full resolution (edge_ad/tiling.py)
            frames = [self.fit_frame(f) for f in frames]  # what regions and overlays refer to
            spec = self.manifest.input
            judged = [to_model_input(f, *f.shape[:2], spec.channels) for f in frames]
            t1 = time.perf_counter()
            infer = self.engine.infer
            if before_call is not None:
                def infer(batch, call=self.engine.infer):
                    before_call()
                    return call(batch)
            scored_tiles = [score_tiled(infer, f, spec.height, tiling.overlap, tiling.batch) for f in judged]
            raw_maps, raw_scores = [m for m, _ in scored_tiles], [s for _, s in scored_tiles]
        t2 = time.perf_counter()
        th = self.manifest.thresholds  # read once: a concurrent update applies to the next batch
        scored = [score_frame(m, s, th, f.shape[:2], d, self.min_region_area_px)
                  for f, d, m, s in zip(frames, decisions, raw_maps, raw_scores)]
        t3 = time.perf_counter()
        n = len(frames)
        return [Inspection(j.verdict, j.score, j.raw_score, th.image.threshold, j.regions, j.raw_map, th.pixel,
                           (t1 - t0) / n, (t2 - t1) / n, (t3 - t2) / n, f) for j, f in zip(scored, frames)]
