"""From one frame's raw engine outputs to its inspection: the camera's ignore mask, score
normalization, regions and the verdict. Pure: numpy in, a frozen record out."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..bundle import Normalization, Thresholds
from .camera import CameraDecision
from .verdict import FAULT, OK, Region, Verdict, find_regions, normalize, verdict_for


@dataclass(frozen=True)
class Inspection:
    """What the model said about one frame, judged against the thresholds in force."""
    verdict: Verdict
    score: float  # normalized, 0.5 = threshold
    raw_score: float
    threshold: float  # raw image threshold in force for this inspection
    regions: tuple[Region, ...]
    raw_map: np.ndarray  # (H, W) at model input size, as the engine gave it (ignored pixels lowered)
    pixel: Normalization  # the pixel normalization in force for this inspection
    preprocess_s: float
    infer_s: float
    postprocess_s: float
    inspected_rgb: np.ndarray | None = None  # the image the map belongs to (after ROI/rotation)

    @property
    def fault(self) -> str | None:
        """Why this inspection has no verdict (a non-finite score), else None."""
        return None if math.isfinite(self.raw_score) else non_finite_reason(self.raw_score)

    @cached_property
    def map_norm(self) -> np.ndarray:
        """(H, W) 0..1, 0.5 = threshold: computed when an overlay or evidence asks for it, not for
        every frame (0.22 ms a frame here, right after an engine call)."""
        return normalize(self.raw_map, self.pixel.threshold, self.pixel.scale)


def non_finite_reason(raw_score: float) -> str:
    return (f"the engine returned a non-finite score ({raw_score}), so no verdict is given; "
            "if it repeats, rebuild the engine in fp32 (edge-ad build-engine --precision fp32)")


@dataclass(frozen=True)
class Scored:
    """The judged part of an inspection, before the timings are attached."""
    verdict: Verdict
    score: float
    raw_score: float
    raw_map: np.ndarray
    regions: tuple[Region, ...]


def score_frame(raw_map: np.ndarray, raw_score: float, thresholds: Thresholds,
                frame_hw: tuple[int, int], decision: CameraDecision | None = None,
                min_area_px: int = 0) -> Scored:
    """``raw_map`` (H, W) and ``raw_score`` of one frame whose inspected image is ``frame_hw``."""
    if decision is not None:
        min_area_px = max(min_area_px, decision.min_defect_area_px)
        if decision.ignore_model is not None:
            # Ignored pixels cannot raise the map or the score (the score is the map's maximum
            # for the families here, so it is taken again over what remains).
            keep = ~decision.ignore_model
            raw_map = np.where(decision.ignore_model,
                               np.float32(thresholds.pixel.threshold - thresholds.pixel.scale), raw_map)
            raw_score = float(raw_map[keep].max()) if keep.any() else raw_score
    if not (math.isfinite(raw_score) and math.isfinite(float(raw_map.sum()))):
        # NaN >= 0.5 is False: without this a NaN score would read as OK. An fp16 engine can
        # overflow on an extreme patch (|f|² beyond 65504, then inf - inf in a distance), and
        # ONNX Runtime's ReduceMax skips NaN, so a finite score can stand on a NaN map: the map's
        # sum (a few µs) carries any NaN or inf in it.
        return Scored(FAULT, float("nan"), float("nan"), raw_map, ())
    score = float(normalize(raw_score, thresholds.image.threshold, thresholds.image.scale))
    regions = tuple(find_regions(raw_map, frame_hw, min_area_px, pixel=thresholds.pixel))
    verdict = verdict_for(score)
    if min_area_px and not regions:  # an NG needs a defect at least min_area_px large
        verdict = OK
    return Scored(verdict, score, float(raw_score), raw_map, regions)
