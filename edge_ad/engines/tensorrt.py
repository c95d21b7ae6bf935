"""The TensorRT runner (TensorRT 10 and 11, the name-based I/O API): the ``tensorrt`` backend.

It loads the plan the builder (tensorrt_build.py) filed for this device; a plan whose key does
not match this device, or that fails to deserialize, is refused with the reason, and built at
start only when the config allows it (``engine.build_missing``).

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
from dataclasses import dataclass

import numpy as np

from ..bundle import Bundle
from ..errors import EdgeAdError, missing_extra
from ..platform import Platform, detect
from .base import Engine
from .tensorrt_build import PlanFiles, build_engine, import_tensorrt, plan_files

log = logging.getLogger(__name__)


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


class _Tensor:
    """One I/O tensor: name, dtype, its device buffer and the pinned host buffer beside it."""

    def __init__(self, name: str, dtype: np.dtype, nbytes: int, device: int, host: int):
        self.name, self.dtype, self.nbytes, self.device, self.host = name, dtype, nbytes, device, host

    def host_array(self, shape: tuple[int, ...]) -> np.ndarray:
        count = int(np.prod(shape))
        raw = (ctypes.c_uint8 * (count * self.dtype.itemsize)).from_address(self.host)
        return np.frombuffer(raw, dtype=self.dtype, count=count).reshape(shape)


@dataclass(frozen=True)
class Bindings:
    """What the runner talks to, each found on the machine when left None: the tensorrt module,
    cuda-python's runtime, and the platform (tests pass fakes that follow the real API)."""
    trt: object = None
    cudart: object = None
    platform: Platform | None = None


class TrtEngine(Engine):
    """Owns one deserialized TensorRT engine, its execution context, CUDA stream and buffers."""

    name = "tensorrt"
    options = ("precision", "dla_core", "build_missing", "bindings")

    def __init__(self, bundle: Bundle, precision: str = "fp16", dla_core: int | None = None,
                 build_missing: bool = False, bindings: Bindings | None = None):
        super().__init__(bundle)
        self.precision, self.dla_core, self.build_missing = precision, dla_core, build_missing
        bindings = bindings or Bindings()
        self._trt, self._cudart, self._platform = bindings.trt, bindings.cudart, bindings.platform
        self.runtime = self.engine = self.context = self.stream = None
        self.tensors: dict[str, _Tensor] = {}

    # -- lifecycle ------------------------------------------------------------------------
    def _open(self) -> None:
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
