"""POST /v1/infer, POST /v1/trigger, POST /v1/model/reload and /v1/stream.mjpg on a real server."""
import dataclasses
import base64
import json
import shutil
import socket
import urllib.request

import cv2
import numpy as np
import pytest

from edge_ad.config import build_config
from edge_ad.prometheus import Metrics
from edge_ad.server.app import make_app
from edge_ad.assembly import build_service

from .helpers import get, get_json, send, wait_for

TOKEN = "another-test-token-0123456789"


def post(url, data=b"", token=None, content_type="image/png"):
    return send("POST", url, data, token, content_type)


@pytest.fixture
def service(live_server, bundle_dir, demo_root, tmp_path):
    def start(source=None, **server):
        config = build_config({"model": str(bundle_dir), "security": {"token": TOKEN}, "server": server,
                               "cameras": [{"source": source or f"dir://{demo_root}/wood/test/good?loop=1&fps=20"}]})
        metrics = Metrics()
        service = build_service(config, metrics)
        pipeline = service.pipeline
        srv = live_server(make_app(service, metrics, config.security, config.server))
        wait_for(lambda: pipeline.worker.ready.is_set())
        return srv, pipeline
    return start


def _png(path):
    return path.read_bytes()


def test_infer_scores_an_upload_and_returns_the_map(service, demo_root):
    srv, _ = service()
    status, body = post(srv.url + "/v1/infer?map=png", _png(demo_root / "wood/test/hole/000.png"))
    assert status == 200 and body["verdict"] == "NG" and body["regions"]
    png = base64.b64decode(body["map_png"])
    assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (128, 128)
    status, body = post(srv.url + "/v1/infer", _png(demo_root / "wood/test/good/000.png"))
    assert status == 200 and body["score"] < 0.5 and "map_png" not in body


def test_infer_rejects_bad_images_without_5xx(service, demo_root):
    srv, _ = service(max_image_pixels=100_000, max_body_mb=1)
    url = srv.url + "/v1/infer"
    bomb = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + (50000).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00"
    assert post(url, bomb)[0] == 413
    assert post(url, b"GIF89a" + b"\x00" * 100)[0] == 415
    truncated = _png(demo_root / "wood/test/good/000.png")[:300]
    assert post(url, truncated)[0] == 400
    assert post(url, b"")[0] == 415
    # a declared body over the limit is refused before it is read
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 50000000\r\n\r\n")
        assert s.recv(200).startswith(b"HTTP/1.1 413")


def test_trigger_result_carries_the_part_id_and_is_retrievable(service):
    srv, _ = service()
    wait_for(lambda: get(srv.url + "/readyz")[0] == 200)
    status, body = post(srv.url + "/v1/trigger", json.dumps({"part_id": "P-17"}).encode(), TOKEN,
                        "application/json")
    assert status == 200 and body["part_id"] == "P-17" and body["verdict"] in ("OK", "NG")
    assert body["frame_index"] >= 0
    status, found = get_json(srv.url + "/v1/results?part_id=P-17")
    assert status == 200 and found["results"][0]["seq"] == body["seq"]
    assert get(srv.url + "/v1/results?part_id=nope")[0] == 404
    assert post(srv.url + "/v1/trigger", b'{"part_id": ""}', TOKEN, "application/json")[0] == 400


def test_trigger_without_a_frame_is_a_fault_at_its_deadline(service, tmp_path):
    srv, pipeline = service(source=f"file://{tmp_path}/unplugged.avi")
    status, body = post(srv.url + "/v1/trigger", b'{"part_id": "P-18", "timeout_ms": 300}', TOKEN,
                        "application/json")
    assert status == 200 and body["verdict"] == "FAULT" and body["part_id"] == "P-18"
    assert "trigger deadline" in body["reason"] and body["score"] is None


def test_reload_swaps_the_model_and_rolls_back_on_failure(service, bundle_dir, tmp_path):
    srv, pipeline = service()
    pipeline.options = dataclasses.replace(pipeline.options, model_root=tmp_path)  # as models.root would
    second = shutil.copytree(bundle_dir, tmp_path / "v2")
    raw = json.loads((second / "manifest.json").read_text())
    raw["version"] = "2"
    (second / "manifest.json").write_text(json.dumps(raw))
    url = srv.url + "/v1/model/reload"
    assert post(url, json.dumps({"path": str(second)}).encode(), None, "application/json")[0] == 401
    status, body = post(url, json.dumps({"path": str(second)}).encode(), TOKEN, "application/json")
    assert status == 200 and body["loaded"]["version"] == "2" and body["previous"]["version"] == "1"
    wait_for(lambda: get_json(srv.url + "/v1/result")[1].get("model", {}).get("version") == "2")

    broken = shutil.copytree(bundle_dir, tmp_path / "broken")
    (broken / "model.onnx").write_bytes(b"garbage")
    status, body = post(url, json.dumps({"path": str(broken)}).encode(), TOKEN, "application/json")
    assert status == 422 and "still serving" in body["error"] and body["serving"]["version"] == "2"
    seq = pipeline.store.last_seq
    wait_for(lambda: pipeline.store.last_seq > seq + 2)  # still inspecting


def test_reload_loads_only_bundles_under_the_model_root(service, bundle_dir, tmp_path):
    """The audit loaded any directory, including a bundle whose model.onnx linked to a file
    elsewhere, and its errors told which directories exist."""
    srv, pipeline = service()
    root = tmp_path / "models"
    inside = shutil.copytree(bundle_dir, root / "v2")
    pipeline.options = dataclasses.replace(pipeline.options, model_root=root)
    outside = shutil.copytree(bundle_dir, tmp_path / "elsewhere")
    linked = shutil.copytree(bundle_dir, root / "linked")
    (linked / "model.onnx").unlink()
    (linked / "model.onnx").symlink_to(outside / "model.onnx")
    url = srv.url + "/v1/model/reload"
    answers = []
    for path in (str(outside), str(linked), str(root / "nope"), "../elsewhere", "/etc"):
        status, body = post(url, json.dumps({"path": path}).encode(), TOKEN, "application/json")
        answers.append(body["error"])
        assert status == 404 and pipeline.model.info["version"] == "1", (path, body)
    assert len(set(answers)) == 1 and "/etc" not in answers[0]  # one text for every refusal
    status, body = post(url, json.dumps({"path": "v2"}).encode(), TOKEN, "application/json")
    assert status == 200 and pipeline.model.bundle_path == inside  # relative to the root, and inside it


def test_mjpeg_stream_sends_jpeg_parts_and_limits_viewers(service):
    srv, _ = service(stream_max_clients=1, stream_max_fps=10)
    wait_for(lambda: get(srv.url + "/readyz")[0] == 200)
    with urllib.request.urlopen(srv.url + "/v1/stream.mjpg", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        data = b""
        while data.count(b"--frame") < 3:
            data += r.read1(65536)
        part = data.split(b"--frame")[1]
        jpeg = part.split(b"\r\n\r\n", 1)[1]
        assert jpeg[:2] == b"\xff\xd8"
        assert get(srv.url + "/v1/stream.mjpg")[0] == 503  # second viewer over the limit
