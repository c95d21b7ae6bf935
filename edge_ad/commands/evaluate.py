"""``edge-ad evaluate``: run the bundle's real engine over an MVTec-layout test split and report
image and pixel metrics, overall and per defect type, at the manifest's threshold."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..bundle import load_bundle
from ..engines import create_engine
from ..evaluation.dataset import test_set
from ..evaluation.metrics import Confusion, aupro, auroc, average_precision, f1_max
from ..imageio import model_inputs

BATCH = 8


# A tiled bundle's maps are shrunk for the pixel metrics to at most this many pixels a frame,
# and this many over the whole test split: the metrics sort every pixel (95 frames of 2048 x 1536
# at 2 MP each took over 5 minutes and 8 GB; at 40 M in all, a 6-px defect still spans 2 px)
MAX_EVAL_PIXELS = 2_000_000
MAX_EVAL_PIXELS_TOTAL = 40_000_000


class _EvalSize:
    """Where maps and masks are compared: the model input, or a tiled bundle's frame (capped)."""

    def __init__(self, manifest, count: int = 1):
        h, w = manifest.map_size
        self.tiled = manifest.tiling is not None
        f = min(1.0, (min(MAX_EVAL_PIXELS, MAX_EVAL_PIXELS_TOTAL / max(1, count)) / (h * w)) ** 0.5)
        self.height, self.width = max(1, round(h * f)), max(1, round(w * f))


def _score(engine, samples, manifest, size: _EvalSize):
    spec = manifest.input
    maps = np.empty((len(samples), size.height, size.width), np.float32)
    scores = np.empty(len(samples), np.float32)
    with tqdm(total=len(samples), desc="evaluate", unit="img") as bar:
        if manifest.tiling is not None:  # whole frames through the tiling every path uses
            from ..imageio import read_image
            from ..pipeline.inspector import Inspector

            inspector = Inspector(engine, manifest)
            for i, sample in enumerate(samples):
                ins = inspector.inspect([read_image(sample.path)])[0]
                maps[i] = cv2.resize(ins.raw_map, (size.width, size.height), interpolation=cv2.INTER_AREA)
                scores[i] = ins.raw_score
                bar.update(1)
            return maps, scores
        for i in range(0, len(samples), BATCH):
            chunk = samples[i:i + BATCH]
            batch = model_inputs([s.path for s in chunk], spec.height, spec.width, spec.channels)
            maps[i:i + len(chunk)], scores[i:i + len(chunk)] = engine.infer(batch)
            bar.update(len(chunk))
    return maps, scores


def _masks(samples, size: _EvalSize) -> np.ndarray:
    out = np.zeros((len(samples), size.height, size.width), bool)
    for i, s in enumerate(samples):
        if s.mask_path is not None:
            m = cv2.imread(str(s.mask_path), cv2.IMREAD_GRAYSCALE)
            # a tiled frame shrunk for the metrics: area, so a defect of a few pixels stays
            interp = cv2.INTER_AREA if size.tiled else cv2.INTER_NEAREST
            out[i] = cv2.resize(m, (size.width, size.height), interpolation=interp) > 0
    return out


def compute(labels, scores, maps, masks, pixel_ok, threshold: float) -> dict:
    """All figures for one subset; pixel figures only over images whose masks are known."""
    f1, f1_thr = f1_max(labels, scores)
    out = {"count": int(len(labels)), "defects": int(labels.sum()),
           "image_auroc": auroc(labels, scores), "average_precision": average_precision(labels, scores),
           "f1_max": f1, "f1_max_threshold": f1_thr,
           "confusion": Confusion.at(labels, scores, threshold).rates()}
    if pixel_ok.any() and masks[pixel_ok].any():
        out["pixel_auroc"] = auroc(masks[pixel_ok].ravel(), maps[pixel_ok].ravel())
        out["aupro"] = aupro(masks[pixel_ok], maps[pixel_ok])
    return out


def evaluate(bundle_path: str, data: str) -> tuple[dict, dict]:
    bundle = load_bundle(bundle_path)
    samples = test_set(data)
    size = _EvalSize(bundle.manifest, len(samples))
    with create_engine(bundle) as engine:
        maps, scores = _score(engine, samples, bundle.manifest, size)
    masks = _masks(samples, size)
    labels = np.array([s.is_defect for s in samples])
    # Pixel metrics need the truth of every pixel: good images (all normal) and defect images
    # that have a mask. A defect image without one is left out of the pixel figures only.
    pixel_ok = np.array([not s.is_defect or s.mask_path is not None for s in samples])
    threshold = bundle.manifest.thresholds.image.threshold
    result = {"bundle": str(bundle.path), "data": str(data), "threshold": threshold,
              **compute(labels, scores, maps, masks, pixel_ok, threshold), "per_defect": {}}
    for defect in sorted({s.defect for s in samples} - {"good"}):
        keep = np.array([s.defect in ("good", defect) for s in samples])
        result["per_defect"][defect] = compute(labels[keep], scores[keep], maps[keep], masks[keep],
                                               pixel_ok[keep], threshold)
    detail = {"samples": samples, "scores": scores, "maps": maps, "labels": labels, "bundle": bundle}
    return result, detail


def run_evaluate(bundle_path: str, data: str, report: str | None, json_path: str | None) -> int:
    result, detail = evaluate(bundle_path, data)
    c = result["confusion"]
    print(f"image AUROC {result['image_auroc']:.4f}  pixel AUROC {result.get('pixel_auroc', float('nan')):.4f}  "
          f"AUPRO {result.get('aupro', float('nan')):.4f}  F1-max {result['f1_max']:.4f}  "
          f"AP {result['average_precision']:.4f}")
    print(f"at the bundle's threshold: {c['fp']} false rejects of {c['fp'] + c['tn']} good, "
          f"{c['fn']} misses of {c['tp'] + c['fn']} defects")
    for defect, r in result["per_defect"].items():
        print(f"  {defect:<14} image AUROC {r['image_auroc']:.4f}  pixel AUROC "
              f"{r.get('pixel_auroc', float('nan')):.4f}  AUPRO {r.get('aupro', float('nan')):.4f}  "
              f"misses {r['confusion']['fn']}/{r['defects']}")
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
    if report:
        from ..evaluation.report import write_report

        print(f"report: {write_report(Path(report), result, detail)}")
    return 0
