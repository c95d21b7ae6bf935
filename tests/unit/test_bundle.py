import json
import shutil

import pytest

from edge_ad.bundle import SCHEMA_VERSION, load_bundle
from edge_ad.errors import BundleError


@pytest.fixture
def copy_bundle(bundle_dir, tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(bundle_dir, target)
    return target


def _edit(bundle, fn):
    path = bundle / "manifest.json"
    raw = json.loads(path.read_text())
    fn(raw)
    path.write_text(json.dumps(raw))


def test_valid_bundle_loads(bundle_dir):
    b = load_bundle(bundle_dir)
    assert b.manifest.schema_version == SCHEMA_VERSION
    assert b.manifest.input.height == 128 and b.manifest.input.color == "RGB"


def test_missing_bundle(tmp_path):
    with pytest.raises(BundleError, match="not found"):
        load_bundle(tmp_path / "nothing")


def test_missing_model_file(copy_bundle):
    (copy_bundle / "model.onnx").unlink()
    with pytest.raises(BundleError, match="model.onnx is missing"):
        load_bundle(copy_bundle)


def test_replaced_model_fails_hash(copy_bundle):
    (copy_bundle / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(copy_bundle)


def test_unknown_manifest_key_is_refused(copy_bundle):
    _edit(copy_bundle, lambda raw: raw.update(surprise=1))
    with pytest.raises(BundleError, match="surprise: unknown key"):
        load_bundle(copy_bundle)


def test_newer_schema_is_refused(copy_bundle):
    _edit(copy_bundle, lambda raw: raw.update(schema_version=SCHEMA_VERSION + 1))
    with pytest.raises(BundleError, match="upgrade edge-ad"):
        load_bundle(copy_bundle)


def test_colour_must_match_channels(copy_bundle):
    _edit(copy_bundle, lambda raw: raw["input"].update(color="GRAY"))
    with pytest.raises(BundleError, match="does not match channels"):
        load_bundle(copy_bundle)


def test_corrupt_json(copy_bundle):
    (copy_bundle / "manifest.json").write_text("{ nope")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(copy_bundle)


def test_threshold_must_have_positive_scale(copy_bundle):
    _edit(copy_bundle, lambda raw: raw["thresholds"]["image"].update(scale=0))
    with pytest.raises(BundleError, match="thresholds.image.scale"):
        load_bundle(copy_bundle)
