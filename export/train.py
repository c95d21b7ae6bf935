"""``edge-ad train``: normal images → trained model → ``RUN/checkpoint.pt`` + calibrated bundle."""
from __future__ import annotations

import inspect
import logging
import pickle
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from edge_ad.errors import EdgeAdError

from .bundle_writer import fold_map_normalization, write_bundle
from .data import data_hash, load_frames, load_images, normal_images, split_holdout, tiles_of
from .models.base import TrainSettings, create, families, family_class, from_config

log = logging.getLogger(__name__)



def _as_float_rgb(images_u8: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images_u8).permute(0, 3, 1, 2).float()
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def train(family: str, data: str | Path, out: str | Path, *, size: int = 256,
          steps: int | None = None, device: str = "cpu", seed: int = 0, channels: int = 3,
          name: str | None = None, target_fpr: float = 0.01, simplify: bool = False,
          backbone: str = "lite0", backbone_weights: str | None = None, autoencoder: bool = True,
          jitter: int = 0, tiling: dict | None = None) -> Path:
    """``tiling``: ``{overlap, frame, memory_mb}`` to train on tiles of full-resolution frames
    (``--tile``); the bundle then judges whole frames tiled (edge_ad/tiling.py)."""
    out = Path(out)
    torch.manual_seed(seed)
    np.random.seed(seed)
    if device == "cuda" and not torch.cuda.is_available():
        raise EdgeAdError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    if size % 32 or not 64 <= size <= 1024:
        raise EdgeAdError(f"--size {size}: use a multiple of 32 between 64 and 1024")
    paths = normal_images(data)
    train_paths, hold_paths = split_holdout(paths, seed)
    cls = family_class(family)
    settings = TrainSettings(size=size, steps=steps or cls.default_steps,
                             seed=seed, device=device, backbone=backbone,
                             backbone_weights=str(Path(backbone_weights).resolve()) if backbone_weights else None)
    extra = {"bank_size": settings.steps} if cls.bank_family else {}
    if family == "efficientad":
        extra["autoencoder"] = autoencoder
    elif not autoencoder:
        raise EdgeAdError("--no-autoencoder applies to --model efficientad only")
    if jitter:
        takes = [f for f in families() if "jitter" in inspect.signature(family_class(f)).parameters]
        if family not in takes or jitter < 0:
            raise EdgeAdError(f"--jitter {jitter}: a positive count, for a family that learns from "
                              f"jittered copies ({', '.join(takes)}), not {family}")
        extra["jitter"] = jitter
    try:
        model = create(family, size=size, backbone=settings.backbone,
                       backbone_weights=settings.backbone_weights, **extra)
    except (RuntimeError, OSError, pickle.UnpicklingError) as exc:  # not installed, missing, not this variant
        raise EdgeAdError(f"cannot load the {backbone} backbone: {exc}") from exc
    spec, hold_frames = None, None
    if tiling is None:
        train_u8 = load_images(train_paths, size, channels)
        hold_u8 = load_images(hold_paths, size, channels)
        print(f"training {family} on {len(train_paths)} normal images "
              f"({len(hold_paths)} held out for calibration), {settings.steps} steps, {size}px, {device}")
    else:
        from edge_ad.bundle import TilingSpec
        from edge_ad.tiling import tile_batch

        train_frames = load_frames(train_paths, tiling.get("frame"))
        hold_frames = load_frames(hold_paths, tiling.get("frame"))
        h, w = train_frames[0].shape[:2]
        if hold_frames[0].shape[:2] != (h, w):
            raise EdgeAdError(f"{hold_paths[0].name} is not {w}x{h} like the other training images")
        memory_mb = tiling.get("memory_mb", 1024)
        spec = TilingSpec(frame_width=w, frame_height=h, overlap=tiling.get("overlap", 0.25), memory_mb=memory_mb,
                          batch=tile_batch(size, memory_mb), resize_frames=tiling.get("frame") is not None)
        train_u8 = tiles_of(train_frames, size, spec.overlap, channels)
        hold_u8 = tiles_of(hold_frames, size, spec.overlap, channels)
        print(f"training {family} on {len(train_u8)} tiles of {len(train_paths)} {w}x{h} frames "
              f"({len(hold_paths)} frames held out for calibration), {size}px tiles overlapping "
              f"{spec.overlap:.0%}, {spec.batch} tiles an engine call, {settings.steps} steps, {device}")

    t0 = time.perf_counter()
    with tqdm(total=settings.steps, desc=f"train {family}", unit="step") as bar:
        def progress(step: int, loss: float) -> None:
            bar.update(step + 1 - bar.n)  # families report every step or every few
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

        stats = model.fit(_as_float_rgb(train_u8), settings, progress)
        bar.update(bar.total - bar.n)
    seconds = time.perf_counter() - t0
    model.to("cpu").eval()
    fold_map_normalization(model, hold_u8)
    if hasattr(model, "fit_fusion"):  # maps fused in units of their own normal spread
        model.fit_fusion(_as_float_rgb(train_u8), _as_float_rgb(hold_u8))
    out_of_fold = None
    if hasattr(model, "out_of_fold_scores"):  # memory banks: every training image, leave-one-out
        if spec is None:
            out_of_fold = model.out_of_fold_scores(_as_float_rgb(train_u8)).numpy()
            seen, unit = len(out_of_fold) + len(hold_u8), "images"
        else:  # a frame's tiles leave the bank together; its score is their maximum
            per_frame = len(train_u8) // len(train_frames)
            groups = torch.arange(len(train_u8)) // per_frame
            print(f"scoring the {len(train_frames)} training frames out-of-fold ({per_frame} tiles each) …")
            out_of_fold = model.out_of_fold_scores(_as_float_rgb(train_u8), groups).numpy()
            seen, unit = len(out_of_fold) + len(hold_frames), "frames"
        print(f"scored the {len(out_of_fold)} training {unit} leave-one-out: the threshold sees "
              f"all {seen} good {unit}")

    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.pt"
    digest = data_hash(paths)
    torch.save({"family": family, "config": model.config(), "state_dict": model.state_dict(),
                "settings": asdict(settings), "channels": channels, "name": name or Path(data).name,
                "holdout": [str(p) for p in hold_paths], "train_stats": stats,
                "data_sha256": digest, "image_count": len(paths),
                "out_of_fold_scores": None if out_of_fold is None else out_of_fold.tolist(),
                "tiling": None if spec is None else spec.model_dump(),
                "training_seconds": seconds}, ckpt)
    print("exporting and calibrating the bundle …")
    bundle = write_bundle(
        model, out / "bundle", name=name or Path(data).name, size=size, channels=channels,
        holdout_u8=hold_u8, target_fpr=target_fpr, simplify=simplify, out_of_fold=out_of_fold,
        provenance={"data_sha256": digest, "image_count": len(paths), "seed": seed,
                    "steps": settings.steps, "training_seconds": round(seconds, 1)},
        tiling=spec, holdout_frames=hold_frames)
    print(f"trained in {seconds:.0f} s; checkpoint {ckpt}; bundle {bundle}")
    return bundle


def load_checkpoint(path: str | Path):
    """Rebuild the trained module from a checkpoint (for re-export and parity checks)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    config = dict(ckpt["config"])
    if config.get("backbone_weights") and not Path(config["backbone_weights"]).is_file():
        # the checkpoint holds the backbone's weights itself; the file only seeded them
        config["backbone_weights"] = None
    model = from_config(ckpt["family"], config)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


def reexport(checkpoint: str | Path, out: str | Path, target_fpr: float = 0.01, simplify: bool = False) -> Path:
    """``edge-ad export``: a fresh, calibrated bundle from a checkpoint and its held-out images."""
    model, ckpt = load_checkpoint(checkpoint)
    size, channels = ckpt["settings"]["size"], ckpt["channels"]
    hold_paths = [Path(p) for p in ckpt["holdout"]]
    spec, hold_frames = None, None
    if ckpt.get("tiling"):  # a tiled run stays tiled: its frames, cut as in training
        from edge_ad.bundle import TilingSpec

        spec = TilingSpec(**ckpt["tiling"])
        hold_frames = load_frames(hold_paths, (spec.frame_width, spec.frame_height) if spec.resize_frames else None)
        hold_u8 = tiles_of(hold_frames, size, spec.overlap, channels)
    else:
        hold_u8 = load_images(hold_paths, size, channels)
    return write_bundle(
        model, Path(out), name=ckpt["name"], size=size, channels=channels, holdout_u8=hold_u8,
        tiling=spec, holdout_frames=hold_frames,
        target_fpr=target_fpr, simplify=simplify, out_of_fold=ckpt.get("out_of_fold_scores"),
        provenance={"data_sha256": ckpt["data_sha256"], "image_count": ckpt["image_count"],
                    "seed": ckpt["settings"]["seed"], "steps": ckpt["settings"]["steps"],
                    "training_seconds": round(ckpt["training_seconds"], 1)})
