import cv2
import numpy as np
import pytest

from edge_ad.decision.quality import FrozenDetector, QualityLimits, measure, problem, reference_stats

LIMITS = QualityLimits()


def _texture(seed=0, size=200):
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(60, 200, (25, 25), np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    return np.dstack([base] * 3)


def test_measure_by_value():
    black = np.zeros((50, 80, 3), np.uint8)
    q = measure(black)
    assert q.brightness == 0 and q.saturated == 1.0 and q.sharpness == 0 and q.thumb.shape == (128, 128)
    grey = np.full((50, 80, 1), 128, np.uint8)  # a 1-channel camera frame
    assert measure(grey).brightness == 128 and measure(grey).saturated == 0


@pytest.mark.parametrize("frame, kind", [
    (np.full((64, 64, 3), 8, np.uint8), "dark"),
    (np.full((64, 64, 3), 245, np.uint8), "bright"),
])
def test_exposure_problems(frame, kind):
    assert problem(measure(frame), LIMITS, None)[0] == kind


def test_clipped_half_black_half_white():
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[:, 32:] = 255  # mean 127: fine on average, but every pixel is clipped
    assert problem(measure(frame), LIMITS, None)[0] == "clipped"


def test_blur_is_judged_against_the_calibration_images():
    sharp = _texture()
    reference = reference_stats([sharp, _texture(1)])["sharpness_median"]
    assert problem(measure(sharp), LIMITS, reference) is None
    blurred = cv2.GaussianBlur(sharp, (0, 0), 4)
    kind, reason = problem(measure(blurred), LIMITS, reference)
    assert kind == "blurred" and "% of the calibration images'" in reason
    assert problem(measure(blurred), LIMITS, None) is None  # no reference, no blur verdict


def test_frozen_after_identical_frames_only():
    det = FrozenDetector(LIMITS)
    thumb = measure(_texture()).thumb
    assert [det.update(thumb, t) for t in (0.0, 1.0, 2.5)] == [0.0, 0.0, 1.5]
    noisy = np.clip(thumb.astype(int) + np.random.default_rng(0).integers(-3, 4, thumb.shape), 0, 255).astype(np.uint8)
    assert det.update(noisy, 3.0) == 0.0  # sensor noise: the stream is alive
