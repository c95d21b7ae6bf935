"""The service for real: pipeline threads, ONNX Runtime, aiohttp on a loopback port."""
import numpy as np
import cv2
import onnxruntime as ort

from edge_ad.config import build_config
from edge_ad.prometheus import Metrics
from edge_ad.server.app import make_app
from edge_ad.assembly import build_service

from .helpers import get, get_json, wait_for


def _serve(live_server, bundle_dir, source):
    config = build_config({"model": str(bundle_dir), "cameras": [{"source": source}]})
    metrics = Metrics()
    service = build_service(config, metrics)
    pipeline = service.pipeline
    return live_server(make_app(service, metrics)), pipeline


def test_live_video_through_http(live_server, bundle_dir, demo_root):
    video = demo_root / "video" / "wood_line.avi"
    srv, pipeline = _serve(live_server, bundle_dir, f"file://{video}?loop=1&fps=30")
    assert get(srv.url + "/healthz")[0] == 200
    wait_for(lambda: get(srv.url + "/readyz")[0] == 200)

    status, latest = get_json(srv.url + "/v1/result")
    assert status == 200 and latest["stale"] is False
    assert latest["verdict"] in ("OK", "NG") and 0.0 <= latest["score"] <= 1.0
    assert latest["model"]["name"] == "wood" and latest["age_ms"] < 5000

    # lossless polling: every seq from 1 on, in order, across pages
    wait_for(lambda: pipeline.store.last_seq >= 40)
    seen, after = [], 0
    while len(seen) < 40:
        status, page = get_json(f"{srv.url}/v1/results?after={after}&limit=7")
        assert status == 200
        seen += [r["seq"] for r in page["results"]]
        after = seen[-1]
    assert seen[:40] == list(range(1, 41))

    # the video's defect frames come back NG and the good ones OK (truth in the CSV sidecar)
    truth = [line.split(",")[2] for line in (video.with_suffix(".csv")).read_text().splitlines()[1:]]
    _, page = get_json(f"{srv.url}/v1/results?after=0&limit=40")
    agree = [(r["verdict"] == "NG") == (truth[r["frame_index"]] != "good") for r in page["results"]]
    assert np.mean(agree) >= 0.8, agree

    status, body, headers = get(srv.url + "/v1/frame.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (256, 256, 3)

    status, text, _ = get(srv.url + "/v1/verdict")
    seq, verdict, score, age = text.decode().split()
    assert status == 200 and int(seq) >= 1 and verdict in ("OK", "NG")

    status, metrics, _ = get(srv.url + "/metrics")
    text = metrics.decode()
    assert 'edge_ad_frames_processed_total{camera="cam0"}' in text
    assert "edge_ad_stage_latency_seconds_bucket" in text
    assert 'edge_ad_http_requests_total{code="200",route="/v1/result"}' in text

    status, page, headers = get(srv.url + "/")
    assert status == 200 and b"/v1/frame.jpg" in page and "text/html" in headers["Content-Type"]

    # the provider actually in use, whichever it is: ONNX Runtime's CPU one here, the TensorRT
    # EP on a Jetson image built with onnxruntime-gpu (where jetson/selftest.sh runs this tier)
    status, st = get_json(srv.url + "/v1/status")
    provider = st["engine"]["provider"]
    assert provider in ort.get_available_providers() and st["cameras"][0]["up"] is True
    assert f'edge_ad_engine_info{{backend="onnxruntime",provider="{provider}"}}' in text


def test_bad_query_parameters_are_400_not_500(live_server, bundle_dir, demo_root):
    srv, _ = _serve(live_server, bundle_dir, f"dir://{demo_root}/wood/test/good?loop=1&fps=20")
    for q in ("after=abc", "after=-1", "limit=0", "limit=100000"):
        assert get(f"{srv.url}/v1/results?{q}")[0] == 400, q
    assert get(f"{srv.url}/v1/result?camera=nope")[0] == 404
    assert get(f"{srv.url}/v1/nope")[0] == 404


def test_ended_source_never_leaves_a_fresh_ok(live_server, bundle_dir, demo_root):
    srv, pipeline = _serve(live_server, bundle_dir, f"dir://{demo_root}/wood/test/good?fps=20")
    # frames may be dropped while the engine warms up (latest-frame policy): wait for the end
    wait_for(lambda: pipeline.finished and pipeline.store.last_seq >= 1)
    wait_for(lambda: get(srv.url + "/readyz")[0] == 503)
    _, body = get_json(srv.url + "/readyz")
    assert any("end of stream" in r for r in body["reasons"])
    _, latest = get_json(srv.url + "/v1/result")
    assert latest["stale"] is True and latest["verdict"] != "OK"
    if latest["verdict"] == "FAULT":
        assert "camera cam0 is down (end of stream)" in latest["reason"]
    assert get(srv.url + "/v1/verdict")[1].split()[1] in (b"FAULT", b"NG")


def test_missing_source_is_not_ready_with_reason(live_server, bundle_dir, tmp_path):
    srv, _ = _serve(live_server, bundle_dir, f"file://{tmp_path}/gone.avi")
    # the first answers may still say "no frames yet": wait for the capture thread's own reason
    status, body = wait_for(lambda: (lambda r: r if any("video file not found" in x for x in r[1]["reasons"])
                                     else None)(get_json(srv.url + "/readyz")))
    assert status == 503
    status, body = get_json(srv.url + "/v1/result")
    assert status == 503 and body["verdict"] == "FAULT"
    assert get(srv.url + "/healthz")[0] == 200  # alive, just not ready


def test_reject_gallery_frames_and_no_cors_by_default(live_server, bundle_dir, demo_root):
    import urllib.request

    srv, pipeline = _serve(live_server, bundle_dir, f"dir://{demo_root}/wood/test/hole?loop=1&fps=20")
    wait_for(lambda: len(pipeline.views.rejects()) >= 2)
    seq = pipeline.views.rejects()[0].seq
    status, body, headers = get(f"{srv.url}/v1/frame.jpg?seq={seq}")
    assert status == 200 and body[:2] == b"\xff\xd8" and headers["X-Seq"] == str(seq)
    assert get(f"{srv.url}/v1/frame.jpg?seq=999999")[0] == 404
    req = urllib.request.Request(srv.url + "/v1/result", headers={"Origin": "http://evil.example"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert "Access-Control-Allow-Origin" not in r.headers  # CORS stays off


def test_results_survive_a_restart_through_the_journal(live_server, bundle_dir, demo_root, tmp_path):
    journal = tmp_path / "journal.sqlite"
    source = f"dir://{demo_root}/wood/test/good?loop=1&fps=20"

    def start():
        config = build_config({"model": str(bundle_dir), "cameras": [{"source": source}],
                               "results": {"journal": str(journal), "ring_size": 10}})
        metrics = Metrics()
        service = build_service(config, metrics)
        pipeline = service.pipeline
        return live_server(make_app(service, metrics)), pipeline

    srv, pipeline = start()
    wait_for(lambda: pipeline.store.last_seq >= 15)
    srv.close()  # stops the pipeline and flushes the journal
    before = pipeline.store.last_seq

    srv2, pipeline2 = start()
    wait_for(lambda: pipeline2.store.last_seq > before)
    # a clean stop gives back the reserved numbers: numbering continues without a gap
    assert pipeline2.store.oldest_available() == before + 1
    status, page = get_json(f"{srv2.url}/v1/results?after=0&limit=5")  # the previous run's results
    assert status == 200 and [r["seq"] for r in page["results"]] == [1, 2, 3, 4, 5]
    assert page["never_served"] == [] and page["boot_id"] == pipeline2.store.boot_id
    assert {r["boot_id"] for r in page["results"]} == {pipeline.store.boot_id} != {page["boot_id"]}
    seen, after = [], 0
    while after < before + 3:  # lossless across the restart: ring and journal together
        _, page = get_json(f"{srv2.url}/v1/results?after={after}&limit=7")
        seen += [r["seq"] for r in page["results"]]
        after = seen[-1] if seen else after
    assert seen[: before + 3] == list(range(1, before + 4))
