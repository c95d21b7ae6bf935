"""HTTP handlers of API v1. Read handlers never wait on inference: they read snapshots from the
service port (results, views, status), never the pipeline itself."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import __version__
from ..decision import FAULT
from ..overlay import DISPLAY_WIDTH, encode_jpeg, render_overlay
from ..decision.result import as_stale
from ..pipeline.port import Gone
from .keys import CONFIG, DRAIN, FRAME_CACHE, LOOP_WATCH, METRICS, PLATFORM, PORT, STREAMS

LOOP_STALL_S = 2.0  # a tick of the loop watch this late is a stall ...
LOOP_STALL_MEMORY_S = 10.0  # ... and /healthz reports it for this long

DASHBOARD = (Path(__file__).parent / "static" / "index.html").read_bytes()


def _error(status: int, message: str, **extra) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def choice_param(request: web.Request, name: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    """A query parameter that takes one of a few words: anything else is a 400 that lists them."""
    raw = request.query.get(name, default)
    if raw is not None and raw not in allowed:
        raise web.HTTPBadRequest(text=f'{{"error": "{name} must be one of {", ".join(allowed)}"}}',
                                 content_type="application/json")
    return raw


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f'{{"error": "{name} must be an integer"}}',
                                 content_type="application/json") from None
    if not lo <= value <= hi:
        raise web.HTTPBadRequest(text=f'{{"error": "{name} must be between {lo} and {hi}"}}',
                                 content_type="application/json")
    return value


def _camera(request: web.Request) -> str | None:
    camera = request.query.get("camera")
    if camera is not None and camera not in request.app[PORT].cameras():
        raise web.HTTPNotFound(text='{"error": "unknown camera"}', content_type="application/json")
    return camera


def _latest_json(request: web.Request) -> tuple[dict | None, int]:
    latest = request.app[PORT].latest(_camera(request))
    if latest is None:
        return None, 503
    now = time.time()
    if latest.stale_reason is not None:
        body = as_stale(latest.result, latest.stale_reason, now)
    else:
        body = latest.result.to_json(now)
        body["stale"] = False
    chained = request.app[PORT].chains([latest.result.seq]).get(latest.result.seq)
    if chained is not None:
        body["chain"] = chained
    return body, 200


async def result(request: web.Request) -> web.Response:
    body, status = _latest_json(request)
    if body is None:
        return _error(503, "no inspected frame yet", verdict=FAULT)
    return web.json_response(body, status=status)


async def verdict(request: web.Request) -> web.Response:
    body, _ = _latest_json(request)
    if body is None:
        return web.Response(text="0 FAULT 0.00000 0\n", status=503)
    score = body["score"] if body["score"] is not None else 0.0
    return web.Response(text=f"{body['seq']} {body['verdict']} {score:.5f} {body['age_ms']:.0f}\n")


async def results(request: web.Request) -> web.Response:
    service = request.app[PORT]
    part_id = request.query.get("part_id")
    if part_id is not None:
        page = service.result_for_part(part_id)
        if page is None:
            return _error(404, f"no result for part {part_id!r} (unknown, or past retention)")
        return web.json_response(page)
    after = _int_param(request, "after", 0, 0, 2**62)
    limit = _int_param(request, "limit", 100, 1, 1000)
    try:
        page = service.results_after(after, limit)
    except Gone as exc:
        return _error(410, "results after that seq are no longer kept; resume from oldest_seq - 1",
                      oldest_seq=exc.oldest_seq)
    return web.json_response(page)


async def overlay_jpeg(app: web.Application, camera: str, view, overlay: bool) -> bytes:
    """The JPEG of a camera's last view, encoded once per frame however many clients ask."""
    cache = app[FRAME_CACHE]
    hit = cache.get((camera, overlay))
    if hit is not None and hit[0] == view.seq:
        return hit[1]
    ins = view.inspection

    def encode() -> bytes:
        if not overlay:
            return encode_jpeg(view.frame_rgb)
        if ins is None:
            return encode_jpeg(render_overlay(view.frame_rgb, None, FAULT, None, max_width=DISPLAY_WIDTH))
        return encode_jpeg(render_overlay(view.frame_rgb, ins.map_norm, ins.verdict, ins.score, ins.regions,
                                          max_width=DISPLAY_WIDTH))

    jpeg = await asyncio.get_running_loop().run_in_executor(None, encode)
    if len(cache) > 64:  # gallery entries are keyed by seq; keep the cache bounded
        cache.clear()
    cache[(camera, overlay)] = (view.seq, jpeg)
    return jpeg


async def frame_jpg(request: web.Request) -> web.Response:
    service = request.app[PORT]
    camera = _camera(request) or service.cameras()[0]
    overlay = choice_param(request, "overlay", ("0", "1"), "1") == "1"
    if "seq" in request.query:  # a recent reject (the dashboard's gallery) or the latest frame
        seq = _int_param(request, "seq", 0, 0, 2**62)
        view = service.view_by_seq(seq)
        if view is None:
            return _error(404, f"frame {seq} is not retained (the last 16 rejects and the latest frames are)")
        jpeg = await overlay_jpeg(request.app, f"seq:{seq}", view, overlay)
        return web.Response(body=jpeg, content_type="image/jpeg", headers={"X-Seq": str(seq)})
    view = service.view(camera)
    if view is None:
        return _error(503, "no inspected frame yet")
    jpeg = await overlay_jpeg(request.app, camera, view, overlay)
    return web.Response(body=jpeg, content_type="image/jpeg",
                        headers={"Cache-Control": "no-store", "X-Seq": str(view.seq)})


async def stream_mjpg(request: web.Request) -> web.StreamResponse:
    """Live overlay as multipart JPEG; frames are encoded only while someone watches."""
    app, service = request.app, request.app[PORT]
    server, viewers = app[CONFIG], app[STREAMS]
    camera = _camera(request) or service.cameras()[0]
    if viewers.get("n", 0) >= server.stream_max_clients:
        return _error(503, f"{server.stream_max_clients} stream viewers already; "
                           "poll /v1/frame.jpg instead or raise server.stream_max_clients")
    try:
        fps = min(float(request.query.get("fps", server.stream_max_fps)), server.stream_max_fps)
    except ValueError:
        return _error(400, "fps must be a number")
    if not fps > 0:
        return _error(400, "fps must be positive")
    response = web.StreamResponse(headers={
        "Content-Type": "multipart/x-mixed-replace; boundary=frame", "Cache-Control": "no-store"})
    await response.prepare(request)
    viewers["n"] = viewers.get("n", 0) + 1
    app[METRICS].stream_viewers.set(viewers["n"])
    try:
        last = None
        while True:
            view = service.view(camera)
            if view is not None and view.seq != last:
                jpeg = await overlay_jpeg(app, camera, view, True)
                await response.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                     + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                last = view.seq
            await asyncio.sleep(1.0 / fps)
    except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
        pass  # the viewer left
    finally:
        viewers["n"] -= 1
        app[METRICS].stream_viewers.set(viewers["n"])
    return response


async def status(request: web.Request) -> web.Response:
    body = request.app[PORT].status()
    return web.json_response({"version": __version__, "ready": body.pop("ready"),
                              "not_ready_reasons": body.pop("not_ready_reasons"),
                              "model": body.pop("model"), "engine": body.pop("engine"),
                              "platform": request.app[PLATFORM], **body})


async def healthz(request: web.Request) -> web.Response:
    """Live: the supervisor ticks, the engine recovers from hangs, and the event loop has not
    stalled recently. Not ready (no camera, no model) is still alive: see /readyz."""
    alive, reasons = request.app[PORT].liveness()
    loop = request.app[LOOP_WATCH]
    if loop["stalled_s"] and time.monotonic() - loop["stalled_at"] < LOOP_STALL_MEMORY_S:
        alive = False
        reasons.append(f"the event loop stalled for {loop['stalled_s']:.1f} s")
    return web.json_response({"status": "alive" if alive else "failing", "reasons": reasons},
                             status=200 if alive else 503)


async def readyz(request: web.Request) -> web.Response:
    if request.app[DRAIN]["since"] is not None:
        return web.json_response({"ready": False, "reasons": ["stopping: draining requests in flight"]},
                                 status=503)
    ready, reasons = request.app[PORT].readiness()
    return web.json_response({"ready": ready, "reasons": reasons}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def dashboard(request: web.Request) -> web.Response:
    return web.Response(body=DASHBOARD, content_type="text/html")
