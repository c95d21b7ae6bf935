"""Reverse Distillation: a frozen pretrained encoder, a one-class bottleneck, a reverse decoder.

The encoder is the EfficientNet-Lite teacher (stages at stride 4, 8 and 16). The one-class
bottleneck (OCBE) fuses the three scales into one compact embedding at stride 32, too small to
carry anomalies through; the decoder rebuilds each encoder scale from it, trained on normal
images only to maximize the cosine similarity per location. Where the decoder cannot rebuild
the encoder's features, the part is abnormal: the map is 1 − cos at each scale, brought to
stride 8 and summed. Upsampling is nearest + 3×3 convolution with explicit padding (no
transposed convolution, no ``padding="same"``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import MapModel, TrainSettings, gradient_steps, register
from .efficientad import TEACHER_STAGES, Teacher


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Bottleneck(nn.Module):
    """Multi-scale fusion to one low-resolution embedding (stride 32)."""

    def __init__(self, channels: tuple[int, int, int], width: int):
        super().__init__()
        c4, c8, c16 = channels
        self.from4 = nn.Sequential(_conv(c4, c4, 2), _conv(c4, c4, 2))  # stride 4 → 16
        self.from8 = _conv(c8, c8, 2)  # 8 → 16
        self.fuse = nn.Sequential(_conv(c4 + c8 + c16, width, 2), _conv(width, width))  # 16 → 32

    def forward(self, f4, f8, f16):
        return self.fuse(torch.cat([self.from4(f4), self.from8(f8), f16], dim=1))


class Up(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(_conv(cin, cout), nn.Conv2d(cout, cout, 3, 1, 1))

    def forward(self, x):
        return self.body(F.interpolate(x, scale_factor=2.0, mode="nearest"))


@register
class ReverseDistillation(MapModel):
    family = "rd"

    def __init__(self, size: int = 256, backbone: str = "lite0", backbone_weights: str | None = None,
                 width: int = 256, blur_sigma: float = 4.0):
        super().__init__(size, blur_sigma)
        self._config = dict(size=size, backbone=backbone, backbone_weights=backbone_weights,
                            width=width, blur_sigma=blur_sigma)
        self.teacher = Teacher(backbone, backbone_weights)
        c4, c8, c16 = (self.teacher.backbone.stage_channels[i] for i in TEACHER_STAGES)
        self.bottleneck = Bottleneck((c4, c8, c16), width)
        self.up16, self.up8, self.up4 = Up(width, c16), Up(c16, c8), Up(c8, c4)

    def config(self) -> dict:
        return dict(self._config)

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.teacher.backbone.features(self.teacher.backbone.normalize(x), upto_stage=max(TEACHER_STAGES))
        return [feats[i] for i in TEACHER_STAGES]

    def _decode(self, enc: list[torch.Tensor]) -> list[torch.Tensor]:
        d16 = self.up16(self.bottleneck(*enc))
        d8 = self.up8(d16)
        return [self.up4(d8), d8, d16]

    @staticmethod
    def _distance(enc, dec) -> list[torch.Tensor]:
        return [1 - F.cosine_similarity(e, d, dim=1, eps=1e-6).unsqueeze(1) for e, d in zip(enc, dec)]

    def patch_map(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            enc = self._encode(x)
        d4, d8, d16 = self._distance(enc, self._decode(enc))
        return F.avg_pool2d(d4, 2) + d8 + F.interpolate(d16, scale_factor=2.0, mode="bilinear", align_corners=False)

    def fit(self, images, settings: TrainSettings, progress=None) -> dict:
        device = torch.device(settings.device)
        self.to(device)
        self.teacher.eval()
        with torch.no_grad():
            encoded = [self._encode(images[i:i + 8].to(device)) for i in range(0, len(images), 8)]
            enc_all = [torch.cat([e[k] for e in encoded]) for k in range(3)]
        trainable = [p for n, p in self.named_parameters() if not n.startswith("teacher.")]
        opt = torch.optim.Adam(trainable, lr=settings.lr * 5e-1, betas=(0.5, 0.999))
        for module in (self.bottleneck, self.up16, self.up8, self.up4):
            module.train()

        def loss_of(idx):
            enc = [e[idx] for e in enc_all]
            return sum(d.mean() for d in self._distance(enc, self._decode(enc)))

        loss_value = gradient_steps(opt, settings, len(images), loss_of, progress)
        self.eval()
        self.fit_pixel_stats(images, device)
        return {"final_loss": loss_value}
