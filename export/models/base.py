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
    default_steps = 600  # gradient steps when --steps is not given
    bank_family = False  # a memory bank: --steps is its size, not gradient steps
    # constructor arguments added after checkpoints were written without them: the value that
    # rebuilds what those checkpoints trained (a new model gets the constructor's default)
    legacy_config: dict = {}

    def fit(self, images: torch.Tensor, settings: TrainSettings,
            progress: Callable[[int, float], None] | None = None) -> dict:
        """Learn normal from ``images`` (N, 3, H, W) float 0..255; returns training stats."""
        raise NotImplementedError

    def set_map_normalization(self, maps: torch.Tensor) -> None:
        """Fold statistics of maps on held-out normal images into the graph (optional)."""

    def config(self) -> dict:
        """Constructor arguments, stored in the checkpoint to rebuild the module."""
        raise NotImplementedError


def gradient_steps(optimizer, settings: TrainSettings, count: int, loss_of_batch, progress=None,
                   scheduler=None) -> float:
    """The training loop the learned families share: ``settings.steps`` steps, each on a random
    batch of indices into ``count`` items (seeded); returns the last loss."""
    gen = torch.Generator().manual_seed(settings.seed)
    loss_value = float("nan")
    for step in range(settings.steps):
        idx = torch.randint(count, (min(settings.batch_size, count),), generator=gen)
        loss = loss_of_batch(idx)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_value = float(loss.detach())
        if progress:
            progress(step, loss_value)
    return loss_value


_REGISTRY: dict[str, type[AnomalyModel]] = {}


def register(cls: type[AnomalyModel]) -> type[AnomalyModel]:
    _REGISTRY[cls.family] = cls
    return cls


def families() -> list[str]:
    import importlib

    from .catalog import family_modules

    for module in family_modules():  # each registers its classes as it is imported
        importlib.import_module(f"{__package__}.{module}")
    return sorted(_REGISTRY)


def family_class(family: str) -> type[AnomalyModel]:
    known = families()
    if family not in _REGISTRY:
        raise ValueError(f"unknown model family {family!r}; available: {', '.join(known)}")
    return _REGISTRY[family]


def create(family: str, **kwargs) -> AnomalyModel:
    known = families()
    if family not in _REGISTRY:
        raise ValueError(f"unknown model family {family!r}; available: {', '.join(known)}")
    return _REGISTRY[family](**kwargs)


def from_config(family: str, config: dict) -> AnomalyModel:
    """The module a checkpoint's stored config describes, older checkpoints included."""
    families()
    cls = _REGISTRY.get(family)
    return create(family, **({**cls.legacy_config, **config} if cls else config))  # unknown: create says so



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


class MapModel(AnomalyModel):
    """A family whose anomaly maps come from stride-8 patch maps. Shared here: upsampling,
    smoothing, per-pixel standardization with normal statistics (student and teacher, or
    features and memory bank, behave differently at the image border; corners of normal images
    scored 1.8x the centre before this), quantile normalization of each map, their mean, and
    the image score as the map's maximum, all folded into the exported graph.

    ``n_maps`` is how many maps ``patch_maps`` returns (EfficientAD: student–teacher and
    student–autoencoder); each gets its own statistics, so neither drowns the other."""

    def __init__(self, size: int, blur_sigma: float, n_maps: int = 1):
        super().__init__()
        self.blur = GaussianBlur(blur_sigma)
        self.n_maps = k = n_maps
        self.register_buffer("pix_mean", torch.zeros(k, size, size))
        self.register_buffer("pix_std", torch.ones(k, size, size))
        self.register_buffer("q_a", torch.zeros(k, 1, 1))
        self.register_buffer("q_b", torch.ones(k, 1, 1))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints from before per-map statistics stored q_a and q_b as scalars
        for name in ("q_a", "q_b"):
            key = prefix + name
            if key in state_dict and state_dict[key].dim() == 0:
                state_dict[key] = state_dict[key].reshape(1, 1, 1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def patch_maps(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float 0..255 → (N, n_maps, H/8, W/8) raw patch anomaly."""
        return self.patch_map(x)

    def patch_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float 0..255 → (N, 1, H/8, W/8), for single-map families."""
        raise NotImplementedError

    def _raw_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, n_maps, H, W), each map standardized per pixel."""
        d = nn.functional.interpolate(self.patch_maps(x), scale_factor=8.0, mode="bilinear",
                                      align_corners=False)
        n, k, h, w = d.shape
        d = self.blur(d.reshape(n * k, 1, h, w)).reshape(n, k, h, w)
        return (d - self.pix_mean) / self.pix_std

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = ((self._raw_map(x) - self.q_a) / (self.q_b - self.q_a) * 0.1).mean(dim=1)
        return m, m.amax(dim=(1, 2))

    def raw_maps(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([self._raw_map(x[i:i + 8]) for i in range(0, len(x), 8)])

    def set_map_normalization(self, maps: torch.Tensor) -> None:
        """EfficientAD's q_a, q_b: the 90 % and 99.5 % quantiles of held-out normal maps, one
        pair per map; normal pixels then land near 0..0.1 on every map alike."""
        gen = torch.Generator().manual_seed(0)
        for k in range(maps.shape[1]):
            flat = maps[:, k].flatten().float()
            if flat.numel() > 1_000_000:  # torch.quantile has an input size limit
                flat = flat[torch.randperm(flat.numel(), generator=gen)[:1_000_000]]
            q_a, q_b = torch.quantile(flat, torch.tensor([0.9, 0.995]))
            self.q_a[k].fill_(float(q_a))
            self.q_b[k].fill_(float(max(q_b, q_a + 1e-6)))

    def fit_pixel_stats(self, images: torch.Tensor, device) -> None:
        """Mean and spread of each normal map at every pixel, from the training images,
        smoothed (σ = 8 px) so that a few dozen images give a stable estimate."""
        self.pix_mean.zero_()
        self.pix_std.fill_(1.0)
        with torch.no_grad():
            maps = torch.cat([self._raw_map(images[i:i + 8].to(device)) for i in range(0, len(images), 8)])
            smooth = GaussianBlur(8.0).to(device)
            mean = smooth(maps.mean(0)[:, None])[:, 0]
            std = smooth(maps.std(0)[:, None])[:, 0]
        self.pix_mean.copy_(mean)
        # a map with no spread at all on its training images (a bank that holds every training
        # patch gives them all distance 0) still divides by a finite number
        floor = (std.mean(dim=(1, 2), keepdim=True) * 0.1).clamp_min(1e-6)
        self.pix_std.copy_(torch.maximum(std, floor))
