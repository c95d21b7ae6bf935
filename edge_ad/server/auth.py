"""Who may do what. Three kinds of route:

- **control** (threshold, reload; later the recipe): change how the line is judged. They need
  the control token (``security.token`` / ``EDGE_AD_TOKEN``) and are refused while none is set:
  a line's thresholds must never be changeable by whoever reaches the port.
- **line** (trigger, push, infer): take engine time and, for triggers, frames of the line. With
  a line token (``security.line_token`` / ``EDGE_AD_LINE_TOKEN``) they need it or the control
  token; without one they follow the read policy, so ``make run`` keeps working.
- **reads**: open, or any token with ``protect_reads``. Health checks are always open.

A valid line token on a control route is 403, a missing or wrong token 401. A client address
with ``FAIL_LIMIT`` failures within ``FAIL_WINDOW_S`` gets 429 until the window passes; failures
are logged with the address, never with the token. Unsafe methods take only JSON or image
bodies: a page on another origin can send text/plain or form bodies without a preflight (forty
such triggers once took a genuine trigger's frames); JSON and image types need one, and
preflights are refused (no CORS headers are ever sent).
"""
from __future__ import annotations

import hmac
import logging
import time
from collections import deque

from aiohttp import web

from ..config import SecurityConfig

log = logging.getLogger(__name__)

OPEN_PATHS = {"/healthz", "/readyz"}
CONTROL_ROUTES = {("PUT", "/v1/config/threshold"), ("POST", "/v1/model/reload"), ("PUT", "/v1/recipe")}
LINE_ROUTES = {("POST", "/v1/trigger"), ("POST", "/v1/push"), ("POST", "/v1/infer")}
IMAGE_ROUTES = {"/v1/push", "/v1/infer"}
IMAGE_TYPES = {"image/jpeg", "image/png", "image/bmp", "image/x-ms-bmp"}
FAIL_LIMIT, FAIL_WINDOW_S = 10, 60.0
NO_TOKEN = ("control endpoints are disabled: set security.token in the config or the "
            "EDGE_AD_TOKEN environment variable, then send 'Authorization: Bearer <token>'")
ROLE = web.RequestKey("role", str)  # "control" or "line"; absent for anonymous requests


def _unauthorized(message: str) -> web.Response:
    return web.json_response({"error": message}, status=401,
                             headers={"WWW-Authenticate": 'Bearer realm="edge-ad"'})


def _body_type_error(request: web.Request) -> web.Response | None:
    """415 for an unsafe method whose body is neither JSON (JSON routes) nor an image."""
    if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return None
    if not request.body_exists:
        return None  # no body at all: `curl -X POST .../v1/model/reload` sends no type or length
    wanted = IMAGE_TYPES if request.path in IMAGE_ROUTES else {"application/json"}
    if request.content_type not in wanted:
        return web.json_response({"error": f"Content-Type {request.content_type or 'missing'} is not "
                                           f"accepted here; send {' or '.join(sorted(wanted))}"}, status=415)
    return None


class FailedLogins:
    """Recent authentication failures per client address."""

    def __init__(self):
        self._by_peer: dict[str, deque[float]] = {}

    def blocked(self, peer: str, now: float) -> bool:
        times = self._by_peer.get(peer)
        while times and now - times[0] > FAIL_WINDOW_S:
            times.popleft()
        return bool(times) and len(times) >= FAIL_LIMIT

    def add(self, peer: str, now: float) -> None:
        if len(self._by_peer) > 10_000:  # bounded: forget everyone rather than grow
            self._by_peer.clear()
        self._by_peer.setdefault(peer, deque(maxlen=FAIL_LIMIT)).append(now)


def auth_middleware(security: SecurityConfig):
    control_token = security.token.encode() if security.token else None
    line_token = security.line_token.encode() if security.line_token else None
    failures = FailedLogins()

    def role_of(request: web.Request) -> str | None:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        given_b = given.strip().encode()
        if scheme.lower() != "bearer" or not given_b:
            return None
        if control_token and hmac.compare_digest(given_b, control_token):
            return "control"
        if line_token and hmac.compare_digest(given_b, line_token):
            return "line"
        return "invalid"

    @web.middleware
    async def check(request: web.Request, handler):
        if request.path in OPEN_PATHS:
            return await handler(request)
        if (bad := _body_type_error(request)) is not None:
            return bad
        route = (request.method, request.path)
        if route in CONTROL_ROUTES:
            needed = {"control"} if control_token else None
        elif route in LINE_ROUTES and line_token:
            needed = {"control", "line"}
        elif security.protect_reads:
            needed = {"control", "line"} if control_token or line_token else None
        else:
            needed = set()
        if needed == set():
            return await handler(request)
        peer, now = request.remote or "unknown", time.monotonic()
        if failures.blocked(peer, now):
            return web.json_response({"error": "too many failed authentications; retry later"},
                                     status=429, headers={"Retry-After": str(int(FAIL_WINDOW_S))})
        if needed is None:
            return _unauthorized(NO_TOKEN)
        role = role_of(request)
        if role in needed:
            request[ROLE] = role
            return await handler(request)
        if role == "line":  # a real token, for the line only
            return web.json_response({"error": "the line token cannot change how the line is judged; "
                                               "use the control token"}, status=403)
        failures.add(peer, now)
        log.warning("authentication failed from %s on %s %s (%s)", peer, request.method, request.path,
                    "no token" if role is None else "wrong token")
        return _unauthorized("missing or wrong bearer token")

    return check
