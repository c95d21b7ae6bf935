"""The source factory: URI scheme → the function that builds its source. A new source is one
module and one line in ``SCHEMES``; each factory imports its module only when used, so a
machine without GStreamer never loads it."""
from __future__ import annotations

from typing import Callable

from ..errors import SourceError
from .base import Source, SourceURI, parse_uri


def _file(uri: str, parsed: SourceURI) -> Source:
    from .video import VideoFileSource

    return VideoFileSource(uri, parsed)


def _dir(uri: str, parsed: SourceURI) -> Source:
    from .folder import FolderSource

    return FolderSource(uri, parsed)


def _push(uri: str, parsed: SourceURI) -> Source:
    from .push import PushSource

    return PushSource(uri)


def _live(uri: str, parsed: SourceURI) -> Source:
    from .live import live_source

    return live_source(uri, parsed)


def _gst(uri: str, parsed: SourceURI | None) -> Source:
    from .gst import GstSource, gst_module
    from .gst_pipelines import user_pipeline

    gst_module()
    return GstSource(uri, user_pipeline(uri[len("gst://"):]))


SCHEMES: dict[str, Callable[[str, SourceURI | None], Source]] = {
    "file": _file, "dir": _dir, "testsrc": _live, "gst": _gst, "csi": _live, "v4l2": _live,
    "rtsp": _live, "push": _push,
}


def open_source(uri: str) -> Source:
    """The source for ``uri``, returned closed (call ``open``). Everything that can be checked
    without the device (scheme, parameters, GStreamer present where nothing else can serve) is
    checked here, so a bad URI fails at start."""
    if uri.startswith("gst://"):  # a pipeline description is not a URL: take it verbatim
        return _gst(uri, None)
    parsed = parse_uri(uri)
    factory = SCHEMES.get(parsed.scheme)
    if factory is None:
        raise SourceError(f"unsupported source scheme {parsed.scheme!r} in {uri!r}; "
                          f"supported: {', '.join(s + '://' for s in SCHEMES)}")
    return factory(uri, parsed)
