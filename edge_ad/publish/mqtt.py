"""``{type: mqtt, url: "mqtt://host:1883", topic: "edge-ad/line1/{camera}", qos: 1}``: each wanted
result as one JSON message on its camera's topic, through the outbox (outbox.py): in order, at
least once, across broker outages and restarts.

- **Status.** A retained message on ``status_topic`` (default ``edge-ad/status``) says whether
  the service is ready and why not; the broker publishes the last will, a retained
  ``{"state": "offline"}``, when the connection dies without a goodbye.
- **No silence where a line stopped.** When a camera goes down or stale, a FAULT message goes to
  its topic (``"seq": null``: it is about the camera, not a part), so a consumer that filters
  for NG, INVALID and FAULT hears it.
- **Security.** ``mqtts://`` uses TLS (the system's CAs, or ``tls_ca``), and ``username`` /
  ``password`` log in.

paho-mqtt 2 runs its network loop on a thread of its own; this module only publishes and waits
for the broker's acknowledgement (QoS 1 and 2) before the outbox lets a message go.
"""
from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import uuid
from collections import deque
from typing import Callable
from urllib.parse import urlsplit

from ..config import MqttConfig
from ..errors import ConfigError
from .outbox import DeliveringPublisher, Outbox

log = logging.getLogger(__name__)
ACK_TIMEOUT_S = 10.0
CHAIN_WAITING = 1000  # chain records held while the broker is away; beyond, the oldest are dropped
STATUS_EVERY_S = 30.0  # the status is republished at least this often (and at every change)


def broker_address(url: str) -> tuple[str, int, bool]:
    """(host, port, tls) of ``mqtt://host[:port]`` or ``mqtts://host[:port]``."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(f"publish: mqtt url {url!r}: use mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
    tls = parts.scheme == "mqtts"
    return parts.hostname, parts.port or (8883 if tls else 1883), tls


def _cameras_in_trouble(reasons: list[str]) -> dict[str, str]:
    """camera → why, from readiness reasons of the form ``camera NAME: why``."""
    out = {}
    for reason in reasons:
        if reason.startswith("camera ") and ": " in reason:
            name, why = reason[len("camera "):].split(": ", 1)
            out.setdefault(name, why)
    return out


class MqttPublisher(DeliveringPublisher):
    """Owns one broker connection: result messages, the retained status and the last will."""

    def __init__(self, config: MqttConfig, outbox: Outbox, metrics, journal=None,
                 readiness: Callable[[], tuple[bool, list[str]]] | None = None):
        super().__init__(config.name or "mqtt", outbox, config.verdicts, metrics, journal)
        self.config = config
        self.host, self.port, self.tls = broker_address(config.url)
        self.readiness = readiness
        self.boot_id = ""
        self._client = None
        self._connected = threading.Event()
        self._status: tuple | None = None
        self._status_at = 0.0
        self._trouble: dict[str, str] = {}
        self._chain_waiting: deque = deque(maxlen=CHAIN_WAITING)
        self._chain_lock = threading.Lock()
        self.chain_dropped = 0

    def topic(self, camera: str) -> str:
        return self.config.topic.format(camera=camera)

    def publish_chain(self, record: dict) -> None:
        """A chained stage's answer, for ``{topic}/chain``: sent by the sender thread between
        result batches. Held in memory (bounded); the journal is its lossless record."""
        with self._chain_lock:
            if len(self._chain_waiting) == self._chain_waiting.maxlen:
                self.chain_dropped += 1
            self._chain_waiting.append(record)
        self._wake.set()  # the sender sends it now, not at its next idle second

    def _send_chains(self) -> None:
        while True:
            with self._chain_lock:
                if not self._chain_waiting:
                    return
                record = self._chain_waiting[0]
            self._publish(self.topic(record["camera"]) + "/chain", json.dumps(record, separators=(",", ":")))
            with self._chain_lock:
                self._chain_waiting.popleft()

    # -- the connection ---------------------------------------------------------------------------
    def _connect(self):
        if self._client is not None and self._connected.is_set():
            return self._client
        import paho.mqtt.client as mqtt

        if self._client is not None:  # a dead connection: start afresh
            self._client.loop_stop()
            self._client = None
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edge-ad-{uuid.uuid4().hex[:8]}")
        client.will_set(self.config.status_topic, json.dumps({"state": "offline"}), qos=1, retain=True)
        if self.config.username:
            client.username_pw_set(self.config.username, self.config.password)
        if self.tls:
            client.tls_set(ca_certs=str(self.config.tls_ca) if self.config.tls_ca else None,
                           cert_reqs=ssl.CERT_REQUIRED)
        client.on_connect = lambda c, u, flags, code, props: self._connected.set() if not code.is_failure else None
        client.on_disconnect = lambda c, u, flags, code, props: self._connected.clear()
        client.connect(self.host, self.port, keepalive=30)
        client.loop_start()
        if not self._connected.wait(ACK_TIMEOUT_S):
            client.loop_stop()
            raise ConnectionError(f"no MQTT session with {self.host}:{self.port} within {ACK_TIMEOUT_S:.0f} s")
        self._client, self._status = client, None  # a new session: the status is sent again
        log.info("%s: connected to %s:%d", self.name, self.host, self.port)
        return client

    def _publish(self, topic: str, payload: str, retain: bool = False) -> None:
        info = self._connect().publish(topic, payload, qos=self.config.qos, retain=retain)
        if self.config.qos:
            info.wait_for_publish(ACK_TIMEOUT_S)  # raises when the session drops meanwhile
            if not info.is_published():
                raise TimeoutError(f"the broker did not acknowledge within {ACK_TIMEOUT_S:.0f} s")

    def send(self, seq: int, camera: str, body: str) -> None:
        self.boot_id = json.loads(body).get("boot_id", self.boot_id)
        self._publish(self.topic(camera), body)

    def send_many(self, messages: list[tuple[int, str, str]]) -> int:
        """Publish them all, then wait for the acknowledgements: paho keeps them in order, and one
        round trip per batch instead of per message is what keeps the broker off the line's CPU."""
        client = self._connect()
        infos = [client.publish(self.topic(camera), body, qos=self.config.qos) for _, camera, body in messages]
        self.boot_id = json.loads(messages[-1][2]).get("boot_id", self.boot_id)
        done = 0
        for info in infos:
            if self.config.qos:
                try:
                    info.wait_for_publish(ACK_TIMEOUT_S)
                except (RuntimeError, ValueError):
                    break
                if not info.is_published():
                    break
            done += 1
        if done == 0:
            raise ConnectionError(f"the broker at {self.host}:{self.port} acknowledged none of {len(infos)} messages")
        return done

    # -- status and camera faults -------------------------------------------------------------------
    def idle(self) -> None:
        self._send_chains()
        if self.readiness is None:
            return
        ready, reasons = self.readiness()
        now = time.time()
        trouble = _cameras_in_trouble(reasons)
        for camera, why in trouble.items():
            if camera not in self._trouble:  # newly down or stale: say so on its own topic
                self._publish(self.topic(camera), json.dumps(
                    {"seq": None, "camera": camera, "verdict": "FAULT", "reason": why,
                     "timestamp": round(now, 6), "boot_id": self.boot_id}, separators=(",", ":")))
        self._trouble = trouble
        status = (ready, tuple(reasons))
        if status != self._status or now - self._status_at > STATUS_EVERY_S:
            self._publish(self.config.status_topic, json.dumps(
                {"state": "online", "ready": ready, "reasons": reasons, "boot_id": self.boot_id,
                 "timestamp": round(now, 6)}), retain=True)
            self._status, self._status_at = status, now

    def close(self, timeout: float = 30.0) -> None:
        super().close(timeout)
        client = self._client
        if client is not None:
            try:  # a clean goodbye: the last will is not sent, so say offline ourselves
                client.publish(self.config.status_topic, json.dumps({"state": "offline"}), qos=1,
                               retain=True).wait_for_publish(2.0)
                client.disconnect()
            except Exception:
                pass
            client.loop_stop()
