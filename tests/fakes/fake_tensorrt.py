"""A stand-in for the `tensorrt` module, for machines where TensorRT cannot be installed.

It exposes only classes, methods, properties and enum members that the real bindings have, with
the real parameter names (tests/unit/test_trt_fake.py checks every one against
tests/trt_reference/tensorrt_api.json, extracted from NVIDIA's wheel). Behind the API, the
"engine" runs the parsed ONNX graph with ONNX Runtime and reads and writes its tensors at the
addresses the caller set, so the backend's buffer handling, shapes and dtypes are exercised for
real. What it cannot show is TensorRT's own numerics and speed: jetson/selftest.sh measures those
on the device.
"""
from __future__ import annotations

import ctypes
import json
from enum import IntEnum

import numpy as np

__version__ = "11.4.0.106"  # the bindings the reference was extracted from
_MAGIC = b"FAKE-TRT-PLAN\n"


class DataType(IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5


_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.UINT8: np.uint8,
       DataType.INT32: np.int32}
_ONNX = {"tensor(float)": DataType.FLOAT, "tensor(float16)": DataType.HALF, "tensor(uint8)": DataType.UINT8}


class TensorIOMode(IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class NetworkDefinitionCreationFlag(IntEnum):
    STRONGLY_TYPED = 0


class MemoryPoolType(IntEnum):
    WORKSPACE = 0


class BuilderFlag(IntEnum):
    GPU_FALLBACK = 0


class DeviceType(IntEnum):
    GPU = 0
    DLA = 1


class Logger:
    class Severity(IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = Severity

    def __init__(self, min_severity=Severity.WARNING):
        self.min_severity = min_severity


class IHostMemory(bytes):
    """Real IHostMemory exposes the buffer protocol; bytes does too."""

    @property
    def nbytes(self):
        return len(self)


class INetworkDefinition:
    def __init__(self, flags):
        self._flags, self._onnx = flags, None


class OnnxParser:
    def __init__(self, network, logger):
        self._network, self._errors = network, []

    def parse(self, model, path=None):
        import onnxruntime as ort

        data = bytes(model)
        try:
            ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        except Exception as exc:  # what the real parser would report as a parse error
            self._errors.append(f"{path}: {exc}")
            return False
        self._network._onnx = data
        return True

    @property
    def num_errors(self):
        return len(self._errors)

    def get_error(self, index):
        return self._errors[index]


class IOptimizationProfile:
    def __init__(self):
        self._shapes = {}

    def set_shape(self, input, min, opt, max):
        self._shapes[input] = [tuple(min), tuple(opt), tuple(max)]


class ITimingCache:
    def __init__(self, data=b""):
        self._data = bytes(data) or b"fake timing cache"

    def serialize(self):
        return IHostMemory(self._data)


class IBuilderConfig:
    def __init__(self):
        self._pools, self._flags, self._profiles, self._timing = {}, set(), [], None
        self._device_type, self._dla_core = DeviceType.GPU, -1

    def set_memory_pool_limit(self, pool, pool_size):
        self._pools[pool] = pool_size

    def set_flag(self, flag):
        self._flags.add(flag)

    def create_timing_cache(self, serialized_timing_cache):
        return ITimingCache(serialized_timing_cache)

    def set_timing_cache(self, cache, ignore_mismatch):
        self._timing = cache
        return True

    def get_timing_cache(self):
        return self._timing

    def add_optimization_profile(self, profile):
        self._profiles.append(profile)
        return len(self._profiles) - 1

    @property
    def default_device_type(self):
        return self._device_type

    @default_device_type.setter
    def default_device_type(self, value):
        self._device_type = value

    @property
    def DLA_core(self):
        return self._dla_core

    @DLA_core.setter
    def DLA_core(self, value):
        self._dla_core = value


class Builder:
    _dla_cores_here = 0  # not part of the API: how many DLA cores the pretend device has

    def __init__(self, logger):
        self._logger = logger

    def create_network(self, flags=0):
        return INetworkDefinition(flags)

    def create_builder_config(self):
        return IBuilderConfig()

    def create_optimization_profile(self):
        return IOptimizationProfile()

    @property
    def num_DLA_cores(self):
        return type(self)._dla_cores_here

    def build_serialized_network(self, network, config):
        if network._onnx is None or not config._profiles:  # real TensorRT fails the same way
            return None
        header = json.dumps({"profiles": config._profiles[0]._shapes}).encode()
        return IHostMemory(_MAGIC + len(header).to_bytes(4, "little") + header + network._onnx)


class Runtime:
    def __init__(self, logger):
        self._dla_core = -1

    @property
    def DLA_core(self):
        return self._dla_core

    @DLA_core.setter
    def DLA_core(self, value):
        self._dla_core = value

    def deserialize_cuda_engine(self, serialized_engine):
        data = bytes(serialized_engine)
        if not data.startswith(_MAGIC):
            return None  # what TensorRT does with a plan it cannot read
        size = int.from_bytes(data[len(_MAGIC):len(_MAGIC) + 4], "little")
        header = json.loads(data[len(_MAGIC) + 4:len(_MAGIC) + 4 + size])
        return ICudaEngine(data[len(_MAGIC) + 4 + size:], header["profiles"])


class ICudaEngine:
    def __init__(self, onnx_bytes, profiles):
        import onnxruntime as ort

        self._session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        self._profiles = profiles
        self._io = [(t.name, TensorIOMode.INPUT, t) for t in self._session.get_inputs()] + \
                   [(t.name, TensorIOMode.OUTPUT, t) for t in self._session.get_outputs()]

    @property
    def num_io_tensors(self):
        return len(self._io)

    def get_tensor_name(self, index):
        return self._io[index][0]

    def _find(self, name):
        return next(t for t in self._io if t[0] == name)

    def get_tensor_mode(self, name):
        return self._find(name)[1]

    def get_tensor_dtype(self, name):
        return _ONNX[self._find(name)[2].type]

    def get_tensor_shape(self, name):
        return tuple(d if isinstance(d, int) else -1 for d in self._find(name)[2].shape)

    def get_tensor_profile_shape(self, name, profile_index):
        return [tuple(s) for s in self._profiles[name]]

    def create_execution_context(self, strategy=None):
        return IExecutionContext(self)


class IExecutionContext:
    def __init__(self, engine):
        self._engine, self._shapes, self._addresses = engine, {}, {}

    def set_input_shape(self, name, shape):
        low, _, high = self._engine._profiles[name]
        if not all(lo <= s <= hi for lo, s, hi in zip(low, shape, high)):
            return False
        self._shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name, memory):
        self._addresses[name] = int(memory)
        return True

    def get_tensor_shape(self, name):
        return self._shapes.get(name, self._engine.get_tensor_shape(name))

    def execute_async_v3(self, stream_handle):
        engine = self._engine
        feeds = {}
        for name, mode, t in engine._io:
            if mode == TensorIOMode.INPUT:
                shape = self._shapes[name]
                feeds[name] = _view(self._addresses[name], shape, _NP[engine.get_tensor_dtype(name)]).copy()
        outputs = engine._session.run(None, feeds)
        for (name, mode, t), value in zip([io for io in engine._io if io[1] == TensorIOMode.OUTPUT], outputs):
            self._shapes[name] = value.shape
            _view(self._addresses[name], value.shape, _NP[engine.get_tensor_dtype(name)])[...] = value
        return True


def _view(address, shape, dtype):
    count = int(np.prod(shape))
    raw = (ctypes.c_uint8 * (count * np.dtype(dtype).itemsize)).from_address(address)
    return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)
