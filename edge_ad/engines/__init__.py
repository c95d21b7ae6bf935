"""Engine backends, registered under the key the config uses."""
from __future__ import annotations

from ..bundle import Bundle
from ..errors import ConfigError
from .base import Engine


def create_engine(bundle: Bundle, backend: str = "onnxruntime", **options) -> Engine:
    if backend == "onnxruntime":
        from .onnxruntime import OrtEngine

        return OrtEngine(bundle, **options)
    raise ConfigError(f"unknown engine backend {backend!r}; available: onnxruntime")


__all__ = ["Engine", "create_engine"]
