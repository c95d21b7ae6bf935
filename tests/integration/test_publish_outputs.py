"""Results onward, for real: an aiohttp webhook receiver that fails on purpose and is restarted
mid-stream, Debian's Mosquitto broker killed and restarted mid-stream, and the service itself
restarted. After de-duplication by seq, every wanted result arrives exactly once, in order."""
from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import threading
import time

import pytest
from aiohttp import web

from edge_ad.assembly import build_service
from edge_ad.config import build_config
from edge_ad.prometheus import Metrics
from edge_ad.publish.outbox import Outbox
from edge_ad.publish.webhook import SIGNATURE_HEADER, signature

from .helpers import wait_for

SECRET = "webhook-secret-for-tests"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A webhook receiver on a fixed port: refuses the first ``fail_first`` posts with 500,
    checks every signature, and can be stopped and started again on the same port."""

    def __init__(self, port: int, fail_first: int = 0):
        self.port, self.fail_first = port, fail_first
        self.posts: list[dict] = []
        self.bad_signatures = 0
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get(SIGNATURE_HEADER) != signature(SECRET, body):
            self.bad_signatures += 1
            return web.Response(status=401)
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=500, text="failing on purpose")
        message = json.loads(body)
        assert request.headers["X-Edge-AD-Seq"] == str(message["seq"])
        self.posts.append(message)
        return web.Response(status=204)

    def start(self) -> None:
        async def go():
            app = web.Application()
            app.router.add_post("/hook", self._handle)
            self.runner = web.AppRunner(app)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        asyncio.run_coroutine_threadsafe(go(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


def _config(bundle_dir, demo_root, tmp_path, outputs, source=None):
    source = source or f"dir://{demo_root}/wood/test/hole?loop=1&fps=20"
    return build_config({"model": str(bundle_dir), "cameras": [{"source": source}],
                         "results": {"journal": str(tmp_path / "journal.sqlite")},
                         "publish": outputs})


def _journal_seqs(path, verdicts) -> list[int]:
    import sqlite3

    with sqlite3.connect(path) as db:
        return [s for (s,) in db.execute("SELECT seq FROM results WHERE verdict IN (%s) ORDER BY seq"
                                          % ",".join("?" * len(verdicts)), verdicts)]


def test_outbox_keeps_order_and_its_bounds(tmp_path):
    from edge_ad.publish.outbox import BOUNDS_EVERY

    box = Outbox(tmp_path / "o.sqlite", max_rows=3)
    seqs = range(5, 5 + BOUNDS_EVERY)
    dropped = sum(box.put(seq, "cam0", f'{{"seq": {seq}}}') for seq in seqs)
    assert dropped == BOUNDS_EVERY - 3 and len(box) == 3 and box.head()[0] == seqs[-3]  # the oldest went
    box.put(seqs[-1], "cam0", "again")  # a seq already queued is not queued twice
    assert len(box) == 3
    box.close()
    again = Outbox(tmp_path / "o.sqlite")
    assert again.head()[0] == seqs[-3] and again.last_taken() == seqs[-1]  # survives a restart


def test_webhook_delivers_every_result_once_across_failures_and_restarts(bundle_dir, demo_root, tmp_path):
    receiver = Receiver(_free_port(), fail_first=3)
    outputs = [{"type": "webhook", "url": receiver.url, "secret": SECRET, "verdicts": ["NG", "INVALID", "FAULT"],
                "outbox": str(tmp_path / "hook.sqlite")}]
    config = _config(bundle_dir, demo_root, tmp_path, outputs)
    service = build_service(config, Metrics())
    service.start()
    try:
        wait_for(lambda: service.pipeline.store.last_seq >= 10)  # the receiver is not up yet
        receiver.start()
        wait_for(lambda: len(receiver.posts) >= 15, timeout=60)
        receiver.stop()  # an outage mid-stream
        time.sleep(1.5)
        receiver.start()
        wait_for(lambda: len(receiver.posts) >= 30, timeout=60)
    finally:
        service.stop()
    receiver.stop()  # the service restarts while the receiver is down: the outbox keeps the rest
    service = build_service(config, Metrics())
    service.start()
    try:
        wait_for(lambda: service.pipeline.store.last_seq > 0)
        time.sleep(1.0)
        receiver.start()
        first_boot = {p["boot_id"] for p in receiver.posts}
        wait_for(lambda: len({p["boot_id"] for p in receiver.posts} - first_boot) >= 1, timeout=60)
    finally:
        service.stop()
    journaled = _journal_seqs(tmp_path / "journal.sqlite", ("NG", "INVALID", "FAULT"))
    seqs = [p["seq"] for p in receiver.posts]
    assert receiver.bad_signatures == 0
    assert seqs == sorted(seqs), "delivered out of order"
    delivered = sorted(set(seqs))
    assert delivered == journaled[: len(delivered)], "a result was skipped"  # none missing before the last
    assert all(p["verdict"] in ("NG", "INVALID", "FAULT") for p in receiver.posts) and "age_ms" not in receiver.posts[0]
    assert len({p["boot_id"] for p in receiver.posts}) == 2  # both runs' results, told apart


def test_a_full_queue_is_filled_in_from_the_journal(bundle_dir, demo_root, tmp_path):
    receiver = Receiver(_free_port())
    receiver.start()
    config = _config(bundle_dir, demo_root, tmp_path, [{"type": "webhook", "url": receiver.url, "secret": SECRET,
                                                         "outbox": str(tmp_path / "hook.sqlite")}])
    service = build_service(config, Metrics())
    hook = service.pipeline.publishers[-1]
    hook._queue.maxsize = 1  # the queue in front of the outbox overflows at once
    original = hook.deliver_many
    hook.deliver_many = lambda items: (time.sleep(0.2), original(items))  # and drains slowly
    service.start()
    try:
        wait_for(lambda: hook.dropped >= 5, timeout=30)
        wait_for(lambda: service.pipeline.store.last_seq >= 30, timeout=30)
    finally:
        service.stop()
    first_run = _journal_seqs(tmp_path / "journal.sqlite", ("OK", "NG", "INVALID", "FAULT"))
    receiver.stop()  # what the last run dropped at its end is filled in when the next one starts
    service = build_service(config, Metrics())
    service.start()
    service.stop()
    seqs = set(p["seq"] for p in receiver.posts) | set(_outbox_seqs(tmp_path / "hook.sqlite"))
    assert hook.dropped >= 5 and set(first_run) <= seqs, sorted(set(first_run) - seqs)


def _outbox_seqs(path) -> list[int]:
    box = Outbox(path)
    out = []
    while (head := box.head()) is not None:
        out.append(head[0])
        box.remove(head[0])
    return out


# -- MQTT with Debian's Mosquitto ---------------------------------------------------------------

class Broker:
    """``mosquitto`` on a loopback port, started and killed by the test."""

    def __init__(self, tmp_path, port: int):
        self.port = port
        self.conf = tmp_path / "mosquitto.conf"
        # persistence: a subscriber's session (and what was queued for it) outlives the restart,
        # as on a real broker; without it, messages sent before the subscriber is back are lost
        # (user root: started as root, mosquitto would switch to its own user, which cannot write
        # the test's folder; as any other user the line does nothing)
        self.conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             f"persistence_location {tmp_path}/\nuser root\n")
        self.proc = None

    def start(self) -> None:
        self.proc = subprocess.Popen([shutil.which("mosquitto"), "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _listening(self.port), timeout=10)

    def kill(self) -> None:
        self.proc.terminate()  # SIGTERM: mosquitto saves its sessions on the way out
        self.proc.wait(5)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Subscriber:
    """A paho-mqtt 2 client recording every message, reconnecting by itself."""

    def __init__(self, port: int, topics):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, dict, bool]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-subscriber", clean_session=False)
        self.client.on_connect = lambda c, u, f, code, p: [c.subscribe(t, qos=1) for t in topics]
        self.client.on_message = lambda c, u, m: self.messages.append(
            (m.topic, json.loads(m.payload), bool(m.retain)))
        self.client.reconnect_delay_set(0.2, 1.0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.devtools  # the broker: make test installs Debian's mosquitto; the Jetson image has none
def test_mqtt_delivers_every_result_once_across_a_broker_restart(bundle_dir, demo_root, tmp_path):
    broker = Broker(tmp_path, _free_port())
    broker.start()
    subscriber = Subscriber(broker.port, ["edge-ad/test/#", "edge-ad/status"])
    outputs = [{"type": "mqtt", "url": f"mqtt://127.0.0.1:{broker.port}", "topic": "edge-ad/test/{camera}",
                "qos": 1, "outbox": str(tmp_path / "mqtt.sqlite")}]
    video = demo_root / "video" / "wood_line.avi"  # 120 frames at 20 fps, then the camera is down
    config = _config(bundle_dir, demo_root, tmp_path, outputs, source=f"file://{video}?fps=20")
    service = build_service(config, Metrics())
    service.start()
    try:
        wait_for(lambda: len([m for m in subscriber.messages if m[0] == "edge-ad/test/cam0"]) >= 5, timeout=30)
        broker.kill()  # an outage mid-stream
        time.sleep(1.5)
        broker.start()
        # the finite source ends: the camera goes down, and its topic hears a FAULT for it
        wait_for(lambda: any(m[1].get("seq") is None and m[1]["verdict"] == "FAULT"
                             for m in subscriber.messages if m[0] == "edge-ad/test/cam0"), timeout=60)
        wait_for(lambda: any(m[0] == "edge-ad/status" and m[1].get("ready") is False for m in subscriber.messages),
                 timeout=30)
        last = service.pipeline.store.last_seq
        wait_for(lambda: last in {m[1].get("seq") for m in subscriber.messages}, timeout=60)
    finally:
        service.stop()
        wait_for(lambda: any(m[0] == "edge-ad/status" and m[1].get("state") == "offline"
                             for m in subscriber.messages), timeout=10)
        subscriber.close()
        broker.kill()
    results = [m[1] for m in subscriber.messages if m[0] == "edge-ad/test/cam0" and m[1].get("seq") is not None]
    seqs = [r["seq"] for r in results]
    assert sorted(set(seqs)) == _journal_seqs(tmp_path / "journal.sqlite", ("OK", "NG", "INVALID", "FAULT"))
    first_seen = [s for i, s in enumerate(seqs) if s not in seqs[:i]]
    assert first_seen == sorted(first_seen), "delivered out of order"
    assert {"seq", "boot_id", "verdict", "score", "camera"} <= set(results[0]) and "age_ms" not in results[0]


def _run_mqtt(bundle_dir, demo_root, run_dir, output: dict, delivered: bool) -> tuple[int, int]:
    """Run the line with one MQTT output until it delivered 5 results (``delivered``) or failed
    once; (messages delivered, messages left in the outbox)."""
    service = build_service(_config(bundle_dir, demo_root, run_dir, [output]), Metrics())
    mqtt_out = service.pipeline.publishers[-1]
    service.start()
    try:
        wait_for(lambda: service.pipeline.store.last_seq >= 5)
        wait_for(lambda: mqtt_out.delivered >= 5 if delivered else mqtt_out.failures >= 1, timeout=30)
        return mqtt_out.delivered, len(mqtt_out.outbox)
    finally:
        service.stop()


@pytest.mark.devtools  # the broker, as above
def test_mqtt_logs_in_and_a_wrong_password_delivers_nothing(bundle_dir, demo_root, tmp_path):
    port = _free_port()
    passwords = tmp_path / "passwd"
    subprocess.run([shutil.which("mosquitto_passwd"), "-b", "-c", str(passwords), "line1", "right-password"],
                   check=True, capture_output=True)
    conf = tmp_path / "auth.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\n"
                    "persistence false\nuser root\n")
    broker = subprocess.Popen([shutil.which("mosquitto"), "-c", str(conf)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _listening(port), timeout=10)
        for password, delivered in (("wrong-password", False), ("right-password", True)):
            output = {"type": "mqtt", "url": f"mqtt://127.0.0.1:{port}", "username": "line1",
                      "password": password, "outbox": str(tmp_path / f"{password}.sqlite")}
            sent, kept = _run_mqtt(bundle_dir, demo_root, tmp_path / password, output, delivered)
            assert sent >= 5 if delivered else (sent == 0 and kept >= 1)  # refused: kept for later
    finally:
        broker.terminate()
        broker.wait(5)


def _tls_files(tmp_path):
    """A CA and a server certificate for 127.0.0.1 signed by it (PEM), made with cryptography."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("edge-ad test CA")).issuer_name(name("edge-ad test CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now)
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False).sign(ca_key, hashes.SHA256()))
    files = {}
    for label, data in (("ca", ca.public_bytes(serialization.Encoding.PEM)),
                        ("cert", cert.public_bytes(serialization.Encoding.PEM)),
                        ("key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))):
        files[label] = tmp_path / f"{label}.pem"
        files[label].write_bytes(data)
    return files


@pytest.mark.devtools  # the broker, as above
def test_mqtt_over_tls_verifies_the_broker_and_delivers(bundle_dir, demo_root, tmp_path):
    port, tls = _free_port(), _tls_files(tmp_path)
    conf = tmp_path / "tls.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n"
                    f"cafile {tls['ca']}\ncertfile {tls['cert']}\nkeyfile {tls['key']}\n")
    broker = subprocess.Popen([shutil.which("mosquitto"), "-c", str(conf)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _listening(port), timeout=10)
        # the broker's certificate checked against the CA: delivered; without the CA (the system
        # store does not know the test CA): refused, kept in the outbox
        for ca, delivered in ((str(tls["ca"]), True), (None, False)):
            output = {"type": "mqtt", "url": f"mqtts://127.0.0.1:{port}", "tls_ca": ca,
                      "outbox": str(tmp_path / f"tls-{delivered}.sqlite")}
            sent, kept = _run_mqtt(bundle_dir, demo_root, tmp_path / f"run-{delivered}", output, delivered)
            assert sent >= 5 if delivered else (sent == 0 and kept >= 1)  # refused: kept for later
    finally:
        broker.terminate()
        broker.wait(5)
