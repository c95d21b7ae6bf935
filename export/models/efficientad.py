"""EfficientAD-style student–teacher and autoencoder on a frozen pretrained EfficientNet-Lite teacher.

The teacher's multi-scale features (stride 4, 8 and 16, brought to stride 8 and locally averaged)
are what "normal" looks like; a small convolutional student learns to predict them on normal
images only, with EfficientAD's hard-feature loss (only the hardest 0.1 % of feature errors are
trained on, so the student does not learn to imitate the teacher everywhere, anomalies included).
An autoencoder with a 1×1 bottleneck rebuilds the teacher's features from the whole image, and
the student's second half learns to predict the autoencoder: where they disagree, the image's
layout is not the normal one (logical anomalies). Two maps, student–teacher and
student–autoencoder, each upsampled and smoothed, standardized per pixel with the mean and
spread of normal maps at that location, quantile-normalized on its own, then averaged, all
inside the graph; the image score is the map's maximum.

Why per pixel: student and teacher pad differently at the image border, so their disagreement
there is systematically higher (on the demo wood, corners averaged 1.8x the centre and every
normal image had its maximum within 16 px of the border). Without the correction the image
score measures border noise: less sensitive in the middle, and false rejects at the corners.

Teacher features for the training set are computed once and cached: the teacher is frozen, so
recomputing them each step would only cost time.

Left out on purpose: EfficientAD's penalty, which trains the student to output nothing on
ImageNet images. Tried with scikit-image's bundled photographs standing in for ImageNet, it
raised image AUROC on the demo grass from 0.904 to 0.915, but on the demo video it rejected 73 of
192 good frames (0 without it): a student that refuses the unfamiliar also refuses a live
camera's frames. The autoencoder map, too, rises when the part's position varies (an
untriggered, moving line); ``autoencoder=False`` (`train --no-autoencoder`) keeps only the
student–teacher map for such lines and for plain textures.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..backbone import Teacher
from .base import MapModel, TrainSettings, gradient_steps, register

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


class AutoEncoder(nn.Module):
    """EfficientAD's autoencoder: the whole image squeezed through a 1×1 bottleneck of
    ``latent`` numbers, then decoded to the teacher's feature map (stride 8). Too narrow to copy
    local detail, it learns the global layout of a normal part, so a part that is locally fine
    but wrongly arranged (missing, swapped, misplaced) is decoded wrong: the logical anomalies a
    patch model cannot see. Upsampling is Resize to fixed sizes + 3×3 convolution with explicit
    padding (no transposed convolution)."""

    def __init__(self, size: int, out_channels: int, latent: int = 64):
        super().__init__()
        def down(cin, cout):
            return [nn.Conv2d(cin, cout, 4, 2, 1), nn.ReLU(inplace=True)]

        # size → size/32 in five stride-2 steps, then one convolution over what is left → 1×1
        self.encoder = nn.Sequential(*down(3, 32), *down(32, 32), *down(32, 64), *down(64, 64),
                                     *down(64, 64), nn.Conv2d(64, latent, size // 32))
        target = size // 8
        self.sizes = [max(1, target // 8), max(1, target // 4), max(1, target // 2), target]
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Conv2d(latent if i == 0 else 64, 64, 3, 1, 1), nn.ReLU(inplace=True))
            for i in range(len(self.sizes)))
        self.head = nn.Sequential(nn.Conv2d(64, 64, 3, 1, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(64, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)
        for size, up in zip(self.sizes, self.ups):
            z = up(F.interpolate(z, size=(size, size), mode="bilinear", align_corners=False))
        return self.head(z)


def _jitter(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """EfficientAD's autoencoder augmentation: random brightness, contrast and saturation
    (each a factor in 0.8..1.2, one per image), on 0..255 RGB floats."""
    n = x.shape[0]
    f = 0.8 + 0.4 * torch.rand(n, 3, 1, 1, 1, generator=gen).to(x.device)
    x = x * f[:, 0]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + (x - mean) * f[:, 1]
    gray = x.mean(dim=1, keepdim=True)
    x = gray + (x - gray) * f[:, 2]
    return x.clamp(0, 255)


@register
class EfficientAD(MapModel):
    """Two maps, as in EfficientAD: the student–teacher difference (local, structural
    anomalies) and the student–autoencoder difference (logical anomalies), each standardized
    and quantile-normalized on its own, then averaged."""

    family = "efficientad"
    legacy_config = {"autoencoder": False}

    def __init__(self, size: int = 256, backbone: str = "lite0", backbone_weights: str | None = None,
                 student_width: int = 96, blur_sigma: float = 4.0, autoencoder: bool = True):
        super().__init__(size, blur_sigma, n_maps=2 if autoencoder else 1)
        self._config = dict(size=size, backbone=backbone, backbone_weights=backbone_weights,
                            student_width=student_width, blur_sigma=blur_sigma, autoencoder=autoencoder)
        self.teacher = Teacher(backbone, backbone_weights)
        c = self.teacher.channels
        # one student, two heads' worth of channels: the first c mimic the teacher, the rest
        # the autoencoder (without it, the student–teacher map alone)
        self.student = _student(2 * c if autoencoder else c, student_width)
        self.autoencoder = AutoEncoder(size, c) if autoencoder else None
        self.register_buffer("t_mean", torch.zeros(1, c, 1, 1))
        self.register_buffer("t_std", torch.ones(1, c, 1, 1))

    def config(self) -> dict:
        return dict(self._config)

    def _teacher_norm(self, x: torch.Tensor) -> torch.Tensor:
        return (self.teacher(x) - self.t_mean) / self.t_std

    def patch_maps(self, x: torch.Tensor) -> torch.Tensor:
        c = self.teacher.channels
        with torch.no_grad():
            t = self._teacher_norm(x)
        normalized = self.teacher.backbone.normalize(x)
        s = self.student(normalized)
        st = ((t - s[:, :c]) ** 2).mean(dim=1, keepdim=True)
        if self.autoencoder is None:
            return st
        stae = ((self.autoencoder(normalized) - s[:, c:]) ** 2).mean(dim=1, keepdim=True)
        return torch.cat([st, stae], dim=1)

    def fit(self, images, settings: TrainSettings, progress=None) -> dict:
        device = torch.device(settings.device)
        self.to(device)
        c = self.teacher.channels
        # The autoencoder must learn layout, not exact shades: EfficientAD trains it on
        # colour-jittered images. One jittered copy of each image, made once, with its teacher
        # features cached like the originals': a teacher pass per step would triple the
        # training time on a CPU (measured 0.9 s against 0.25 s per step).
        pool = torch.cat([images, _jitter(images, torch.Generator().manual_seed(settings.seed + 1))])
        with torch.no_grad():
            feats = torch.cat([self.teacher(pool[i:i + 8].to(device)) for i in range(0, len(pool), 8)])
            self.t_mean.copy_(feats[:len(images)].mean(dim=(0, 2, 3), keepdim=True))
            self.t_std.copy_(feats[:len(images)].std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6))
            targets = (feats - self.t_mean) / self.t_std
        trainable = [p for n, p in self.named_parameters() if not n.startswith("teacher.")]
        opt = torch.optim.Adam(trainable, lr=settings.lr, weight_decay=1e-5)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(0.8 * settings.steps)], 0.1)
        self.train()
        self.teacher.eval()

        def loss_of(idx):
            x = self.teacher.backbone.normalize(pool[idx].to(device))
            s = self.student(x)
            err = (targets[idx] - s[:, :c]) ** 2
            # Hard-feature loss: train only on errors above the 99.9th percentile.
            d_hard = torch.quantile(err.detach().flatten()[:16_000_000], 0.999)
            loss_st = err[err >= d_hard].mean()
            # The autoencoder rebuilds the teacher's features; the student's second half
            # learns to predict the autoencoder, its mistakes included, on normal images only.
            if self.autoencoder is None:
                return loss_st
            ae = self.autoencoder(x)
            loss_ae = ((targets[idx] - ae) ** 2).mean()
            loss_stae = ((ae - s[:, c:]) ** 2).mean()
            return loss_st + loss_ae + loss_stae

        loss_value = gradient_steps(opt, settings, len(pool), loss_of, progress, sched)
        self.eval()
        self.fit_pixel_stats(images, device)
        return {"final_loss": loss_value}
