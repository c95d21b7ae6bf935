"""Per-camera decision settings: what part of the frame is inspected, what is ignored, and how
large a defect must be. Pure functions, numpy in, numpy out.

Order: crop the region of interest (frame pixels), then rotate (multiples of 90°); the result
is "the inspected image" whose coordinates regions, overlays and masks use. An ignore mask is
drawn over the inspected image (white = ignore) and resized to the model input.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConfigError

_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


@dataclass(frozen=True)
class CameraDecision:
    """A camera's ROI, rotation, ignore mask and minimum defect area."""
    roi_xywh: tuple[int, int, int, int] | None = None
    rotate_deg: int = 0
    ignore_model: np.ndarray | None = None  # bool (H, W) at model input size, True = ignored
    min_defect_area_px: int = 0  # in inspected-image pixels

    def inspected(self, frame: np.ndarray) -> np.ndarray:
        if self.roi_xywh is not None:
            x, y, w, h = self.roi_xywh
            fh, fw = frame.shape[:2]
            if x + w > fw or y + h > fh:
                raise ValueError(f"roi {self.roi_xywh} lies outside the {fw}x{fh} frame")
            frame = frame[y:y + h, x:x + w]
        if self.rotate_deg:
            frame = cv2.rotate(frame, _ROTATE[self.rotate_deg])
        return np.ascontiguousarray(frame)


def load_ignore_mask(path: str | Path, height: int, width: int) -> np.ndarray:
    """PNG/JPEG mask over the inspected image (white = ignore) → bool mask at model size."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ConfigError(f"ignore mask {path} is missing or not an image")
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST) >= 128
