"""EfficientAD-style student–teacher on a frozen pretrained EfficientNet-Lite teacher.

The teacher's multi-scale features (stride 4, 8 and 16, brought to stride 8 and locally averaged)
are what "normal" looks like; a small convolutional student learns to predict them on normal
images only, with EfficientAD's hard-feature loss (only the hardest 0.1 % of feature errors are
trained on, so the student does not learn to imitate the teacher everywhere, anomalies included).
The map is the squared student–teacher difference, upsampled and smoothed, then standardized
per pixel with the mean and spread of normal maps at that location, then quantile-normalized,
all inside the graph; the image score is the map's maximum.

Why per pixel: student and teacher pad differently at the image border, so their disagreement
there is systematically higher (on the demo wood, corners averaged 1.8x the centre and every
normal image had its maximum within 16 px of the border). Without the correction the image
score measures border noise: less sensitive in the middle, and false rejects at the corners.

Teacher features for the training set are computed once and cached: the teacher is frozen and
training sees no augmentation, so recomputing them each step would only cost time.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..backbone import load_backbone
from .base import MapModel, TrainSettings, gradient_steps, register

TEACHER_STAGES = (1, 2, 3)  # EfficientNet-Lite stages at stride 4, 8, 16


class Teacher(nn.Module):
    def __init__(self, variant: str, weights: str | None):
        super().__init__()
        self.backbone = load_backbone(variant, weights)
        self.channels = sum(self.backbone.stage_channels[i] for i in TEACHER_STAGES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone.features(self.backbone.normalize(x), upto_stage=max(TEACHER_STAGES))
        s4, s8, s16 = (feats[i] for i in TEACHER_STAGES)
        # Static factors (input size is a multiple of 32): plain AveragePool/Resize in ONNX.
        s4 = F.avg_pool2d(s4, 2)
        s16 = F.interpolate(s16, scale_factor=2.0, mode="bilinear", align_corners=False)
        f = torch.cat([s4, s8, s16], dim=1)
        # Neighbourhood aggregation: each location describes a small patch, not one pixel.
        return F.avg_pool2d(f, 3, stride=1, padding=1, count_include_pad=False)


def _student(out_channels: int, width: int = 96) -> nn.Sequential:
    """A patch description network: stride 8, receptive field about 60 px."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(inplace=True),
        nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(inplace=True),
        nn.Conv2d(64, width, 3, 2, 1), nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, 1, 2, dilation=2), nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, 1, 1), nn.ReLU(inplace=True),
        nn.Conv2d(width, out_channels, 1),
    )


@register
class EfficientAD(MapModel):
    family = "efficientad"

    def __init__(self, size: int = 256, backbone: str = "lite0", backbone_weights: str | None = None,
                 student_width: int = 96, blur_sigma: float = 4.0):
        super().__init__(size, blur_sigma)
        self._config = dict(size=size, backbone=backbone, backbone_weights=backbone_weights,
                            student_width=student_width, blur_sigma=blur_sigma)
        self.teacher = Teacher(backbone, backbone_weights)
        c = self.teacher.channels
        self.student = _student(c, student_width)
        self.register_buffer("t_mean", torch.zeros(1, c, 1, 1))
        self.register_buffer("t_std", torch.ones(1, c, 1, 1))

    def config(self) -> dict:
        return dict(self._config)

    def _teacher_norm(self, x: torch.Tensor) -> torch.Tensor:
        return (self.teacher(x) - self.t_mean) / self.t_std

    def patch_map(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            t = self._teacher_norm(x)
        s = self.student(self.teacher.backbone.normalize(x))
        return ((t - s) ** 2).mean(dim=1, keepdim=True)

    def fit(self, images, settings: TrainSettings, progress=None) -> dict:
        device = torch.device(settings.device)
        self.to(device)
        with torch.no_grad():
            feats = torch.cat([self.teacher(images[i:i + 8].to(device)) for i in range(0, len(images), 8)])
            self.t_mean.copy_(feats.mean(dim=(0, 2, 3), keepdim=True))
            self.t_std.copy_(feats.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6))
            targets = (feats - self.t_mean) / self.t_std
        opt = torch.optim.Adam(self.student.parameters(), lr=settings.lr, weight_decay=1e-5)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(0.8 * settings.steps)], 0.1)
        self.student.train()

        def loss_of(idx):
            s = self.student(self.teacher.backbone.normalize(images[idx].to(device)))
            err = (targets[idx] - s) ** 2
            # Hard-feature loss: train only on errors above the 99.9th percentile.
            d_hard = torch.quantile(err.detach().flatten()[:16_000_000], 0.999)
            return err[err >= d_hard].mean()

        loss_value = gradient_steps(opt, settings, len(images), loss_of, progress, sched)
        self.student.eval()
        self.fit_pixel_stats(images, device)
        return {"final_loss": loss_value}
