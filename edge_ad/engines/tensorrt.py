"""TensorRT backend (TensorRT 10 and 11, the name-based I/O API) and the engine builder.

An engine is built on the device that runs it (`edge-ad build-engine`) from the bundle's graph
at the wanted precision (see variants.py), as a strongly typed network with one optimization
profile over the batch size, a timing cache, and optionally a DLA core. The plan is filed
under the engine key (ONNX hash, TensorRT version, GPU, compute capability, precision, DLA
core) with a sidecar that repeats the key; a plan whose key does not match this device, or that
fails to deserialize, is refused with the reason and rebuilt when the config allows it.

CUDA goes through cuda-python: one stream, device buffers sized for the largest batch, pinned
host buffers, and one execution context, all owned by the thread that calls activate/infer
(the inference worker) and all freed explicitly in deactivate.

Where TensorRT cannot be installed (every machine but the device), the tests run this module
against a fake whose every name and signature is checked against the real bindings
(tests/trt_reference/tensorrt_api.json).
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bundle import Bundle
from ..errors import EdgeAdError, missing_extra
from ..platform import Platform, detect
from .base import Engine
from .key import engine_key
from .variants import make_variant

log = logging.getLogger(__name__)
MAX_BATCH = 8


class EngineBuildError(EdgeAdError):
    pass


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as exc:
        raise EdgeAdError("TensorRT is not installed: it comes with JetPack on a Jetson "
                          "(python3-libnvinfer) or with NVIDIA's TensorRT image on x86") from exc
    return tensorrt


def import_cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as exc:
            raise missing_extra("cuda-python", "trt") from exc
    return cudart


def _check(cudart, result):
    """cuda-python returns (error, value...) tuples; raise on any error, return the values."""
    err, *values = result
    if int(err) != 0:
        name = getattr(err, "name", str(err))
        raise EdgeAdError(f"CUDA error {name}" + (" (no NVIDIA driver or GPU here)"
                                                 if "Driver" in name or "NoDevice" in name else ""))
    return values[0] if len(values) == 1 else tuple(values)


@dataclass(frozen=True)
class PlanFiles:
    key: str
    plan: Path
    meta: Path


def plan_files(bundle: Bundle, platform: Platform, precision: str, dla_core: int | None) -> PlanFiles:
    key = engine_key(bundle.manifest.provenance.onnx_sha256, platform, precision, dla_core)
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


class _Tensor:
    """One I/O tensor: name, dtype, its device buffer and the pinned host buffer beside it."""

    def __init__(self, name: str, dtype: np.dtype, nbytes: int, device: int, host: int):
        self.name, self.dtype, self.nbytes, self.device, self.host = name, dtype, nbytes, device, host

    def host_array(self, shape: tuple[int, ...]) -> np.ndarray:
        count = int(np.prod(shape))
        raw = (ctypes.c_uint8 * (count * self.dtype.itemsize)).from_address(self.host)
        return np.frombuffer(raw, dtype=self.dtype, count=count).reshape(shape)


class TrtEngine(Engine):
    name = "tensorrt"

    def __init__(self, bundle: Bundle, precision: str = "fp16", dla_core: int | None = None,
                 build_missing: bool = False, trt=None, cudart=None, platform: Platform | None = None,
                 **_ignored):
        super().__init__(bundle)
        self.precision, self.dla_core, self.build_missing = precision, dla_core, build_missing
        self._trt, self._cudart, self._platform = trt, cudart, platform
        self.runtime = self.engine = self.context = self.stream = None
        self.tensors: dict[str, _Tensor] = {}

    # -- lifecycle ------------------------------------------------------------------------
    def activate(self) -> None:
        trt = self._trt = self._trt or import_tensorrt()
        self._cudart = self._cudart or import_cudart()
        platform = self._platform or detect()
        if platform.tensorrt is None:
            platform = Platform(**{**platform.to_json(), "tensorrt": getattr(trt, "__version__", None)})
        files = plan_files(self.bundle, platform, self.precision, self.dla_core)
        reason = self._unusable(files)
        if reason is not None:
            if not self.build_missing:
                raise EdgeAdError(f"no usable TensorRT engine: {reason}; build one on this device with "
                                  f"`edge-ad build-engine {self.bundle.path} --precision {self.precision}`"
                                  + (f" --dla {self.dla_core}" if self.dla_core is not None else "")
                                  + " (or set engine.build_missing: true)")
            log.warning("TensorRT engine %s: %s; building it now (minutes)", files.key, reason)
            build_engine(self.bundle, self.precision, self.dla_core, trt=trt, platform=platform)
        try:
            self._load(files, platform)
        except Exception:
            self.deactivate()
            raise
        self.provider = f"TensorRT {platform.tensorrt} {self.precision}" + (
            f" DLA{self.dla_core}" if self.dla_core is not None else "")
        self.active = True
        self.warm_up()

    def _unusable(self, files: PlanFiles) -> str | None:
        if not files.plan.is_file():
            return f"{files.plan.name} does not exist"
        try:
            meta = json.loads(files.meta.read_text())
        except (OSError, json.JSONDecodeError):
            return f"{files.meta.name} is missing or unreadable"
        if meta.get("key") != files.key:
            return f"{files.plan.name} was built for {meta.get('key')}, not for this device ({files.key})"
        return None

    def _load(self, files: PlanFiles, platform: Platform) -> None:
        trt, cudart = self._trt, self._cudart
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if self.dla_core is not None:
            self.runtime.DLA_core = self.dla_core
        self.engine = self.runtime.deserialize_cuda_engine(files.plan.read_bytes())
        if self.engine is None:
            raise EdgeAdError(f"TensorRT refused {files.plan.name} (corrupt, or built by another "
                              f"TensorRT than {platform.tensorrt}); delete it and run edge-ad build-engine")
        self.context = self.engine.create_execution_context()
        self.stream = _check(cudart, cudart.cudaStreamCreate())
        m = self.bundle.manifest
        dtypes = {trt.DataType.UINT8: np.uint8, trt.DataType.FLOAT: np.float32,
                  trt.DataType.HALF: np.float16, trt.DataType.INT32: np.int32}
        self.max_batch = self.engine.get_tensor_profile_shape(m.input.name, 0)[2][0]
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            dtype = np.dtype(dtypes[self.engine.get_tensor_dtype(name)])
            per_item = {m.input.name: m.input.height * m.input.width * m.input.channels,
                        m.outputs.map: m.input.height * m.input.width, m.outputs.score: 1}.get(name)
            if per_item is None:
                raise EdgeAdError(f"engine tensor {name!r} is not in the manifest's inputs/outputs")
            nbytes = per_item * self.max_batch * dtype.itemsize
            device = _check(cudart, cudart.cudaMalloc(nbytes))
            self.tensors[name] = _Tensor(name, dtype, nbytes, device, 0)
            self.tensors[name].host = _check(cudart, cudart.cudaMallocHost(nbytes))
            self.context.set_tensor_address(name, device)

    def deactivate(self) -> None:
        cudart = self._cudart
        if cudart is not None:
            if self.stream is not None:
                cudart.cudaStreamSynchronize(self.stream)
            for t in self.tensors.values():
                if t.device:
                    cudart.cudaFree(t.device)
                if t.host:
                    cudart.cudaFreeHost(t.host)
            if self.stream is not None:
                cudart.cudaStreamDestroy(self.stream)
        self.tensors = {}
        self.context = self.engine = self.runtime = self.stream = None  # context before engine
        self.active = False
        self.provider = "inactive"

    # -- inference ------------------------------------------------------------------------
    def _infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(batch) > self.max_batch:  # the profile's limit: run in slices
            parts = [self._infer(batch[i:i + self.max_batch]) for i in range(0, len(batch), self.max_batch)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        cudart, m = self._cudart, self.bundle.manifest
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        n = len(batch)
        inp = self.tensors[m.input.name]
        inp.host_array(batch.shape)[...] = batch
        _check(cudart, cudart.cudaMemcpyAsync(inp.device, inp.host, batch.nbytes, h2d, self.stream))
        if not self.context.set_input_shape(m.input.name, tuple(batch.shape)):
            raise EdgeAdError(f"TensorRT refused input shape {batch.shape}")
        if not self.context.execute_async_v3(int(self.stream)):
            raise EdgeAdError("TensorRT execution failed (see the TensorRT log)")
        shapes = {m.outputs.map: (n, m.input.height, m.input.width), m.outputs.score: (n,)}
        for name, shape in shapes.items():
            t = self.tensors[name]
            _check(cudart, cudart.cudaMemcpyAsync(t.host, t.device, int(np.prod(shape)) * t.dtype.itemsize,
                                                  d2h, self.stream))
        _check(cudart, cudart.cudaStreamSynchronize(self.stream))
        amap = self.tensors[m.outputs.map].host_array(shapes[m.outputs.map]).astype(np.float32)
        score = self.tensors[m.outputs.score].host_array(shapes[m.outputs.score]).astype(np.float32)
        return amap, score  # astype copies: the pinned buffers are reused by the next batch
