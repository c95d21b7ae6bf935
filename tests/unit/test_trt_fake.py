"""The fakes that stand in for TensorRT and CUDA follow the real APIs exactly: every public name
the fakes define exists in the real modules, with the same kind and the same parameter names.
TensorRT's reference is extracted from NVIDIA's bindings wheel (tests/trt_reference/extract.py);
cuda-python installs from PyPI and is inspected directly."""
import inspect
import json
import os
import re
from enum import Enum
from pathlib import Path

import pytest

from tests.fakes import fake_cudart, fake_tensorrt

REFERENCE = json.loads((Path(__file__).resolve().parents[1] / "trt_reference/tensorrt_api.json").read_text())


def _params(signature: str) -> list[str] | None:
    """Parameter names after self in a pybind11 signature line; None for *args/**kwargs headers."""
    inner = signature[signature.index("(") + 1:signature.rindex(") ->") if ") ->" in signature else -1]
    if inner.startswith("*args"):
        return None
    depth, parts, current = 0, [], ""
    for ch in inner:  # split on top-level commas only (defaults and types contain brackets)
        if ch in "([<{":
            depth += 1
        elif ch in ")]>}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    names = [re.match(r"\s*(\w+)", p).group(1) for p in parts if p.strip()]
    return names[1:] if names and names[0] == "self" else names


def _fake_classes():
    return {name: cls for name, cls in vars(fake_tensorrt).items()
            if inspect.isclass(cls) and not name.startswith("_") and cls.__module__ == fake_tensorrt.__name__}


def test_reference_is_the_real_wheel():
    assert REFERENCE["source"].startswith("tensorrt_cu13_bindings-") and len(REFERENCE["classes"]) > 150
    assert REFERENCE["version"] == fake_tensorrt.__version__
    assert _params("set_shape(self: IOptimizationProfile, input: str, min: Dims, opt: Dims, max: Dims) -> None") == \
        ["input", "min", "opt", "max"]


@pytest.mark.parametrize("name", sorted(_fake_classes()))
def test_fake_tensorrt_class_matches_the_real_one(name):
    cls = _fake_classes()[name]
    real = REFERENCE["classes"].get(name)
    assert real is not None, f"tensorrt has no class {name}"
    for attr, value in vars(cls).items():
        if attr.startswith("_") and attr != "__init__":
            continue
        if attr == "__init__" and issubclass(cls, Enum):
            continue
        assert attr in real, f"tensorrt.{name} has no {attr}"
        kind = real[attr]["kind"]
        if isinstance(value, property):
            assert kind == "property", f"tensorrt.{name}.{attr} is a {kind}"
            assert (value.fset is not None) == real[attr]["settable"], f"{name}.{attr}: settable differs"
        elif issubclass(cls, Enum) and isinstance(getattr(cls, attr), cls):
            assert kind == "enum_member"
        elif inspect.isfunction(value):
            assert kind == "method", f"tensorrt.{name}.{attr} is a {kind}"
            fake = [p for p in inspect.signature(value).parameters if p != "self"]
            real_sigs = [s for s in (_params(s) for s in real[attr]["signatures"]) if s is not None]
            if attr == "__init__" and not real_sigs:
                continue
            assert fake in real_sigs, f"{name}.{attr}{tuple(fake)} is not one of the real {real_sigs}"


def test_the_backend_uses_only_what_the_fake_has():
    """Every attribute the backend (runner and builder) touches on the tensorrt module exists in
    the fake (and so, by the test above, in the real bindings)."""
    engines = Path(__file__).resolve().parents[2] / "edge_ad/engines"
    source = "".join((engines / f).read_text() for f in ("tensorrt.py", "tensorrt_build.py"))  # runner, builder
    for name in set(re.findall(r"\btrt\.(\w+)", source)):
        assert hasattr(fake_tensorrt, name) and name in REFERENCE["classes"], name
    for chain in set(re.findall(r"\btrt\.(\w+)\.(\w+)", source)):
        assert chain[1] in REFERENCE["classes"][chain[0]], chain
    methods = set(re.findall(r"\.(\w+)\(", source)) & {
        m for cls in REFERENCE["classes"].values() for m in cls}
    used_api = {m for m in methods if m in {"create_network", "create_builder_config", "parse", "get_error",
                                            "set_memory_pool_limit", "create_timing_cache", "set_timing_cache",
                                            "create_optimization_profile", "set_shape", "add_optimization_profile",
                                            "set_flag", "build_serialized_network", "get_timing_cache", "serialize",
                                            "deserialize_cuda_engine", "create_execution_context",
                                            "get_tensor_profile_shape", "get_tensor_name", "get_tensor_dtype",
                                            "set_tensor_address", "set_input_shape", "execute_async_v3"}}
    assert len(used_api) >= 20


def test_fake_cudart_matches_cuda_python():
    try:
        from cuda.bindings import runtime as real
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("cuda-python is not installed; `make test` installs it")
        pytest.skip("cuda-python not installed")
    for name, fake in vars(fake_cudart).items():
        if name.startswith(("_", "live_")) or not (inspect.isfunction(fake) or inspect.isclass(fake)) \
                or getattr(fake, "__module__", None) != fake_cudart.__name__:
            continue
        assert hasattr(real, name), f"cuda.bindings.runtime has no {name}"
        if inspect.isfunction(fake):
            assert list(inspect.signature(fake).parameters) == list(inspect.signature(getattr(real, name)).parameters), name
        elif issubclass(fake, Enum):
            for member in fake:
                assert hasattr(getattr(real, name), member.name), f"{name}.{member.name}"
                assert int(getattr(getattr(real, name), member.name)) == int(member), f"{name}.{member.name} value"
