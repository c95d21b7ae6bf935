"""Endpoints that inspect on request: an uploaded image, or the next frame for a PLC trigger."""
from __future__ import annotations

import asyncio
import base64

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ImageError
from ..imageio import decode_image, image_header
from ..overlay import encode_png, heatmap_rgb
from .bodies import parse
from .keys import CONFIG, PIPELINE

INFER_TIMEOUT_S = 30.0


def _error(status: int, message: str, **extra) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


async def infer(request: web.Request) -> web.Response:
    pipeline, server = request.app[PIPELINE], request.app[CONFIG]
    if not pipeline.engine_ready.is_set():
        return _error(503, pipeline.engine_error or "engine not loaded yet")
    data = await request.read()
    try:
        fmt, width, height = image_header(data)
    except ImageError as exc:
        status = 415 if "unsupported" in str(exc) else 400
        return _error(status, str(exc))
    if width * height > server.max_image_pixels or width == 0 or height == 0:
        return _error(413, f"image declares {width}x{height} pixels; the limit is "
                           f"{server.max_image_pixels} (server.max_image_pixels)")
    try:
        frame = decode_image(data, f"uploaded {fmt}")
    except ImageError as exc:
        return _error(400, str(exc))
    try:
        ins = await asyncio.wait_for(asyncio.wrap_future(pipeline.submit(frame)), INFER_TIMEOUT_S)
    except asyncio.TimeoutError:
        return _error(503, "inspection did not finish in time")
    except Exception as exc:
        return _error(503, f"engine failure: {exc}")
    m = pipeline.inspector.manifest
    body = {"verdict": ins.verdict, "score": round(ins.score, 5), "raw_score": ins.raw_score,
            "threshold": ins.threshold, "width": width, "height": height,
            "model": pipeline.model_info, "regions": [r.to_json() for r in ins.regions],
            "latency_ms": {"preprocess": round(ins.preprocess_s * 1000, 2),
                           "infer": round(ins.infer_s * 1000, 2),
                           "postprocess": round(ins.postprocess_s * 1000, 2)}}
    if request.query.get("map") == "png":
        png = encode_png(heatmap_rgb(ins.map_norm))
        body["map_png"] = base64.b64encode(png).decode()
        body["map_size"] = [m.input.width, m.input.height]
    return web.json_response(body)


class TriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera: str | None = Field(None, description="camera name; the only camera when omitted")
    part_id: str = Field(min_length=1, max_length=128, description="the PLC's id of the part")
    timeout_ms: int | None = Field(None, ge=10, le=60_000, description="deadline; server default when omitted")


async def trigger(request: web.Request) -> web.Response:
    pipeline, server = request.app[PIPELINE], request.app[CONFIG]
    req = await parse(request, TriggerRequest, '{"part_id": "A-1"}')
    camera = req.camera or next(iter(pipeline.cameras))
    if camera not in pipeline.cameras:
        return _error(404, f"unknown camera {camera!r}")
    if not pipeline.engine_ready.is_set():
        return _error(503, pipeline.engine_error or "engine not loaded yet", verdict="FAULT",
                      part_id=req.part_id)
    timeout_s = (req.timeout_ms or server.trigger_timeout_ms) / 1000
    future = pipeline.trigger(camera, req.part_id, timeout_s)
    # The worker answers by the deadline (a FAULT result if no frame came); the margin covers a
    # worker busy with one inspection when the deadline passes.
    try:
        result = await asyncio.wait_for(asyncio.wrap_future(future), timeout_s + 5.0)
    except asyncio.TimeoutError:
        return _error(503, "the inference worker did not answer the trigger", verdict="FAULT",
                      part_id=req.part_id)
    return web.json_response(result.to_json())
