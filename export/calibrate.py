"""Normal-only thresholds with a confidence bound (method and evidence: docs/calibration.md).

Image scores are maxima of anomaly maps: right-skewed, with a heavier upper tail than a
Gaussian. Two shapes are fitted to the held-out scores, a log-normal and a Gumbel (the
distribution of a maximum), and the one with the higher likelihood sets the threshold as a
one-sided *tolerance* bound: with probability ``confidence``, at least ``1 - target_fpr`` of
normal parts score below it. A plain quantile of the fit ignores that the parameters come from
a dozen images; in simulation it overshot a 1 % false-reject target four times in five.

Why two: the log-normal measures scores from zero, but a family's zero is arbitrary (the map
normalization puts it at the 90 % quantile of normal pixels). Where a clean image scores near
zero, its logarithm drags the fit's spread up and the bound flies off: rd on the demo gravel got
a threshold 8x its highest good score and missed 24 of 24 defects. The Gumbel is shift
invariant. It fits less well where the tail is heavy (efficientad): the likelihood decides.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from scipy import stats

from edge_ad.bundle import Calibration, Normalization, Thresholds
from edge_ad.errors import EdgeAdError

MIN_NORMAL_IMAGES = 8


def tolerance_factor(n: int, coverage: float, confidence: float) -> float:
    """k such that mean + k·sd bounds the ``coverage`` quantile with ``confidence``
    (exact, through the non-central t distribution)."""
    z = stats.norm.ppf(coverage)
    return float(stats.nct.ppf(confidence, df=n - 1, nc=z * math.sqrt(n)) / math.sqrt(n))


EULER_GAMMA = 0.5772156649015329


@functools.lru_cache(maxsize=64)
def gumbel_tolerance_factor(n: int, coverage: float, confidence: float, sims: int = 20000) -> float:
    """k such that μ̂ + k·β̂ (moment estimates of a Gumbel fit) bounds the ``coverage`` quantile
    with ``confidence``. A location-scale family has pivotal estimates, so k depends on n
    alone and is found once by simulating standard Gumbel samples (seeded: the same k always)."""
    x = np.random.default_rng(0).gumbel(size=(sims, n))
    beta = x.std(axis=1, ddof=1) * math.sqrt(6) / math.pi
    mu = x.mean(axis=1) - EULER_GAMMA * beta
    z = -math.log(-math.log(coverage))
    return float(np.quantile((z - mu) / beta, confidence))


def gumbel_bound(scores: np.ndarray, coverage: float, confidence: float) -> tuple[float, dict]:
    """The Gumbel tolerance bound, from moment estimates of location and scale."""
    beta = float(scores.std(ddof=1)) * math.sqrt(6) / math.pi
    mu = float(scores.mean()) - EULER_GAMMA * beta
    k = gumbel_tolerance_factor(len(scores), coverage, confidence)
    return mu + k * beta, {"location": mu, "scale": beta, "k": k}


def lognormal_bound(scores: np.ndarray, coverage: float, confidence: float) -> tuple[float, dict]:
    """The normal tolerance bound on log(scores); every score must be > 0."""
    logs = np.log(scores)
    log_mean, log_std = float(logs.mean()), float(logs.std(ddof=1))
    k = tolerance_factor(len(scores), coverage, confidence)
    return math.exp(log_mean + k * log_std), {"log_mean": log_mean, "log_std": log_std, "k": k}


def _tolerance_bound(scores: np.ndarray, coverage: float, confidence: float) -> tuple[float, str, dict]:
    """The better-fitting shape's bound: log-normal or Gumbel, by log-likelihood (both have two
    parameters, so no penalty is needed to compare them); Gumbel where a score is ≤ 0."""
    g_bound, g_fit = gumbel_bound(scores, coverage, confidence)
    if g_fit["scale"] <= 0 or not (scores > 0).all():
        return g_bound, "gumbel-tolerance", g_fit
    l_bound, l_fit = lognormal_bound(scores, coverage, confidence)
    if l_fit["log_std"] <= 0:
        return g_bound, "gumbel-tolerance", g_fit
    # the log-normal's density in the scores' own units: the log's density over each score
    logs = np.log(scores)
    ll_lognormal = float(stats.norm.logpdf(logs, l_fit["log_mean"], l_fit["log_std"]).sum() - logs.sum())
    ll_gumbel = float(stats.gumbel_r.logpdf(scores, g_fit["location"], g_fit["scale"]).sum())
    if ll_gumbel > ll_lognormal:
        return g_bound, "gumbel-tolerance", {**g_fit, "loglik": ll_gumbel, "loglik_other": ll_lognormal}
    return l_bound, "lognormal-tolerance", {**l_fit, "loglik": ll_lognormal, "loglik_other": ll_gumbel}


def normal_only_thresholds(scores, target_fpr: float = 0.01,
                           confidence: float = 0.9) -> tuple[Thresholds, Calibration]:
    scores = np.asarray(scores, np.float64)
    n = len(scores)
    if n < MIN_NORMAL_IMAGES:
        raise EdgeAdError(f"calibration needs at least {MIN_NORMAL_IMAGES} held-out normal images, "
                          f"got {n}: add good images (50 or more recommended)")
    if not 0 < target_fpr < 0.5:
        raise EdgeAdError(f"target false-reject rate {target_fpr} must be between 0 and 0.5")
    bound, method, fit = _tolerance_bound(scores, 1.0 - target_fpr, confidence)
    top = float(scores.max())  # never below the highest good score (of either sign)
    threshold = max(bound, top + abs(top) * 1e-4 + 1e-12)
    scale = max(threshold - float(np.median(scores)), 1e-6)
    norm = Normalization(threshold=threshold, scale=scale)
    # The image score is the map's maximum, so one threshold serves both: an image is NG exactly
    # when some pixel is, and every NG comes with at least one region that explains it.
    thresholds = Thresholds(image=norm, pixel=norm)
    calibration = Calibration(method=method, target_fpr=target_fpr, confidence=confidence,
                              normal_count=n, normal_score_mean=float(scores.mean()),
                              normal_score_std=float(scores.std(ddof=1)),
                              normal_score_max=float(scores.max()), fit=fit,
                              expected_fpr=target_fpr, measured_fpr=0.0,
                              normal_scores=[float(f"{x:.6g}") for x in scores[:5000]])
    return thresholds, calibration


LABELLED_METHODS = ("f1", "youden", "fnr")


def labelled_threshold(normal, abnormal, method: str, target_fnr: float = 0.01) -> float:
    """A raw threshold from scores of normal and defect images.

    ``f1``: the threshold of highest F1. ``youden``: highest TPR − FPR. ``fnr``: the highest
    threshold whose miss rate on the defect images is at most ``target_fnr`` (catch at least
    that share of defects, reject as few good parts as that allows)."""
    from edge_ad.evaluation.metrics import f1_max, roc_curve

    normal, abnormal = np.asarray(normal, np.float64), np.asarray(abnormal, np.float64)
    if len(normal) == 0 or len(abnormal) == 0:
        raise EdgeAdError("labelled calibration needs both normal and defect images")
    labels = np.r_[np.zeros(len(normal), bool), np.ones(len(abnormal), bool)]
    scores = np.r_[normal, abnormal]
    if method == "f1":
        return f1_max(labels, scores)[1]
    if method == "youden":
        fpr, tpr, thresholds = roc_curve(labels, scores)
        return float(thresholds[1:][np.argmax((tpr - fpr)[1:])])
    if method == "fnr":
        if not 0 <= target_fnr < 1:
            raise EdgeAdError(f"target miss rate {target_fnr} must be in [0, 1)")
        ordered = np.sort(abnormal)  # ascending: a threshold at ordered[k] misses k defects
        allowed = int(np.floor(target_fnr * len(abnormal) + 1e-9))
        return float(ordered[allowed])
    raise EdgeAdError(f"unknown calibration method {method!r}; choose one of {LABELLED_METHODS}")
