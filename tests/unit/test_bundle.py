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


def test_a_v1_manifest_migrates_to_the_current_schema(tmp_path):
    """A manifest written by edge-ad with schema 1 (checked in as written): its export-time torch
    figures become the v2 ``parity`` record; saving writes the current schema."""
    import json
    import shutil
    from pathlib import Path

    from edge_ad.bundle import SCHEMA_VERSION, load_bundle, save_manifest

    fixture = Path(__file__).resolve().parents[1] / "fixtures/manifest_v1.json"
    old = json.loads(fixture.read_text())
    assert old["schema_version"] == 1 and "validation" in old
    bundle_dir = tmp_path / "bundle"
    bundle_dir.mkdir()
    shutil.copy(fixture, bundle_dir / "manifest.json")
    (bundle_dir / "model.onnx").write_bytes(b"stand-in")  # the hash is not checked here
    bundle = load_bundle(bundle_dir, check_hash=False)
    torch = bundle.manifest.parity["torch"]
    assert torch.verdict_flips == old["validation"]["parity_verdict_flips"]
    assert torch.max_rel_score_diff == old["validation"]["parity_max_rel_score_diff"] and torch.passed
    assert bundle.manifest.thresholds == load_bundle(bundle_dir, check_hash=False).manifest.thresholds
    save_manifest(bundle_dir, bundle.manifest)
    saved = json.loads((bundle_dir / "manifest.json").read_text())
    assert saved["schema_version"] == SCHEMA_VERSION and "validation" not in saved
    assert load_bundle(bundle_dir, check_hash=False).manifest == bundle.manifest


def test_a_manifest_from_a_newer_edge_ad_is_refused(tmp_path):
    import json

    import pytest

    from edge_ad.bundle import SCHEMA_VERSION, migrate
    from edge_ad.errors import BundleError

    with pytest.raises(BundleError, match="upgrade edge-ad"):
        migrate({"schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(BundleError, match="not one this edge-ad reads"):
        migrate({"schema_version": 0})
    assert json.dumps(migrate({"schema_version": 1, "validation": {}})["schema_version"]) == str(SCHEMA_VERSION)
