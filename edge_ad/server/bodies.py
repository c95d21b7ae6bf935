"""JSON request bodies validated by a pydantic model: anything else is a 400 that says why."""
from __future__ import annotations

import json

from aiohttp import web
from pydantic import BaseModel, ValidationError

from ..validation import one_line


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


MAX_JSON_BYTES = 64 * 1024  # every JSON body of the API is a few hundred bytes
MAX_JSON_DEPTH = 16  # the deepest body of the API nests 2 levels


def nesting_depth(raw: bytes) -> int:
    """How deep ``[`` and ``{`` nest, outside strings: checked before parsing, since the parser
    recurses (150 000 levels raised RecursionError: a 500)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The body as it streams (chunked or not), stopping one byte past ``limit``: an oversize
    body is never buffered whole."""
    chunks, size = [], 0
    while size <= limit:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def parse(request: web.Request, model: type[BaseModel], example: str, optional: bool = False):
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_JSON_BYTES, request.content_length,
                                            text=json.dumps({"error": f"JSON bodies are limited to {MAX_JSON_BYTES} bytes"}),
                                            content_type="application/json")
    raw = await read_limited(request, MAX_JSON_BYTES)
    if len(raw) > MAX_JSON_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_JSON_BYTES, len(raw),
                                            text=json.dumps({"error": f"JSON bodies are limited to {MAX_JSON_BYTES} bytes"}),
                                            content_type="application/json")
    if optional and not raw.strip():
        raw = b"{}"
    if nesting_depth(raw) > MAX_JSON_DEPTH:
        raise _bad(f"JSON nests deeper than {MAX_JSON_DEPTH} levels; e.g. {example}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise _bad(f"body must be UTF-8 JSON, e.g. {example}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _bad(one_line(exc, "body", model)) from None
