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


def _log_likelihoods(scores: np.ndarray, g_fit: dict, l_fit: dict) -> tuple[float, float]:
    """Gumbel's and the log-normal's log-likelihood, both in the scores' own units."""
    logs = np.log(scores)
    ll_lognormal = float(stats.norm.logpdf(logs, l_fit["log_mean"], l_fit["log_std"]).sum() - logs.sum())
    ll_gumbel = float(stats.gumbel_r.logpdf(scores, g_fit["location"], g_fit["scale"]).sum())
    return ll_gumbel, ll_lognormal


def _tolerance_bound(scores: np.ndarray, coverage: float, confidence: float) -> tuple[float, str, dict]:
    """The likelier of a log-normal and a Gumbel (both have two parameters, so no penalty is
    needed to compare them), where the log-normal may only win when its bound lands no farther
    past the highest good score than the good scores' own spread, or than the Gumbel's bound.

    Likelihood alone cannot see the tail it extrapolates: on a woven fabric whose good images
    scored near zero (median 0.012, highest 0.27) the log-normal won on likelihood and put the
    threshold at 1.365, so 27 of 30 defects passed. A bound more than the data's spread past the
    data is what no fit of a few dozen scores can vouch for. The Gumbel is shift invariant: an
    arbitrary zero cannot move it, so it is always a candidate."""
    g_bound, g_fit = gumbel_bound(scores, coverage, confidence)
    candidates = [(g_bound, "gumbel-tolerance", g_fit)] if g_fit["scale"] > 0 else []
    if (scores > 0).all():
        l_bound, l_fit = lognormal_bound(scores, coverage, confidence)
        if l_fit["log_std"] > 0 and math.isfinite(l_bound):
            ll_g, ll_l = _log_likelihoods(scores, g_fit, l_fit)
            g_fit.update(loglik=ll_g, loglik_other=ll_l)
            l_fit.update(loglik=ll_l, loglik_other=ll_g)
            candidates.append((l_bound, "lognormal-tolerance", l_fit))
    if not candidates:  # every score equal: nothing to fit
        return float(scores.max()), "gumbel-tolerance", g_fit
    top, spread = float(scores.max()), float(scores.max() - scores.min())
    allowed = max(spread, g_bound - top) if g_fit["scale"] > 0 else math.inf
    near = [c for c in candidates if c[0] - top <= allowed + 1e-12]
    if near:
        return max(near, key=lambda c: c[2].get("loglik", 0.0))
    return min(candidates, key=lambda c: c[0])


def margin_warning(calibration: Calibration) -> str | None:
    """What a user should hear when the threshold sits far beyond every good score: defects
    scoring in between pass as OK. None when the margin is within the good scores' spread."""
    c = calibration
    if c.margin_over_max is None or c.normal_score_spread is None or c.margin_over_max <= c.normal_score_spread:
        return None
    return (f"the threshold {c.normal_score_max + c.margin_over_max:.4g} lies {c.margin_over_max:.3g} above the "
            f"highest good score ({c.normal_score_max:.4g}), more than the good scores' own spread "
            f"({c.normal_score_spread:.3g}): a defect scoring in between passes as OK. Add good images "
            f"(the bound tightens with more), calibrate with defect images "
            f"(edge-ad calibrate BUNDLE --normal DIR --abnormal DIR --method fnr), or accept more false "
            f"rejects with a larger --target-fpr")


def normal_only_thresholds(scores, target_fpr: float = 0.01, confidence: float = 0.9,
                           out_of_fold: int = 0) -> tuple[Thresholds, Calibration]:
    """``scores``: raw scores of good images the model did not train on; the last
    ``out_of_fold`` of them are training images scored out-of-fold (recorded, not treated
    differently)."""
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
                              normal_count=n, out_of_fold_count=out_of_fold,
                              normal_score_mean=float(scores.mean()),
                              normal_score_std=float(scores.std(ddof=1)),
                              normal_score_max=top, normal_score_spread=float(top - scores.min()),
                              margin_over_max=float(threshold - top), fit=fit,
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
