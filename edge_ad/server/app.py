"""The aiohttp application, built by a factory from injected parts (no globals)."""
from __future__ import annotations

import logging

from aiohttp import web

from ..config import SecurityConfig
from ..metrics import Metrics
from ..pipeline.service import Pipeline
from . import control, handlers
from .auth import auth_middleware
from .keys import FRAME_CACHE, METRICS, PIPELINE

log = logging.getLogger(__name__)


@web.middleware
async def count_requests(request: web.Request, handler):
    metrics = request.app[METRICS]
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        metrics.http_requests.labels(route, str(exc.status)).inc()
        raise
    except Exception:  # never a bare 5xx traceback to the client; log it and answer 500 in JSON
        log.exception("handler error on %s", request.path)
        metrics.http_requests.labels(route, "500").inc()
        return web.json_response({"error": "internal error"}, status=500)
    metrics.http_requests.labels(route, str(response.status)).inc()
    return response


def make_app(pipeline: Pipeline, metrics: Metrics, security: SecurityConfig | None = None,
             manage_pipeline: bool = True) -> web.Application:
    app = web.Application(middlewares=[count_requests, auth_middleware(security or SecurityConfig())],
                          client_max_size=1 << 20)
    app[PIPELINE] = pipeline
    app[METRICS] = metrics
    app[FRAME_CACHE] = {}

    if manage_pipeline:
        async def run_pipeline(app: web.Application):
            pipeline.start()
            yield
            pipeline.stop()

        app.cleanup_ctx.append(run_pipeline)

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
    r.add_put("/v1/config/threshold", control.put_threshold)
    return app
