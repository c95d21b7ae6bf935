"""The four verdicts, score normalization (0.5 = threshold) and defect regions.

Pure numpy in, numpy/dataclasses out.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import cv2
import numpy as np


class Verdict(str, Enum):
    """What a result says about a part. A ``str`` underneath, so JSON, SQLite, Prometheus labels
    and comparisons with the plain words see "OK", never "Verdict.OK"."""

    OK = "OK"  # inspected, no defect
    NG = "NG"  # inspected, defective
    INVALID = "INVALID"  # the frame could not be judged (dark, blurred, frozen): never an OK
    FAULT = "FAULT"  # the system failed (engine, camera, deadline): no score is invented

    __str__ = str.__str__
    __format__ = str.__format__


OK, NG, INVALID, FAULT = Verdict.OK, Verdict.NG, Verdict.INVALID, Verdict.FAULT


@dataclass(frozen=True)
class Region:
    """One connected defect area of a map, in frame pixels."""
    bbox_xywh: tuple[int, int, int, int]  # in frame pixels
    area_px: int  # in frame pixels
    peak_score: float  # normalized, 0.5 = threshold

    def to_json(self) -> dict:
        return {"bbox": list(self.bbox_xywh), "area": self.area_px, "peak_score": round(self.peak_score, 4)}


def normalize(raw, threshold: float, scale: float):
    """Raw score or map → [0, 1] with ``threshold`` at exactly 0.5."""
    return np.clip(0.5 + 0.5 * (np.asarray(raw, np.float32) - threshold) / scale, 0.0, 1.0)


def verdict_for(score_norm: float) -> Verdict:
    return NG if score_norm >= 0.5 else OK


def find_regions(map_norm: np.ndarray, frame_hw: tuple[int, int], min_area_px: int = 0,
                 max_regions: int = 16, pixel=None) -> list[Region]:
    """Connected areas of the normalized map at or above 0.5, largest first, in frame pixels.
    With ``pixel`` (a Normalization) the map is raw: the areas at or above its threshold, the
    same areas, found without normalizing every pixel first."""
    level = 0.5 if pixel is None else pixel.threshold
    mask = (map_norm >= level).astype(np.uint8)
    if not mask.any():
        return []
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    sy = frame_hw[0] / map_norm.shape[0]
    sx = frame_hw[1] / map_norm.shape[1]
    regions = []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        area_frame = int(round(area * sx * sy))
        if area_frame < min_area_px:
            continue
        peak = float(map_norm[y:y + h, x:x + w][labels[y:y + h, x:x + w] == i].max())
        if pixel is not None:
            peak = float(normalize(peak, pixel.threshold, pixel.scale))
        bbox = (int(x * sx), int(y * sy), max(1, int(round(w * sx))), max(1, int(round(h * sy))))
        regions.append(Region(bbox, area_frame, peak))
    regions.sort(key=lambda r: r.area_px, reverse=True)
    return regions[:max_regions]
