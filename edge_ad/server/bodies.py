"""JSON request bodies validated by a pydantic model: anything else is a 400 that says why."""
from __future__ import annotations

import json

from aiohttp import web
from pydantic import BaseModel, ValidationError

from ..validation import one_line


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


async def parse(request: web.Request, model: type[BaseModel], example: str, optional: bool = False):
    raw = await request.read()
    if optional and not raw.strip():
        raw = b"{}"
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _bad(f"body must be UTF-8 JSON, e.g. {example}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _bad(one_line(exc, "body", model)) from None
