"""PatchCore-style low-shot memory bank on the frozen pretrained teacher features.

Training is feature extraction: the patch features of the good images, thinned by a greedy
k-centre coreset to at most ``bank_size`` vectors so that memory stays bounded on the edge.
Squared distances to the bank are computed inside the graph as |f|² − 2 f·Bᵀ + |B|² (MatMul:
no cdist, which exporters and TensorRT lack).

A patch's anomaly is its mean distance to the ``neighbours`` nearest bank vectors (TopK), not to
the nearest one. A k-centre coreset picks the most unusual normal patches first, each alone in
its corner of feature space; with one neighbour a defect that lands near such a lone vector
looks normal. Measured on the demo's real surfaces (image AUROC, 4096 vectors): grass 0.846 with
one neighbour, 0.985 with three; gravel 0.844 and 1.000. Dense normal regions have several
vectors close by, so normal patches barely move.

Other designs, chosen by constructor options and compared on the hard benchmark by
bench/patchcore_study.py (docs/benchmarks.md has the table): a bank per teacher stage at its
own stride (``scales="separate"``); two local-colour maps (``colour=True``: a bank of 16-pixel
mean colours, and each colour against its location's normal mean and spread); the teacher
features against their own location's normal mean and spread (``deep_place=True``, PaDiM-like
with a diagonal covariance: a missing component leaves patches that are normal somewhere, but
not there); and the maps
fused by their mean, their maximum, or ``"calibrated"``: each in units of the spread of its own
image maxima on good images, then the maximum. The default family is ``knnplace`` (below): the
bank drawn at random, which ranked ahead of the coreset on every benchmark measured, with the
deep place map beside it (export/models/catalog.py).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .base import MapModel, TrainSettings, register
from ..backbone import TEACHER_STAGES, Teacher

SCALES = ("joint", "separate", "none")
MAX_POOL = 1 << 17  # patches the coreset searches (60 images of 256 px give 61 440)
FUSIONS = ("mean", "max", "calibrated")
PLACE_FLOOR = 0.1  # of a channel's variance over all places, added to each place's (fit_place)


@register
class PatchCore(MapModel):
    """``scales="joint"``: one bank of the three teacher stages joined at stride 8 (the
    original design). ``"separate"``: a bank per stage, each searched at the stage's own
    resolution (stride 4, 8, 16), each map normalized on its own statistics, so that a faint
    colour change the stride-4 stage sees is not averaged away by the deeper stages; the maps are
    fused by their ``fuse`` (mean, or the maximum: any stage that sees it). ``"none"``: no
    teacher bank and no teacher, only the two colour maps (``colour=True``): the colour half of
    a fusion whose deep map comes from another family (flowfused.py)."""

    family = "patchcore"
    default_steps = 4096  # the memory bank's size
    bank_family = True
    legacy_config = {"neighbours": 1, "scales": "joint", "fuse": "mean", "colour": False, "deep_place": False}

    def __init__(self, size: int = 256, backbone: str = "lite0", backbone_weights: str | None = None,
                 bank_size: int = 4096, blur_sigma: float = 4.0, neighbours: int = 3,
                 scales: str = "joint", fuse: str = "mean", colour: bool = False, deep_place: bool = False):
        if scales not in SCALES or fuse not in FUSIONS or (scales == "none" and not colour) \
                or (deep_place and scales != "joint"):
            raise ValueError(f"scales must be one of {SCALES} (\"none\" with colour, \"joint\" with deep_place) "
                             f"and fuse one of {FUSIONS}")
        deep = {"joint": 1, "separate": len(TEACHER_STAGES), "none": 0}[scales]
        super().__init__(size, blur_sigma, n_maps=deep + int(deep_place) + (2 if colour else 0))
        self._config = dict(size=size, backbone=backbone, backbone_weights=backbone_weights,
                            bank_size=bank_size, blur_sigma=blur_sigma, neighbours=neighbours,
                            scales=scales, fuse=fuse, colour=colour, deep_place=deep_place)
        self.neighbours, self.scales, self.fuse, self.colour = neighbours, scales, fuse, colour
        self.deep_place = deep_place
        if scales == "none":
            self.teacher, self._channels = None, []
        else:
            self.teacher = Teacher(backbone, backbone_weights)
            stage_channels = [self.teacher.backbone.stage_channels[i] for i in TEACHER_STAGES]
            self._channels = [self.teacher.channels] if scales == "joint" else stage_channels
        if fuse == "calibrated":  # each map's image maxima on good images: their centre and spread
            self.register_buffer("img_mid", torch.zeros(self.n_maps, 1, 1))
            self.register_buffer("img_spread", torch.ones(self.n_maps, 1, 1))
        if colour:
            self._channels = self._channels + [3]  # a bank of local colours, like any other
            # and where each colour belongs: per-location mean and spread on the stride-8 grid
            self.register_buffer("col_mean", torch.zeros(1, 3, size // 8, size // 8))
            self.register_buffer("col_std", torch.ones(1, 3, size // 8, size // 8))
        if deep_place:  # each teacher feature's normal mean and spread at its own location
            c = self.teacher.channels
            self.register_buffer("place_mean", torch.zeros(1, c, size // 8, size // 8))
            self.register_buffer("place_std", torch.ones(1, c, size // 8, size // 8))
        for j, c in enumerate(self._channels):  # bank 0 keeps the original buffer names
            self.register_buffer(self._name("f_mean", j), torch.zeros(1, c, 1, 1))
            self.register_buffer(self._name("f_std", j), torch.ones(1, c, 1, 1))
            self.register_buffer(self._name("bank", j), torch.zeros(bank_size, c))
            self.register_buffer(self._name("bank_sq", j), torch.zeros(bank_size))
        # training image each bank vector came from (not saved: only training uses it)
        self.bank_origins: list[torch.Tensor] | None = None
        self._leave_out: torch.Tensor | None = None
        # the place statistics' sums over the training images (count, Σf, Σf²) and the variance
        # floor, so that out-of-fold scoring can take an image's own features out of them.
        # Training only: buffers that .to() moves with the module (train.py fits on the device,
        # then scores out-of-fold on the CPU), kept out of the state_dict and the graph.
        self._place_n = 0
        for name in ("_place_s1", "_place_s2", "_place_floor"):
            self.register_buffer(name, None, persistent=False)

    @staticmethod
    def _name(buffer: str, j: int) -> str:
        return buffer if j == 0 else f"{buffer}_{j}"

    def _buf(self, buffer: str, j: int) -> torch.Tensor:
        return getattr(self, self._name(buffer, j))

    def config(self) -> dict:
        return dict(self._config)

    @staticmethod
    def local_colour(x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB 0..255 → (N, 3, H/8, W/8): the mean colour of each 16-pixel
        window in an opponent space (lightness, red-green, yellow-blue, roughly Lab units),
        less the image's own mean, so that the camera's exposure offset cancels. Pretrained
        features barely see a stain a few ΔE deep; the colour itself does."""
        r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        opp = torch.cat([(r + g + b) / 3.0, r - g, (r + g) / 2.0 - b], dim=1) / 2.55
        local = F.avg_pool2d(opp, 16, stride=8, padding=4, count_include_pad=False)
        return local - local.mean(dim=(2, 3), keepdim=True)

    def _stage_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One raw feature map per bank: the joined teacher map, or each stage at its own
        stride with the teacher's 3x3 neighbourhood aggregation; then the local colour."""
        if self.scales == "none":
            out = []
        elif self.scales == "joint":
            out = [self.teacher(x)]
        else:
            b = self.teacher.backbone
            feats = b.features(b.normalize(x), upto_stage=max(TEACHER_STAGES))
            out = [F.avg_pool2d(feats[i], 3, stride=1, padding=1, count_include_pad=False) for i in TEACHER_STAGES]
        return out + [self.local_colour(x)] if self.colour else out

    def _nearest(self, f: torch.Tensor, j: int) -> torch.Tensor:
        """(N, C, h, w) raw features → (N, 1, h, w) distance to bank ``j``."""
        f = (f - self._buf("f_mean", j)) / self._buf("f_std", j)
        n, c, h, w = f.shape
        flat = f.permute(0, 2, 3, 1).reshape(n, h * w, c)
        d2 = (flat * flat).sum(-1, keepdim=True) - 2 * flat @ self._buf("bank", j).t() + self._buf("bank_sq", j)
        if self._leave_out is not None:  # out-of-fold scoring: no vector of these images' own
            own = torch.isin(self.bank_origins[j], self._leave_out)
            d2 = d2.masked_fill(own[None, None, :], float("inf"))
        if self.neighbours == 1:
            nearest = d2.amin(dim=-1).clamp_min(0).sqrt()
        else:
            d2 = d2.topk(self.neighbours, dim=-1, largest=False).values
            nearest = d2.clamp_min(0).sqrt().mean(dim=-1)
        return nearest.reshape(n, 1, h, w)

    def patch_maps(self, x: torch.Tensor) -> torch.Tensor:
        feats = self._stage_features(x)
        maps = [self._nearest(f, j) for j, f in enumerate(feats)]
        if self.scales in ("joint", "none"):
            out = maps[:len(maps) - (1 if self.colour else 0)]
        else:
            s4, s8, s16 = maps[:3]
            # to the stride-8 grid: a stride-4 peak kept by its maximum, stride 16 interpolated
            out = [F.max_pool2d(s4, 2), s8, F.interpolate(s16, scale_factor=2.0, mode="bilinear", align_corners=False)]
        if self.deep_place:  # root mean square over channels of the location's z-scores
            z = (feats[0] - self.place_mean) / self.place_std
            out.append((z * z).mean(dim=1, keepdim=True).sqrt())
        if self.colour:  # the colour bank's map, and the colour's distance from its place's normal
            z = (feats[-1] - self.col_mean) / self.col_std
            out += [maps[-1], (z * z).mean(dim=1, keepdim=True).sqrt()]
        return torch.cat(out, dim=1)

    def _normalized(self, x: torch.Tensor) -> torch.Tensor:
        """(N, k, H, W): each map on its normal pixels' 90 % .. 99.5 % quantiles, as MapModel."""
        return (self._raw_map(x) - self.q_a) / (self.q_b - self.q_a) * 0.1

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.fuse == "mean":
            return super().forward(x)
        m = self._normalized(x)
        if self.fuse == "calibrated":
            # in units of the map's own spread of image maxima on good images: a map that is
            # sure of a defect is not drowned by another map's ordinary noise
            m = (m - self.img_mid) / self.img_spread
        m = m.amax(dim=1)
        return m, m.amax(dim=(1, 2))

    @torch.no_grad()
    def fit_fusion(self, train: torch.Tensor, holdout: torch.Tensor) -> None:
        """For ``fuse="calibrated"``: the median and spread of each map's image maxima over
        the held-out images and the training images scored leave-one-out (60 good images, not
        12). Call after the map normalization is set."""
        if self.fuse != "calibrated":
            return
        maxima = [self._normalized(holdout[i:i + 8]).amax(dim=(2, 3)) for i in range(0, len(holdout), 8)]
        for i in range(len(train)):
            with self._leaving_out(torch.tensor([i]), train[i:i + 1]):
                maxima.append(self._normalized(train[i:i + 1]).amax(dim=(2, 3)))
        maxima = torch.cat(maxima)  # (images, k)
        self.img_mid.copy_(maxima.median(dim=0).values.reshape(-1, 1, 1))
        self.img_spread.copy_(maxima.std(dim=0).clamp_min(1e-6).reshape(-1, 1, 1))

    @torch.no_grad()
    def fit(self, images, settings: TrainSettings, progress=None) -> dict:
        device = torch.device(settings.device)
        self.to(device)
        chunks = [self._stage_features(images[i:i + 8].to(device)) for i in range(0, len(images), 8)]
        self.bank_origins, pools, banks = [], 0, 0
        banks_n = len(self._channels)  # the caller's bar counts one bank's steps: share it
        for j in range(banks_n):
            feats = torch.cat([c[j] for c in chunks])
            mean, std = self._buf("f_mean", j), self._buf("f_std", j)
            mean.copy_(feats.mean(dim=(0, 2, 3), keepdim=True))
            std.copy_(feats.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6))
            pool = ((feats - mean) / std).permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
            size = self._buf("bank", j).shape[0]
            report = None if progress is None else (
                lambda step, value, j=j: progress((j * size + step) // banks_n, value))
            picked = self.select(pool, size, settings.seed, report)
            chosen = pool[picked]
            self.bank_origins.append((picked // (feats.shape[2] * feats.shape[3])).cpu())
            self._buf("bank", j).copy_(chosen)
            self._buf("bank_sq", j).copy_((chosen * chosen).sum(-1))
            pools, banks = pools + pool.shape[0], banks + chosen.shape[0]
            if j == 0 and self.deep_place:
                self.fit_place(feats)
        if self.colour:
            col = torch.cat([c[-1] for c in chunks])
            self.col_mean.copy_(col.mean(dim=0, keepdim=True))
            spread = col.std(dim=0, keepdim=True)
            self.col_std.copy_(torch.maximum(spread, spread.mean(dim=(2, 3), keepdim=True) * 0.25).clamp_min(0.05))
        self.fit_pixel_stats(images, device)
        return {"pool": int(pools), "bank": int(banks)}

    def fit_place(self, feats: torch.Tensor) -> None:
        """Per-location mean and spread of the raw teacher features. The variance is floored by
        PLACE_FLOOR (a tenth) of the channel's variance over all locations: with 48 images a location whose
        feature barely moved would otherwise turn its camera noise into a defect (the floor
        bench/position_probe.py measured fastflow with)."""
        self._place_n = len(feats)
        self._place_s1, self._place_s2 = feats.sum(dim=0, keepdim=True), (feats * feats).sum(dim=0, keepdim=True)
        self._place_floor = PLACE_FLOOR * feats.var(dim=(0, 2, 3), keepdim=True)
        self._set_place(self._place_n, self._place_s1, self._place_s2)

    def _set_place(self, n: int, s1: torch.Tensor, s2: torch.Tensor) -> None:
        mean = s1 / n
        var = (s2 - n * mean * mean).clamp_min(0) / max(n - 1, 1)  # the unbiased variance, as torch.var
        self.place_mean.copy_(mean)
        self.place_std.copy_((var + self._place_floor).sqrt().clamp_min(1e-6))

    def _place_without(self, images: torch.Tensor) -> None:
        """The place statistics as if ``images`` had not been trained on (out-of-fold scoring)."""
        f = torch.cat([self.teacher(images[i:i + 8]) for i in range(0, len(images), 8)]).to(self._place_s1.device)
        self._set_place(self._place_n - len(f), self._place_s1 - f.sum(dim=0, keepdim=True),
                        self._place_s2 - (f * f).sum(dim=0, keepdim=True))

    def select(self, pool: torch.Tensor, size: int, seed: int, progress=None) -> torch.Tensor:
        """Indices into ``pool`` of the bank's vectors. A pool above MAX_POOL patches (tiled
        training: 16 frames of 2048 x 1536 give 1.4 million) is first thinned at random to
        MAX_POOL: each coreset step costs a pass over the pool, 21 minutes for 4096 steps at 1.4
        million on 2 cores; overlapping tiles and repeated texture make most of it redundant."""
        if pool.shape[0] <= MAX_POOL:
            return greedy_coreset(pool, size, seed, progress)
        kept = torch.randperm(pool.shape[0], generator=torch.Generator(device="cpu").manual_seed(seed))[:MAX_POOL]
        return kept[greedy_coreset(pool[kept], size, seed, progress)]

    @torch.no_grad()
    def out_of_fold_scores(self, images: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """Image scores of the training images (in ``fit``'s order), each against the bank less
        the vectors taken from that image: leave-one-out, which a memory bank makes cheap. The
        threshold then sees every good image, not only the held-out fifth. Call after the map
        normalization is set, like the scores the graph gives.

        ``groups`` (one id per image): the images are a frame's tiles, which overlap and share
        pixels, so a group is left out together and its score is the maximum over its tiles:
        one out-of-fold score per frame, in order of first appearance."""
        if self.bank_origins is None:
            raise RuntimeError("out-of-fold scores need the bank's origins: call fit first")
        if groups is None:
            groups = torch.arange(len(images))
        out = []
        for g in dict.fromkeys(groups.tolist()):
            members = torch.nonzero(groups == g).flatten()
            with self._leaving_out(members, images[members]):
                scores = [self(images[members[i:i + 8]])[1] for i in range(0, len(members), 8)]
            out.append(torch.cat(scores).amax().reshape(1))
        return torch.cat(out)

    @contextmanager
    def _leaving_out(self, members: torch.Tensor, their_images: torch.Tensor):
        """Scores inside see neither the bank vectors nor the place statistics of ``members``
        (indices of training images, whose pixels are ``their_images``)."""
        try:
            self._leave_out = members
            if self.deep_place:
                self._place_without(their_images)
            yield
        finally:
            self._leave_out = None
            if self.deep_place:
                self._set_place(self._place_n, self._place_s1, self._place_s2)


def greedy_coreset(pool: torch.Tensor, size: int, seed: int, progress=None) -> torch.Tensor:
    """k-centre greedy: each step adds the vector farthest from those chosen, so the bank
    covers the whole pool; returns their indices. A pool smaller than the bank is repeated to
    fill it (duplicates do not change nearest distances, and the graph keeps a fixed shape)."""
    if pool.shape[0] <= size:
        return torch.arange(size) % pool.shape[0]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    first = int(torch.randint(pool.shape[0], (1,), generator=gen))
    chosen = [first]
    # |p - q|² = |p|² + |q|² - 2 p·q: one matrix-vector product per step instead of a pool-sized
    # temporary (4096 picks from 49k patches of 144 channels: 62 s -> 20 s on 2 cores; picks
    # differ only where float rounding breaks a tie, the covering radius is the same)
    sq = (pool * pool).sum(-1)
    dist = (sq + sq[first] - 2 * pool @ pool[first]).clamp_min(0)
    for step in range(1, size):
        nxt = int(torch.argmax(dist))
        chosen.append(nxt)
        dist = torch.minimum(dist, (sq + sq[nxt] - 2 * pool @ pool[nxt]).clamp_min(0))
        if progress and step % 64 == 0:
            progress(step, float(dist.max().sqrt()))
    return torch.tensor(chosen)


@register
class NearestNeighbourBaseline(PatchCore):
    """The floor to beat (the default family until knnplace): the same teacher features and the
    same in-graph nearest-neighbour distance, to the one nearest of patches drawn at random (no
    coreset, no learning). With camera noise in every image a k-centre coreset spends its
    vectors on the rarest normal patches; drawn at random, the bank covers the common ones."""

    family = "knn"

    def __init__(self, size: int = 256, backbone: str = "lite0", backbone_weights: str | None = None,
                 bank_size: int = 4096, blur_sigma: float = 4.0, neighbours: int = 1,
                 scales: str = "joint", fuse: str = "mean", colour: bool = False, deep_place: bool = False):
        super().__init__(size, backbone, backbone_weights, bank_size, blur_sigma, neighbours, scales, fuse, colour,
                         deep_place)

    def select(self, pool: torch.Tensor, size: int, seed: int, progress=None) -> torch.Tensor:
        if pool.shape[0] <= size:
            return greedy_coreset(pool, size, seed)  # repeats the pool to the bank's fixed shape
        return torch.randperm(pool.shape[0], generator=torch.Generator(device="cpu").manual_seed(seed))[:size]


@register
class FusedBank(NearestNeighbourBaseline):
    """The floor's bank (the one nearest of 4096 teacher patches drawn at random) with the two
    local-colour maps beside it, each map in units of the spread of its own image maxima on good
    images, fused by their maximum. On the hard benchmark (docs/benchmarks.md), as a bundle, it
    scored 0.796 mean image AUROC against the default's 0.730 and the floor's 0.788, with stains
    at 0.77 (patchcore 0.57) and components at 0.78 (0.61), its hardest family warps at 0.74;
    scratches and texture changes fall a little behind the floor's. Colour maps also see a
    change of light that pretrained features ignore: calibrate on the line's own lighting."""

    family = "fused"

    def __init__(self, size: int = 256, backbone: str = "lite0", backbone_weights: str | None = None,
                 bank_size: int = 4096, blur_sigma: float = 4.0, neighbours: int = 1,
                 scales: str = "joint", fuse: str = "calibrated", colour: bool = True, deep_place: bool = False):
        super().__init__(size, backbone, backbone_weights, bank_size, blur_sigma, neighbours, scales, fuse, colour,
                         deep_place)


@register
class PlacedBank(NearestNeighbourBaseline):
    """The floor's bank beside the teacher features against their own location's normal
    (``deep_place``), fused by their maximum. The bank asks whether a patch looks like any good
    patch; the place map asks whether it looks like the good patches at that place, which is
    what a missing or moved component changes. On the hard benchmark's six tuning surfaces
    (bench/patchcore_study.py --floor, docs/benchmarks.md) the pair scored 0.797 mean image
    AUROC against the floor's 0.788, with components lifted from 0.476 to 0.791 and stains, now
    the hardest family, at 0.628. The place map costs one subtraction and a mean per patch."""

    family = "knnplace"

    def __init__(self, *args, fuse: str = "max", deep_place: bool = True, **kwargs):
        super().__init__(*args, fuse=fuse, deep_place=deep_place, **kwargs)
