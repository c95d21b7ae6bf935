"""The HTTP server against a fake of the service port: what each route makes of the snapshots
it is given and the jobs it asks for, with no pipeline behind it (and no model, no torch)."""
import pytest

from edge_ad.prometheus import Metrics
from edge_ad.config import SecurityConfig
from edge_ad.publish.views import View
from edge_ad.pipeline.port import Latest
from edge_ad.server.app import make_app

from ..fakes.fake_port import FakePort, frame, result
from .helpers import get, get_json, send

TOKEN = "t0k3n-for-tests-only-0123456789"


@pytest.fixture
def fake(live_server):
    def start(**kw):
        port = FakePort(**kw)
        srv = live_server(make_app(port, Metrics(), SecurityConfig(token=TOKEN)))
        return srv, port
    return start


def test_the_app_starts_and_stops_the_service_through_the_port(live_server):
    port = FakePort()
    srv = live_server(make_app(port, Metrics()))
    assert port.started and not port.stopped
    srv.close()
    assert port.stopped


def test_a_stale_ok_is_served_as_fault_and_no_result_is_503(fake):
    srv, port = fake()
    assert get(srv.url + "/v1/result")[0] == 503
    port.latest_result = Latest(result(5, "OK", age_s=3.0), "last inspected frame is 3000 ms old")
    status, body = get_json(srv.url + "/v1/result")
    assert status == 200 and body["verdict"] == "FAULT" and body["stale"] is True
    assert body["reason"].startswith("stale: last inspected frame")
    assert get(srv.url + "/v1/verdict")[1].split()[1] == b"FAULT"
    port.latest_result = Latest(result(6, "OK"), None)
    status, body = get_json(srv.url + "/v1/result")
    assert body["verdict"] == "OK" and body["stale"] is False and body["seq"] == 6


def test_results_pages_and_gone_come_from_the_port(fake):
    srv, port = fake()
    port.results = [result(s) for s in range(10, 20)]
    port.oldest = 10
    status, page = get_json(srv.url + "/v1/results?after=12&limit=3")
    assert status == 200 and [r["seq"] for r in page["results"]] == [13, 14, 15]
    status, body = get_json(srv.url + "/v1/results?after=3")
    assert status == 410 and body["oldest_seq"] == 10
    port.results.append(result(20, "NG", part_id="A-7"))
    status, page = get_json(srv.url + "/v1/results?part_id=A-7")
    assert status == 200 and page["results"][0]["seq"] == 20
    assert get(srv.url + "/v1/results?part_id=nope")[0] == 404


def test_a_threshold_change_is_a_job_on_the_port(fake):
    srv, port = fake()
    status, body = send("PUT", srv.url + "/v1/config/threshold", {"normalized": 0.75}, TOKEN)
    assert status == 200 and body["previous"] == 1.0 and body["threshold"] == pytest.approx(1.25)
    assert port.manifest.thresholds.image.threshold == pytest.approx(1.25)
    assert port.manifest.calibration.method == "manual"
    assert port.jobs[-1][0] == "thresholds" and port.jobs[-1][1] is True and "127.0.0.1" in port.jobs[-1][2]


def test_push_goes_to_push_cameras_only(fake):
    srv, port = fake(cameras=("line", "station"), push=("station",))
    import cv2

    png = cv2.imencode(".png", frame())[1].tobytes()
    status, body = send("POST", srv.url + "/v1/push?camera=line", png, content_type="image/png")
    assert status == 409 and "push://" in body["error"]
    status, body = send("POST", srv.url + "/v1/push?camera=station&part_id=P1", png, content_type="image/png")
    assert status == 200 and body["part_id"] == "P1" and body["verdict"] == "NG"
    assert ("push", "station", (64, 64, 3)) in port.jobs and ("trigger", "station", "P1") in port.jobs


def test_frames_and_readiness_are_the_ports(fake):
    srv, port = fake()
    assert get(srv.url + "/v1/frame.jpg")[0] == 503
    port.views["cam0"] = View(42, frame(200), None)
    status, body, headers = get(srv.url + "/v1/frame.jpg?overlay=0")
    assert status == 200 and headers["X-Seq"] == "42" and body[:2] == b"\xff\xd8"
    assert get(srv.url + "/v1/frame.jpg?seq=42")[0] == 200 and get(srv.url + "/v1/frame.jpg?seq=41")[0] == 404
    port.ready, port.reasons = False, ["camera cam0: no frames yet"]
    status, body = get_json(srv.url + "/readyz")
    assert status == 503 and body["reasons"] == ["camera cam0: no frames yet"]
    status, body = get_json(srv.url + "/v1/status")
    assert body["ready"] is False and body["model"]["version"] == "7" and "platform" in body
