"""One inspection: frame → model input → engine → decision. Shared by ``infer``, ``serve`` and
``bench`` so that every path scores exactly alike."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .bundle import Manifest
from .decision import OK, Region, find_regions, normalize, verdict_for
from .engines import Engine
from .geometry import CameraDecision
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
    inspected_rgb: np.ndarray | None = None  # the image the map belongs to (after ROI/rotation)


class Inspector:
    def __init__(self, engine: Engine, manifest: Manifest, min_region_area_px: int = 0):
        self.engine = engine
        self.manifest = manifest
        self.min_region_area_px = min_region_area_px

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        spec = self.manifest.input
        return to_model_input(frame, spec.height, spec.width, spec.channels)

    def inspect(self, frames: list[np.ndarray],
                decisions: list[CameraDecision | None] | None = None) -> list[Inspection]:
        """Score a batch of frames (any size, RGB or GRAY, several cameras) in one engine call;
        ``decisions`` gives each frame its camera's ROI, ignore mask and minimum defect area."""
        t0 = time.perf_counter()
        decisions = decisions or [None] * len(frames)
        frames = [d.inspected(f) if d else f for f, d in zip(frames, decisions)]
        batch = np.stack([self.prepare(f) for f in frames])
        t1 = time.perf_counter()
        raw_maps, raw_scores = self.engine.infer(batch)
        t2 = time.perf_counter()
        th = self.manifest.thresholds  # read once: a concurrent update applies to the next batch
        out = []
        for frame, d, raw_map, raw_score in zip(frames, decisions, raw_maps, raw_scores):
            min_area = self.min_region_area_px
            if d is not None:
                min_area = max(min_area, d.min_defect_area_px)
                if d.ignore_model is not None:
                    # Ignored pixels cannot raise the map or the score (the score is the map's
                    # maximum for the families here, so it is taken again over what remains).
                    raw_map = np.where(d.ignore_model, np.float32(th.pixel.threshold - th.pixel.scale), raw_map)
                    raw_score = float(raw_map[~d.ignore_model].max()) if (~d.ignore_model).any() else raw_score
            score = float(normalize(raw_score, th.image.threshold, th.image.scale))
            map_norm = normalize(raw_map, th.pixel.threshold, th.pixel.scale)
            regions = tuple(find_regions(map_norm, frame.shape[:2], min_area))
            verdict = verdict_for(score)
            if min_area and not regions:  # an NG needs a defect at least min_area large
                verdict = OK
            out.append((verdict, score, float(raw_score), map_norm, regions, frame))
        t3 = time.perf_counter()
        n = len(frames)
        return [Inspection(v, s, r, th.image.threshold, regs, m, (t1 - t0) / n, (t2 - t1) / n,
                           (t3 - t2) / n, f) for v, s, r, m, regs, f in out]
