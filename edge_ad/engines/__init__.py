"""Engine backends, registered under the key the config uses (``engine.backend``).

A backend is one module with an ``Engine`` subclass that names its constructor options in
``options``, and one line in ``BACKENDS`` below (the module is imported only when used, so the
TensorRT bindings are never loaded on a machine that runs ONNX Runtime).
"""
from __future__ import annotations

import importlib

from ..bundle import Bundle
from ..errors import ConfigError
from .base import Engine

BACKENDS = {  # config key -> "module:class"
    "onnxruntime": "edge_ad.engines.onnxruntime:OrtEngine",
    "tensorrt": "edge_ad.engines.tensorrt:TrtEngine",
}


def engine_class(backend: str) -> type[Engine]:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown engine backend {backend!r}; available: {', '.join(BACKENDS)}")
    module, _, name = BACKENDS[backend].partition(":")
    return getattr(importlib.import_module(module), name)


def create_engine(bundle: Bundle, backend: str = "onnxruntime", **options) -> Engine:
    """The backend's engine for ``bundle``. Options it does not take are dropped, so a caller
    may pass one set (edge-ad bench passes threads and precision whichever it measures)."""
    cls = engine_class(backend)
    return cls(bundle, **{k: v for k, v in options.items() if k in cls.options})


__all__ = ["BACKENDS", "Engine", "create_engine", "engine_class"]
