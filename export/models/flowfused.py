"""fastflow's learned density beside the two local-colour maps, fused inside one graph.

The flow sees texture, scratches and warps but barely moves under a stain a few ΔE deep, and a
missing component changes no patch's likelihood. The colour maps of the ``fused`` family see
exactly those (a bank of local colours, and each colour against its place's normal). Each map
is put in units of the spread of its own image maxima on held-out good images, and the maximum
is taken: a defect that any one map is sure of stands out, whatever the others' noise.

Measured first with ``bench/patchcore_study.py --flow`` on the hard benchmark's six tuning
surfaces (docs/benchmarks.md): 0.818 mean image AUROC against fastflow's 0.803 from the same
maps, with the hardest defect family lifted from components at 0.515 to components at 0.773.
"""
from __future__ import annotations

import torch

from ..jitter import jittered
from .base import AnomalyModel, TrainSettings, register
from .fastflow import FastFlow
from .patchcore import FusedBank


@register
class FlowFused(AnomalyModel):
    family = "flowfused"
    n_maps = 3

    def __init__(self, size: int = 256, backbone: str = "lite0", backbone_weights: str | None = None,
                 blocks: int = 6, hidden: int = 128, blur_sigma: float = 4.0, bank_size: int = 4096,
                 jitter: int = 0):
        """``jitter``: camera-jittered copies of each training image (export/jitter.py), which
        both halves learn from: the place map, too, would otherwise see a camera's shift."""
        super().__init__()  # the sub-models keep their own per-pixel and quantile statistics
        self._config = dict(size=size, backbone=backbone, backbone_weights=backbone_weights, blocks=blocks,
                            hidden=hidden, blur_sigma=blur_sigma, bank_size=bank_size, jitter=jitter)
        self.jitter = jitter
        self.flow = FastFlow(size, backbone, backbone_weights, blocks, hidden, blur_sigma, jitter=0)
        # the colour half only: no teacher bank, so the graph runs one backbone
        self.colour = FusedBank(size, backbone, backbone_weights, bank_size, blur_sigma, scales="none", fuse="max")
        self.register_buffer("img_mid", torch.zeros(3, 1, 1))
        self.register_buffer("img_spread", torch.ones(3, 1, 1))

    def config(self) -> dict:
        return dict(self._config)

    def _normalized(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W): the flow's map, the colour bank's and the place map, each on its normal
        pixels' 90 % .. 99.5 % quantiles."""
        return torch.cat([self.flow(x)[0][:, None], self.colour._normalized(x)], dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = ((self._normalized(x) - self.img_mid) / self.img_spread).amax(dim=1)
        return m, m.amax(dim=(1, 2))

    def raw_maps(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.flow.raw_maps(x), self.colour.raw_maps(x)], dim=1)

    def set_map_normalization(self, maps: torch.Tensor) -> None:
        self.flow.set_map_normalization(maps[:, :1])
        self.colour.set_map_normalization(maps[:, 1:])

    @torch.no_grad()
    def fit_fusion(self, train: torch.Tensor, holdout: torch.Tensor) -> None:
        """Each map's median and spread of image maxima on the held-out images only: the flow
        was trained on every training image, so their maxima would sit low and shrink its
        spread. (What bench/patchcore_study.py measured: 12 held-out images at 60.)"""
        maxima = torch.cat([self._normalized(holdout[i:i + 8]).amax(dim=(2, 3)) for i in range(0, len(holdout), 8)])
        self.img_mid.copy_(maxima.median(dim=0).values.reshape(-1, 1, 1))
        self.img_spread.copy_(maxima.std(dim=0).clamp_min(1e-6).reshape(-1, 1, 1))

    def fit(self, images, settings: TrainSettings, progress=None) -> dict:
        images = jittered(images, self.jitter, settings.seed)
        stats = self.flow.fit(images, settings, progress)
        bank = self.colour.bank.shape[0]
        stats.update(self.colour.fit(images, TrainSettings(**{**vars(settings), "steps": bank})))
        return stats
