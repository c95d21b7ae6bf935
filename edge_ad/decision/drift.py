"""Drift guard: is the line's "normal" still the normal the threshold was calibrated on?

Recent raw scores of a camera (a rolling window, after a warm-up) are compared with the
calibration set's normal scores (stored in the manifest) by a two-sample Kolmogorov–Smirnov
test. Lighting that changed or a camera that moved shifts the whole score distribution long
before it floods the line with rejects; the operator sees ``drift`` and recalibrates.

All inspected scores enter the window, defects too: they are rare, and KS is rank-based, so a
few per cent of them move the statistic by at most that fraction. A two-sample test (rather
than a test against a fitted curve) keeps the calibration set's own uncertainty in the answer:
with 12 calibration images only large shifts are flagged, with 100 smaller ones.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

WARMING_UP, OK, DRIFT, UNAVAILABLE = "warming_up", "ok", "drift", "unavailable"


def ks_statistic(a, b) -> float:
    """Largest distance between the two empirical distribution functions."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def ks_p_value(d: float, n: int, m: int) -> float:
    """Asymptotic two-sample p-value (Kolmogorov distribution with Stephens' small-sample
    correction, as in Numerical Recipes' ``probks``)."""
    en = math.sqrt(n * m / (n + m))
    t = (en + 0.12 + 0.11 / en) * d
    if t < 0.2:
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = 2.0 * (-1) ** (k - 1) * math.exp(-2.0 * k * k * t * t)
        total += term
        if abs(term) < 1e-12:
            break
    return float(min(max(total, 0.0), 1.0))


@dataclass(frozen=True)
class DriftState:
    """A drift guard's last verdict, with the figures behind it."""
    state: str
    samples: int
    statistic: float | None = None
    p_value: float | None = None
    median_ratio: float | None = None  # recent median score ÷ calibration median

    def to_json(self) -> dict:
        return {"state": self.state, "samples": self.samples,
                "statistic": None if self.statistic is None else round(self.statistic, 4),
                "p_value": None if self.p_value is None else float(f"{self.p_value:.3g}"),
                "median_ratio": None if self.median_ratio is None else round(self.median_ratio, 3)}


class DriftGuard:
    """Owns one camera's recent raw scores and the calibration scores they are compared with."""
    def __init__(self, reference, window: int = 300, warmup: int = 100, alpha: float = 1e-4,
                 every: int = 10):
        self.reference = np.sort(np.asarray(reference, np.float64))
        self.recent: deque[float] = deque(maxlen=window)
        self.warmup, self.alpha, self.every = min(warmup, window), alpha, every
        self._since = 0
        self._state = DriftState(UNAVAILABLE if len(self.reference) < 5 else WARMING_UP, 0)

    def add(self, raw_score: float) -> DriftState | None:
        """Record a score; returns the new state when it was re-evaluated, else None."""
        if self._state.state == UNAVAILABLE or not math.isfinite(raw_score):
            return None
        self.recent.append(raw_score)
        self._since += 1
        if self._since < self.every:
            return None
        self._since = 0
        self._state = self._evaluate()
        return self._state

    def _evaluate(self) -> DriftState:
        n = len(self.recent)
        if n < self.warmup:
            return DriftState(WARMING_UP, n)
        d = ks_statistic(self.recent, self.reference)
        p = ks_p_value(d, n, len(self.reference))
        ref_median = float(np.median(self.reference))
        ratio = float(np.median(self.recent)) / ref_median if ref_median > 0 else None
        return DriftState(DRIFT if p < self.alpha else OK, n, d, p, ratio)

    @property
    def state(self) -> DriftState:
        return self._state
