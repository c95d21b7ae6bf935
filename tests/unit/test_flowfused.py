"""flowfused (export/models/flowfused.py): fastflow's map and the two colour maps, each in
units of its own image maxima's spread on held-out good images, fused by their maximum."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

from export.models.base import TrainSettings, create
from export.onnx_export import export_onnx


def _images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, 64, 64, generator=g) * 120 + 60
    return (base + torch.randn(n, 3, 64, 64, generator=g) * 12).clamp(0, 255)


def _fitted():
    torch.manual_seed(0)
    model = create("flowfused", size=64, bank_size=48)
    train, hold = _images(6, 1), _images(4, 2)
    model.fit(train, TrainSettings(size=64, steps=5))
    model.eval()
    model.set_map_normalization(model.raw_maps(hold))
    model.fit_fusion(train, hold)
    return model, hold


def test_the_fusion_is_calibrated_on_the_held_out_images_alone():
    model, hold = _fitted()
    with torch.no_grad():
        maxima = model._normalized(hold).amax(dim=(2, 3))  # (4 images, 3 maps)
    assert torch.allclose(model.img_mid.flatten(), maxima.median(dim=0).values)
    assert torch.allclose(model.img_spread.flatten(), maxima.std(dim=0))


def test_the_score_is_the_largest_calibrated_map_and_the_graph_agrees(tmp_path):
    model, _ = _fitted()
    x = torch.from_numpy(_images(2, 3).round().numpy()).float()
    with torch.no_grad():
        amap, score = model(x)
        per_map = ((model._normalized(x) - model.img_mid) / model.img_spread).amax(dim=(2, 3))
    assert torch.allclose(score, per_map.amax(dim=1)) and amap.shape == (2, 64, 64)
    sess = ort.InferenceSession(str(export_onnx(model, 64, 3, tmp_path / "model.onnx")),
                                providers=["CPUExecutionProvider"])
    out_map, out_score = sess.run(None, {"image": x.to(torch.uint8).permute(0, 2, 3, 1).numpy()})
    assert np.abs(out_score - score.numpy()).max() < 1e-4 * float(score.abs().max()) + 1e-5
    assert np.abs(out_map.reshape(amap.shape) - amap.numpy()).max() < 1e-3


def test_a_tint_the_flow_barely_sees_raises_the_colour_maps_and_the_score():
    model, _ = _fitted()
    good = _images(1, 4)
    stained = good.clone()
    stained[:, :, 20:40, 20:40] += torch.tensor([20.0, 10.0, -15.0]).view(1, 3, 1, 1)
    with torch.no_grad():
        before, after = model._normalized(good), model._normalized(stained)
        rise = (after - before)[0, :, 24:36, 24:36].mean(dim=(1, 2))  # flow, colour bank, place
        assert model(stained)[1] > model(good)[1]
    assert rise[1] > 0.05 and rise[2] > 0.05
