"""The one interface every model family implements, and the registry ``--model`` selects from.

A family's ``forward`` takes a float RGB batch (N, 3, H, W) on the 0..255 scale and returns the
raw anomaly map at input resolution (N, H, W) and the raw image score (N,). Everything between
(backbone normalization, feature statistics, upsampling, smoothing, map normalization) lives
inside the module so that it is exported into the ONNX graph with it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn


@dataclass
class TrainSettings:
    size: int = 256
    steps: int = 400
    batch_size: int = 8
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    backbone: str = "lite0"
    backbone_weights: str | None = None
    extra: dict = field(default_factory=dict)


class AnomalyModel(nn.Module):
    family: str = ""

    def fit(self, images: torch.Tensor, settings: TrainSettings,
            progress: Callable[[int, float], None] | None = None) -> dict:
        """Learn normal from ``images`` (N, 3, H, W) float 0..255; returns training stats."""
        raise NotImplementedError

    def set_map_normalization(self, maps: torch.Tensor) -> None:
        """Fold statistics of maps on held-out normal images into the graph (optional)."""

    def config(self) -> dict:
        """Constructor arguments, stored in the checkpoint to rebuild the module."""
        raise NotImplementedError


_REGISTRY: dict[str, type[AnomalyModel]] = {}


def register(cls: type[AnomalyModel]) -> type[AnomalyModel]:
    _REGISTRY[cls.family] = cls
    return cls


def families() -> list[str]:
    from . import efficientad  # noqa: F401  (registers itself)

    return sorted(_REGISTRY)


def create(family: str, **kwargs) -> AnomalyModel:
    known = families()
    if family not in _REGISTRY:
        raise ValueError(f"unknown model family {family!r}; available: {', '.join(known)}")
    return _REGISTRY[family](**kwargs)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


class GaussianBlur(nn.Module):
    """Separable Gaussian smoothing with reflect-free zero padding compensated by a normalizer,
    so borders are not darkened; plain Conv ops in ONNX."""

    def __init__(self, sigma: float):
        super().__init__()
        k = gaussian_kernel(sigma)
        self.register_buffer("kx", k.view(1, 1, 1, -1))
        self.register_buffer("ky", k.view(1, 1, -1, 1))
        self.pad = k.numel() // 2

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.conv2d(x, self.kx, padding=(0, self.pad))
        return nn.functional.conv2d(x, self.ky, padding=(self.pad, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 1, H, W)
        return self._blur(x) / self._blur(torch.ones_like(x[:1]))
