"""Sources are addressed by URI through one factory. A source yields RGB uint8 frames; ``read``
returns None at the end of a finite stream and raises SourceError when the device fails, and
never blocks longer than ``READ_TIMEOUT_S``."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from ..errors import SourceError

READ_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Frame:
    camera: str
    index: int  # per-camera capture counter
    image_rgb: np.ndarray
    captured_at: float  # wall clock, time.time()
    captured_mono: float  # time.perf_counter(), for latency


@dataclass(frozen=True)
class SourceURI:
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
    #: frames per second to pace playback at (files and folders); None = live, paced by the device
    pace_fps: float | None = None
    loop: bool = False

    def __init__(self, uri: str):
        self.uri = uri

    @abstractmethod
    def open(self) -> None:
        ...

    @abstractmethod
    def read(self) -> np.ndarray | None:
        ...

    @abstractmethod
    def close(self) -> None:
        ...


def open_source(uri: str) -> Source:
    """The factory: scheme → source class; the source is returned closed (call ``open``)."""
    parsed = parse_uri(uri)
    if parsed.scheme == "file":
        from .video import VideoFileSource

        return VideoFileSource(uri, parsed)
    if parsed.scheme == "dir":
        from .folder import FolderSource

        return FolderSource(uri, parsed)
    raise SourceError(f"unsupported source scheme {parsed.scheme!r} in {uri!r}; "
                      "supported: file://, dir://")
