"""Run-time threshold changes over HTTP: token rules, next-frame effect, persistence."""
import concurrent.futures
import json
import logging
import shutil
import threading
import urllib.request

import pytest

from edge_ad.bundle import load_bundle
from edge_ad.config import build_config
from edge_ad.prometheus import Metrics
from edge_ad.server.app import make_app
from edge_ad.assembly import build_service

from .helpers import get, get_json, send, wait_for

TOKEN = "t0k3n-for-tests-only-0123456789"


def put(url, body, token=None):
    return send("PUT", url, body, token)


@pytest.fixture
def serve(live_server, bundle_dir, demo_root, tmp_path):
    def start(**security):
        bundle = shutil.copytree(bundle_dir, tmp_path / f"bundle{len(list(tmp_path.iterdir()))}")
        config = build_config({"model": str(bundle), "security": security,
                               "cameras": [{"source": f"dir://{demo_root}/wood/test/good?loop=1&fps=25"}]})
        metrics = Metrics()
        service = build_service(config, metrics)
        pipeline = service.pipeline
        srv = live_server(make_app(service, metrics, config.security))
        wait_for(lambda: get(srv.url + "/readyz")[0] == 200)
        return srv, pipeline, bundle
    return start


def test_without_a_configured_token_control_is_refused(serve):
    srv, _, _ = serve()
    status, body = put(srv.url + "/v1/config/threshold", {"normalized": 0.6}, token="anything")
    assert status == 401 and "EDGE_AD_TOKEN" in body["error"]


def test_threshold_change_applies_to_the_next_frame_and_persists(serve):
    srv, pipeline, bundle = serve(token=TOKEN)
    url = srv.url + "/v1/config/threshold"
    assert put(url, {"threshold": 1.0})[0] == 401
    assert put(url, {"threshold": 1.0}, token="wrong-token-0123456789")[0] == 401
    assert put(url, {"threshold": 1.0, "normalized": 0.6}, token=TOKEN)[0] == 400
    assert put(url, b"not json", token=TOKEN)[0] == 400

    old = load_bundle(bundle).manifest.thresholds.image
    status, body = put(url, {"normalized": 0.75}, token=TOKEN)
    assert status == 200 and body["persisted"] is True
    assert body["threshold"] == pytest.approx(old.threshold + 0.5 * old.scale)
    seq_at_change = pipeline.store.last_seq
    wait_for(lambda: pipeline.store.last_seq >= seq_at_change + 2)
    newest = get_json(srv.url + "/v1/result")[1]
    assert newest["threshold"] == pytest.approx(body["threshold"])  # in force for new frames
    saved = load_bundle(bundle).manifest
    assert saved.thresholds.image.threshold == pytest.approx(body["threshold"])
    assert saved.calibration.method == "manual"


def test_protected_reads_keep_health_open(serve):
    srv, _, _ = serve(token=TOKEN, protect_reads=True)
    assert get(srv.url + "/v1/result")[0] == 401
    assert get(srv.url + "/healthz")[0] == 200 and get(srv.url + "/readyz")[0] == 200
    req = urllib.request.Request(srv.url + "/v1/result", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def test_absurd_thresholds_are_refused(serve):
    srv, _, _ = serve(token=TOKEN)
    for body in ({"threshold": 1e308}, {"threshold": float("nan")}, {"normalized": 1.5}):
        status, reply = put(srv.url + "/v1/config/threshold", json.dumps(body).encode(), token=TOKEN)
        assert status == 400, (body, reply)


def test_readme_upgrade_and_rollback_by_switching_the_bundle_link(live_server, bundle_dir, demo_root, tmp_path):
    """The README's single-device model update: versions side by side, `bundle` links to the one
    in use, switch the link and reload; the same two steps roll back."""
    models = tmp_path / "models"
    for version in ("1", "2"):
        copy = shutil.copytree(bundle_dir, models / f"wood-v{version}")
        raw = json.loads((copy / "manifest.json").read_text())
        raw["version"] = version
        (copy / "manifest.json").write_text(json.dumps(raw))
    link = models / "bundle"
    link.symlink_to("wood-v1")
    config = build_config({"model": str(link), "security": {"token": TOKEN},
                           "cameras": [{"source": f"dir://{demo_root}/wood/test/good?loop=1&fps=25"}]})
    metrics = Metrics()
    srv = live_server(make_app(build_service(config, metrics), metrics, config.security))
    wait_for(lambda: get(srv.url + "/readyz")[0] == 200)

    def switch_and_reload(target: str) -> dict:
        link.unlink()
        link.symlink_to(target)
        status, body = send("POST", srv.url + "/v1/model/reload", b"", TOKEN)
        assert status == 200, body
        return body

    assert switch_and_reload("wood-v2")["loaded"]["version"] == "2"
    wait_for(lambda: get_json(srv.url + "/v1/result")[1].get("model", {}).get("version") == "2")
    body = switch_and_reload("wood-v1")
    assert body["loaded"]["version"] == "1" and body["previous"]["version"] == "2"
    wait_for(lambda: get_json(srv.url + "/v1/status")[1]["model"]["version"] == "1")


def test_a_threshold_change_racing_a_reload_saves_each_manifest_into_its_own_bundle(serve, tmp_path):
    """The old server read the served manifest, then the bundle path, on the event loop while the
    worker could swap the model in between: a reload landing there saved model A's manifest into
    bundle B. A log handler that runs a reload exactly there (the change is logged between the
    two reads) reproduced it every time. Now the change is a job on the worker, so the reload
    waits behind it, and each bundle keeps its own manifest."""
    srv, pipeline, bundle_a = serve(token=TOKEN)
    bundle_b = shutil.copytree(bundle_a, tmp_path / "bundle-b")
    raw = json.loads((bundle_b / "manifest.json").read_text())
    raw["version"] = "b"
    (bundle_b / "manifest.json").write_text(json.dumps(raw))

    class ReloadInTheWindow(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("threshold changed"):
                try:
                    pipeline.reload(bundle_b).result(timeout=1.0)
                except concurrent.futures.TimeoutError:
                    pass  # on the worker itself: the reload can only run after this job

    handler = ReloadInTheWindow(level=logging.WARNING)
    logging.getLogger("edge_ad").addHandler(handler)
    try:
        status, body = put(srv.url + "/v1/config/threshold", {"normalized": 0.75}, token=TOKEN)
        wait_for(lambda: pipeline.model.info["version"] == "b")
    finally:
        logging.getLogger("edge_ad").removeHandler(handler)
    assert status == 200 and body["persisted"] is True
    assert load_bundle(bundle_b).manifest.version == "b"  # B's manifest is still B's
    changed = load_bundle(bundle_a).manifest  # the change went into the model it was made on
    assert changed.version != "b" and changed.thresholds.image.threshold == pytest.approx(body["threshold"])


def test_a_job_given_up_on_is_skipped_and_the_worker_lives_on(serve):
    """A threshold change whose caller timed out (its future cancelled before the worker got to
    it) must be skipped: answering it used to raise in the worker and stop the line."""
    srv, pipeline, bundle = serve(token=TOKEN)
    before = pipeline.model.manifest.thresholds.image.threshold
    gate = threading.Event()
    original = pipeline.worker._reload
    pipeline.worker._reload = lambda path, future: (gate.wait(10), original(path, future))  # hold the worker
    held = pipeline.reload(bundle)
    job = pipeline.change_thresholds(lambda m: m.model_copy(update={"name": "never"}), persist=True)
    assert job.cancel()  # the caller gave up while the worker was busy
    gate.set()
    held.result(30)
    seq = pipeline.store.last_seq
    wait_for(lambda: pipeline.store.last_seq >= seq + 3)  # still inspecting
    assert pipeline.worker.alive and pipeline.model.manifest.name != "never"
    assert pipeline.model.manifest.thresholds.image.threshold == before
    assert load_bundle(bundle).manifest.name != "never"
    assert get(srv.url + "/healthz")[0] == 200
