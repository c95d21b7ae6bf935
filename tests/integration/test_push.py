"""``push://`` cameras: images posted to /v1/push go through the camera's whole pipeline
(quality guard, decision, journal) and their result answers the post, with the part id."""
import threading

import pytest

from edge_ad.config import build_config
from edge_ad.prometheus import Metrics
from edge_ad.server.app import make_app
from edge_ad.assembly import build_service

from .helpers import get, get_json, send, wait_for


@pytest.fixture
def server(live_server, bundle_dir, demo_root, tmp_path):
    config = build_config({"model": str(bundle_dir),
                           "cameras": [{"name": "rig", "source": "push://"},
                                       {"name": "line", "source": f"dir://{demo_root}/wood/test/good?loop=1&fps=10"}],
                           "results": {"journal": str(tmp_path / "journal.sqlite")}})
    metrics = Metrics()
    srv = live_server(make_app(build_service(config, metrics), metrics))
    wait_for(lambda: get(srv.url + "/readyz")[0] == 200)  # an idle push camera is ready
    return srv


def _image(demo_root, kind: str) -> bytes:
    return sorted((demo_root / "wood" / "test" / kind).glob("*.png"))[0].read_bytes()


def test_posted_images_are_inspected_and_journaled_with_their_part_id(server, demo_root):
    status, good = send("POST", server.url + "/v1/push?camera=rig&part_id=P-1", _image(demo_root, "good"),
                        content_type="image/png")
    assert status == 200, good
    assert good["camera"] == "rig" and good["part_id"] == "P-1" and good["verdict"] == "OK"
    status, bad = send("POST", server.url + "/v1/push?part_id=P-2", _image(demo_root, "hole"),
                       content_type="image/png")  # the first push camera by default
    assert status == 200 and bad["verdict"] == "NG" and bad["seq"] > good["seq"]
    status, page = get_json(server.url + "/v1/results?part_id=P-2")
    assert status == 200 and page["results"][0]["seq"] == bad["seq"]
    # an idle push camera is neither stalled nor stale: its last result stands for its part
    status, latest = get_json(server.url + "/v1/result?camera=rig")
    assert status == 200 and latest["seq"] == bad["seq"] and not latest["stale"]


def test_concurrent_posts_are_all_answered_none_dropped(server, demo_root):
    image, answers = _image(demo_root, "good"), {}

    def post(i):
        answers[i] = send("POST", server.url + f"/v1/push?camera=rig&part_id=C-{i}", image,
                          content_type="image/png")

    threads = [threading.Thread(target=post, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(answers) == list(range(6))
    assert all(status == 200 and body["part_id"] == f"C-{i}" for i, (status, body) in answers.items())
    assert len({body["seq"] for _, body in answers.values()}) == 6


def test_bad_posts_get_clear_errors(server, demo_root):
    octet = "image/png"  # the server judges the format from the bytes, the type only from the header
    status, body = send("POST", server.url + "/v1/push?camera=line", _image(demo_root, "good"), content_type=octet)
    assert status == 409 and "only push:// cameras" in body["error"]
    status, body = send("POST", server.url + "/v1/push?camera=nope", b"x", content_type=octet)
    assert status == 404
    status, body = send("POST", server.url + "/v1/push?camera=rig", b"\x89PNG\r\n\x1a\nbroken", content_type=octet)
    assert status == 400
    status, body = send("POST", server.url + "/v1/push?camera=rig&part_id=" + "x" * 129,
                        _image(demo_root, "good"), content_type=octet)
    assert status == 400 and "128" in body["error"]
