"""Tiled inspection: a large judged frame cut into model-size tiles at native resolution, scored in
batches, and the tiles' maps stitched back with a smooth window, so there are no seams.

One pure implementation, used by every path that scores a bundle (``Inspector``, so ``infer``,
``serve``, ``evaluate``, ``bench``; training and calibration in ``export/`` too): a tiled
bundle scores alike wherever it runs, with ONNX Runtime or TensorRT beneath.

- **The grid.** Tiles of ``tile`` pixels overlap by at least ``overlap`` of a tile; the stride
  is spread evenly so the first tile starts at 0 and the last ends at the frame's edge.
- **The window.** Each tile's map is weighted by a separable raised cosine, never zero (a
  floor of ``WINDOW_FLOOR``), so every pixel has weight and a pixel's value is the weighted mean
  of the tiles that cover it: exact on a constant map, smooth across the overlaps.
- **The batch.** At most ``batch`` tiles go to the engine at once: the manifest derives it from
  its memory ceiling (``tile_batch``), so a 12 MP frame cannot exhaust a small device.
- **The score.** A frame's raw score is the maximum of its tiles' raw scores.
"""
from __future__ import annotations

import math

import numpy as np

WINDOW_FLOOR = 1e-3  # every pixel keeps a weight (a frame corner is covered by one tile only)
# Engine working memory per megapixel of tiles in one call. Measured on ONNX Runtime CPU (peak
# RSS growth per extra 256-px tile in one call, batches of 5 and 9, 2026-12-02): patchcore 44-49 MB,
# efficientad 16-21 MB, so 750 and 315 MB a megapixel; rounded up over the largest.
TILE_MB_PER_MPIX = 800.0


def positions(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets along one axis: the first at 0, the last at ``length - tile``, evenly spaced
    with at least ``overlap`` of a tile shared between neighbours."""
    if length < tile:
        raise ValueError(f"a frame side of {length} px is smaller than the {tile}-px tile")
    if length == tile:
        return [0]
    stride = max(1, int(tile * (1.0 - overlap)))
    n = math.ceil((length - tile) / stride) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def grid(height: int, width: int, tile: int, overlap: float) -> list[tuple[int, int]]:
    """Every tile's top-left corner (y, x), row by row."""
    return [(y, x) for y in positions(height, tile, overlap) for x in positions(width, tile, overlap)]


def window(tile: int) -> np.ndarray:
    """(tile, tile) float32 weights: a raised cosine on each axis, floored above zero."""
    t = (np.arange(tile, dtype=np.float64) + 0.5) / tile
    w1 = WINDOW_FLOOR + (1 - WINDOW_FLOOR) * np.sin(np.pi * t) ** 2
    return np.outer(w1, w1).astype(np.float32)


def cut(frame: np.ndarray, corners: list[tuple[int, int]], tile: int) -> np.ndarray:
    """(n, tile, tile, C) views of ``frame`` at ``corners``, stacked."""
    return np.stack([frame[y:y + tile, x:x + tile] for y, x in corners])


def _blend(acc: np.ndarray, weight: np.ndarray, maps: np.ndarray, corners, win: np.ndarray) -> None:
    tile = win.shape[0]
    for m, (y, x) in zip(maps, corners):
        acc[y:y + tile, x:x + tile] += m * win
        weight[y:y + tile, x:x + tile] += win


def stitch(maps: np.ndarray, corners: list[tuple[int, int]], height: int, width: int) -> np.ndarray:
    """The tiles' maps (n, tile, tile) blended into one (height, width) float32 map."""
    acc = np.zeros((height, width), np.float32)
    weight = np.zeros((height, width), np.float32)
    _blend(acc, weight, maps, corners, window(maps.shape[1]))
    return acc / weight


def tile_batch(tile: int, memory_mb: float) -> int:
    """Tiles per engine call within ``memory_mb`` (at least 1)."""
    per_tile = TILE_MB_PER_MPIX * tile * tile / 1e6
    return max(1, min(64, int(memory_mb // per_tile)))


def fit_frame(frame: np.ndarray, spec) -> np.ndarray:
    """A tiled bundle's judged frame at the frame size it was trained on (``spec``: the
    manifest's TilingSpec): resized only for a bundle trained with --frame, refused otherwise."""
    h, w = frame.shape[:2]
    if (h, w) == (spec.frame_height, spec.frame_width):
        return frame
    if not spec.resize_frames:
        raise ValueError(f"the frame is {w}x{h}, but this tiled bundle judges "
                         f"{spec.frame_width}x{spec.frame_height} frames (train with --frame WxH to resize)")
    import cv2

    interp = cv2.INTER_AREA if h > spec.frame_height else cv2.INTER_LINEAR
    return cv2.resize(frame, (spec.frame_width, spec.frame_height), interpolation=interp)


def score_tiled(infer, frame: np.ndarray, tile: int, overlap: float, batch: int) -> tuple[np.ndarray, float]:
    """``frame`` (H, W, C uint8, already the bundle's frame size and channels) through
    ``infer(batch_u8) -> (maps, scores)`` tile by tile: the stitched full-resolution raw map and
    the frame's raw score. Each batch's maps are blended in as they come, so no more than one
    batch of tile maps is held (a 12 MP frame's 336 maps would take 88 MB)."""
    h, w = frame.shape[:2]
    corners = grid(h, w, tile, overlap)
    tiles = cut(frame, corners, tile)
    acc = np.zeros((h, w), np.float32)
    weight = np.zeros((h, w), np.float32)
    win, best = window(tile), -np.inf
    for i in range(0, len(tiles), batch):
        m, s = infer(np.ascontiguousarray(tiles[i:i + batch]))
        m = np.asarray(m, np.float32).reshape(len(m), *np.shape(m)[-2:])
        if m.shape[1:] != (tile, tile):  # a graph whose map is smaller than its input
            import cv2

            m = np.stack([cv2.resize(x, (tile, tile), interpolation=cv2.INTER_LINEAR) for x in m])
        _blend(acc, weight, m, corners[i:i + batch], win)
        best = float(np.max([best, *np.ravel(s)]))  # np.max keeps a NaN, Python's max drops it
    return acc / weight, best
