"""The TensorRT backend and engine builder, run against the fakes of tests/fakes (checked
against the real TensorRT and cuda-python APIs in tests/unit/test_trt_fake.py). The graph the
fake engine executes is the real precision variant, through ONNX Runtime, so the backend's
buffers, shapes, dtypes, plan filing and key checks all run for real; TensorRT's own kernels do
not (jetson/selftest.sh covers those on a device)."""
import json
import shutil

import numpy as np
import pytest

from edge_ad.bundle import load_bundle
from edge_ad.engines import create_engine
from edge_ad.engines.tensorrt import Bindings, TrtEngine
from edge_ad.engines.tensorrt_build import build_engine, plan_files
from edge_ad.errors import EdgeAdError
from edge_ad.platform import Platform
from tests.fakes import fake_cudart, fake_tensorrt

ORIN = Platform(True, "36.4.0", "6.1", "10.3.0", "Orin (Ampere)", "8.7")


@pytest.fixture
def bundle(bundle_dir, tmp_path):
    return load_bundle(shutil.copytree(bundle_dir, tmp_path / "bundle"))


def _frames(bundle, n):
    spec = bundle.manifest.input
    return np.random.default_rng(1).integers(0, 255, (n, spec.height, spec.width, spec.channels), np.uint8)


def _engine(bundle, **options):
    return TrtEngine(bundle, bindings=Bindings(fake_tensorrt, fake_cudart, ORIN), **options)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_built_engine_matches_onnx_runtime_and_frees_everything(bundle, precision):
    files = build_engine(bundle, precision, trt=fake_tensorrt, platform=ORIN, max_batch=4)
    meta = json.loads(files.meta.read_text())
    assert files.plan.name == f"{files.key}.plan" and meta["key"] == files.key and meta["precision"] == precision
    assert "_trt10.3.0_orin-ampere_sm87_" in files.key
    assert list(bundle.engines_dir.glob("timing_*.cache"))
    frames = _frames(bundle, 6)  # more than the profile's 4: run in slices
    with create_engine(bundle) as ort_engine:
        ref_map, ref_score = ort_engine.infer(frames)
    engine = _engine(bundle, precision=precision)
    engine.activate()
    try:
        assert engine.provider == f"TensorRT 10.3.0 {precision}" and engine.max_batch == 4
        amap, score = engine.infer(frames)
        again = engine.infer(frames[:1])
    finally:
        engine.deactivate()
    assert amap.shape == ref_map.shape and amap.dtype == np.float32
    tolerance = 1e-5 if precision == "fp32" else 0.05
    assert np.allclose(score, ref_score, rtol=tolerance), (score, ref_score)
    assert np.allclose(again[1], score[:1])
    assert not fake_cudart.live_device and not fake_cudart.live_host and not fake_cudart.live_streams


def test_a_plan_for_another_device_is_refused_or_rebuilt(bundle):
    files = build_engine(bundle, "fp16", trt=fake_tensorrt, platform=ORIN)
    other = Platform(True, "36.4.3", "6.2", "10.3.1", "Orin (Ampere)", "8.7")  # a JetPack upgrade
    moved = plan_files(bundle, other, "fp16", None)
    shutil.copy(files.plan, moved.plan)  # someone copied the old plan under the new name
    shutil.copy(files.meta, moved.meta)
    with pytest.raises(EdgeAdError, match="was built for .*not for this device.*edge-ad build-engine"):
        TrtEngine(bundle, bindings=Bindings(fake_tensorrt, fake_cudart, other)).activate()
    engine = TrtEngine(bundle, bindings=Bindings(fake_tensorrt, fake_cudart, other), build_missing=True)
    engine.activate()
    engine.deactivate()
    assert json.loads(moved.meta.read_text())["key"] == moved.key


def test_a_corrupt_plan_is_refused_with_the_reason(bundle):
    files = build_engine(bundle, "fp32", trt=fake_tensorrt, platform=ORIN)
    files.plan.write_bytes(b"\x00" * 64)
    with pytest.raises(EdgeAdError, match="TensorRT refused .*delete it and run edge-ad build-engine"):
        _engine(bundle, precision="fp32").activate()
    assert not fake_cudart.live_device and not fake_cudart.live_streams


def test_dla_core_that_does_not_exist_is_refused(bundle):
    with pytest.raises(EdgeAdError, match="DLA core 1 does not exist"):
        build_engine(bundle, "fp16", dla_core=1, trt=fake_tensorrt, platform=ORIN)


def test_int8_is_calibrated_on_the_bundles_normal_images(bundle):
    assert len(list((bundle.path / "calibration").glob("*.png"))) >= 8  # written at export
    files = build_engine(bundle, "int8", trt=fake_tensorrt, platform=ORIN)
    variant = json.loads(next(bundle.engines_dir.glob("model.*.int8.json")).read_text())
    assert variant["source_onnx_sha256"] == bundle.manifest.provenance.onnx_sha256
    assert variant["calibration_sha256"]
    import onnx

    graph = onnx.load(str(bundle.engines_dir / json.loads(files.meta.read_text())["graph"]))
    assert any(n.op_type == "QuantizeLinear" for n in graph.graph.node)  # explicit quantization


def test_real_cuda_python_without_a_gpu_says_so(bundle):
    pytest.importorskip("cuda.bindings")
    build_engine(bundle, "fp32", trt=fake_tensorrt, platform=ORIN)
    engine = TrtEngine(bundle, precision="fp32", bindings=Bindings(fake_tensorrt, None, ORIN))  # the real cudart
    with pytest.raises(EdgeAdError, match="CUDA error .*no NVIDIA driver or GPU"):
        engine.activate()
    assert engine.provider == "inactive"


def test_a_tiled_bundle_gets_a_profile_for_its_tile_batch_and_scores_as_on_onnx_runtime(bundle):
    from edge_ad.bundle import TilingSpec, save_manifest
    from edge_ad.pipeline.inspector import Inspector

    spec = bundle.manifest.input
    tiling = TilingSpec(frame_width=spec.width * 5 // 2, frame_height=spec.height * 2, overlap=0.25, batch=11)
    save_manifest(bundle.path, bundle.manifest.model_copy(update={"tiling": tiling}))
    tiled = load_bundle(bundle.path)
    files = build_engine(tiled, "fp32", trt=fake_tensorrt, platform=ORIN, max_batch=4)
    assert files.key.endswith("_tiles11")  # the key describes the tiling
    assert json.loads(files.meta.read_text())["max_batch"] == 11  # the profile covers a tile batch
    frame = np.random.default_rng(3).integers(0, 255, (tiling.frame_height, tiling.frame_width, 3), np.uint8)
    with create_engine(tiled) as ort_engine:
        reference = Inspector(ort_engine, tiled.manifest).inspect([frame])[0]
    engine = _engine(tiled, precision="fp32")
    engine.activate()
    try:
        got = Inspector(engine, tiled.manifest).inspect([frame])[0]
    finally:
        engine.deactivate()
    assert got.raw_map.shape == (tiling.frame_height, tiling.frame_width)
    assert np.allclose(got.raw_map, reference.raw_map, atol=1e-4) and abs(got.raw_score - reference.raw_score) < 1e-4
