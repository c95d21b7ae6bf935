"""CUDA paths that need a real GPU: they run where one is present (the `device` marker) and are
skipped elsewhere, never counted as passing there. Run on a GPU machine or a Jetson with
`pytest -m device tests/device`."""
import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.device


@pytest.fixture(scope="module")
def cudart():
    cuda = pytest.importorskip("cuda.bindings.runtime")
    err, count = cuda.cudaGetDeviceCount()
    if int(err) != 0 or count == 0:
        pytest.skip(f"no CUDA device here ({getattr(err, 'name', err)})")
    return cuda


def test_pinned_and_device_buffers_round_trip_like_the_backend(cudart):
    """The backend's buffer path (edge_ad/engines/tensorrt.py) on a real GPU: pinned host buffer
    viewed as numpy, H2D and D2H on one stream, everything freed."""
    from edge_ad.engines.tensorrt import _check, _Tensor

    frames = np.random.default_rng(0).integers(0, 255, (4, 64, 64, 3), np.uint8)
    stream = _check(cudart, cudart.cudaStreamCreate())
    device = _check(cudart, cudart.cudaMalloc(frames.nbytes))
    host_in = _check(cudart, cudart.cudaMallocHost(frames.nbytes))
    host_out = _check(cudart, cudart.cudaMallocHost(frames.nbytes))
    try:
        t_in = _Tensor("image", np.dtype(np.uint8), frames.nbytes, device, host_in)
        t_out = _Tensor("image", np.dtype(np.uint8), frames.nbytes, device, host_out)
        t_in.host_array(frames.shape)[...] = frames
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart, cudart.cudaMemcpyAsync(device, host_in, frames.nbytes, h2d, stream))
        _check(cudart, cudart.cudaMemcpyAsync(host_out, device, frames.nbytes, d2h, stream))
        _check(cudart, cudart.cudaStreamSynchronize(stream))
        assert np.array_equal(t_out.host_array(frames.shape), frames)
    finally:
        for free, ptr in ((cudart.cudaFree, device), (cudart.cudaFreeHost, host_in), (cudart.cudaFreeHost, host_out)):
            assert int(free(ptr)[0]) == 0
        assert int(cudart.cudaStreamDestroy(stream)[0]) == 0


def test_onnxruntime_cuda_provider_is_reported_when_it_is_used(bundle_dir):
    """On a GPU with onnxruntime-gpu, the provider actually in use is the CUDA one and the engine
    says so (onnxruntime falls back to CPU silently otherwise)."""
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers() or shutil.which("nvidia-smi") is None:
        pytest.skip("onnxruntime-gpu with a CUDA device is not here")
    from edge_ad.bundle import load_bundle
    from edge_ad.engines import create_engine

    with create_engine(load_bundle(bundle_dir), providers=["CUDAExecutionProvider", "CPUExecutionProvider"]) as engine:
        assert engine.provider == "CUDAExecutionProvider"
