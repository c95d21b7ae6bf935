"""Detection metrics, pure numpy (the runtime carries no scikit-learn; the tests check these
against it). Convention everywhere: a higher score means more anomalous, label 1 = defect, and a
sample is called a defect when ``score >= threshold``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

# numpy < 2 (JetPack's) names it trapz
_trapezoid = getattr(np, "trapezoid", None) or np.trapz


def _sorted_counts(labels, scores):
    """Cumulative TP and FP counts at each distinct score, thresholds descending."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, np.float64).ravel()
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last_of_run]
    fps = (last_of_run + 1) - tps
    return tps, fps, s[last_of_run]


def roc_curve(labels, scores):
    """False and true positive rates from the highest threshold down, starting at (0, 0)."""
    tps, fps, thresholds = _sorted_counts(labels, scores)
    p, n = tps[-1], fps[-1]
    if p == 0 or n == 0:
        raise ValueError("ROC needs both normal and defect samples")
    return np.r_[0.0, fps / n], np.r_[0.0, tps / p], np.r_[np.inf, thresholds]


def auroc(labels, scores) -> float:
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(_trapezoid(tpr, fpr))


def precision_recall(labels, scores):
    """Precision and recall at each distinct threshold, highest threshold first."""
    tps, fps, thresholds = _sorted_counts(labels, scores)
    if tps[-1] == 0:
        raise ValueError("precision/recall need at least one defect sample")
    return tps / (tps + fps), tps / tps[-1], thresholds


def average_precision(labels, scores) -> float:
    """Σ (R_k − R_{k−1}) · P_k: the step-wise area under the PR curve (no interpolation)."""
    precision, recall, _ = precision_recall(labels, scores)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def f1_max(labels, scores) -> tuple[float, float]:
    """Best F1 over all thresholds, and the threshold that reaches it."""
    precision, recall, thresholds = precision_recall(labels, scores)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    i = int(np.argmax(f1))
    return float(f1[i]), float(thresholds[i])


@dataclass(frozen=True)
class Confusion:
    """Counts of the four outcomes at one threshold."""
    tp: int
    fp: int
    tn: int
    fn: int

    @classmethod
    def at(cls, labels, scores, threshold: float) -> "Confusion":
        y = np.asarray(labels).astype(bool)
        called = np.asarray(scores) >= threshold
        return cls(int(np.sum(called & y)), int(np.sum(called & ~y)),
                   int(np.sum(~called & ~y)), int(np.sum(~called & y)))

    def rates(self) -> dict:
        def ratio(a, b):
            return float(a / b) if b else None

        pos, neg = self.tp + self.fn, self.tn + self.fp
        return {**asdict(self),
                "accuracy": ratio(self.tp + self.tn, pos + neg),
                "precision": ratio(self.tp, self.tp + self.fp),
                "recall": ratio(self.tp, pos), "specificity": ratio(self.tn, neg),
                "fpr": ratio(self.fp, neg), "fnr": ratio(self.fn, pos)}


def aupro(masks: np.ndarray, maps: np.ndarray, fpr_limit: float = 0.3) -> float:
    """Area under the per-region-overlap curve up to ``fpr_limit`` false-positive rate, divided
    by ``fpr_limit`` (Bergmann et al., MVTec AD). PRO(t) is the mean, over every connected
    defect region of every image, of the fraction of its pixels scoring ≥ t; FPR(t) is the
    fraction of all defect-free pixels scoring ≥ t.

    Exact and O(N log N): each region pixel carries weight 1 / (regions · region size) and each
    normal pixel 1 / (normal pixels), so one sort and two cumulative sums give both curves."""
    masks = np.asarray(masks) > 0
    maps = np.asarray(maps, np.float64)
    weights = np.zeros(maps.shape, np.float64)
    regions = []
    for i, mask in enumerate(masks):
        n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        for r in range(1, n):
            regions.append((i, labels == r))
    if not regions:
        raise ValueError("AUPRO needs at least one defect region")
    for i, region in regions:
        weights[i][region] = 1.0 / (len(regions) * region.sum())
    normal = ~masks
    n_normal = normal.sum()
    if n_normal == 0:
        raise ValueError("AUPRO needs defect-free pixels")
    order = np.argsort(-maps.ravel(), kind="mergesort")
    s = maps.ravel()[order]
    pro = np.cumsum(weights.ravel()[order])
    fpr = np.cumsum(normal.ravel()[order]) / n_normal
    last_of_run = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    fpr, pro = np.r_[0.0, fpr[last_of_run]], np.r_[0.0, pro[last_of_run]]
    keep = fpr <= fpr_limit
    x, y = fpr[keep], pro[keep]
    if x[-1] < fpr_limit:  # close the curve at the limit, interpolating the next segment
        j = int(np.argmax(fpr > fpr_limit))
        y_at = pro[j - 1] + (pro[j] - pro[j - 1]) * (fpr_limit - fpr[j - 1]) / (fpr[j] - fpr[j - 1])
        x, y = np.r_[x, fpr_limit], np.r_[y, y_at]
    return float(_trapezoid(y, x) / fpr_limit)
