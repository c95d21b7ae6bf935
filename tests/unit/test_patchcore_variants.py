"""The memory bank's other designs (export/models/patchcore.py): a bank per teacher stage, the
local-colour maps, the teacher features against their place's normal, and the calibrated fusion.
Each trains, exports to a graph that scores as the torch module does, scores its training images
leave-one-out, and old checkpoints (saved before these options) still rebuild the original
design."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from export.models.base import TrainSettings, create, from_config
from export.onnx_export import export_onnx

OPTIONS = [dict(scales="separate"), dict(colour=True, fuse="max"),
           dict(scales="separate", colour=True, fuse="calibrated"),
           dict(scales="none", colour=True, fuse="calibrated"),  # the colour half of flowfused
           dict(deep_place=True, fuse="max"),  # the knnplace family's maps on patchcore's bank
           dict(deep_place=True, colour=True, fuse="calibrated")]


def _images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, 64, 64, generator=g) * 120 + 60
    return (base + torch.randn(n, 3, 64, 64, generator=g) * 12).clamp(0, 255)


def _fitted(options):
    torch.manual_seed(0)
    model = create("patchcore", size=64, bank_size=48, **options)
    train, hold = _images(6, 1), _images(3, 2)
    model.fit(train, TrainSettings(size=64, steps=48))
    model.eval()
    model.set_map_normalization(model.raw_maps(hold))
    model.fit_fusion(train, hold)
    return model, train


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(map(str, o.values())))
def test_a_variant_exports_and_scores_as_the_module_does(options, tmp_path):
    model, train = _fitted(options)
    deep = {"separate": 3, "none": 0}.get(options.get("scales"), 1)
    assert model.n_maps == deep + int(options.get("deep_place", False)) + (2 if options.get("colour") else 0)
    assert (model.teacher is None) == (deep == 0)  # no teacher bank: no backbone in the graph
    x = _images(2, 3)
    with torch.no_grad():
        ref_map, ref_score = model(x)
    path = export_onnx(model, 64, 3, tmp_path / "model.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    nhwc = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    with torch.no_grad():  # the graph sees uint8: compare against the module on the same pixels
        ref_map, ref_score = model(torch.from_numpy(nhwc).permute(0, 3, 1, 2).float())
    out_map, out_score = sess.run(None, {"image": nhwc})
    scale = float(ref_map.abs().max()) + 1e-6
    assert np.abs(out_score - ref_score.numpy()).max() < 1e-4 * scale + 1e-5
    assert np.abs(out_map.reshape(ref_map.shape) - ref_map.numpy()).max() < 1e-4 * scale + 1e-5
    oof = model.out_of_fold_scores(train)
    assert oof.shape == (6,) and torch.isfinite(oof).all()


def test_the_colour_map_sees_a_stain_the_features_are_blind_to():
    model, _ = _fitted(dict(colour=True, fuse="calibrated"))
    good = _images(1, 4)
    stained = good.clone()
    stained[:, :, 20:40, 20:40] += torch.tensor([20.0, 10.0, -15.0]).view(1, 3, 1, 1)  # a tint, no texture
    with torch.no_grad():
        maps_good, maps_stain = model._normalized(good), model._normalized(stained)
    colour, place = model.n_maps - 2, model.n_maps - 1
    for k in (colour, place):  # both colour maps rise where the tint is
        assert maps_stain[0, k, 24:36, 24:36].mean() > maps_good[0, k, 24:36, 24:36].mean() + 0.05


def test_a_checkpoint_from_before_the_options_rebuilds_the_original_design():
    old = {"size": 64, "backbone": "lite0", "backbone_weights": None, "bank_size": 16, "blur_sigma": 4.0}
    model = from_config("patchcore", old)
    assert (model.scales, model.fuse, model.colour, model.neighbours, model.deep_place) == (
        "joint", "mean", False, 1, False)
    assert model.n_maps == 1 and "img_mid" not in model.state_dict() and "bank_1" not in model.state_dict()


def _parts(n: int, seed: int, at: int) -> torch.Tensor:
    """Grey images with camera noise and one dark square, a component, at column ``at``."""
    g = torch.Generator().manual_seed(seed)
    x = 128 + torch.randn(n, 3, 64, 64, generator=g) * 6
    x[:, :, 24:40, at:at + 16] = 30.0
    return x.clamp(0, 255)


def test_the_place_map_sees_a_moved_component_the_bank_finds_normal():
    torch.manual_seed(0)
    model = create("knnplace", size=64, bank_size=256)
    train = _parts(8, 1, at=8)
    model.fit(train, TrainSettings(size=64, steps=256))
    model.eval()
    model.set_map_normalization(model.raw_maps(_parts(3, 2, at=8)))
    good, moved = _parts(1, 3, at=8), _parts(1, 3, at=40)  # the square moved to the right
    with torch.no_grad():
        maps_good, maps_moved = model._normalized(good), model._normalized(moved)
    bank, place = 0, 1

    def gain(k: int) -> float:  # over the pixels the square left
        return float(maps_moved[0, k, 24:40, 8:24].mean() - maps_good[0, k, 24:40, 8:24].mean())

    # measured over six seeds: the place map rose by 1.75 to 3.5, the bank's by at most 0.2
    assert gain(place) > 1.0  # far above its normal pixels' 99.5 % quantile
    assert gain(place) > 5 * max(gain(bank), 0.05)  # grey and square patches are both in the bank


def test_out_of_fold_place_statistics_leave_the_image_out_and_are_restored():
    torch.manual_seed(0)
    model = create("knnplace", size=64, bank_size=48)
    train = _images(6, 1)
    model.fit(train, TrainSettings(size=64, steps=48))
    full_mean, full_std = model.place_mean.clone(), model.place_std.clone()
    with torch.no_grad():
        rest = model.teacher(train[1:])
        with model._leaving_out(torch.tensor([0]), train[:1]):
            assert torch.allclose(model.place_mean, rest.mean(dim=0, keepdim=True), atol=1e-4)
            expected = (rest.var(dim=0, keepdim=True) + model._place_floor).sqrt()
            assert torch.allclose(model.place_std, expected, rtol=1e-3, atol=1e-4)
        model.eval()
        model.set_map_normalization(model.raw_maps(_images(3, 2)))
        oof = model.out_of_fold_scores(train)
    assert oof.shape == (6,) and torch.isfinite(oof).all()
    assert torch.equal(model.place_mean, full_mean) and torch.equal(model.place_std, full_std)
    # the sums move with the module (fit on CUDA, out-of-fold scores on the CPU) and stay out
    # of the checkpoint
    model.to(torch.float64)
    assert model._place_s1.dtype == model._place_floor.dtype == torch.float64
    assert not any(k.startswith("_place") for k in model.state_dict())


def test_unknown_options_are_refused():
    with pytest.raises(ValueError, match="scales"):
        create("patchcore", size=64, bank_size=16, scales="pyramid")
    with pytest.raises(ValueError, match="colour"):  # no bank at all
        create("patchcore", size=64, bank_size=16, scales="none")


def test_a_frames_tiles_leave_the_bank_together():
    """Tiles of one frame overlap and share pixels: grouped, a frame is scored against a bank
    with none of its tiles' vectors, so its score is at least the worst of its tiles scored one
    by one, and above it where a neighbouring tile of the same frame had covered the tile."""
    torch.manual_seed(0)
    model = create("patchcore", size=64, bank_size=10_000)  # keeps every patch: nothing lost to the coreset
    frames = torch.cat([_images(1, 10 + i) for i in range(4)])  # four unlike frames
    # each frame's two tiles overlap by half: (0..64) and (32..96) of a 96-wide strip
    strips = torch.cat([frames, frames[:, :, :, :32]], dim=3)
    tiles = torch.cat([torch.stack([s[:, :, :64], s[:, :, 32:96]]) for s in strips])
    model.fit(tiles, TrainSettings(size=64, steps=10_000))
    model.eval()
    model.set_map_normalization(model.raw_maps(_images(3, 6)))
    alone = model.out_of_fold_scores(tiles)
    grouped = model.out_of_fold_scores(tiles, torch.arange(len(tiles)) // 2)
    assert grouped.shape == (4,)
    worst_tile = alone.reshape(4, 2).amax(dim=1)
    assert (grouped >= worst_tile - 1e-5).all()
    assert (grouped > worst_tile + 1e-3).any()  # the shared pixels no longer vouch for each other


def test_a_pool_beyond_the_cap_is_thinned_before_the_coreset(monkeypatch):
    from export.models import patchcore

    monkeypatch.setattr(patchcore, "MAX_POOL", 300)
    model = create("patchcore", size=64, bank_size=40)
    pool = torch.randn(1000, 8)
    picked = model.select(pool, 40, seed=0)
    assert len(picked) == len(set(picked.tolist())) == 40 and int(picked.max()) < 1000
    kept = set(torch.randperm(1000, generator=torch.Generator().manual_seed(0))[:300].tolist())
    assert set(picked.tolist()) <= kept  # the coreset searched the thinned pool, indexed as the whole
