"""Normal-only calibration: the confidence bound means what it says."""
import numpy as np
import pytest
from statistics import NormalDist

from edge_ad.decision import normalize
from edge_ad.errors import EdgeAdError
from export.calibrate import normal_only_thresholds, tolerance_factor


def test_tolerance_factor_against_its_definition_by_monte_carlo():
    # k must make mean + k*sd exceed the true 99th percentile in 90 % of samples of size n.
    n, coverage, confidence = 12, 0.99, 0.90
    k = tolerance_factor(n, coverage, confidence)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20000, n))
    bound = x.mean(1) + k * x.std(1, ddof=1)
    hit = np.mean(bound >= NormalDist().inv_cdf(coverage))
    assert hit == pytest.approx(confidence, abs=0.01)
    assert 3.0 < k < 4.0  # published tables: n=12, p=0.99, γ=0.90 → 3.37


def test_lognormal_scores_meet_the_target_false_reject_rate():
    # Scores of normal parts, log-normal like real max-of-map scores; calibrate on 12 of them and
    # measure the false-reject rate on unseen normals, many times over.
    rng = np.random.default_rng(1)
    target, confidence, exceeded = 0.01, 0.9, 0
    trials = 400
    for _ in range(trials):
        th, cal = normal_only_thresholds(np.exp(rng.normal(-1.5, 0.35, 12)), target, confidence)
        assert cal.method == "lognormal-tolerance"
        true_fpr = 1 - NormalDist(-1.5, 0.35).cdf(np.log(th.image.threshold))
        exceeded += true_fpr > target
    assert exceeded / trials <= (1 - confidence) + 0.04


def test_threshold_normalizes_to_half_and_median_to_zero():
    scores = np.linspace(0.2, 0.4, 12)
    th, _ = normal_only_thresholds(scores)
    assert normalize(th.image.threshold, th.image.threshold, th.image.scale) == pytest.approx(0.5)
    assert normalize(np.median(scores), th.image.threshold, th.image.scale) == pytest.approx(0.0)
    assert th.image.threshold > scores.max()


def test_non_positive_scores_fall_back_to_the_gaussian_bound():
    _, cal = normal_only_thresholds(np.linspace(-1, 1, 12))
    assert cal.method == "normal-tolerance"


def test_too_few_images_is_a_clear_error():
    with pytest.raises(EdgeAdError, match="at least 8 held-out"):
        normal_only_thresholds([0.1] * 5)
