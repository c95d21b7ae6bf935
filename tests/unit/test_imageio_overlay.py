import cv2
import numpy as np
import pytest

from edge_ad.decision import Region
from edge_ad.errors import ImageError
from edge_ad.imageio import decode_image, to_model_input
from edge_ad.overlay import encode_jpeg, render_overlay


def test_decode_rejects_garbage_and_empty():
    with pytest.raises(ImageError, match="not a readable image"):
        decode_image(b"\x89PNG\r\n\x1a\n garbage", "x.png")
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"", "x.png")


def test_decode_returns_rgb():
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    ok, buf = cv2.imencode(".png", bgr)
    rgb = decode_image(buf.tobytes())
    assert rgb[0, 0].tolist() == [255, 0, 0]


def test_to_model_input_resizes_and_converts():
    rgb = np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8)
    out = to_model_input(rgb, 32, 32, 1)
    assert out.shape == (32, 32, 1) and out.dtype == np.uint8
    gray = rgb[:, :, 0]
    assert to_model_input(gray, 32, 32, 3).shape == (32, 32, 3)
    same = to_model_input(rgb[:32, :32], 32, 32, 3)
    assert np.array_equal(same, rgb[:32, :32])


def test_overlay_shape_boxes_and_banner():
    frame = np.full((100, 200, 3), 128, np.uint8)
    m = np.zeros((50, 50), np.float32)
    m[10:20, 10:20] = 1.0
    out = render_overlay(frame, m, "NG", 0.9, [Region((40, 40, 30, 30), 900, 1.0)])
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert out[40, 50].tolist() == [255, 255, 255]  # box edge
    assert out[5, 5].tolist() != [128, 128, 128]  # verdict banner
    assert out[90, 190].tolist() == [128, 128, 128]  # untouched where the map is 0
    assert encode_jpeg(out)[:2] == b"\xff\xd8"


def test_a_broken_png_is_refused_from_its_structure_before_decoding(tmp_path):
    """A truncated or CRC-corrupt PNG: refused at once with the reason (OpenCV took up to
    600 ms to give up on a truncated 256x256 one)."""
    import time

    import cv2
    import numpy as np
    import pytest

    from edge_ad.errors import ImageError
    from edge_ad.imageio import decode_image

    good = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (256, 256, 3), np.uint8))[1].tobytes()
    assert decode_image(good).shape == (256, 256, 3)
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x10
    for broken, why in ((good[: len(good) // 2], "truncated"), (bytes(flipped), "CRC")):
        t0 = time.perf_counter()
        with pytest.raises(ImageError, match=why):
            decode_image(broken)
        assert time.perf_counter() - t0 < 0.05


def test_a_large_frame_is_drawn_at_the_display_width_with_its_regions_scaled():
    from edge_ad.decision import Region
    from edge_ad.overlay import DISPLAY_WIDTH, render_overlay

    frame = np.zeros((3000, 4000, 3), np.uint8)
    map_norm = np.zeros((3000, 4000), np.float32)
    map_norm[1500:1520, 2000:2020] = 1.0
    out = render_overlay(frame, map_norm, "NG", 0.9, [Region((2000, 1500, 20, 20), 400, 1.0)], max_width=DISPLAY_WIDTH)
    assert out.shape == (960, 1280, 3)
    x, y = round(2000 * 0.32), round(1500 * 0.32)  # the box, drawn in white at the scaled place
    assert out[y, x:x + 6].min() == 255
    assert render_overlay(frame[:100, :200], None, "OK", 0.1, max_width=DISPLAY_WIDTH).shape == (100, 200, 3)
