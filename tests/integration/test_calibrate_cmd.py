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
    # the better fit of a log-normal and a Gumbel; only the Gumbel where a score is ≤ 0
    positive = all(x > 0 for x in m.calibration.normal_scores)
    assert m.calibration.method in (("lognormal-tolerance", "gumbel-tolerance") if positive else ("gumbel-tolerance",))
    assert m.calibration.target_fpr == 0.05
    assert m.thresholds.image.threshold != before
    assert main(["calibrate", str(bundle_copy), "--normal", str(good), "--method", "f1"]) == 1


def test_normal_only_threshold_meets_its_target_on_unseen_normal_parts(bundle_dir):
    """Calibrate on 12 fresh normal parts, count false rejects on 160 others, five times over:
    the bound (90 % confidence) may be exceeded about once in ten calibrations."""
    import numpy as np

    from edge_ad.engines import create_engine
    from export.calibrate import normal_only_thresholds
    from export.demo_data import render

    target = 0.05
    parts = np.stack([render("wood", 3, ("unseen", i), size=128)[0] for i in range(220)])
    with create_engine(load_bundle(bundle_dir)) as engine:
        scores = np.concatenate([engine.infer(parts[i:i + 20])[1] for i in range(0, len(parts), 20)])
    held_out = scores[60:]
    rates = []
    for k in range(5):
        th, _ = normal_only_thresholds(scores[12 * k:12 * (k + 1)], target_fpr=target)
        rates.append(float(np.mean(held_out >= th.image.threshold)))
    assert np.median(rates) <= target, rates
    assert sum(r > target for r in rates) <= 2, rates
