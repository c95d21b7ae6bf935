"""``edge-ad calibrate``: new thresholds for an existing bundle, scored through its real engine,
written into its manifest (the graph is not touched)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge_ad.bundle import Normalization, Thresholds, load_bundle, save_manifest
from edge_ad.engines import create_engine
from edge_ad.errors import EdgeAdError
from edge_ad.imageio import image_files, read_image, to_model_input

from .calibrate import labelled_threshold, margin_warning, normal_only_thresholds
from .data import data_hash


def _images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgeAdError(f"image folder not found: {folder}")
    paths = image_files(folder, recursive=True, masks=False)
    if not paths:
        raise EdgeAdError(f"no images in {folder}")
    return paths


def _scores(engine, paths, spec, label: str) -> np.ndarray:
    out = []
    for p in tqdm(paths, desc=f"score {label}", unit="img"):
        frame = to_model_input(read_image(p), spec.height, spec.width, spec.channels)
        out.append(float(engine.infer(frame[None])[1][0]))
    return np.asarray(out)


def calibrate(bundle_path: str, normal_dir: str, abnormal_dir: str | None = None,
              target_fpr: float | None = None, method: str | None = None,
              target_fnr: float = 0.01) -> dict:
    if method and not abnormal_dir:
        raise EdgeAdError(f"--method {method} needs --abnormal DIR (defect images)")
    if method and target_fpr is not None:
        raise EdgeAdError("use either --target-fpr (normal images only) or --method, not both")
    bundle = load_bundle(bundle_path)
    spec = bundle.manifest.input
    normal_paths = _images(normal_dir)
    abnormal_paths = _images(abnormal_dir) if abnormal_dir else []
    with create_engine(bundle) as engine:
        normal = _scores(engine, normal_paths, spec, "normal")
        abnormal = _scores(engine, abnormal_paths, spec, "defect") if abnormal_paths else np.array([])
    fpr = 0.01 if target_fpr is None else target_fpr
    thresholds, cal = normal_only_thresholds(normal, fpr)
    if method:
        raw = labelled_threshold(normal, abnormal, method, target_fnr)
        norm = Normalization(threshold=raw, scale=max(raw - float(np.median(normal)), 1e-6))
        thresholds = Thresholds(image=norm, pixel=norm)
        cal = cal.model_copy(update={"method": method, "confidence": None, "fit": {},
                                     "target_fpr": None,
                                     "target_fnr": target_fnr if method == "fnr" else None})
    th = thresholds.image.threshold
    measured_fpr = float(np.mean(normal >= th))
    measured_fnr = float(np.mean(abnormal < th)) if len(abnormal) else None
    cal = cal.model_copy(update={
        "abnormal_count": len(abnormal), "data_sha256": data_hash(normal_paths + abnormal_paths),
        "expected_fpr": fpr if not method else measured_fpr,
        "expected_fnr": measured_fnr, "measured_fpr": measured_fpr})
    manifest = bundle.manifest.model_copy(update={"thresholds": thresholds, "calibration": cal})
    save_manifest(bundle.path, manifest)
    warning = None if method else margin_warning(cal)
    if warning:
        print(f"warning: {warning}")
    return {"warning": warning,"threshold": th, "method": cal.method, "normal": len(normal), "abnormal": len(abnormal),
            "false_rejects_on_these_images": measured_fpr, "misses_on_these_images": measured_fnr}
