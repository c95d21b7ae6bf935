"""Is the nearest-neighbour floor limited by how it scores, or by the features it scores? Each
variant changes one thing of the floor (a random 4096-patch bank, one neighbour, per-pixel
standardization) and is scored on the hard benchmark's tuning surfaces:

    python bench/feature_study.py --data var/hard --variants joint full white0.01 white0.1 joint+st4 s8+s16 s4own joint-agg5

Variants: ``joint`` (the floor's features: stages at stride 4, 8, 16 joined at stride 8, 3x3
mean), ``full`` (every training patch in the bank, not 4096), ``whiteS`` (PCA-whitened features,
eigenvalues shrunk by S times their mean, then the floor), ``joint+st4`` (stage 4 joined too),
``s8+s16`` (no stride-4 stage), ``s4own`` (scored at stride 4), ``joint-agg5`` (5x5 mean).
Torch only, no export: it ranks directions; bench/quality.py measures the bundle that ships.
Here the per-pixel statistics come from the training maps scored leave-one-image-out (the
bundle uses in-sample maps), so the figures differ from the knn bundle's by a few thousandths.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_ad.evaluation.dataset import test_set  # noqa: E402
from edge_ad.evaluation.metrics import auroc  # noqa: E402
from export.backbone import load_backbone  # noqa: E402
from export.data import load_images, normal_images, split_holdout  # noqa: E402
from export.models.base import GaussianBlur  # noqa: E402

TUNE = ["wood", "grass", "fabric", "brushed", "beans", "board"]  # moss stays held out
BANK = 4096


def stage_features(surface: Path, cache: Path) -> dict:
    """Lite0 stages 1-4 (stride 4, 8, 16, 16) of the training, in fit order, and test images."""
    if cache.is_file():
        return torch.load(cache)
    backbone = load_backbone("lite0")
    train_p, _ = split_holdout(normal_images(surface), 0)
    samples = test_set(surface)
    out = {"labels": [s.defect for s in samples]}
    for split, paths in (("train", train_p), ("test", [s.path for s in samples])):
        x = torch.from_numpy(load_images(paths, 256, 3)).permute(0, 3, 1, 2).float()
        parts = []
        with torch.no_grad():
            for i in range(0, len(x), 16):
                f = backbone.features(backbone.normalize(x[i:i + 16]), upto_stage=4)
                parts.append([f[s].half() for s in (1, 2, 3, 4)])
        out[split] = [torch.cat([p[k] for p in parts]) for k in range(4)]
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, cache)
    return out


def features(stages: list[torch.Tensor], variant: str) -> torch.Tensor:
    s4, s8, s16, s16b = (s.float() for s in stages)
    up = lambda f, k: F.interpolate(f, scale_factor=float(k), mode="bilinear", align_corners=False)  # noqa: E731
    mean = lambda f, k: F.avg_pool2d(f, k, stride=1, padding=k // 2, count_include_pad=False)  # noqa: E731
    joined = torch.cat([F.avg_pool2d(s4, 2), s8, up(s16, 2)], 1)
    if variant == "joint+st4":
        return mean(torch.cat([joined, up(s16b, 2)], 1), 3)
    if variant == "s8+s16":
        return mean(torch.cat([s8, up(s16, 2)], 1), 3)
    if variant == "s4own":
        return mean(torch.cat([s4, up(s8, 2), up(s16, 4)], 1), 3)
    return mean(joined, 5 if variant == "joint-agg5" else 3)


def nearest(q: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.cdist(q[i:i + 4096], bank).amin(1) for i in range(0, len(q), 4096)])


def image_maps(d: torch.Tensor, n: int, h: int, w: int, blur: GaussianBlur) -> torch.Tensor:
    m = F.interpolate(d.reshape(n, 1, h, w), size=(256, 256), mode="bilinear", align_corners=False)
    return blur(m)[:, 0]


def score_surface(data: dict, variant: str, seed: int = 0) -> np.ndarray:
    """Test image scores: the maximum of the per-pixel standardized map."""
    blur = GaussianBlur(4.0)
    tr, te = features(data["train"], variant), features(data["test"], variant)
    n, c, h, w = tr.shape
    ftr, fte = (f.permute(0, 2, 3, 1).reshape(-1, c) for f in (tr, te))
    mu, sd = ftr.mean(0), ftr.std(0).clamp_min(1e-6)
    ftr, fte = (ftr - mu) / sd, (fte - mu) / sd
    if variant.startswith("white"):
        shrink = float(variant[5:])
        eigval, eigvec = torch.linalg.eigh(torch.cov(ftr.T))
        whiten = eigvec / (eigval.clamp_min(0) + shrink * eigval.mean()).sqrt()
        ftr, fte = ftr @ whiten, fte @ whiten
    in_bank = torch.ones(len(ftr), dtype=torch.bool)
    if variant != "full":
        in_bank = torch.zeros(len(ftr), dtype=torch.bool)
        in_bank[torch.randperm(len(ftr), generator=torch.Generator().manual_seed(seed))[:BANK]] = True
    test_maps = image_maps(nearest(fte, ftr[in_bank]), len(te), h, w, blur)
    origin = torch.arange(n).repeat_interleave(h * w)
    train_maps = image_maps(torch.cat([nearest(ftr[origin == i], ftr[in_bank & (origin != i)]) for i in range(n)]),
                            n, h, w, blur)
    smooth = GaussianBlur(8.0)
    pix_mean = smooth(train_maps.mean(0)[None, None])[0, 0]
    pix_std = smooth(train_maps.std(0)[None, None])[0, 0]
    pix_std = torch.maximum(pix_std, pix_std.mean() * 0.1)
    return ((test_maps - pix_mean) / pix_std).amax(dim=(1, 2)).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="var/hard")
    ap.add_argument("--surfaces", nargs="*", default=TUNE)
    ap.add_argument("--variants", nargs="*", default=["joint", "full", "white0.01", "joint+st4"])
    ap.add_argument("--cache", default="var/feature_study")
    args = ap.parse_args()
    table: dict[str, dict[str, dict[str, float]]] = {v: {} for v in args.variants}
    for surface in args.surfaces:
        data = stage_features(Path(args.data) / surface, Path(args.cache) / f"{surface}.pt")
        labels = np.array(data["labels"])
        y = labels != "good"
        for variant in args.variants:
            scores = score_surface(data, variant)
            row = {"image": auroc(y, scores)}
            for kind in sorted(set(labels) - {"good"}):
                keep = (labels == "good") | (labels == kind)
                row[kind] = auroc(y[keep], scores[keep])
            table[variant][surface] = row
        print(f"{surface}: " + ", ".join(f"{v} {table[v][surface]['image']:.3f}" for v in args.variants), flush=True)
    kinds = sorted({k for per in table.values() for r in per.values() for k in r} - {"image"})
    print("\n| variant | mean image AUROC | " + " | ".join(args.surfaces) + " | " + " | ".join(kinds) + " |")
    print("|---|---|" + "---|" * (len(args.surfaces) + len(kinds)))
    for variant, per in table.items():
        fam = [statistics.mean(r[k] for r in per.values() if k in r) for k in kinds]
        print(f"| {variant} | {statistics.mean(r['image'] for r in per.values()):.3f} | "
              + " | ".join(f"{per[s]['image']:.3f}" for s in args.surfaces) + " | "
              + " | ".join(f"{v:.3f}" for v in fam) + " |")


if __name__ == "__main__":
    main()
