"""The ONNX Runtime TensorRT EP is given an engine cache inside the bundle, filed under the
engine key (TensorRT itself cannot run here: this checks the options ONNX Runtime receives)."""
import shutil

from edge_ad.bundle import load_bundle
from edge_ad.engines.key import engine_key
from edge_ad.engines.onnxruntime import OrtEngine
from edge_ad.platform import detect


def test_tensorrt_ep_caches_engines_in_the_bundle_under_the_key(bundle_dir, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    bundle = load_bundle(copy)
    engine = OrtEngine(bundle)
    providers = engine._with_options(["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    name, options = providers[0]
    key = engine_key(bundle.manifest.provenance.onnx_sha256, detect())
    assert name == "TensorrtExecutionProvider" and providers[1:] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert options["trt_engine_cache_enable"] is True
    assert options["trt_engine_cache_path"] == str(copy / "engines" / key)
    assert (copy / "engines" / key).is_dir()
    assert engine._with_options(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_a_read_only_model_volume_still_serves(bundle_dir, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    shutil.rmtree(copy / "engines", ignore_errors=True)  # another test may have built into the fixture
    (copy / "engines").write_text("not a directory")  # mkdir fails as on a read-only mount
    engine = OrtEngine(load_bundle(copy))
    assert engine._with_options(["TensorrtExecutionProvider"]) == [("TensorrtExecutionProvider", {})]
