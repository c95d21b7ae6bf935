"""The bundled ImageNet weights are loaded right: a known photo gets its known class."""
import pickle

import cv2
import pytest
import torch
from skimage import data

from export.backbone import load_backbone

EGYPTIAN_CAT = 285


@pytest.mark.parametrize("variant", ["lite0", "lite1", "lite2"])
def test_chelsea_is_an_egyptian_cat(variant):
    model = load_backbone(variant)
    size = model.native_size  # 224, 240, 260: each variant at the resolution it was trained at
    img = cv2.resize(data.chelsea(), (size, size), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        probs = model(model.normalize(x)).softmax(-1)[0]
    assert int(probs.argmax()) == EGYPTIAN_CAT
    assert float(probs[EGYPTIAN_CAT]) > 0.5


def test_weights_are_frozen_and_strict():
    model = load_backbone("lite0")
    assert not any(p.requires_grad for p in model.parameters())
    assert model.stage_strides[:4] == [2, 4, 8, 16]


def test_a_local_weights_file_must_fit_the_architecture(tmp_path):
    """Another variant's weights, or a file that is no state dict, are refused, not half-loaded."""
    lite0 = tmp_path / "lite0.pth"
    torch.save(load_backbone("lite0").state_dict(), lite0)
    assert load_backbone("lite0", lite0).stage_channels == load_backbone("lite0").stage_channels
    with pytest.raises(RuntimeError, match="size mismatch|Missing key|Unexpected key"):
        load_backbone("lite2", lite0)
    junk = tmp_path / "junk.pth"
    junk.write_text("not weights")
    with pytest.raises(pickle.UnpicklingError):
        load_backbone("lite0", junk)
