"""The aiohttp application, built by a factory from injected parts (no globals)."""
from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from ..config import SecurityConfig, ServerConfig
from ..prometheus import Metrics
from ..platform import detect as detect_platform
from ..pipeline.port import ServicePort
from . import control, handlers, inference, openapi
from .auth import auth_middleware
from .admission import Admission
from .keys import CONFIG, DRAIN, FRAME_CACHE, LOOP_WATCH, METRICS, PLATFORM, PORT, PUSH_LOCKS, STREAMS, UPLOADS

log = logging.getLogger(__name__)
# Uploads read, decoded and inspected at once, and waiting: on 2 cores two decodes already fill
# the machine; the queue absorbs a burst from one client without a 429.
UPLOAD_SLOTS, UPLOAD_QUEUE = 2, 6


LONG_LIVED = {"/v1/stream.mjpg"}  # not waited for by the drain


@web.middleware
async def count_requests(request: web.Request, handler):
    metrics = request.app[METRICS]
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    drain = request.app[DRAIN]
    counted = request.path not in LONG_LIVED
    drain["in_flight"] += counted
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        metrics.http_requests.labels(route, str(exc.status)).inc()
        raise
    except Exception:  # never a bare 5xx traceback to the client; log it and answer 500 in JSON
        log.exception("handler error on %s", request.path)
        metrics.http_requests.labels(route, "500").inc()
        return web.json_response({"error": "internal error"}, status=500)
    finally:
        drain["in_flight"] -= counted
    metrics.http_requests.labels(route, str(response.status)).inc()
    return response


async def _watch_loop(app: web.Application):
    """Ticks every 0.5 s; a tick late by more than LOOP_STALL_S means something blocked the
    event loop (every request waited that long), and /healthz says so for a while."""
    watch = app[LOOP_WATCH]

    async def tick():
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(0.5)
            late = time.monotonic() - t0 - 0.5
            if late > handlers.LOOP_STALL_S:
                watch["stalled_s"], watch["stalled_at"] = late, time.monotonic()
                log.error("the event loop stalled for %.1f s", late)

    task = asyncio.create_task(tick())
    yield
    task.cancel()


def body_limit(max_bytes: int):
    """Refuse a declared oversize body before a byte of it is read (aiohttp's own limit, set to
    the same size, catches bodies sent without a length while they are read)."""
    @web.middleware
    async def check(request: web.Request, handler):
        if request.content_length is not None and request.content_length > max_bytes:
            return web.json_response({"error": f"body of {request.content_length} bytes is over the "
                                               f"{max_bytes}-byte limit (server.max_body_mb)"}, status=413)
        return await handler(request)
    return check


def make_app(service: ServicePort, metrics: Metrics, security: SecurityConfig | None = None,
             server: ServerConfig | None = None, manage_service: bool = True) -> web.Application:
    server = server or ServerConfig()
    max_body = int(server.max_body_mb * 1024 * 1024)
    app = web.Application(middlewares=[count_requests, auth_middleware(security or SecurityConfig()),
                                       body_limit(max_body)], client_max_size=max_body)
    app[PORT] = service
    app[METRICS] = metrics
    app[FRAME_CACHE] = {}
    app[CONFIG] = server
    app[STREAMS] = {"n": 0}
    app[PUSH_LOCKS] = {}
    app[UPLOADS] = Admission(UPLOAD_SLOTS, UPLOAD_QUEUE)
    app[LOOP_WATCH] = {"stalled_s": 0.0, "stalled_at": 0.0}
    app[DRAIN] = {"since": None, "in_flight": 0}
    app.cleanup_ctx.append(_watch_loop)
    app[PLATFORM] = detect_platform().to_json()

    if manage_service:
        async def run_service(app: web.Application):
            service.start()
            yield
            service.stop()

        app.cleanup_ctx.append(run_service)

    r = app.router
    r.add_get("/", handlers.dashboard)
    r.add_get("/v1/result", handlers.result)
    r.add_get("/v1/results", handlers.results)
    r.add_get("/v1/verdict", handlers.verdict)
    r.add_get("/v1/frame.jpg", handlers.frame_jpg)
    r.add_get("/v1/status", handlers.status)
    r.add_get("/healthz", handlers.healthz)
    r.add_get("/readyz", handlers.readyz)
    r.add_get("/metrics", handlers.metrics)
    r.add_get("/v1/stream.mjpg", handlers.stream_mjpg)
    r.add_post("/v1/infer", inference.infer)
    r.add_post("/v1/trigger", inference.trigger)
    r.add_post("/v1/push", inference.push)
    r.add_put("/v1/config/threshold", control.put_threshold)
    r.add_post("/v1/model/reload", control.reload_model)
    r.add_get("/v1/recipe", control.get_recipe)
    r.add_put("/v1/recipe", control.put_recipe)
    spec = openapi.build_spec()

    async def openapi_json(request: web.Request) -> web.Response:
        return web.json_response(spec)

    r.add_get("/openapi.json", openapi_json)
    return app
