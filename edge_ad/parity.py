"""The parity gate: does a candidate (torch, a reduced-precision graph, a TensorRT engine) score
the same images like the bundle's ONNX graph on ONNX Runtime CPU, closely enough not to change
what the line is told? One comparison and one set of tolerances, used by `edge-ad verify` and by
`edge-ad train`/`export` before a bundle is accepted."""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import numpy as np

from .evaluation.metrics import auroc


@dataclass(frozen=True)
class Tolerance:
    rel_score: float  # max |Δ score| / |reference score|
    flip_fraction: float  # share of images whose verdict at the manifest threshold changes
    auroc: float  # max |Δ image AUROC|, where labels are known


# fp32 is the bar the issue sets: no verdict may change, scores agree to 1e-4. fp16 and int8 are
# allowed to move scores (half precision: ~1e-3 per layer; int8: quantization steps) but not what
# the line is told: at most 1 % / 2 % verdict flips and 0.01 / 0.02 of AUROC. Measured figures
# for the shipped models are in docs/benchmarks.md ("Precision").
TOLERANCES = {
    "fp32": Tolerance(rel_score=1e-4, flip_fraction=0.0, auroc=1e-6),
    "fp16": Tolerance(rel_score=0.05, flip_fraction=0.01, auroc=0.01),
    "int8": Tolerance(rel_score=0.25, flip_fraction=0.02, auroc=0.02),
}


@dataclass(frozen=True)
class ParityResult:
    candidate: str
    precision: str
    images: int
    max_abs_map_diff: float
    mean_abs_map_diff: float
    max_rel_score_diff: float
    verdict_flips: int
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


def compare(candidate: str, precision: str, reference, outputs, threshold: float,
            labels: np.ndarray | None = None) -> ParityResult:
    """``reference``/``outputs``: (maps (N, H, W), scores (N,)) for the same images."""
    (rm, rs), (cm, cs) = reference, outputs
    rel = np.abs(cs - rs) / np.maximum(np.abs(rs), 1e-6)
    flips = int(np.sum((rs >= threshold) != (cs >= threshold)))
    a_ref = a_cand = None
    if labels is not None and 0 < labels.sum() < len(labels):
        a_ref, a_cand = auroc(labels, rs), auroc(labels, cs)
    tol = TOLERANCES[precision]
    reasons = []
    if float(rel.max()) > tol.rel_score:
        reasons.append(f"score differs by {float(rel.max()):.2e} relative (tolerance {tol.rel_score:g})")
    if flips > tol.flip_fraction * len(rs):
        reasons.append(f"{flips} of {len(rs)} verdicts flip at the threshold "
                       f"(tolerance {100 * tol.flip_fraction:g} %)")
    if a_ref is not None and abs(a_ref - a_cand) > tol.auroc:
        reasons.append(f"image AUROC {a_cand:.4f} vs {a_ref:.4f} (tolerance {tol.auroc:g})")
    return ParityResult(candidate, precision, len(rs), float(np.abs(cm - rm).max()),
                        float(np.abs(cm - rm).mean()), float(rel.max()), flips, a_ref, a_cand,
                        not reasons, tuple(reasons))
