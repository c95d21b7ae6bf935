"""Reading images into the bundle's input: uint8, RGB or GRAY, resized to the model size."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import ImageError

# Decode failures are reported as ImageError with the file's name; OpenCV's own stderr lines
# about truncated buffers would only duplicate that without saying which file.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def decode_image(data: bytes, source: str = "image") -> np.ndarray:
    """Encoded bytes → RGB uint8 (H, W, 3). Raises ImageError for anything undecodable."""
    if not data:
        raise ImageError(f"{source}: empty file")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ImageError(f"{source}: not a readable image (corrupt, truncated or unsupported format)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_image(path: str | Path) -> np.ndarray:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return decode_image(data, str(path))


def to_model_input(frame_rgb: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
    """RGB (or GRAY) frame of any size → (height, width, channels) uint8 for the engine."""
    if frame_rgb.ndim == 2:
        frame_rgb = frame_rgb[:, :, None]
    if frame_rgb.shape[2] == 1 and channels == 3:
        frame_rgb = np.repeat(frame_rgb, 3, axis=2)
    elif frame_rgb.shape[2] == 3 and channels == 1:
        frame_rgb = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)[:, :, None]
    h, w = frame_rgb.shape[:2]
    if (h, w) != (height, width):
        interp = cv2.INTER_AREA if h > height or w > width else cv2.INTER_LINEAR
        frame_rgb = cv2.resize(frame_rgb, (width, height), interpolation=interp)
        if frame_rgb.ndim == 2:
            frame_rgb = frame_rgb[:, :, None]
    return np.ascontiguousarray(frame_rgb, dtype=np.uint8)
