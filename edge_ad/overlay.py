"""Heatmap overlays for people: the normalized map blended over the frame, regions boxed, the
verdict in the corner. Pure: numpy in, numpy out."""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from .decision import NG, OK, Region

_COLOURS_RGB = {OK: (40, 180, 70), NG: (220, 40, 40)}


def heatmap_rgb(map_norm: np.ndarray) -> np.ndarray:
    """0..1 map → RGB colormap (blue = normal, red = at/above threshold)."""
    u8 = (np.clip(map_norm, 0, 1) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


DISPLAY_WIDTH = 1280  # what the live views are drawn at: a 12 MP frame is never encoded per stream frame


def render_overlay(frame_rgb: np.ndarray, map_norm: np.ndarray | None, verdict: str,
                   score: float | None, regions: list[Region] = (), max_width: int | None = None) -> np.ndarray:
    """The frame with its heat map, regions and verdict; with ``max_width``, drawn at most that
    wide (regions scaled with it), for the live views of large frames."""
    frame = frame_rgb if frame_rgb.ndim == 3 and frame_rgb.shape[2] == 3 else \
        cv2.cvtColor(frame_rgb.reshape(frame_rgb.shape[:2]), cv2.COLOR_GRAY2RGB)
    if max_width is not None and frame.shape[1] > max_width:
        f = max_width / frame.shape[1]
        frame = cv2.resize(frame, (max_width, max(1, round(frame.shape[0] * f))), interpolation=cv2.INTER_AREA)
        regions = [replace(r, bbox_xywh=tuple(max(1, round(v * f)) for v in r.bbox_xywh)) for r in regions]
    h, w = frame.shape[:2]
    if map_norm is not None and map_norm.shape[1] > w:  # a full-resolution map: shrink it first
        map_norm = cv2.resize(map_norm, (w, h), interpolation=cv2.INTER_AREA)
    out = frame.copy()
    if map_norm is not None:
        heat = cv2.resize(heatmap_rgb(map_norm), (w, h), interpolation=cv2.INTER_LINEAR)
        # Heat only where the map rises, and never opaque: the operator must see the defect itself.
        alpha = np.clip(cv2.resize(map_norm, (w, h)) - 0.2, 0, 0.8)[:, :, None] * 0.55
        out = (frame * (1 - alpha) + heat * alpha).astype(np.uint8)
    colour = _COLOURS_RGB.get(verdict, (230, 160, 0))
    for r in regions:
        x, y, bw, bh = r.bbox_xywh
        cv2.rectangle(out, (x, y), (x + bw - 1, y + bh - 1), (255, 255, 255), 2)
    label = verdict if score is None else f"{verdict} {score:.2f}"
    scale = max(0.5, w / 640)
    (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    cv2.rectangle(out, (0, 0), (tw + 12, th + 12), colour, -1)
    cv2.putText(out, label, (6, th + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def encode_png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()
