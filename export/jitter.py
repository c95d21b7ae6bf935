"""Camera jitter for training images: copies moved, turned and re-exposed as a line camera
moves them between frames.

Why: a normalizing flow learns the density of exactly the pixels it was shown. Trained on a
few dozen stills, it rates a vibrating camera's good frames (shifted by fractions of a pixel,
resampled) as unlikely. Measured on the torch module (docs/benchmarks.md, 2026-12-04): on the
demo gravel line video, 179 of 192 good frames scored above the highest held-out still without
copies, 18 of 192 with three, every defect frame still above it. The price: the copies are
resampled, so the flow also learns a slightly blurred texture as normal; on the hard benchmark
fabric fell from 0.857 to 0.787 image AUROC, grass rose from 0.769 to 0.797 and wood from
0.704 to 0.716. So it is ``--jitter N``, off by default. Memory banks do not need it: their
nearest neighbour already tolerates a shift.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_IMAGES = 512  # originals and copies together: tiled training already has shifted views


def jittered(images: torch.Tensor, copies: int, seed: int = 0, shift_px: float = 4.0,
             degrees: float = 3.0, gain: float = 0.05) -> torch.Tensor:
    """``images`` (N, 3, H, W) float 0..255, followed by ``copies`` jittered copies of each:
    a random sub-pixel shift up to ``shift_px``, a turn up to ``degrees``, an exposure gain up
    to ±``gain``, resampled bilinearly with mirrored borders (seeded). Fewer copies are made
    where the total would pass MAX_IMAGES."""
    n = len(images)
    copies = max(0, min(copies, MAX_IMAGES // max(n, 1) - 1))
    if copies == 0:
        return images
    gen = torch.Generator().manual_seed(seed)
    out = [images]
    for _ in range(copies):
        angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(degrees)
        # affine_grid's translation is in units of half the image
        move = (torch.rand(n, 2, generator=gen) * 2 - 1) * shift_px / (images.shape[-1] / 2)
        cos, sin = angle.cos(), angle.sin()
        theta = torch.stack([torch.stack([cos, -sin, move[:, 0]], 1), torch.stack([sin, cos, move[:, 1]], 1)], 1)
        grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
        moved = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        exposure = 1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * gain
        out.append((moved * exposure.to(images)).clamp(0, 255))
    return torch.cat(out)
