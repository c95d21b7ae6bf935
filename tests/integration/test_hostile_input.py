"""Hostile and careless clients against a real server on loopback (the reliability issue's
findings 2-4, 8, 9 and the roles): each answered 4xx/429 with a reason, never 5xx, and none
takes the line's frames or engine time."""
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_ad.config import build_config
from edge_ad.prometheus import Metrics
from edge_ad.server.app import make_app
from edge_ad.assembly import build_service

from .helpers import get, png_of_size as _png, send, wait_for

CONTROL = "control-token-0123456789abcdef"
LINE = "line-token-0123456789abcdef"


@pytest.fixture
def service(live_server, bundle_dir, demo_root):
    def start(security=None, fps=10):
        config = build_config({"model": str(bundle_dir), "security": security or {},
                               "cameras": [{"source": f"dir://{demo_root}/wood/test/good?loop=1&fps={fps}"}]})
        metrics = Metrics()
        service = build_service(config, metrics)
        pipeline = service.pipeline
        srv = live_server(make_app(service, metrics, config.security, config.server))
        wait_for(lambda: pipeline.worker.ready.is_set() and pipeline.store.last_seq > 0)
        return srv, pipeline
    return start


def test_deep_json_is_a_400_on_every_json_route(service):
    srv, _ = service({"token": CONTROL})
    deep = b"[" * 30_000 + b"]" * 30_000  # within the 64 KiB body limit: the depth limit answers
    for method, path in (("POST", "/v1/trigger"), ("PUT", "/v1/config/threshold"), ("POST", "/v1/model/reload")):
        status, body = send(method, srv.url + path, deep, CONTROL)
        assert status == 400 and "nests deeper" in body["error"], (path, status, body)
    # the audit's 150 000 levels: over the JSON body limit, refused before parsing
    assert send("POST", srv.url + "/v1/trigger", b"[" * 150_000 + b"]" * 150_000)[0] == 413
    status, body = send("POST", srv.url + "/v1/trigger", b'{"part_id": "' + b"x" * 70_000 + b'"}')
    assert status == 413


def test_an_os2_bmp_header_is_read_as_it_is_declared(service):
    srv, _ = service()
    # BITMAPCOREHEADER (12 bytes): 16-bit width and height, 65535 x 65535 declared
    bmp = b"BM" + (26).to_bytes(4, "little") + bytes(4) + (26).to_bytes(4, "little") + \
        (12).to_bytes(4, "little") + (65535).to_bytes(2, "little") * 2 + (1).to_bytes(2, "little") + \
        (24).to_bytes(2, "little") + bytes(64)
    status, body = send("POST", srv.url + "/v1/infer", bmp, None, "image/bmp")
    assert status == 413 and "65535x65535" in body["error"]
    odd = bmp[:14] + (20).to_bytes(4, "little") + bmp[18:]  # a DIB header size that exists nowhere
    assert send("POST", srv.url + "/v1/infer", odd, None, "image/bmp")[0] == 400


def test_a_chunked_upload_over_the_limit_is_refused_while_it_streams(service):
    srv, _ = service()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"\x89PNG" + bytes(1024 * 1024 - 4)
        answer = b""
        try:
            for _ in range(12):  # 12 MiB against the default 8 MiB limit
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except OSError:
            pass  # the server may close once it has answered
        answer = s.recv(300)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_twenty_chunked_uploads_are_not_buffered_whole(service):
    # The audit's finding 9: twenty concurrent 10 MiB chunked bodies (no Content-Length) added
    # 234 MB of RSS before their 413s (about 200 MB on the code before the fix, measured with
    # this test). Bodies are now refused past the admission's slots and counted while they
    # stream, so what is held at once is bounded by a few limits, not by the clients.
    srv, _ = service()
    chunk = b"\x89PNG" + bytes(1024 * 1024 - 4)
    before, peak, done = _rss_mb(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.01)

    def upload(answers):
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
                s.sendall(b"POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n")
                try:
                    for _ in range(10):
                        s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                    s.sendall(b"0\r\n\r\n")
                except OSError:
                    pass  # answered and closed early: what a bounded server does
                answers.append(s.recv(64)[:12])
        except OSError as exc:
            answers.append(repr(exc).encode())

    sampler = threading.Thread(target=sample)
    sampler.start()
    answers: list[bytes] = []
    clients = [threading.Thread(target=upload, args=(answers,)) for _ in range(20)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(60)
    done.set()
    sampler.join()
    assert len(answers) == 20 and all(a in (b"HTTP/1.1 413", b"HTTP/1.1 429") for a in answers), answers
    assert peak[0] - before < 100, f"RSS grew {peak[0] - before:.0f} MB while 20 chunked uploads were refused"


def test_unsafe_methods_take_only_json_or_images_and_preflights_are_refused(service):
    srv, pipeline = service()
    status, body = send("POST", srv.url + "/v1/trigger", b'{"part_id": "X"}', None, "text/plain")
    assert status == 415 and "application/json" in body["error"]
    assert send("POST", srv.url + "/v1/infer", b"\x89PNG", None, "application/x-www-form-urlencoded")[0] == 415
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"OPTIONS /v1/trigger HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\n"
                  b"Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n")
        answer = s.recv(2000)
    assert not answer.startswith(b"HTTP/1.1 2") and b"Access-Control-Allow-Origin" not in answer
    assert not pipeline.triggers.next_deadline()  # nothing was queued by any of it


def test_roles_line_and_control_tokens(service):
    srv, _ = service({"token": CONTROL, "line_token": LINE})
    trig = b'{"part_id": "R-1", "timeout_ms": 2000}'
    assert send("POST", srv.url + "/v1/trigger", trig)[0] == 401
    assert send("POST", srv.url + "/v1/trigger", trig, LINE)[0] == 200
    assert send("POST", srv.url + "/v1/trigger", trig, CONTROL)[0] == 200  # control may do line work
    status, body = send("PUT", srv.url + "/v1/config/threshold", {"normalized": 0.6, "persist": False}, LINE)
    assert status == 403 and "control token" in body["error"]
    assert send("PUT", srv.url + "/v1/config/threshold", {"normalized": 0.6, "persist": False}, CONTROL)[0] == 200
    assert get(srv.url + "/v1/result")[0] == 200  # reads stay open without protect_reads


def test_repeated_failed_authentication_is_rate_limited_and_logged_without_the_token(service, caplog):
    srv, _ = service({"token": CONTROL})
    wrong = "wrong-token-0123456789abcdef"
    codes = [send("PUT", srv.url + "/v1/config/threshold", {"normalized": 0.6}, wrong)[0] for _ in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
    # even the right token waits out the window from that address
    assert send("PUT", srv.url + "/v1/config/threshold", {"normalized": 0.6, "persist": False}, CONTROL)[0] == 429
    logged = "\n".join(r.getMessage() for r in caplog.records if "authentication failed" in r.getMessage())
    assert "127.0.0.1" in logged and wrong not in logged


def test_trigger_deadlines_are_honoured_wherever_they_queue(service):
    srv, pipeline = service(fps=0.2)  # a frame every 5 s: triggers wait for their deadline
    wait_for(lambda: pipeline.store.last_seq > 0)
    answers = {}

    def trigger(part, timeout_ms):
        t0 = time.monotonic()
        status, body = send("POST", srv.url + "/v1/trigger", {"part_id": part, "timeout_ms": timeout_ms})
        answers[part] = (status, body, time.monotonic() - t0)

    long = threading.Thread(target=trigger, args=("LONG", 4500))
    long.start()
    time.sleep(0.05)
    trigger("SHORT", 300)
    status, body, took = answers["SHORT"]
    # its own deadline, not the 4.5 s trigger's ahead of it (before: 4905 ms)
    assert status == 200 and body["verdict"] == "FAULT" and took < 1.5, (status, body, took)
    long.join(10)


def test_uploads_beyond_the_queue_get_429_with_retry_after(service, demo_root):
    srv, pipeline = service()
    image = (demo_root / "wood/test/good/000.png").read_bytes()
    codes = []
    lock = threading.Lock()

    def client():
        for _ in range(3):
            status, body = send("POST", srv.url + "/v1/infer", image, None, "image/png")
            with lock:
                codes.append(status)

    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # 16 clients against 2 slots and a queue of 6: some are turned away, none fails
    assert set(codes) <= {200, 429} and 200 in codes and 429 in codes
    body = get(srv.url + "/metrics")[1].decode()
    assert 'edge_ad_requests_refused_total{reason="uploads_busy"}' in body


def test_the_line_keeps_its_rate_while_clients_hammer_infer(service, demo_root):
    """The starvation finding: three loops of POST /v1/infer took the camera from 10 to 0.16
    fps. Uploads now alternate with frames, so the line keeps its rate."""
    srv, pipeline = service(fps=10)
    image = (demo_root / "wood/test/hole/000.png").read_bytes()

    def rate(seconds):
        a, t0 = pipeline.metrics.frames_processed.labels("cam0")._value.get(), time.monotonic()
        time.sleep(seconds)
        return (pipeline.metrics.frames_processed.labels("cam0")._value.get() - a) / (time.monotonic() - t0)

    unloaded = rate(2.0)
    stop = threading.Event()
    statuses = []

    def hammer():
        while not stop.is_set():
            statuses.append(send("POST", srv.url + "/v1/infer", image, None, "image/png")[0])

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        loaded = rate(3.0)
        polls = [json.loads(get(srv.url + "/v1/result")[1])["verdict"] for _ in range(20)]
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert statuses.count(200) > 10  # the requests were served too
    assert loaded >= 0.9 * unloaded, (loaded, unloaded)
    assert "FAULT" not in polls


def test_a_large_legal_upload_does_not_block_polling(service):
    srv, _ = service()
    big = _png(6000, 6000)  # 36 MP, under the 40 MP limit; ~100 KB compressed
    done = threading.Event()
    result = {}

    def upload():
        result["status"] = send("POST", srv.url + "/v1/infer", big, None, "image/png")[0]
        done.set()

    threading.Thread(target=upload).start()
    worst = 0.0
    while not done.is_set():
        t0 = time.perf_counter()
        assert get(srv.url + "/v1/result")[0] == 200
        worst = max(worst, time.perf_counter() - t0)
    assert result["status"] == 200
    # measured: 0.020 s worst with the decode off the loop, 0.50-0.67 s on the loop (the code
    # before the fix, which a 0.5 s bound caught in only 3 of 4 runs)
    assert worst < 0.25, f"a poll took {worst:.2f} s while the upload decoded"


def test_manifest_is_readable_by_other_users(bundle_dir, tmp_path):
    import shutil

    from edge_ad.bundle import load_bundle, save_manifest

    copy = shutil.copytree(bundle_dir, tmp_path / "b")
    save_manifest(copy, load_bundle(copy).manifest)
    assert (copy / "manifest.json").stat().st_mode & 0o777 == 0o644


def test_values_outside_the_schema_are_refused_not_guessed(service):
    """What schemathesis's negative checks found: words and types the schema does not allow."""
    srv, _ = service({"token": CONTROL})
    assert get(srv.url + "/v1/frame.jpg?overlay=AAA")[0] == 400
    png = _png(8, 8)
    assert send("POST", srv.url + "/v1/infer?map=AAA", png, None, "image/png")[0] == 400
    for body in ({"threshold": False}, {"threshold": "0.5"}, {"normalized": None, "threshold": 1.0}, {}):
        status, answer = send("PUT", srv.url + "/v1/config/threshold", body, CONTROL)
        assert status == 400, (body, answer)


def test_a_bodyless_post_needs_no_content_type(service):
    """The README's `curl -X POST -H 'Authorization: …' …/v1/model/reload` sends neither a
    Content-Type nor a Content-Length: a reload of the served bundle, not a 415."""
    srv, _ = service({"token": CONTROL})
    with socket.create_connection(("127.0.0.1", srv.port), timeout=60) as s:
        s.sendall(f"POST /v1/model/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CONTROL}\r\n"
                  "Connection: close\r\n\r\n".encode())
        answer = s.recv(200)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
