"""Turn a trained model into a calibrated, parity-checked bundle.

Order matters: map normalization is folded into the graph first, then the graph is exported,
then the *exported* model is run through the real engine (ONNX Runtime) to set thresholds, so
the thresholds belong to exactly the artefact that will be served.
"""
from __future__ import annotations

import datetime as dt
import logging
import platform
import shutil
from pathlib import Path

import numpy as np
import torch

from edge_ad import __version__
from edge_ad.bundle import (InputSpec, Manifest, Normalization, Provenance, Thresholds, load_bundle,
                            save_manifest, sha256_file)
from edge_ad.engines import create_engine
from edge_ad.errors import EdgeAdError
from edge_ad.parity import compare
from edge_ad.decision.quality import reference_stats

from .calibrate import margin_warning, normal_only_thresholds
from .onnx_export import BundleGraph, export_onnx

log = logging.getLogger(__name__)


def torch_outputs(model, images_u8: np.ndarray, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """What the trained module itself says, through the same uint8 wrapper the graph was
    exported from: the reference of the parity gate."""
    graph = BundleGraph(model.eval(), channels)
    maps, scores = [], []
    with torch.no_grad():
        for i in range(0, len(images_u8), 8):
            m, s = graph(torch.from_numpy(images_u8[i:i + 8]))
            maps.append(m.numpy())
            scores.append(s.numpy())
    return np.concatenate(maps), np.concatenate(scores)


def _engine_outputs(bundle, images_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with create_engine(bundle, providers=["CPUExecutionProvider"]) as engine:
        outs = [engine.infer(images_u8[i:i + 8]) for i in range(0, len(images_u8), 8)]
    return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])


def _save_calibration_images(out: Path, images_u8: np.ndarray) -> None:
    """The held-out normal images, losslessly, at model size: what INT8 calibration and
    `edge-ad verify` run on where the training data is not at hand (on the device)."""
    import cv2

    from edge_ad.engines.variants import CALIBRATION_DIR

    folder = out / CALIBRATION_DIR
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    for i, image in enumerate(images_u8):
        bgr = image[:, :, 0] if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / f"normal_{i:03d}.png"), bgr)


def fold_map_normalization(model, holdout_u8: np.ndarray) -> None:
    """Map statistics of held-out normal images into the module (before it is saved/exported)."""
    holdout = torch.from_numpy(holdout_u8).permute(0, 3, 1, 2).float()
    if holdout.shape[1] == 1:
        holdout = holdout.expand(-1, 3, -1, -1)
    model.set_map_normalization(model.raw_maps(holdout))


def _frame_scores(bundle, frames: list[np.ndarray], spec) -> np.ndarray:
    """A tiled bundle's held-out frames through the one tiling every path uses: frame scores."""
    from edge_ad.imageio import to_model_input
    from edge_ad.tiling import score_tiled

    channels, tile = bundle.manifest.input.channels, bundle.manifest.input.height
    with create_engine(bundle, providers=["CPUExecutionProvider"]) as engine:
        return np.array([score_tiled(engine.infer, to_model_input(f, *f.shape[:2], channels), tile,
                                     spec.overlap, spec.batch)[1] for f in frames])


def write_bundle(model, out: Path, *, name: str, size: int, channels: int,
                 holdout_u8: np.ndarray, provenance: dict, target_fpr: float = 0.01,
                 simplify: bool = False, out_of_fold=None, tiling=None, holdout_frames=None) -> Path:
    """``model`` must already carry its map normalization (see ``fold_map_normalization``).
    ``out_of_fold``: raw scores of the training images scored out-of-fold by the torch module
    (memory-bank families), calibrated on together with the held-out images' graph scores.
    ``tiling`` (a TilingSpec) with ``holdout_frames``: a tiled bundle, whose threshold is set on
    the held-out frames' scores (the maximum over their tiles) and the training frames' scores
    out-of-fold (``out_of_fold``, one per frame); ``holdout_u8`` are the held-out frames' tiles,
    which the parity gate and the calibration folder use."""
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = export_onnx(model, size, channels, out / "model.onnx", simplify=simplify)

    cfg = model.config()
    placeholder = Normalization(threshold=1.0, scale=1.0)
    manifest = Manifest(
        name=name, family=model.family, backbone=cfg.get("backbone"),
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        input=InputSpec(height=size, width=size, channels=channels,
                        color="GRAY" if channels == 1 else "RGB"),
        thresholds=Thresholds(image=placeholder, pixel=placeholder), tiling=tiling,
        provenance=Provenance(
            onnx_sha256=sha256_file(onnx_path),
            versions={"edge_ad": __version__, "torch": torch.__version__,
                      "python": platform.python_version()},
            **provenance),
    )
    save_manifest(out, manifest)
    _save_calibration_images(out, holdout_u8)
    engine_out = _engine_outputs(load_bundle(out), holdout_u8)
    extra = np.asarray(out_of_fold if out_of_fold is not None else [], np.float64)
    normal = engine_out[1] if tiling is None else _frame_scores(load_bundle(out), holdout_frames, tiling)
    thresholds, calibration = normal_only_thresholds(np.r_[normal, extra], target_fpr,
                                                     out_of_fold=len(extra))
    calibration.data_sha256 = provenance.get("data_sha256")
    # the parity gate of `edge-ad verify`: ONNX Runtime (reference) against the torch module
    parity = compare("torch", "fp32", engine_out, torch_outputs(model, holdout_u8, channels),
                     thresholds.image.threshold, thresholds.image.scale)
    manifest = manifest.model_copy(update={
        "thresholds": thresholds, "calibration": calibration,
        "parity": {"torch": parity.record()},
        "image_stats": reference_stats(list(holdout_u8))})
    save_manifest(out, manifest)
    warning = margin_warning(calibration)
    if warning:
        log.warning("%s", warning)
        print(f"warning: {warning}")
    if not parity.passed:
        rejected = out.with_name(out.name + ".failed-parity")
        shutil.rmtree(rejected, ignore_errors=True)
        out.rename(rejected)  # nothing deployable is left where the bundle was expected
        raise EdgeAdError(f"parity gate failed: {'; '.join(parity.reasons)}; the bundle was moved "
                          f"to {rejected} for inspection and must not be deployed")
    return out
