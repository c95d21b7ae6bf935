"""Live cameras: ``testsrc://``, ``csi://N``, ``v4l2://DEVICE`` and ``rtsp://URL``.

Options ride in the query string (``csi://0?width=1280&height=720&fps=60``). For ``rtsp://`` only
edge-ad's own keys are taken out; the rest of the query belongs to the camera's URL. ``backend``
picks GStreamer (``gst``) or OpenCV (``opencv``); the default is GStreamer when PyGObject is
installed. ``platform=jetson|desktop`` overrides the detected pipeline variant.
"""
from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import cv2

from ..errors import SourceError
from .base import Source, SourceURI
from .gst_pipelines import (RTSP_CODECS, TESTSRC_PATTERNS, V4L2_FORMATS, CsiOptions, RtspOptions,
                            TestsrcOptions, V4l2Options, csi_pipeline, is_jetson, rtsp_pipeline,
                            testsrc_pipeline, v4l2_pipeline)

COMMON = {"backend", "platform", "eos"}
KEYS = {
    "testsrc": {"pattern", "width", "height", "fps", "live", "num_buffers"},
    "csi": {"width", "height", "fps", "flip", "sensor_mode"},
    "v4l2": {"width", "height", "fps", "format"},
    "rtsp": {"codec", "latency", "transport"},
}


def _int(p: SourceURI, key: str, default):
    value = p.number(key, None)
    if value is None:
        return default
    if not float(value).is_integer() or value < 0:
        raise SourceError(f"source parameter {key}={p.params[key]!r} must be a whole number >= 0")
    return int(value)


def _choice(p: SourceURI, key: str, default: str, choices) -> str:
    value = p.params.get(key, default)
    if value not in choices:
        raise SourceError(f"source parameter {key}={value!r}: use one of {', '.join(choices)}")
    return value


def redact(url: str) -> str:
    """The URL with its password hidden, for logs, errors and /v1/status."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _split_rtsp(uri: str) -> tuple[str, dict[str, str]]:
    """edge-ad's keys out of an RTSP URL's query; the camera's own keys stay in the URL."""
    parts = urlsplit(uri)
    ours, theirs = {}, []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in KEYS["rtsp"] | COMMON:
            ours[key] = value
        else:
            theirs.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(theirs))), ours


def live_source(uri: str, parsed: SourceURI) -> Source:
    scheme = parsed.scheme
    if scheme == "rtsp":
        location, params = _split_rtsp(uri)
        parsed = SourceURI(scheme, parsed.path, params)
    else:
        location = None
        unknown = set(parsed.params) - KEYS[scheme] - COMMON
        if unknown:
            raise SourceError(f"{scheme}:// does not take {', '.join(sorted(unknown))}; it takes "
                              f"{', '.join(sorted(KEYS[scheme] | COMMON))}")
    from .gst import gst_available

    backend = _choice(parsed, "backend", "gst" if gst_available() else "opencv", ("gst", "opencv"))
    jetson = _choice(parsed, "platform", "jetson" if is_jetson() else "desktop", ("jetson", "desktop")) == "jetson"
    width, height = _int(parsed, "width", None), _int(parsed, "height", None)
    fps = parsed.number("fps", None)
    display = redact(uri)

    if backend == "opencv":
        from .opencv_device import OpenCVDeviceSource

        if scheme == "v4l2":
            return OpenCVDeviceSource(uri, _device(parsed.path), cv2.CAP_V4L2, size=(width, height), fps=fps)
        if scheme == "rtsp":
            return OpenCVDeviceSource(uri, location, cv2.CAP_FFMPEG, display=display)
        from .gst import gst_module

        gst_module()  # raises with the install line: only GStreamer serves this scheme
        raise SourceError(f"{scheme}:// needs backend=gst")

    if scheme == "testsrc":
        o = TestsrcOptions(pattern=_choice(parsed, "pattern", parsed.path or "ball", TESTSRC_PATTERNS),
                           width=width or 640, height=height or 480, fps=fps or 30,
                           live=parsed.flag("live", True), num_buffers=_int(parsed, "num_buffers", None))
        description = testsrc_pipeline(o)
    elif scheme == "csi":
        try:
            sensor = int(parsed.path or 0)
        except ValueError:
            raise SourceError(f"csi://{parsed.path}: the sensor id is a number, e.g. csi://0") from None
        description = csi_pipeline(CsiOptions(sensor, width or 1920, height or 1080, fps or 30,
                                              _int(parsed, "flip", 0), _int(parsed, "sensor_mode", None)))
    elif scheme == "v4l2":
        description = v4l2_pipeline(V4l2Options(_device(parsed.path), width, height, fps,
                                                _choice(parsed, "format", "mjpeg", V4L2_FORMATS)), jetson)
    else:
        description = rtsp_pipeline(RtspOptions(location, _choice(parsed, "codec", "h264", RTSP_CODECS),
                                                _int(parsed, "latency", 200),
                                                _choice(parsed, "transport", "tcp", ("tcp", "udp"))), jetson)
    from .gst import GstSource

    eos = _choice(parsed, "eos", "rebuild", ("rebuild", "end"))
    return GstSource(uri, description, eos_ends=eos == "end", display=display)


def _device(path: str) -> str:
    """``v4l2:///dev/video0``, ``v4l2:///dev/v4l/by-id/usb-...`` or the short ``v4l2://0``."""
    if path.isdigit():
        return f"/dev/video{path}"
    if not path.startswith("/dev/"):
        raise SourceError(f"v4l2://{path}: name a device, e.g. v4l2:///dev/video0 or "
                          "v4l2:///dev/v4l/by-id/usb-...-video-index0")
    return path
