"""Endpoints that inspect on request: an uploaded image, or the next frame for a PLC trigger."""
from __future__ import annotations

import asyncio
import base64

import numpy as np

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ImageError
from ..imageio import decode_image, image_header
from ..overlay import encode_png, heatmap_rgb
from ..pipeline.port import NotPushable, RequestsFull, SourceError, TriggersFull
from .admission import Busy, too_busy
from .bodies import parse, read_limited
from .handlers import choice_param
from .keys import CONFIG, METRICS, PORT, PUSH_LOCKS, UPLOADS

INFER_TIMEOUT_S = 30.0


def _error(status: int, message: str, **extra) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


async def _uploaded_image(request: web.Request, server) -> tuple[np.ndarray, int, int] | web.Response:
    """The body as an RGB image, or the error answer. Format and declared size are judged from
    the header before anything is decoded, so a decompression bomb costs nothing; decoding runs
    in a worker thread, never on the event loop (a legal 6000x6000 PNG held every poll 2.4 s)."""
    limit = int(server.max_body_mb * 1024 * 1024)
    data = await read_limited(request, limit)
    if len(data) > limit:  # sent chunked, without a length the middleware could refuse up front
        return _error(413, f"body is over the {limit}-byte limit (server.max_body_mb)")
    try:
        fmt, width, height = image_header(data)
    except ImageError as exc:
        status = 415 if "unsupported" in str(exc) else 400
        return _error(status, str(exc))
    if width * height > server.max_image_pixels or width == 0 or height == 0:
        return _error(413, f"image declares {width}x{height} pixels; the limit is "
                           f"{server.max_image_pixels} (server.max_image_pixels)")
    try:
        image = await asyncio.get_running_loop().run_in_executor(None, decode_image, data, f"uploaded {fmt}")
    except ImageError as exc:
        return _error(400, str(exc))
    if image.shape[1] != width or image.shape[0] != height:  # the header lied about the size
        return _error(400, f"uploaded {fmt} decodes to {image.shape[1]}x{image.shape[0]}, "
                           f"not the {width}x{height} its header declares")
    return image, width, height


def admitted(handler):
    """Run ``handler`` within the uploads' admission (a few at once, a short queue, 429 beyond),
    so that no number of clients can buffer unbounded bodies or take the engine from the line."""
    async def wrapped(request: web.Request) -> web.Response:
        try:
            async with request.app[UPLOADS]:
                return await handler(request)
        except Busy:
            request.app[METRICS].requests_refused.labels("uploads_busy").inc()
            return too_busy("uploads")
    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


@admitted
async def infer(request: web.Request) -> web.Response:
    service, server = request.app[PORT], request.app[CONFIG]
    want_map = choice_param(request, "map", ("png",), None) == "png"
    ready, why = service.engine_state()
    if not ready:
        return _error(503, why or "engine not loaded yet")
    upload = await _uploaded_image(request, server)
    if isinstance(upload, web.Response):
        return upload
    frame, width, height = upload
    try:
        ins = await asyncio.wait_for(asyncio.wrap_future(service.submit(frame)), INFER_TIMEOUT_S)
    except RequestsFull as exc:
        request.app[METRICS].requests_refused.labels("engine_queue_full").inc()
        return too_busy(str(exc))
    except asyncio.TimeoutError:
        return _error(503, "inspection did not finish in time")
    except Exception as exc:
        return _error(503, f"engine failure: {exc}")
    if ins.fault is not None:
        return _error(503, ins.fault, verdict="FAULT")  # as any engine failure: no score invented
    served = service.served()
    m = served.manifest
    body = {"verdict": ins.verdict, "score": round(ins.score, 5), "raw_score": ins.raw_score,
            "threshold": ins.threshold, "width": width, "height": height,
            "model": served.info, "regions": [r.to_json() for r in ins.regions],
            "latency_ms": {"preprocess": round(ins.preprocess_s * 1000, 2),
                           "infer": round(ins.infer_s * 1000, 2),
                           "postprocess": round(ins.postprocess_s * 1000, 2)}}
    if want_map:
        png = encode_png(heatmap_rgb(ins.map_norm))
        body["map_png"] = base64.b64encode(png).decode()
        body["map_size"] = [m.input.width, m.input.height]
    return web.json_response(body)


class TriggerRequest(BaseModel):
    """The body of POST /v1/trigger."""
    model_config = ConfigDict(extra="forbid")
    camera: str | None = Field(None, description="camera name; the only camera when omitted")
    part_id: str = Field(min_length=1, max_length=128, description="the PLC's id of the part")
    timeout_ms: int | None = Field(None, ge=10, le=60_000, description="deadline; server default when omitted")


async def trigger(request: web.Request) -> web.Response:
    service, server = request.app[PORT], request.app[CONFIG]
    req = await parse(request, TriggerRequest, '{"part_id": "A-1"}')
    camera = req.camera or service.cameras()[0]
    if camera not in service.cameras():
        return _error(404, f"unknown camera {camera!r}")
    ready, why = service.engine_state()
    if not ready:
        return _error(503, why or "engine not loaded yet", verdict="FAULT", part_id=req.part_id)
    timeout_s = (req.timeout_ms or server.trigger_timeout_ms) / 1000
    try:
        future = service.trigger(camera, req.part_id, timeout_s)
    except TriggersFull as exc:
        request.app[METRICS].requests_refused.labels("triggers_full").inc()
        return too_busy(str(exc))
    # The worker answers by the deadline (a FAULT result if no frame came); the margin covers a
    # worker busy with one inspection when the deadline passes.
    try:
        result = await asyncio.wait_for(asyncio.wrap_future(future), timeout_s + 5.0)
    except asyncio.TimeoutError:
        return _error(503, "the inference worker did not answer the trigger", verdict="FAULT",
                      part_id=req.part_id)
    return web.json_response(result.to_json())


@admitted
async def push(request: web.Request) -> web.Response:
    """An image for a ``push://`` camera: it goes through that camera's whole pipeline and its
    result (journaled, with the part id) is the answer. Posts to one camera are served in order,
    one at a time, so none is dropped."""
    service, server = request.app[PORT], request.app[CONFIG]
    push_cameras = service.push_cameras()
    camera = request.query.get("camera") or (push_cameras[0] if push_cameras else None)
    if camera is None:
        return _error(409, "no camera reads push://; add one to the config (source: push://)")
    if camera not in service.cameras():
        return _error(404, f"unknown camera {camera!r}")
    if camera not in push_cameras:
        return _error(409, f"camera {camera!r} reads {service.camera_source(camera)}; "
                           "only push:// cameras take posted images (POST /v1/infer scores one)")
    part_id = request.query.get("part_id") or None
    if part_id is not None and len(part_id) > 128:
        return _error(400, "part_id is longer than 128 characters")
    ready, why = service.engine_state()
    if not ready:
        return _error(503, why or "engine not loaded yet", verdict="FAULT", part_id=part_id)
    upload = await _uploaded_image(request, server)
    if isinstance(upload, web.Response):
        return upload
    frame = upload[0]
    timeout_s = server.trigger_timeout_ms / 1000
    async with request.app[PUSH_LOCKS].setdefault(camera, asyncio.Lock()):
        try:
            future = service.trigger(camera, part_id, timeout_s)
        except TriggersFull as exc:
            request.app[METRICS].requests_refused.labels("triggers_full").inc()
            return too_busy(str(exc))
        try:
            service.push(camera, frame)
        except (SourceError, NotPushable) as exc:  # the deadline answers the trigger with a FAULT result
            return _error(503, f"camera {camera}: {exc}", verdict="FAULT", part_id=part_id)
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), timeout_s + 5.0)
        except asyncio.TimeoutError:
            return _error(503, "the inference worker did not answer", verdict="FAULT", part_id=part_id)
    return web.json_response(result.to_json())
