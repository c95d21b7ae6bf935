"""Bounded admission for requests that cost CPU or engine time (uploads to score or push,
triggers): a few in flight, a short queue, and 429 with Retry-After beyond it. Without it three
clients looping on POST /v1/infer took the engine from the line (10 → 0.16 fps)."""
from __future__ import annotations

import asyncio

from aiohttp import web

RETRY_AFTER_S = 1


class Busy(Exception):
    """No slot and the queue is full: answered 429."""


class Admission:
    """``slots`` requests at once, ``queue`` more waiting; asyncio only (the event loop's)."""

    def __init__(self, slots: int, queue: int):
        self._sem = asyncio.Semaphore(slots)
        self.queue = queue
        self.waiting = 0

    async def __aenter__(self):
        if self._sem.locked() and self.waiting >= self.queue:
            raise Busy()
        self.waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self.waiting -= 1
        return self

    async def __aexit__(self, *exc):
        self._sem.release()


def too_busy(what: str) -> web.Response:
    return web.json_response({"error": f"too many {what} in flight; retry after {RETRY_AFTER_S} s"},
                             status=429, headers={"Retry-After": str(RETRY_AFTER_S)})
