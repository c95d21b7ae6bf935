import cv2
import numpy as np
import pytest

from edge_ad.config import build_config
from edge_ad.errors import ConfigError
from edge_ad.decision.camera import CameraDecision, load_ignore_mask


def test_crop_then_rotate_by_value():
    frame = np.arange(6 * 8).reshape(6, 8).astype(np.uint8)
    d = CameraDecision(roi_xywh=(2, 1, 3, 2), rotate_deg=90)
    out = d.inspected(frame)
    crop = frame[1:3, 2:5]
    assert np.array_equal(out, np.rot90(crop, k=-1))  # clockwise
    assert out.shape == (3, 2)


def test_roi_outside_the_frame_is_refused():
    with pytest.raises(ValueError, match="outside"):
        CameraDecision(roi_xywh=(5, 5, 10, 10)).inspected(np.zeros((8, 8, 3), np.uint8))


def test_ignore_mask_is_resized_nearest(tmp_path):
    m = np.zeros((20, 40), np.uint8)
    m[:, :20] = 255  # ignore the left half
    cv2.imwrite(str(tmp_path / "m.png"), m)
    mask = load_ignore_mask(tmp_path / "m.png", 8, 8)
    assert mask.dtype == bool and mask[:, :4].all() and not mask[:, 4:].any()
    with pytest.raises(ConfigError, match="missing or not an image"):
        load_ignore_mask(tmp_path / "none.png", 8, 8)


def test_camera_settings_are_validated():
    with pytest.raises(ConfigError, match="roi"):
        build_config({"model": "b", "cameras": [{"source": "dir:///x", "roi": [0, 0, 0, 10]}]})
    with pytest.raises(ConfigError, match="rotate"):
        build_config({"model": "b", "cameras": [{"source": "dir:///x", "rotate": 45}]})
