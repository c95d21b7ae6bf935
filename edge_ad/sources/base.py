"""The source interface. Sources are addressed by URI through one factory (registry.py). A source yields RGB uint8 frames; ``read``
returns None at the end of a finite stream, ``NO_FRAME`` when an event-driven source had nothing
to give, and raises SourceError when the device fails; it never blocks longer than
``READ_TIMEOUT_S``.

Schemes: ``file://`` (video), ``dir://`` (image folder), ``testsrc://``, ``gst://PIPELINE``,
``csi://N``, ``v4l2:///dev/videoN`` (or ``/dev/v4l/by-id/...``), ``rtsp://...``, ``push://``.
GStreamer (PyGObject) serves the live schemes; without it ``v4l2://`` and ``rtsp://`` fall back
to OpenCV, and the others say what to install."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from ..errors import SourceError

READ_TIMEOUT_S = 2.0
NO_FRAME = object()  # returned by read() of an event-driven source that is idle, not ended


@dataclass(frozen=True)
class Frame:
    """One captured frame, with its camera, index and capture times."""
    camera: str
    index: int  # per-camera capture counter
    image_rgb: np.ndarray
    captured_at: float  # wall clock, time.time()
    captured_mono: float  # time.perf_counter(), for latency


@dataclass(frozen=True)
class SourceURI:
    """A parsed source URI: scheme, path and parameters."""
    scheme: str
    path: str
    params: dict[str, str]

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.params.get(key)
        if value is None:
            return default
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise SourceError(f"source parameter {key}={value!r}: use 1 or 0")

    def number(self, key: str, default: float | None) -> float | None:
        value = self.params.get(key)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError as exc:
            raise SourceError(f"source parameter {key}={value!r} is not a number") from exc


def parse_uri(uri: str) -> SourceURI:
    parts = urlsplit(uri)
    if not parts.scheme:
        raise SourceError(f"source {uri!r} has no scheme: use file://PATH, dir://PATH, ...")
    params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return SourceURI(parts.scheme, unquote(parts.netloc + parts.path), params)


class Source(ABC):
    """Owns one camera's device or stream: opened, read frame by frame, closed."""

    #: frames per second to pace playback at (files and folders); None = live, paced by the device
    pace_fps: float | None = None
    loop: bool = False
    #: frames come when something happens (an upload), not at a rate: an idle source is
    #: neither stalled nor stale
    event_driven: bool = False
    #: frames the source numbered but dropped before they were read (a leaky appsink)
    dropped_upstream: int = 0

    def __init__(self, uri: str):
        self.uri = uri
        self.display = uri  # what status, logs and errors show (sources with credentials redact it)

    @abstractmethod
    def open(self) -> None:
        ...

    @abstractmethod
    def read(self) -> np.ndarray | None:
        ...

    @abstractmethod
    def close(self) -> None:
        ...

    def push(self, image_rgb: np.ndarray) -> None:
        """An image posted for this camera (event-driven sources only)."""
        raise SourceError(f"{self.display} does not take posted images (only push:// does)")
