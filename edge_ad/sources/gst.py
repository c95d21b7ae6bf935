"""A GStreamer pipeline read through PyGObject's appsink (opencv-python is built without
GStreamer). No GLib main loop is needed: the capture thread pulls samples with a timeout and pops
the bus itself between pulls.

An ERROR or EOS on the bus, or no frame within the read timeout, raises SourceError; the capture
thread then tears the pipeline down and rebuilds it with backoff. A pipeline whose URI says
``eos=end`` (a finite test or file pipeline) ends instead of rebuilding.
"""
from __future__ import annotations

import ctypes
import importlib
import logging
import threading

import numpy as np

from ..errors import SourceError
from .base import READ_TIMEOUT_S, Source
from .gst_pipelines import SINK_NAME

log = logging.getLogger(__name__)
OPEN_TIMEOUT_S = 10.0  # an RTSP camera can take seconds to negotiate
INSTALL_HINT = ("needs GStreamer through PyGObject: apt-get install gstreamer1.0-tools "
                "gstreamer1.0-plugins-base gstreamer1.0-plugins-good gir1.2-gstreamer-1.0 "
                "gir1.2-gst-plugins-base-1.0 (plus python3-gi, or pip install 'edge-ad[gst]' with "
                "libgirepository1.0-dev libcairo2-dev pkg-config)")

_init_lock = threading.Lock()
_gst = None


def gst_module():
    """Import and initialise GStreamer once; SourceError with the install line when absent."""
    global _gst
    with _init_lock:
        if _gst is None:
            _keep_cxx_exceptions_working()
            try:
                import gi

                gi.require_version("Gst", "1.0")
                gi.require_version("GstApp", "1.0")
                from gi.repository import Gst

                # try_pull_sample lives on GstApp.AppSink: without this import the appsink is
                # a plain Gst.Element and has no such method
                importlib.import_module("gi.repository.GstApp")
            except (ImportError, ValueError) as exc:
                raise SourceError(f"GStreamer is not available ({exc}); this source {INSTALL_HINT}") from exc
            Gst.init(None)
            _gst = Gst
    return _gst


def _keep_cxx_exceptions_working() -> None:
    """libgstreamer links libunwind, whose ``_Unwind_*`` symbols can win over libgcc_s's once
    GStreamer is loaded; C++ exceptions thrown and caught inside ONNX Runtime or torch then abort
    the process ("terminate called after throwing ..."), a crash measured here on Debian 12 with
    an InvalidArgument from ONNX Runtime. Loading libgcc_s globally first keeps its unwinder."""
    try:
        ctypes.CDLL("libgcc_s.so.1", mode=ctypes.RTLD_GLOBAL)
    except OSError:  # not glibc/libgcc (musl): nothing to protect
        pass


def gst_available() -> bool:
    try:
        gst_module()
        return True
    except SourceError:
        return False


class GstSource(Source):
    """Owns one GStreamer pipeline ending in an appsink, and its bus."""
    def __init__(self, uri: str, description: str, *, eos_ends: bool = False,
                 read_timeout_s: float = READ_TIMEOUT_S, display: str | None = None):
        super().__init__(uri)
        self.description = description
        self.display = display or uri  # what logs and errors show (credentials redacted)
        self.eos_ends = eos_ends
        self.read_timeout_s = min(read_timeout_s, READ_TIMEOUT_S)
        self.pipeline = None
        self.sink = None
        self.bus = None
        self.dropped_upstream = 0  # frames the source numbered but never delivered to us
        self._last_offset: int | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> None:
        Gst = gst_module()
        from gi.repository import GLib

        try:
            pipeline = Gst.parse_launch(self.description)
        except GLib.Error as exc:
            raise SourceError(f"{self.display}: invalid GStreamer pipeline: {exc.message}") from exc
        sink = pipeline.get_by_name(SINK_NAME) or _first_appsink(pipeline)
        if sink is None:
            raise SourceError(f"{self.display}: the pipeline has no appsink to read frames from")
        self.pipeline, self.sink, self.bus = pipeline, sink, pipeline.get_bus()
        self._last_offset = None
        result = pipeline.set_state(Gst.State.PLAYING)
        if result == Gst.StateChangeReturn.FAILURE:
            reason = self._bus_error(wait_s=0.5) or "the pipeline refused to start"
            self.close()
            raise SourceError(f"{self.display}: {reason}")
        result, _, _ = pipeline.get_state(int(OPEN_TIMEOUT_S * Gst.SECOND))
        if result == Gst.StateChangeReturn.FAILURE:
            reason = self._bus_error(wait_s=0.5) or "the pipeline failed to start"
            self.close()
            raise SourceError(f"{self.display}: {reason}")
        if result == Gst.StateChangeReturn.ASYNC:
            self.close()
            raise SourceError(f"{self.display}: not playing after {OPEN_TIMEOUT_S:.0f} s")
        log.info("source %s: playing %s", self.display, self.description if self.display == self.uri else "")

    def close(self) -> None:
        if self.pipeline is not None:
            Gst = gst_module()
            self.pipeline.set_state(Gst.State.NULL)
            self.pipeline.get_state(int(2 * Gst.SECOND))  # wait for the device to be released
        self.pipeline = self.sink = self.bus = None

    # -- frames -----------------------------------------------------------------------------
    def read(self):
        if self.sink is None:
            raise SourceError("source read before open")
        Gst = gst_module()
        self._raise_bus_error()
        sample = self.sink.try_pull_sample(int(self.read_timeout_s * Gst.SECOND))
        if sample is None:
            self._raise_bus_error()
            if self.sink.is_eos():
                if self.eos_ends:
                    return None
                raise SourceError(f"{self.display}: end of stream (EOS); rebuilding the pipeline")
            raise SourceError(f"{self.display}: no frame for {self.read_timeout_s:.1f} s (stream stalled)")
        return self._to_rgb(sample, Gst)

    def _to_rgb(self, sample, Gst) -> np.ndarray:
        structure = sample.get_caps().get_structure(0)
        width, height = structure.get_value("width"), structure.get_value("height")
        fmt = structure.get_value("format")
        channels = {"RGB": 3, "BGR": 3, "GRAY8": 1}.get(fmt)
        if channels is None:
            raise SourceError(f"{self.display}: appsink delivers {fmt}; end the pipeline in "
                              "videoconvert ! video/x-raw,format=RGB ! appsink")
        buffer = sample.get_buffer()
        self._count_gap(buffer.offset, Gst)
        ok, info = buffer.map(Gst.MapFlags.READ)
        if not ok:
            raise SourceError(f"{self.display}: cannot map a frame buffer")
        try:
            data = np.frombuffer(info.data, np.uint8)
            stride = data.size // height  # rows are padded to 4 bytes for odd widths
            rows = data[: stride * height].reshape(height, stride)[:, : width * channels]
            image = rows.reshape(height, width, channels).copy()
        finally:
            buffer.unmap(info)
        if fmt == "BGR":
            image = image[:, :, ::-1].copy()
        elif fmt == "GRAY8":
            image = np.repeat(image, 3, axis=2)
        return image

    def _count_gap(self, offset: int, Gst) -> None:
        """Sources that number their buffers (videotestsrc, v4l2src) reveal the frames the leaky
        appsink dropped before we pulled them; count those too."""
        if offset == Gst.BUFFER_OFFSET_NONE:
            return
        if self._last_offset is not None and offset > self._last_offset + 1:
            self.dropped_upstream += offset - self._last_offset - 1
        self._last_offset = offset

    # -- bus --------------------------------------------------------------------------------
    def _bus_error(self, wait_s: float = 0.0) -> str | None:
        """The first ERROR on the bus (warnings are logged on the way), waiting up to ``wait_s``
        for one: a failed state change posts its reason just after it returns."""
        Gst = gst_module()
        while self.bus is not None:
            message = self.bus.timed_pop_filtered(int(wait_s * Gst.SECOND),
                                                  Gst.MessageType.ERROR | Gst.MessageType.WARNING)
            if message is None:
                return None
            if message.type == Gst.MessageType.WARNING:
                warning, _ = message.parse_warning()
                log.warning("source %s: %s", self.display, warning.message)
                continue
            error, debug = message.parse_error()
            log.debug("source %s: %s", self.display, debug)
            return f"GStreamer error from {message.src.get_name()}: {error.message}"
        return None

    def _raise_bus_error(self) -> None:
        reason = self._bus_error()
        if reason is not None:
            raise SourceError(f"{self.display}: {reason}; rebuilding the pipeline")


def _first_appsink(pipeline):
    Gst = gst_module()
    iterator = pipeline.iterate_sinks()
    while True:
        result, element = iterator.next()
        if result != Gst.IteratorResult.OK:
            return None
        if element.get_factory() is not None and element.get_factory().get_name() == "appsink":
            return element
