"""Small helpers for integration tests: polling a real HTTP server with the standard library."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request


def get(url: str, timeout: float = 10.0) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def get_json(url: str) -> tuple[int, dict]:
    status, body, _ = get(url)
    return status, json.loads(body)


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last: {last!r})")


def send(method: str, url: str, body: bytes | dict = b"", token: str | None = None,
         content_type: str = "application/json") -> tuple[int, dict]:
    """PUT/POST with an optional bearer token; the JSON answer, whatever the status."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": content_type})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
