"""GStreamer pipeline descriptions, built by pure functions so they can be tested by value.

Every pipeline ends in the same tail: conversion to packed RGB and an ``appsink`` named
``edgead`` that keeps one buffer and drops older ones (the capture thread is the only reader and
the latest-frame slot behind it counts its own drops). Jetson variants keep frames in NVMM memory
and use the hardware converters and decoders JetPack ships (nvarguscamerasrc, nvvidconv,
nvv4l2decoder); desktop variants use the software elements of gst-plugins-base/good/libav.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SINK_NAME = "edgead"
APPSINK = f"appsink name={SINK_NAME} max-buffers=1 drop=true sync=false emit-signals=false"
RGB_TAIL = f"videoconvert ! video/x-raw,format=RGB ! {APPSINK}"
# nvvidconv cannot write packed 24-bit RGB; it writes BGRx and videoconvert packs it
NVMM_TO_RGB = f"nvvidconv ! video/x-raw,format=BGRx ! {RGB_TAIL}"

RTSP_CODECS = ("h264", "h265", "auto")
V4L2_FORMATS = ("mjpeg", "raw")
TESTSRC_PATTERNS = ("smpte", "snow", "black", "white", "red", "green", "blue", "checkers-1",
                    "checkers-8", "circular", "blink", "smpte75", "zone-plate", "gamut", "ball",
                    "smpte100", "bar", "pinwheel", "spokes", "gradient", "colors")


def quote(value: str) -> str:
    """A property value for ``gst_parse_launch``: double-quoted, with ``"`` and ``\\`` escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _raw_caps(width: int | None, height: int | None, fps: float | None, memory: str = "",
              media: str = "video/x-raw", fmt: str | None = None) -> str:
    caps = [media + (f"(memory:{memory})" if memory else "")]
    if width:
        caps.append(f"width={int(width)}")
    if height:
        caps.append(f"height={int(height)}")
    if fps:
        caps.append(f"framerate={_fraction(fps)}")
    if fmt:
        caps.append(f"format={fmt}")
    return ",".join(caps)


def _fraction(fps: float) -> str:
    """GStreamer framerates are fractions: 30 → 30/1, 29.97 → 2997/100."""
    if float(fps).is_integer():
        return f"{int(fps)}/1"
    return f"{round(fps * 100)}/100"


@dataclass(frozen=True)
class CsiOptions:
    """The parameters of a ``csi://`` camera."""
    sensor_id: int = 0
    width: int = 1920
    height: int = 1080
    fps: float = 30
    flip: int = 0  # nvvidconv flip-method: 0 none, 2 rotate 180, 4 horizontal, 6 vertical ...
    sensor_mode: int | None = None


def csi_pipeline(o: CsiOptions) -> str:
    """A MIPI CSI camera on a Jetson (IMX219, IMX477 ...) through the Argus ISP. CSI exists only
    on a Jetson, so there is no desktop variant."""
    src = f"nvarguscamerasrc sensor-id={int(o.sensor_id)}"
    if o.sensor_mode is not None:
        src += f" sensor-mode={int(o.sensor_mode)}"
    caps = _raw_caps(o.width, o.height, o.fps, memory="NVMM", fmt="NV12")
    return f"{src} ! {caps} ! nvvidconv flip-method={int(o.flip)} ! video/x-raw,format=BGRx ! {RGB_TAIL}"


@dataclass(frozen=True)
class V4l2Options:
    """The parameters of a ``v4l2://`` camera."""
    device: str = "/dev/video0"
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    format: str = "mjpeg"  # most USB (UVC) cameras reach full rate only in MJPEG


def v4l2_pipeline(o: V4l2Options, jetson: bool) -> str:
    """A USB (UVC) or other V4L2 camera. ``/dev/v4l/by-id/...`` names survive re-plugging and
    reboots, unlike ``/dev/videoN``."""
    src = f"v4l2src device={quote(o.device)}"
    if o.format == "raw":
        return f"{src} ! {_raw_caps(o.width, o.height, o.fps)} ! {RGB_TAIL}"
    caps = _raw_caps(o.width, o.height, o.fps, media="image/jpeg")
    if jetson:  # the hardware JPEG decoder writes NVMM
        return f"{src} io-mode=2 ! {caps} ! nvv4l2decoder mjpeg=1 ! {NVMM_TO_RGB}"
    return f"{src} ! {caps} ! jpegdec ! {RGB_TAIL}"


@dataclass(frozen=True)
class RtspOptions:
    """The parameters of an ``rtsp://`` stream."""
    location: str
    codec: str = "h264"
    latency_ms: int = 200
    transport: str = "tcp"  # tcp survives lossy networks; udp has less latency


def rtsp_pipeline(o: RtspOptions, jetson: bool) -> str:
    """An IP camera. ``codec=auto`` lets decodebin pick (slower to start, any codec)."""
    src = (f"rtspsrc location={quote(o.location)} latency={int(o.latency_ms)} "
           f"protocols={o.transport} drop-on-latency=true")
    if o.codec == "auto":
        return f"{src} ! decodebin ! {RGB_TAIL}"
    n = o.codec[-3:]  # 264 / 265
    depay = f"rtph{n}depay ! h{n}parse"
    if jetson:
        return f"{src} ! {depay} ! nvv4l2decoder ! {NVMM_TO_RGB}"
    return f"{src} ! {depay} ! avdec_h{n} ! {RGB_TAIL}"


@dataclass(frozen=True)
class TestsrcOptions:
    """The parameters of a ``testsrc://`` pattern."""
    pattern: str = "ball"
    width: int = 640
    height: int = 480
    fps: float = 30
    live: bool = True
    num_buffers: int | None = None  # then EOS: for tests of the end-of-stream path


def testsrc_pipeline(o: TestsrcOptions) -> str:
    """videotestsrc: a camera that needs no hardware, for trying the service and for tests."""
    src = f"videotestsrc pattern={o.pattern} is-live={'true' if o.live else 'false'}"
    if o.num_buffers is not None:
        src += f" num-buffers={int(o.num_buffers)}"
    return f"{src} ! {_raw_caps(o.width, o.height, o.fps)} ! {RGB_TAIL}"


def user_pipeline(description: str) -> str:
    """``gst://`` pipelines: used as written when they end in an appsink, otherwise the RGB tail
    is appended so ``gst://videotestsrc`` just works."""
    description = description.strip().rstrip("!").strip()
    if "appsink" in description:
        return description
    return f"{description} ! {RGB_TAIL}"


def is_jetson(root: Path = Path("/")) -> bool:
    """L4T writes /etc/nv_tegra_release; the device tree names the Tegra SoC."""
    if (root / "etc/nv_tegra_release").exists():
        return True
    model = root / "proc/device-tree/model"
    try:
        return "jetson" in model.read_text(errors="replace").lower()
    except OSError:
        return False
