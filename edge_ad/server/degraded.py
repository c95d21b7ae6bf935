"""The service while its model cannot be loaded (corrupt, missing, an engine that fails): alive
and saying why it is not ready, instead of exiting into a restart loop. /healthz answers 200,
/readyz and every API route 503 with the reason, /metrics counts the failed loads."""
from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import __version__
from ..prometheus import Metrics

REASON = web.AppKey("reason", dict)  # {"text": why the model is not loaded, "retry_s": ...}


def make_degraded_app(metrics: Metrics, reason: str, retry_s: float) -> web.Application:
    app = web.Application()
    app[REASON] = {"text": reason, "retry_s": retry_s}

    def why() -> list[str]:
        return [f"model not loaded: {app[REASON]['text']} (retrying every {app[REASON]['retry_s']:.0f} s)"]

    async def healthz(request):
        return web.json_response({"status": "alive", "reasons": why()})

    async def readyz(request):
        return web.json_response({"ready": False, "reasons": why()}, status=503)

    async def status(request):
        return web.json_response({"version": __version__, "ready": False, "not_ready_reasons": why()})

    async def metrics_page(request):
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def anything(request):
        return web.json_response({"error": why()[0], "verdict": "FAULT"}, status=503)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/v1/status", status)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_route("*", "/{tail:.*}", anything)
    return app
