"""The key a built TensorRT engine is filed under. An engine is only valid for the ONNX graph,
TensorRT version, GPU (compute capability), precision and DLA core it was built for; loading one
built for anything else fails or, worse, runs wrong. The key names all of them, so a changed
model, a JetPack upgrade or a moved SD card leads to a rebuild, never to a stale engine."""
from __future__ import annotations

import re

from ..platform import Platform

PRECISIONS = ("fp32", "fp16", "int8")


def _slug(text: str | None) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", (text or "unknown").lower()).strip("-") or "unknown"


def engine_key(onnx_sha256: str, platform: Platform, precision: str = "fp32",
               dla_core: int | None = None, tile_batch: int | None = None) -> str:
    """``tile_batch``: a tiled bundle's tiles per call, which the plan's profile must cover."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    parts = [onnx_sha256[:16], f"trt{_slug(platform.tensorrt)}", _slug(platform.gpu),
             f"sm{_slug(platform.compute_capability).replace('.', '')}", precision,
             f"dla{dla_core}" if dla_core is not None else "gpu"]
    if tile_batch is not None:
        parts.append(f"tiles{tile_batch}")
    return "_".join(parts)
