"""export/jitter.py: the camera-jittered copies the flows train on."""
import torch

from export.jitter import MAX_IMAGES, jittered


def _images(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 3, 64, 64, generator=g) * 200 + 20).round()


def test_copies_follow_the_originals_moved_a_little_and_seeded():
    x = _images(4)
    out = jittered(x, 3, seed=1)
    assert out.shape == (16, 3, 64, 64) and torch.equal(out[:4], x)
    assert torch.equal(out, jittered(x, 3, seed=1)) and not torch.equal(out, jittered(x, 3, seed=2))
    copies = out[4:].reshape(3, 4, 3, 64, 64)
    assert all(not torch.equal(c, x) for c in copies)  # each copy moved or re-exposed
    assert float(out.min()) >= 0 and float(out.max()) <= 255
    # a shift of at most 4 px with mirrored borders: no black edge comes in
    assert float(copies[..., :2, :].mean()) > 0.5 * float(x[..., :2, :].mean())


def test_a_smooth_image_moves_by_at_most_the_stated_shift():
    ramp = torch.arange(64.0).repeat(64, 1).expand(1, 3, 64, 64) * 3  # 3 grey levels a pixel
    moved = jittered(ramp, 1, seed=0, degrees=0.0, gain=0.0)[1]
    centre = (moved - ramp[0])[:, 16:48, 16:48]  # away from the mirrored border
    assert float(centre.abs().max()) <= 4.0 * 3 + 1e-3 and float(centre.abs().max()) > 0


def test_no_copies_past_the_bound():
    x = torch.zeros(MAX_IMAGES // 2 + 1, 3, 8, 8)
    assert jittered(x, 3) is x  # tiled training has shifted views already
    assert len(jittered(torch.zeros(100, 3, 8, 8), 9)) == 500


def test_the_flows_learn_from_copies_only_when_asked():
    from export.models.base import create, from_config

    old = {"size": 64, "backbone": "lite0", "backbone_weights": None, "blocks": 2, "hidden": 8, "blur_sigma": 4.0}
    assert from_config("fastflow", old).jitter == 0  # a checkpoint from before the option
    assert create("fastflow", size=64).jitter == 0 and create("fastflow", size=64, jitter=3).jitter == 3
    fused = create("flowfused", size=64, jitter=2)
    assert fused.jitter == 2 and fused.flow.jitter == 0  # jittered once, for both halves
