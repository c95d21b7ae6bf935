"""FastFlow-style 2D normalizing flow on the frozen pretrained teacher features.

The flow maps each location's feature vector (stride 8, the teacher's multi-scale patch
description) to a standard normal variable through affine coupling blocks whose subnets are
small convolutions, so neighbouring locations inform each other (FastFlow's 2D flow). Trained by
maximum likelihood on normal images; a location's anomaly is its negative log-likelihood.

Written for export: convolutions with explicit integer padding (no ``padding="same"``), the
channel permutation between blocks as a fixed 1×1 convolution (a permutation matrix: no Gather
or flip), the scale clamped with tanh; every op exists in ONNX opset 17 and TensorRT. The map is
log(1 + NLL per channel): see ``patch_map``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import MapModel, TrainSettings, gradient_steps, register
from ..backbone import Teacher
from ..jitter import jittered

SCALE_CLAMP = 2.0  # |log s| ≤ 2: keeps the flow stable with few training images


class Coupling(nn.Module):
    """y_b = x_b · exp(s(x_a)) + t(x_a); log|det| = Σ s(x_a). Then a fixed channel permutation."""

    def __init__(self, channels: int, hidden: int, kernel: int, seed: int):
        super().__init__()
        self.half = channels // 2
        pad = kernel // 2
        self.subnet = nn.Sequential(
            nn.Conv2d(self.half, hidden, kernel, padding=pad), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 2 * (channels - self.half), kernel, padding=pad))
        nn.init.zeros_(self.subnet[-1].weight)  # start as the identity: stable first steps
        nn.init.zeros_(self.subnet[-1].bias)
        order = torch.randperm(channels, generator=torch.Generator().manual_seed(seed))
        perm = torch.zeros(channels, channels, 1, 1)
        perm[torch.arange(channels), order] = 1.0
        self.register_buffer("perm", perm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xa, xb = x[:, :self.half], x[:, self.half:]
        s, t = self.subnet(xa).chunk(2, dim=1)
        s = SCALE_CLAMP * torch.tanh(s / SCALE_CLAMP)
        y = torch.cat([xa, xb * torch.exp(s) + t], dim=1)
        return F.conv2d(y, self.perm), s.sum(dim=1, keepdim=True)


@register
class FastFlow(MapModel):
    family = "fastflow"
    legacy_config = {"jitter": 0}  # checkpoints from before the jittered copies

    def __init__(self, size: int = 256, backbone: str = "lite0", backbone_weights: str | None = None,
                 blocks: int = 6, hidden: int = 128, blur_sigma: float = 4.0, jitter: int = 0):
        """``jitter``: camera-jittered copies of each training image the flow also learns
        from (export/jitter.py): without them a vibrating camera's good frames look unlikely."""
        super().__init__(size, blur_sigma)
        self._config = dict(size=size, backbone=backbone, backbone_weights=backbone_weights,
                            blocks=blocks, hidden=hidden, blur_sigma=blur_sigma, jitter=jitter)
        self.jitter = jitter
        self.teacher = Teacher(backbone, backbone_weights)
        c = self.teacher.channels
        self.register_buffer("f_mean", torch.zeros(1, c, 1, 1))
        self.register_buffer("f_std", torch.ones(1, c, 1, 1))
        # kernels alternate 3×3 and 1×1 as in FastFlow: context, then per-location mixing
        self.flow = nn.ModuleList(Coupling(c, hidden, 3 if i % 2 == 0 else 1, seed=i) for i in range(blocks))

    def config(self) -> dict:
        return dict(self._config)

    def _nll(self, features: torch.Tensor) -> torch.Tensor:
        """Per-location negative log-likelihood (up to a constant), (N, 1, h, w)."""
        z, log_det = (features - self.f_mean) / self.f_std, 0.0
        for block in self.flow:
            z, ld = block(z)
            log_det = log_det + ld
        return 0.5 * (z * z).sum(dim=1, keepdim=True) - log_det

    def patch_map(self, x: torch.Tensor) -> torch.Tensor:
        # Per channel, then log: far out of distribution the NLL grows by orders of magnitude
        # (measured: 2e7 on a defect, 0.04 on good wood), where float32 loses the 1e-4 the
        # parity gate asks for; the log keeps the ranking and the precision.
        return torch.log1p(F.relu(self._nll(self.teacher(x)) / self.teacher.channels))

    def fit_feature_stats(self, feats: torch.Tensor) -> None:
        """Each channel's mean and spread over the good images' features, which the flow's
        input is standardized by (bench/position_probe.py measures per-position ones instead)."""
        self.f_mean.copy_(feats.mean(dim=(0, 2, 3), keepdim=True))
        self.f_std.copy_(feats.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6))

    def fit(self, images, settings: TrainSettings, progress=None) -> dict:
        device = torch.device(settings.device)
        self.to(device)
        self.teacher.eval()
        images = jittered(images, self.jitter, settings.seed)
        with torch.no_grad():
            feats = torch.cat([self.teacher(images[i:i + 8].to(device)) for i in range(0, len(images), 8)])
        self.fit_feature_stats(feats)
        opt = torch.optim.Adam(self.flow.parameters(), lr=settings.lr, weight_decay=1e-5)
        loss_value = gradient_steps(opt, settings, len(feats),
                                    lambda idx: self._nll(feats[idx]).mean() / feats.shape[1], progress)
        self.eval()
        self.fit_pixel_stats(images, device)
        return {"final_loss": loss_value}
