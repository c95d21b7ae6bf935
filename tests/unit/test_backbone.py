"""The bundled ImageNet weights are loaded right: a known photo gets its known class."""
import cv2
import torch
from skimage import data

from export.backbone import load_backbone

EGYPTIAN_CAT = 285


def test_chelsea_is_an_egyptian_cat():
    model = load_backbone("lite0")
    img = cv2.resize(data.chelsea(), (224, 224), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        probs = model(model.normalize(x)).softmax(-1)[0]
    assert int(probs.argmax()) == EGYPTIAN_CAT
    assert float(probs[EGYPTIAN_CAT]) > 0.5


def test_weights_are_frozen_and_strict():
    model = load_backbone("lite0")
    assert not any(p.requires_grad for p in model.parameters())
    assert model.stage_strides[:4] == [2, 4, 8, 16]
