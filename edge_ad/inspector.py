"""One inspection: frame → model input → engine → decision. Shared by ``infer``, ``serve`` and
``bench`` so that every path scores exactly alike."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .bundle import Manifest
from .decision import Region, find_regions, normalize, verdict_for
from .engines import Engine
from .imageio import to_model_input


@dataclass(frozen=True)
class Inspection:
    verdict: str
    score: float  # normalized, 0.5 = threshold
    raw_score: float
    threshold: float  # raw image threshold in force for this inspection
    regions: tuple[Region, ...]
    map_norm: np.ndarray  # (H, W) at model input size, 0..1
    preprocess_s: float
    infer_s: float
    postprocess_s: float


class Inspector:
    def __init__(self, engine: Engine, manifest: Manifest, min_region_area_px: int = 0):
        self.engine = engine
        self.manifest = manifest
        self.min_region_area_px = min_region_area_px

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        spec = self.manifest.input
        return to_model_input(frame, spec.height, spec.width, spec.channels)

    def inspect(self, frames: list[np.ndarray]) -> list[Inspection]:
        """Score a batch of frames (any size, RGB or GRAY) in one engine call."""
        t0 = time.perf_counter()
        batch = np.stack([self.prepare(f) for f in frames])
        t1 = time.perf_counter()
        raw_maps, raw_scores = self.engine.infer(batch)
        t2 = time.perf_counter()
        th = self.manifest.thresholds  # read once: a concurrent update applies to the next batch
        out = []
        for frame, raw_map, raw_score in zip(frames, raw_maps, raw_scores):
            score = float(normalize(raw_score, th.image.threshold, th.image.scale))
            map_norm = normalize(raw_map, th.pixel.threshold, th.pixel.scale)
            regions = find_regions(map_norm, frame.shape[:2], self.min_region_area_px)
            out.append((score, float(raw_score), map_norm, tuple(regions)))
        t3 = time.perf_counter()
        n = len(frames)
        return [Inspection(verdict_for(s), s, r, th.image.threshold, regs, m,
                           (t1 - t0) / n, (t2 - t1) / n, (t3 - t2) / n) for s, r, m, regs in out]
