"""The parity gate: does a candidate (torch, a reduced-precision graph, a TensorRT engine) score
the same images like the bundle's ONNX graph on ONNX Runtime CPU, closely enough not to change
what the line is told? One comparison and one set of tolerances, used by `edge-ad verify`, by
`edge-ad train`/`export` before a bundle is accepted, and by `edge-ad import-anomalib`.

What is judged is what the line sees, not the raw numbers:
- score differences in units of the threshold's scale (the raw distance from the median normal
  score to the threshold, the unit of the normalized score), not relative to the raw score. A
  family whose normal scores sit near zero (map normalization puts zero at a quantile of normal
  pixels) turns float rounding into a huge *relative* difference that moves no verdict: 1.9e-4
  relative refused a patchcore bundle on a machine whose BLAS differs;
- verdict flips, except for images whose reference score lies within the allowed score
  difference of the threshold: there, any candidate within tolerance may land on either side;
- image AUROC, except for swaps of defect/good pairs whose reference scores are that close.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import numpy as np

from .evaluation.metrics import auroc


@dataclass(frozen=True)
class Tolerance:
    """How far a candidate may differ from the reference and still pass."""
    score: float  # max |Δ raw score| / threshold scale (Δ normalized score = score / 2)
    flip_fraction: float  # share of images, outside the noise band, whose verdict changes
    auroc: float  # max |Δ image AUROC| beyond near-tie swaps, where labels are known


# fp32: two correct float32 implementations of the same graph (torch vs ONNX Runtime, another
# BLAS, another CPU) differ by rounding only. Measured for every family on two demo surfaces
# (bench/parity.py; docs/benchmarks.md, "Parity"): at most 5.5e-6 of the scale, where the same
# runs read up to 3.6e-5 relative to the raw score (and a fresh clone elsewhere 1.9e-4). 1e-3 of
# the scale leaves 180x margin and is a normalized-score change of 0.0005, invisible on any
# dashboard and to any verdict outside the noise band, while a real
# export bug (a wrong normalization, a missing layer) moves scores by a whole scale.
# fp16 and int8 may move scores (half precision: ~1e-3 per layer; int8: quantization steps) but
# not what the line is told: at most 1 % / 2 % verdict flips and 0.01 / 0.02 of AUROC. fp16
# measured (edge-ad verify, demo wood, 44 images): rd 0.010, patchcore 0.046, efficientad 0.048,
# fastflow 0.122 of the scale (its exp() couplings, on defects far above the threshold), no flip
# and no AUROC change in any; 0.25 leaves 2x margin. int8 moved scores by 7 to 71 scales and is
# refused at any sensible bound.
TOLERANCES = {
    "fp32": Tolerance(score=1e-3, flip_fraction=0.0, auroc=0.0),
    "fp16": Tolerance(score=0.25, flip_fraction=0.01, auroc=0.01),
    "int8": Tolerance(score=0.5, flip_fraction=0.02, auroc=0.02),
}


@dataclass(frozen=True)
class ParityResult:
    """One candidate measured against the reference, and whether it passed."""
    candidate: str
    precision: str
    images: int
    max_abs_map_diff: float
    mean_abs_map_diff: float
    max_rel_score_diff: float  # relative to the raw score: reported, not judged (see above)
    max_score_diff_of_scale: float  # judged
    verdict_flips: int  # every flip, noise band included
    flips_beyond_noise: int  # judged
    auroc_reference: float | None
    auroc_candidate: float | None
    passed: bool
    reasons: tuple[str, ...]

    def to_json(self) -> dict:
        return asdict(self)

    def record(self, platform: dict | None = None):
        """The manifest's record of this comparison."""
        from .bundle import ParityRecord

        fields = {k: v for k, v in self.to_json().items() if k not in ("candidate", "reasons")}
        return ParityRecord(**fields, checked=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                            platform=platform or {})


def _near_tie_pairs(labels: np.ndarray, scores: np.ndarray, band: float) -> int:
    """Defect/good pairs whose reference scores differ by at most ``band``."""
    good, bad = np.sort(scores[labels == 0]), scores[labels == 1]
    return int(np.sum(np.searchsorted(good, bad + band, "right") - np.searchsorted(good, bad - band, "left")))


def compare(candidate: str, precision: str, reference, outputs, threshold: float, scale: float,
            labels: np.ndarray | None = None) -> ParityResult:
    """``reference``/``outputs``: (maps (N, H, W), scores (N,)) for the same images; ``threshold``
    and ``scale``: the bundle's image normalization (edge_ad.bundle.Normalization)."""
    (rm, rs), (cm, cs) = reference, outputs
    rs, cs = np.asarray(rs, np.float64), np.asarray(cs, np.float64)
    if not scale > 0:
        raise ValueError(f"threshold scale must be positive, got {scale}")
    tol = TOLERANCES[precision]
    diff = np.abs(cs - rs)
    rel = diff / np.maximum(np.abs(rs), 1e-6)
    of_scale = float(diff.max() / scale) if len(diff) else 0.0
    band = tol.score * scale
    flipped = (rs >= threshold) != (cs >= threshold)
    beyond = int(np.sum(flipped & (np.abs(rs - threshold) > band)))
    a_ref = a_cand = None
    reasons = []
    if not np.isfinite(cs).all() or not np.isfinite(np.asarray(cm, np.float64)).all():
        reasons.append("the candidate produced NaN or infinite values")
    if of_scale > tol.score:
        reasons.append(f"score differs by {of_scale:.2e} of the threshold scale (tolerance {tol.score:g})")
    if beyond > tol.flip_fraction * len(rs):
        reasons.append(f"{beyond} of {len(rs)} verdicts flip at the threshold "
                       f"(tolerance {100 * tol.flip_fraction:g} %)")
    if labels is not None and 0 < labels.sum() < len(labels):
        labels = np.asarray(labels)
        a_ref, a_cand = auroc(labels, rs), auroc(labels, cs)
        pairs = int(labels.sum()) * int((labels == 0).sum())
        allowed = tol.auroc + _near_tie_pairs(labels, rs, 2 * band) / pairs
        if abs(a_ref - a_cand) > allowed + 1e-12:
            reasons.append(f"image AUROC {a_cand:.4f} vs {a_ref:.4f} (tolerance {allowed:.2g})")
    return ParityResult(candidate, precision, len(rs), float(np.abs(cm - rm).max()),
                        float(np.abs(cm - rm).mean()), float(rel.max()), of_scale,
                        int(flipped.sum()), beyond, a_ref, a_cand, not reasons, tuple(reasons))
