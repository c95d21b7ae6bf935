"""The GStreamer pipeline strings, by value, and the source URIs that produce them. Pure: no
GStreamer needed (the integration tests run the desktop variants for real)."""
import pytest

from edge_ad.errors import SourceError
from edge_ad.sources import gst_pipelines as gp
from edge_ad.sources.gst_pipelines import (RGB_TAIL, CsiOptions, RtspOptions, V4l2Options,
                                           csi_pipeline, is_jetson, quote, rtsp_pipeline,
                                           user_pipeline, v4l2_pipeline)
from edge_ad.sources.live import _split_rtsp, redact

TAIL = ("videoconvert ! video/x-raw,format=RGB ! "
        "appsink name=edgead max-buffers=1 drop=true sync=false emit-signals=false")


def test_tail_is_rgb_into_a_leaky_appsink():
    assert RGB_TAIL == TAIL


def test_csi_jetson_pipeline():
    assert csi_pipeline(CsiOptions(sensor_id=1, width=1280, height=720, fps=60, flip=2, sensor_mode=4)) == (
        "nvarguscamerasrc sensor-id=1 sensor-mode=4 ! "
        "video/x-raw(memory:NVMM),width=1280,height=720,framerate=60/1,format=NV12 ! "
        "nvvidconv flip-method=2 ! video/x-raw,format=BGRx ! " + TAIL)


def test_v4l2_variants():
    o = V4l2Options("/dev/v4l/by-id/usb-Cam_123-video-index0", 1280, 720, 30)
    assert v4l2_pipeline(o, jetson=False) == (
        'v4l2src device="/dev/v4l/by-id/usb-Cam_123-video-index0" ! '
        "image/jpeg,width=1280,height=720,framerate=30/1 ! jpegdec ! " + TAIL)
    assert v4l2_pipeline(o, jetson=True) == (
        'v4l2src device="/dev/v4l/by-id/usb-Cam_123-video-index0" io-mode=2 ! '
        "image/jpeg,width=1280,height=720,framerate=30/1 ! nvv4l2decoder mjpeg=1 ! "
        "nvvidconv ! video/x-raw,format=BGRx ! " + TAIL)
    raw = V4l2Options("/dev/video0", format="raw")
    assert v4l2_pipeline(raw, jetson=True) == 'v4l2src device="/dev/video0" ! video/x-raw ! ' + TAIL


def test_rtsp_variants():
    o = RtspOptions("rtsp://cam/live", codec="h265", latency_ms=100, transport="udp")
    src = 'rtspsrc location="rtsp://cam/live" latency=100 protocols=udp drop-on-latency=true'
    assert rtsp_pipeline(o, jetson=False) == f"{src} ! rtph265depay ! h265parse ! avdec_h265 ! {TAIL}"
    assert rtsp_pipeline(o, jetson=True) == (
        f"{src} ! rtph265depay ! h265parse ! nvv4l2decoder ! nvvidconv ! video/x-raw,format=BGRx ! {TAIL}")
    auto = RtspOptions("rtsp://cam/live", codec="auto")
    assert rtsp_pipeline(auto, jetson=True).endswith("! decodebin ! " + TAIL)


def test_testsrc_and_fractional_rate():
    assert gp.testsrc_pipeline(gp.TestsrcOptions("smpte", 320, 240, 29.97, live=False, num_buffers=5)) == (
        "videotestsrc pattern=smpte is-live=false num-buffers=5 ! "
        "video/x-raw,width=320,height=240,framerate=2997/100 ! " + TAIL)


def test_user_pipeline_gets_the_tail_only_when_it_has_no_appsink():
    assert user_pipeline("videotestsrc ! ") == "videotestsrc ! " + TAIL
    own = "videotestsrc ! videoconvert ! video/x-raw,format=GRAY8 ! appsink name=mine"
    assert user_pipeline(own) == own


def test_quote_escapes_for_parse_launch():
    assert quote('a "b" \\c') == '"a \\"b\\" \\\\c"'


def test_jetson_detection(tmp_path):
    assert not is_jetson(tmp_path)
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_text("NVIDIA Jetson Orin Nano Developer Kit\x00")
    assert is_jetson(tmp_path)
    other = tmp_path / "other"
    (other / "etc").mkdir(parents=True)
    (other / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 3.0")
    assert is_jetson(other)


def test_rtsp_keeps_the_cameras_query_and_hides_the_password():
    location, ours = _split_rtsp("rtsp://admin:s3cret@10.0.0.9:554/cam?channel=1&subtype=0&codec=h265&latency=50")
    assert location == "rtsp://admin:s3cret@10.0.0.9:554/cam?channel=1&subtype=0"
    assert ours == {"codec": "h265", "latency": "50"}
    assert redact("rtsp://admin:s3cret@10.0.0.9:554/cam?x=1") == "rtsp://admin:***@10.0.0.9:554/cam?x=1"
    assert redact("rtsp://10.0.0.9/cam") == "rtsp://10.0.0.9/cam"


@pytest.mark.parametrize("uri, message", [
    ("testsrc://?colour=red", "does not take colour"),
    ("testsrc://?pattern=plaid", "use one of"),
    ("csi://left", "sensor id is a number"),
    ("v4l2://webcam", "name a device"),
    ("rtsp://cam/live?codec=vp9", "use one of h264, h265, auto"),
    ("rtsp://cam/live?transport=quic", "use one of tcp, udp"),
    ("testsrc://?backend=directshow", "use one of gst, opencv"),
    ("csi://0?flip=-1", "whole number"),
])
def test_bad_live_uris_fail_at_start_with_one_line(uri, message):
    from edge_ad.sources.registry import open_source

    with pytest.raises(SourceError, match=message):
        open_source(uri)


def test_platform_override_selects_the_jetson_variant():
    from edge_ad.sources.registry import open_source

    try:
        source = open_source("v4l2://0?platform=jetson&backend=gst&width=640&height=480")
    except SourceError as exc:  # no GStreamer here: the error names what to install
        assert "apt-get install" in str(exc)
        return
    assert source.description.startswith('v4l2src device="/dev/video0" io-mode=2 ! ')
    assert "nvv4l2decoder mjpeg=1" in source.description
