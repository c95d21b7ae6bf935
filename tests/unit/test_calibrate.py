"""Normal-only calibration: the confidence bound means what it says."""
import numpy as np
import pytest
from statistics import NormalDist

from edge_ad.decision import normalize
from edge_ad.errors import EdgeAdError
from export.calibrate import gumbel_tolerance_factor, normal_only_thresholds, tolerance_factor


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


def test_gumbel_tolerance_factor_against_its_definition_by_monte_carlo():
    # Fresh Gumbel samples (another seed than the factor's own simulation) with a location and
    # scale: the bound must exceed the true 99th percentile in 90 % of them.
    n, coverage, confidence = 12, 0.99, 0.90
    k = gumbel_tolerance_factor(n, coverage, confidence)
    rng = np.random.default_rng(7)
    x = 0.3 + 0.05 * rng.gumbel(size=(20000, n))
    beta = x.std(1, ddof=1) * np.sqrt(6) / np.pi
    bound = x.mean(1) - 0.5772156649 * beta + k * beta
    hit = np.mean(bound >= 0.3 + 0.05 * -np.log(-np.log(coverage)))
    assert hit == pytest.approx(confidence, abs=0.01)


def test_lognormal_scores_meet_the_target_false_reject_rate():
    # Scores of normal parts, log-normal like real max-of-map scores; calibrate on 12 of them and
    # measure the false-reject rate on unseen normals, many times over.
    rng = np.random.default_rng(1)
    target, confidence, exceeded, methods = 0.01, 0.9, 0, []
    trials = 400
    for _ in range(trials):
        th, cal = normal_only_thresholds(np.exp(rng.normal(-1.5, 0.35, 12)), target, confidence)
        true_fpr = 1 - NormalDist(-1.5, 0.35).cdf(np.log(th.image.threshold))
        exceeded += true_fpr > target
        methods.append(cal.method)
    # the likelihood picks the log-normal where its bound stays near the data, the Gumbel
    # elsewhere, and the promise must hold for the rule as a whole
    assert 0 < methods.count("lognormal-tolerance") < trials
    assert exceeded / trials <= (1 - confidence) + 0.04


def test_gumbel_scores_with_an_arbitrary_zero_meet_the_target():
    """A family's zero is arbitrary: Gumbel-distributed scores whose location sits near zero
    (some clean images score 0.01) must neither blow the threshold up nor overshoot the target."""
    rng = np.random.default_rng(2)
    target, confidence, exceeded, trials, thresholds = 0.01, 0.9, 0, 400, []
    true_q = 0.08 + 0.05 * -np.log(-np.log(1 - target))
    for _ in range(trials):
        scores = np.clip(0.08 + 0.05 * rng.gumbel(size=12), 1e-3, None)
        th, _ = normal_only_thresholds(scores, target, confidence)
        exceeded += th.image.threshold < true_q
        thresholds.append(th.image.threshold)
    assert exceeded / trials <= (1 - confidence) + 0.04
    # the log-normal alone put the median threshold far beyond the true quantile
    assert np.median(thresholds) < 2.0 * true_q


def test_threshold_normalizes_to_half_and_median_to_zero():
    scores = np.linspace(0.2, 0.4, 12)
    th, _ = normal_only_thresholds(scores)
    assert normalize(th.image.threshold, th.image.threshold, th.image.scale) == pytest.approx(0.5)
    assert normalize(np.median(scores), th.image.threshold, th.image.scale) == pytest.approx(0.0)
    assert th.image.threshold > scores.max()


def test_non_positive_scores_use_the_shift_invariant_gumbel_bound():
    th, cal = normal_only_thresholds(np.linspace(-1, 1, 12))
    assert cal.method == "gumbel-tolerance"
    shifted, _ = normal_only_thresholds(np.linspace(-1, 1, 12) - 2.0)  # moves with the scores
    assert shifted.image.threshold == pytest.approx(th.image.threshold - 2.0)
    # all negative, all alike: the threshold still sits above the highest good score
    flat, _ = normal_only_thresholds(np.full(12, -0.5))
    assert flat.image.threshold > -0.5


def test_too_few_images_is_a_clear_error():
    with pytest.raises(EdgeAdError, match="at least 8 held-out"):
        normal_only_thresholds([0.1] * 5)


from export.calibrate import labelled_threshold  # noqa: E402


def test_labelled_f1_youden_and_fnr_by_value():
    normal = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    abnormal = np.array([0.35, 0.6, 0.7, 0.8])
    # threshold 0.6: all normal pass, 3 of 4 defects caught → F1 = 6/7; 0.35: 4/4 caught, 2 FR → 0.8
    assert labelled_threshold(normal, abnormal, "f1") == pytest.approx(0.6)
    # Youden: 0.6 → 0.75 − 0 = 0.75; 0.35 → 1 − 0.4 = 0.6
    assert labelled_threshold(normal, abnormal, "youden") == pytest.approx(0.6)
    # miss at most 0 % → the lowest defect score; at most 25 % → the second lowest
    assert labelled_threshold(normal, abnormal, "fnr", 0.0) == pytest.approx(0.35)
    assert labelled_threshold(normal, abnormal, "fnr", 0.25) == pytest.approx(0.6)
    with pytest.raises(EdgeAdError):
        labelled_threshold(normal, [], "f1")


def test_greedy_coreset_covers_the_pool():
    """k-centre greedy: every pool vector ends up near a chosen one; a random subset of the same
    size leaves larger holes."""
    import torch

    from export.models.patchcore import greedy_coreset

    pool = torch.randn(3000, 8, generator=torch.Generator().manual_seed(0))
    chosen = pool[greedy_coreset(pool, 100, seed=0)]
    random = pool[torch.randperm(3000, generator=torch.Generator().manual_seed(1))[:100]]
    cover = torch.cdist(pool, chosen).amin(1).max()
    assert chosen.shape == (100, 8) and cover < torch.cdist(pool, random).amin(1).max()
    assert pool[greedy_coreset(pool[:10], 25, seed=0)].shape == (25, 8)  # small pools fill the bank


def test_a_near_zero_normal_population_cannot_run_the_bound_away():
    """The woven-fabric failure: good scores near zero with a long right tail (median ~0.01).
    The log-normal wins on likelihood and its bound lands several spreads past the data; the
    rule keeps the threshold within one spread of the highest good score."""
    from export.calibrate import lognormal_bound, margin_warning

    scores = np.exp(np.random.default_rng(2).normal(np.log(0.012), 1.4, 12))
    runaway, _ = lognormal_bound(scores, 0.99, 0.9)
    spread = scores.max() - scores.min()
    assert runaway - scores.max() > 2 * spread  # what the likelihood alone would ship
    th, cal = normal_only_thresholds(scores, 0.01)
    assert th.image.threshold - scores.max() <= spread
    assert cal.margin_over_max == pytest.approx(th.image.threshold - scores.max())
    assert cal.normal_score_spread == pytest.approx(spread)
    assert margin_warning(cal) is None


def test_a_large_margin_warns_with_the_figures_and_what_to_do():
    from export.calibrate import margin_warning

    _, cal = normal_only_thresholds(0.3 + 0.02 * np.random.default_rng(3).gumbel(size=60))
    assert margin_warning(cal) is None and cal.margin_over_max < cal.normal_score_spread
    wide = cal.model_copy(update={"margin_over_max": 0.9, "normal_score_spread": 0.2})
    text = margin_warning(wide)
    assert "0.9" in text and "0.2" in text and "--abnormal" in text and "--target-fpr" in text


def test_out_of_fold_scores_are_recorded():
    scores = np.r_[np.linspace(0.2, 0.4, 12), np.linspace(0.21, 0.39, 48)]
    _, cal = normal_only_thresholds(scores, out_of_fold=48)
    assert cal.normal_count == 60 and cal.out_of_fold_count == 48
