"""Normal-only threshold through the real engine (a first method; see docs/calibration.md).

The raw scores of held-out normal images are fitted with a Gaussian; the threshold sits where
its upper tail holds ``target_fpr`` of normal parts, and never below the highest held-out normal
score. The scale puts the median normal image at a normalized score of 0.
"""
from __future__ import annotations

from statistics import NormalDist

import numpy as np

from edge_ad.bundle import Calibration, Normalization, Thresholds


def normal_only_thresholds(scores: np.ndarray, target_fpr: float = 0.01) -> tuple[Thresholds, Calibration]:
    scores = np.asarray(scores, np.float64)
    mean, std = float(scores.mean()), float(scores.std(ddof=1)) if len(scores) > 1 else 0.0
    z = NormalDist().inv_cdf(1.0 - target_fpr)
    threshold = max(mean + z * std, float(scores.max()) * 1.0001 + 1e-9)
    scale = max(threshold - float(np.median(scores)), 1e-6)
    norm = Normalization(threshold=threshold, scale=scale)
    # The image score is the map's maximum, so one threshold serves both: an image is NG exactly
    # when some pixel is, and every NG comes with at least one region that explains it.
    thresholds = Thresholds(image=norm, pixel=norm)
    calibration = Calibration(method="normal-gaussian-tail", target_fpr=target_fpr,
                              normal_count=len(scores), normal_score_mean=mean,
                              normal_score_std=std, normal_score_max=float(scores.max()))
    return thresholds, calibration
