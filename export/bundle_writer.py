"""Turn a trained model into a calibrated, parity-checked bundle.

Order matters: map normalization is folded into the graph first, then the graph is exported,
then the *exported* model is run through the real engine (ONNX Runtime) to set thresholds, so
the thresholds belong to exactly the artefact that will be served.
"""
from __future__ import annotations

import datetime as dt
import platform
from pathlib import Path

import numpy as np
import torch

from edge_ad import __version__
from edge_ad.bundle import (InputSpec, Manifest, Normalization, Provenance, Thresholds, load_bundle,
                            save_manifest, sha256_file)
from edge_ad.engines import create_engine
from edge_ad.errors import EdgeAdError
from edge_ad.quality import reference_stats

from .calibrate import normal_only_thresholds
from .onnx_export import BundleGraph, export_onnx

SCORE_RTOL = 1e-4  # fp32 parity: |Δ score| ≤ 1e-4 relative


def _torch_outputs(model, images_u8: np.ndarray, channels: int) -> tuple[np.ndarray, np.ndarray]:
    graph = BundleGraph(model.eval(), channels)
    maps, scores = [], []
    with torch.no_grad():
        for i in range(0, len(images_u8), 8):
            m, s = graph(torch.from_numpy(images_u8[i:i + 8]))
            maps.append(m.numpy())
            scores.append(s.numpy())
    return np.concatenate(maps), np.concatenate(scores)


def _engine_outputs(bundle, images_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with create_engine(bundle) as engine:
        outs = [engine.infer(images_u8[i:i + 8]) for i in range(0, len(images_u8), 8)]
    return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])


def parity_report(torch_out, engine_out, threshold: float) -> dict:
    (tm, ts), (em, es) = torch_out, engine_out
    rel = np.abs(ts - es) / np.maximum(np.abs(ts), 1e-6)
    return {
        "parity_max_abs_map_diff": float(np.abs(tm - em).max()),
        "parity_mean_abs_map_diff": float(np.abs(tm - em).mean()),
        "parity_max_rel_score_diff": float(rel.max()),
        "parity_verdict_flips": float(np.sum((ts >= threshold) != (es >= threshold))),
    }


def fold_map_normalization(model, holdout_u8: np.ndarray) -> None:
    """Map statistics of held-out normal images into the module (before it is saved/exported)."""
    holdout = torch.from_numpy(holdout_u8).permute(0, 3, 1, 2).float()
    if holdout.shape[1] == 1:
        holdout = holdout.expand(-1, 3, -1, -1)
    model.set_map_normalization(model.raw_maps(holdout))


def write_bundle(model, out: Path, *, name: str, size: int, channels: int,
                 holdout_u8: np.ndarray, provenance: dict, target_fpr: float = 0.01) -> Path:
    """``model`` must already carry its map normalization (see ``fold_map_normalization``)."""
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = export_onnx(model, size, channels, out / "model.onnx")

    cfg = model.config()
    placeholder = Normalization(threshold=1.0, scale=1.0)
    manifest = Manifest(
        name=name, family=model.family, backbone=cfg.get("backbone"),
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        input=InputSpec(height=size, width=size, channels=channels,
                        color="GRAY" if channels == 1 else "RGB"),
        thresholds=Thresholds(image=placeholder, pixel=placeholder),
        provenance=Provenance(
            onnx_sha256=sha256_file(onnx_path),
            versions={"edge_ad": __version__, "torch": torch.__version__,
                      "python": platform.python_version()},
            **provenance),
    )
    save_manifest(out, manifest)
    engine_out = _engine_outputs(load_bundle(out), holdout_u8)
    thresholds, calibration = normal_only_thresholds(engine_out[1], target_fpr)
    calibration.data_sha256 = provenance.get("data_sha256")
    parity = parity_report(_torch_outputs(model, holdout_u8, channels), engine_out,
                           thresholds.image.threshold)
    manifest = manifest.model_copy(update={"thresholds": thresholds, "calibration": calibration,
                                           "validation": parity,
                                           "image_stats": reference_stats(list(holdout_u8))})
    save_manifest(out, manifest)
    if parity["parity_verdict_flips"] or parity["parity_max_rel_score_diff"] > SCORE_RTOL:
        raise EdgeAdError(f"parity gate failed: ONNX Runtime scores differ from torch "
                          f"({parity}); the bundle in {out} must not be deployed")
    return out
