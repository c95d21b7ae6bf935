"""Engine backends, registered under the key the config uses."""
from __future__ import annotations

from ..bundle import Bundle
from ..errors import ConfigError
from .base import Engine


def create_engine(bundle: Bundle, backend: str = "onnxruntime", **options) -> Engine:
    if backend == "onnxruntime":
        from .onnxruntime import OrtEngine

        return OrtEngine(bundle, **{k: v for k, v in options.items() if k in ("providers", "threads", "spin")})
    if backend == "tensorrt":
        from .tensorrt import TrtEngine

        return TrtEngine(bundle, **{k: v for k, v in options.items()
                                   if k in ("precision", "dla_core", "build_missing", "trt", "cudart")})
    raise ConfigError(f"unknown engine backend {backend!r}; available: onnxruntime, tensorrt")


def config_options(engine_config) -> dict:
    """The options of the config's ``engine:`` section that create_engine takes."""
    e = engine_config
    return {"providers": e.providers, "threads": e.threads, "precision": e.precision,
            "dla_core": e.dla_core, "build_missing": e.build_missing}


__all__ = ["Engine", "create_engine", "config_options"]
