"""``{type: webhook, url, secret, verdicts}``: each wanted result POSTed as JSON to a URL, through
the outbox (outbox.py): in order, at least once, across outages and restarts.

Headers: ``X-Edge-AD-Seq`` and ``X-Edge-AD-Boot-Id`` (de-duplicate on these), and with a secret
``X-Edge-AD-Signature: sha256=<hex HMAC-SHA256 of the body under the secret>``. Any 2xx is an
acknowledgement. A 4xx other than 408 and 429 is a refusal for good: that message is dropped,
counted and logged, so it cannot hold up the ones behind it. Anything else, or no answer within
``timeout_s``, is retried.
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import json
from urllib.parse import urlsplit

from ..config import WebhookConfig
from .outbox import DeliveringPublisher, Outbox, Refused

SIGNATURE_HEADER = "X-Edge-AD-Signature"


def signature(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``: what a receiver recomputes and compares
    (with ``hmac.compare_digest``)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookPublisher(DeliveringPublisher):
    """Owns the POSTs to one URL."""

    def __init__(self, config: WebhookConfig, outbox: Outbox, metrics, journal=None, readiness=None):
        super().__init__(config.name or "webhook", outbox, config.verdicts, metrics, journal)
        self.url, self.secret, self.timeout_s = config.url, config.secret, config.timeout_s
        self._conn: http.client.HTTPConnection | None = None
        self._path = "/"

    def send(self, seq: int, camera: str, body: str) -> None:
        data = body.encode()
        boot_id = json.loads(body).get("boot_id", "")
        headers = {"Content-Type": "application/json", "X-Edge-AD-Seq": str(seq), "X-Edge-AD-Boot-Id": boot_id}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, data)
        try:
            connection = self._connection()
            connection.request("POST", self._path, body=data, headers=headers)
            answer = connection.getresponse()
            answer.read()  # the connection is reused: read the answer to its end
        except (OSError, http.client.HTTPException):
            self._close()  # a fresh connection next time
            raise
        if answer.will_close:
            self._close()
        if 400 <= answer.status < 500 and answer.status not in (408, 429):
            raise Refused(f"{self.url} answered {answer.status}")  # sending it again cannot help
        if not 200 <= answer.status < 300:
            raise RuntimeError(f"{self.url} answered {answer.status}")

    def _connection(self) -> http.client.HTTPConnection:
        """One kept-alive connection: a new TCP (and TLS) handshake per result cost more than the
        POST (measured with bench/publish_bench.py)."""
        if self._conn is None:
            parts = urlsplit(self.url)
            cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            self._conn = cls(parts.hostname, parts.port, timeout=self.timeout_s)
            self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self, timeout: float = 30.0) -> None:
        super().close(timeout)
        self._close()
