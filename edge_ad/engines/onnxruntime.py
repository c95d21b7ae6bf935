"""ONNX Runtime backend. Providers are asked for in order (TensorRT EP → CUDA EP → CPU) and the
one actually in use is read back: onnxruntime falls back to CPU silently otherwise."""
from __future__ import annotations

import logging
import os

import numpy as np

from ..errors import BundleError, missing_extra
from .base import Engine

log = logging.getLogger(__name__)
PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def service_friendly_threads() -> int:
    """All cores this process may use but one, at least one. The capture, decision and HTTP
    threads need a core of their own: on 2 cores with ONNX Runtime on both, GET /v1/result p99
    was 3.4 ms and the pipeline lost 8 % of its rate under 500 requests/s; with one engine
    thread, 1.97 ms and nothing lost (docs/benchmarks.md). Affinity, not cpu_count, so that a
    container's CPU limit counts."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


class OrtEngine(Engine):
    """Owns one ONNX Runtime session and the providers it runs on."""
    name = "onnxruntime"
    options = ("providers", "threads", "spin")

    def __init__(self, bundle, providers: list[str] | None = None, threads: int = 0,
                 spin: bool = False):
        super().__init__(bundle)
        self.requested = providers
        self.threads = threads
        self.spin = spin
        self.session = None

    def _open(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise missing_extra("onnxruntime", "runtime") from exc
        available = ort.get_available_providers()
        wanted = [p for p in (self.requested or PREFERRED) if p in available] or ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = self.threads or service_friendly_threads()
        # Spinning pool threads keep their cores busy between frames; beside a capture thread on
        # a small CPU that delays the next frame's hand-over by a scheduler tick.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
        try:
            self.session = ort.InferenceSession(str(self.bundle.onnx_path), opts,
                                                providers=self._with_options(wanted))
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BundleError(f"ONNX Runtime cannot load {self.bundle.onnx_path}: "
                              f"{str(exc).splitlines()[0]}") from exc
        self.provider = self.session.get_providers()[0]
        if self.provider != wanted[0]:
            log.warning("asked for %s but ONNX Runtime runs on %s", wanted[0], self.provider)
        m = self.bundle.manifest
        self._input = m.input.name
        self._outputs = [m.outputs.map, m.outputs.score]

    def _with_options(self, wanted: list[str]) -> list:
        """The TensorRT EP builds an engine on first load (minutes on a Jetson): cache it in the
        bundle under the engine key, so a restart loads it and a changed model or TensorRT
        rebuilds it."""
        if "TensorrtExecutionProvider" not in wanted:
            return wanted
        from ..platform import detect
        from .key import engine_key

        cache = self.bundle.path / "engines" / engine_key(self.bundle.manifest.provenance.onnx_sha256, detect())
        options = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
                   "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache)}
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only model volume: build each start rather than fail
            log.warning("TensorRT engine cache %s not writable (%s); engines are rebuilt at each start",
                        cache, exc)
            options = {}
        return [(p, options) if p == "TensorrtExecutionProvider" else p for p in wanted]

    def _infer(self, batch):
        amap, score = self.session.run(self._outputs, {self._input: batch})
        return amap.astype(np.float32, copy=False), score.astype(np.float32, copy=False)

    def deactivate(self) -> None:
        self.session = None
        self.active = False
        self.provider = "inactive"
