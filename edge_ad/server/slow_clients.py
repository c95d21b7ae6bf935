"""Slow clients: a connection must deliver a request's headers within ``header_timeout_s``.

aiohttp has no header timeout of its own: a slowloris client sending its headers a byte at a
time was closed only by the 75 s keep-alive timeout, and 50 of them held 50 connections. The
handler below arms a timer when a request's first bytes arrive and closes the connection
unless its headers are complete in time; idle keep-alive connections close after
``KEEPALIVE_S``. The runner is the one ``edge-ad serve`` and the tests' live server use.
"""
from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from .keys import CONFIG

HEADER_TIMEOUT_S = 10.0
KEEPALIVE_S = 15.0


class HeaderTimeoutHandler(RequestHandler):
    """aiohttp's RequestHandler, closing connections whose request headers arrive too slowly."""

    header_timeout_s = HEADER_TIMEOUT_S
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()  # a connection that sends nothing at all is slow too

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self._loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def data_received(self, data: bytes) -> None:
        before = self._request_count
        super().data_received(data)
        if self._request_count > before:
            self._disarm()  # headers complete: the request is the handler's business now
        elif data:
            self._arm()

    def _too_slow(self) -> None:
        self._header_timer = None
        transport = self.transport
        if transport is not None:
            self.force_close()  # closes the transport itself in newer aiohttp (and clears it)
            transport.close()  # a no-op then; needed where force_close only marks the connection

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)


class _GuardedServer(Server):
    header_timeout_s = HEADER_TIMEOUT_S

    def __call__(self) -> RequestHandler:
        handler = HeaderTimeoutHandler(self, loop=self._loop, **self._kwargs)
        handler.header_timeout_s = self.header_timeout_s
        return handler


class GuardedRunner(web.AppRunner):
    """The aiohttp runner whose connections are closed when their headers come too slowly."""
    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = _GuardedServer  # same object, our handler factory
        config = self.app.get(CONFIG)
        server.header_timeout_s = getattr(config, "header_timeout_s", HEADER_TIMEOUT_S)
        return server


def guarded_runner(app: web.Application) -> web.AppRunner:
    return GuardedRunner(app, access_log=None, keepalive_timeout=KEEPALIVE_S)
