"""Bearer-token protection. Control endpoints (those that change how the line is judged: the
threshold, the model) always need the token, and with no token configured they are refused:
a line's thresholds must never be changeable by whoever reaches the port. Everything else
(reads, uploads to score, PLC triggers) is open or protected by ``protect_reads``; health
checks never are."""
from __future__ import annotations

import hmac

from aiohttp import web

from ..config import SecurityConfig

OPEN_PATHS = {"/healthz", "/readyz"}
CONTROL_ROUTES = {("PUT", "/v1/config/threshold"), ("POST", "/v1/model/reload")}
NO_TOKEN = ("control endpoints are disabled: set security.token in the config or the "
            "EDGE_AD_TOKEN environment variable, then send 'Authorization: Bearer <token>'")


def _unauthorized(message: str) -> web.Response:
    return web.json_response({"error": message}, status=401,
                             headers={"WWW-Authenticate": 'Bearer realm="edge-ad"'})


def auth_middleware(security: SecurityConfig):
    expected = security.token.encode() if security.token else None

    @web.middleware
    async def check(request: web.Request, handler):
        control = (request.method, request.path) in CONTROL_ROUTES
        if request.path in OPEN_PATHS or not (control or security.protect_reads):
            return await handler(request)
        if expected is None:
            return _unauthorized(NO_TOKEN)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            return _unauthorized("missing or wrong bearer token")
        return await handler(request)

    return check
