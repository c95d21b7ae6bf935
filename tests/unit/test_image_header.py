import cv2
import numpy as np
import pytest

from edge_ad.errors import ImageError
from edge_ad.imageio import image_header


@pytest.mark.parametrize("ext, fmt", [(".png", "png"), (".jpg", "jpeg"), (".bmp", "bmp")])
def test_real_encoded_images(ext, fmt):
    img = np.zeros((37, 53, 3), np.uint8)
    ok, buf = cv2.imencode(ext, img)
    assert image_header(buf.tobytes()) == (fmt, 53, 37)


def test_progressive_jpeg_and_exif_segments():
    img = np.random.default_rng(0).integers(0, 255, (40, 70, 3), np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    data = buf.tobytes()
    app1 = b"\xff\xe1" + (2 + 100).to_bytes(2, "big") + b"Exif\x00\x00" + b"\x00" * 94
    assert image_header(data[:2] + app1 + data[2:]) == ("jpeg", 70, 40)


def test_bomb_is_read_from_header_without_decoding():
    # A PNG that claims 100000 x 100000 pixels: only 33 bytes, never decoded.
    header = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + (100000).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00"
    assert image_header(header) == ("png", 100000, 100000)


@pytest.mark.parametrize("data", [b"", b"GIF89a....", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00", b"BM12"])
def test_unsupported_or_truncated(data):
    with pytest.raises(ImageError):
        image_header(data)
