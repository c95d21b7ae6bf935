"""Reverse Distillation: a frozen pretrained encoder, a one-class bottleneck, a reverse decoder.

The encoder is the EfficientNet-Lite teacher; by default its stages 2, 3 and 4 (strides 8, 16
and 16). The one-class bottleneck (OCBE) fuses the scales into one compact embedding at stride
32, 64 channels wide, too small to carry anomalies through; the decoder rebuilds each encoder
scale from it, trained on normal images only to maximize the cosine similarity per location.
Where the decoder cannot rebuild the encoder's features, the part is abnormal: the map is
1 − cos at each scale, brought to stride 8 and summed. Upsampling is nearest + 3×3 convolution
with explicit padding (no transposed convolution, no ``padding="same"``).

Why narrow and deep: with the original's layout (strides 4, 8, 16, a 256-wide embedding) the
decoder learned to rebuild dark stains on the demo grass along with the grass (image AUROC
0.83 there). A 64-wide embedding carries less of what it was not trained on (0.93), and
dropping the 24-channel stride-4 stage, whose map alone ranked stains below chance, gave 0.97.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import MapModel, TrainSettings, gradient_steps, register
from ..backbone import Teacher


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Bottleneck(nn.Module):
    """Multi-scale fusion to one low-resolution embedding: every scale is brought to the
    deepest one's stride with stride-2 convolutions, concatenated, and fused at twice that stride."""

    def __init__(self, channels: list[int], strides: list[int], width: int):
        super().__init__()
        deepest = max(strides)
        self.down = nn.ModuleList(
            nn.Sequential(*[_conv(c, c, 2) for _ in range((deepest // s).bit_length() - 1)])
            for c, s in zip(channels, strides))
        self.fuse = nn.Sequential(_conv(sum(channels), width, 2), _conv(width, width))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.fuse(torch.cat([down(f) for down, f in zip(self.down, feats)], dim=1))


class Up(nn.Module):
    def __init__(self, cin: int, cout: int, factor: int):
        super().__init__()
        self.factor = factor
        self.body = nn.Sequential(_conv(cin, cout), nn.Conv2d(cout, cout, 3, 1, 1))

    def forward(self, x):
        if self.factor > 1:
            x = F.interpolate(x, scale_factor=float(self.factor), mode="nearest")
        return self.body(x)


@register
class ReverseDistillation(MapModel):
    """``stages``: the encoder's stages the decoder rebuilds. Checkpoints from before the option
    used (1, 2, 3), strides 4, 8, 16, as the original's ResNet layers 1-3. The default is one
    stage deeper on each end, (2, 3, 4) at strides 8, 16, 16, with a 64-wide bottleneck: on the
    demo grass the stride-4 stage's 24 channels scored stains and scratches below chance
    (image AUROC 0.41 and 0.49 from that scale alone), the stride-16 scale at 0.73 and 0.99."""

    family = "rd"
    legacy_config = {"stages": (1, 2, 3), "width": 256}

    def __init__(self, size: int = 256, backbone: str = "lite0", backbone_weights: str | None = None,
                 width: int = 64, blur_sigma: float = 4.0, stages: tuple[int, ...] = (2, 3, 4)):
        super().__init__(size, blur_sigma)
        self.stages = tuple(int(i) for i in stages)
        self._config = dict(size=size, backbone=backbone, backbone_weights=backbone_weights,
                            width=width, blur_sigma=blur_sigma, stages=list(self.stages))
        self.teacher = Teacher(backbone, backbone_weights)
        bb = self.teacher.backbone
        self.channels = [bb.stage_channels[i] for i in self.stages]
        self.strides = [bb.stage_strides[i] for i in self.stages]
        if sorted(self.strides) != self.strides or min(self.strides) < 4:
            raise ValueError(f"rd stages {self.stages}: choose increasing stages from stride 4 on")
        self.bottleneck = Bottleneck(self.channels, self.strides, width)
        # decoder: from the embedding (twice the deepest stride) back up, deepest scale first
        ups, cin, prev = [], width, 2 * max(self.strides)
        for c, s in zip(reversed(self.channels), reversed(self.strides)):
            ups.append(Up(cin, c, prev // s))
            cin, prev = c, s
        self.ups = nn.ModuleList(ups)

    def config(self) -> dict:
        return dict(self._config)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints from before ``stages`` named the decoder's blocks up16, up8, up4
        for i, old in enumerate(("up16", "up8", "up4")):
            for key in [k for k in state_dict if k.startswith(f"{prefix}{old}.")]:
                state_dict[key.replace(f"{prefix}{old}.", f"{prefix}ups.{i}.", 1)] = state_dict.pop(key)
        # and the bottleneck's from4 (two convolutions) and from8 (one, not in a Sequential)
        for old, new in (("from4.", "down.0."), ("from8.", "down.1.0.")):
            for key in [k for k in state_dict if k.startswith(f"{prefix}bottleneck.{old}")]:
                state_dict[key.replace(f"bottleneck.{old}", f"bottleneck.{new}", 1)] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.teacher.backbone.features(self.teacher.backbone.normalize(x), upto_stage=max(self.stages))
        return [feats[i] for i in self.stages]

    def _decode(self, enc: list[torch.Tensor]) -> list[torch.Tensor]:
        z, out = self.bottleneck(enc), []
        for up in self.ups:
            z = up(z)
            out.append(z)
        return out[::-1]  # shallowest first, as the encoder's

    @staticmethod
    def _distance(enc, dec) -> list[torch.Tensor]:
        return [1 - F.cosine_similarity(e, d, dim=1, eps=1e-6).unsqueeze(1) for e, d in zip(enc, dec)]

    def patch_map(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            enc = self._encode(x)
        total = 0
        for d, s in zip(self._distance(enc, self._decode(enc)), self.strides):
            if s < 8:
                d = F.avg_pool2d(d, 8 // s)
            elif s > 8:
                d = F.interpolate(d, scale_factor=float(s // 8), mode="bilinear", align_corners=False)
            total = total + d
        return total

    def fit(self, images, settings: TrainSettings, progress=None) -> dict:
        device = torch.device(settings.device)
        self.to(device)
        self.teacher.eval()
        with torch.no_grad():
            encoded = [self._encode(images[i:i + 8].to(device)) for i in range(0, len(images), 8)]
            enc_all = [torch.cat([e[k] for e in encoded]) for k in range(len(self.stages))]
        trainable = [p for n, p in self.named_parameters() if not n.startswith("teacher.")]
        opt = torch.optim.Adam(trainable, lr=settings.lr * 5e-1, betas=(0.5, 0.999))
        for module in (self.bottleneck, self.ups):
            module.train()

        def loss_of(idx):
            enc = [e[idx] for e in enc_all]
            return sum(d.mean() for d in self._distance(enc, self._decode(enc)))

        loss_value = gradient_steps(opt, settings, len(images), loss_of, progress)
        self.eval()
        self.fit_pixel_stats(images, device)
        return {"final_loss": loss_value}
