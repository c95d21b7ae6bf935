"""Normal-only thresholds with a confidence bound (method and evidence: docs/calibration.md).

Image scores are maxima of anomaly maps: positive and right-skewed, with a heavier upper tail
than a Gaussian. Their logarithm is fitted with a Gaussian, and the threshold is the one-sided
normal *tolerance* bound: with probability ``confidence``, at least ``1 - target_fpr`` of
normal parts score below it. A plain quantile of the fit ignores that μ and σ come from a
dozen images; in simulation it overshot a 1 % false-reject target four times in five.
"""
from __future__ import annotations

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


def normal_only_thresholds(scores, target_fpr: float = 0.01,
                           confidence: float = 0.9) -> tuple[Thresholds, Calibration]:
    scores = np.asarray(scores, np.float64)
    n = len(scores)
    if n < MIN_NORMAL_IMAGES:
        raise EdgeAdError(f"calibration needs at least {MIN_NORMAL_IMAGES} held-out normal images, "
                          f"got {n}: add good images (50 or more recommended)")
    if not 0 < target_fpr < 0.5:
        raise EdgeAdError(f"target false-reject rate {target_fpr} must be between 0 and 0.5")
    k = tolerance_factor(n, 1.0 - target_fpr, confidence)
    if (scores > 0).all():
        logs = np.log(scores)
        bound = math.exp(logs.mean() + k * logs.std(ddof=1))
        method, fit = "lognormal-tolerance", {"log_mean": float(logs.mean()),
                                              "log_std": float(logs.std(ddof=1)), "k": k}
    else:  # a family whose scores can be ≤ 0 cannot use the log; the Gaussian bound is next best
        bound = scores.mean() + k * scores.std(ddof=1)
        method, fit = "normal-tolerance", {"k": k}
    threshold = max(bound, float(scores.max()) * 1.0001 + 1e-12)
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
