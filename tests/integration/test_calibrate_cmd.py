"""``edge-ad calibrate`` rewrites a copy of a bundle's thresholds through the real engine."""
import shutil

import pytest

from edge_ad.bundle import load_bundle
from edge_ad.cli import main


@pytest.fixture
def bundle_copy(bundle_dir, tmp_path):
    return shutil.copytree(bundle_dir, tmp_path / "bundle")


def test_fnr_method_catches_every_defect_it_saw(bundle_copy, demo_root, capsys):
    test = demo_root / "wood" / "test"
    defects = demo_root / "wood" / "defects"
    for d in ("hole", "scratch", "stain", "foreign"):
        shutil.copytree(test / d, defects / d)
    rc = main(["calibrate", str(bundle_copy), "--normal", str(test / "good"), "--abnormal",
               str(defects), "--method", "fnr", "--target-fnr", "0"])
    assert rc == 0
    m = load_bundle(bundle_copy).manifest
    assert m.calibration.method == "fnr" and m.calibration.expected_fnr == 0.0
    assert m.calibration.normal_count == 8 and m.calibration.abnormal_count == 12
    assert "misses 0.0 %" in capsys.readouterr().out


def test_normal_only_recalibration_and_bad_combinations(bundle_copy, demo_root):
    good = demo_root / "wood" / "test" / "good"
    before = load_bundle(bundle_copy).manifest.thresholds.image.threshold
    assert main(["calibrate", str(bundle_copy), "--normal", str(good), "--target-fpr", "0.05"]) == 0
    m = load_bundle(bundle_copy).manifest
    assert m.calibration.method == "lognormal-tolerance" and m.calibration.target_fpr == 0.05
    assert m.thresholds.image.threshold != before
    assert main(["calibrate", str(bundle_copy), "--normal", str(good), "--method", "f1"]) == 1
