"""The TensorRT engine builder (TensorRT 10 and 11): ``edge-ad build-engine``.

An engine is built on the device that runs it from the bundle's graph at the wanted precision
(see variants.py), as a strongly typed network with one optimization profile over the batch
size, a timing cache, and optionally a DLA core. The plan is filed under the engine key (ONNX
hash, TensorRT version, GPU, compute capability, precision, DLA core) with a sidecar that
repeats the key. The runner (tensorrt.py) loads what this files.

Where TensorRT cannot be installed, the tests run this against a fake whose every name and
signature is checked against the real bindings (tests/trt_reference/tensorrt_api.json).
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..bundle import Bundle
from ..errors import EdgeAdError
from ..platform import Platform, detect
from .key import engine_key
from .variants import make_variant

log = logging.getLogger(__name__)
MAX_BATCH = 8


class EngineBuildError(EdgeAdError):
    """TensorRT could not parse or build the graph."""


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as exc:
        raise EdgeAdError("TensorRT is not installed: it comes with JetPack on a Jetson "
                          "(python3-libnvinfer) or with NVIDIA's TensorRT image on x86") from exc
    return tensorrt


@dataclass(frozen=True)
class PlanFiles:
    """Where a plan for one engine key is filed: the key, the plan and its sidecar."""
    key: str
    plan: Path
    meta: Path


def plan_files(bundle: Bundle, platform: Platform, precision: str, dla_core: int | None) -> PlanFiles:
    tiling = bundle.manifest.tiling
    key = engine_key(bundle.manifest.provenance.onnx_sha256, platform, precision, dla_core,
                     tiling.batch if tiling is not None else None)
    return PlanFiles(key, bundle.engines_dir / f"{key}.plan", bundle.engines_dir / f"{key}.json")


def build_engine(bundle: Bundle, precision: str = "fp16", dla_core: int | None = None,
                 workspace_mb: int = 1024, max_batch: int = MAX_BATCH, calib: str | None = None,
                 trt=None, platform: Platform | None = None) -> PlanFiles:
    """Build and file a plan for this device. Returns where it went."""
    trt = trt or import_tensorrt()
    platform = platform or detect()
    if platform.tensorrt is None:
        platform = Platform(**{**platform.to_json(), "tensorrt": getattr(trt, "__version__", None)})
    files = plan_files(bundle, platform, precision, dla_core)
    if bundle.manifest.tiling is not None:  # the profile covers a whole tile batch
        max_batch = max(max_batch, bundle.manifest.tiling.batch)
    graph = make_variant(bundle, precision, calib)
    spec = bundle.manifest.input

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(graph.read_bytes(), str(graph)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT cannot parse {graph.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    timing_path = bundle.engines_dir / f"timing_{files.key.split('_', 1)[1]}.cache"
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing, False)
    profile = builder.create_optimization_profile()
    one = (1, spec.height, spec.width, spec.channels)
    profile.set_shape(spec.name, one, one, (max_batch, *one[1:]))
    config.add_optimization_profile(profile)
    if dla_core is not None:
        if dla_core >= builder.num_DLA_cores:
            raise EngineBuildError(f"DLA core {dla_core} does not exist: this device has {builder.num_DLA_cores}")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers the DLA lacks run on the GPU
    started = time.monotonic()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(f"TensorRT could not build a {precision} engine from {graph.name} "
                               "(the TensorRT log above says why)")
    bundle.engines_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(files.plan, bytes(plan))
    _write_atomic(timing_path, bytes(config.get_timing_cache().serialize()))
    meta = {"key": files.key, "precision": precision, "dla_core": dla_core, "max_batch": max_batch,
            "onnx_sha256": bundle.manifest.provenance.onnx_sha256, "graph": graph.name,
            "platform": platform.to_json(), "build_seconds": round(time.monotonic() - started, 1)}
    _write_atomic(files.meta, (json.dumps(meta, indent=1) + "\n").encode())
    log.info("built %s in %.0f s", files.plan.name, meta["build_seconds"])
    return files


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)
