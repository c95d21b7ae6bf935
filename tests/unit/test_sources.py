import cv2
import numpy as np
import pytest

from edge_ad.errors import SourceError
from edge_ad.sources.base import parse_uri
from edge_ad.sources.registry import open_source


def test_parse_uri():
    u = parse_uri("dir:///data/imgs?loop=1&fps=5")
    assert (u.scheme, u.path) == ("dir", "/data/imgs")
    assert u.flag("loop") is True and u.number("fps", None) == 5.0
    with pytest.raises(SourceError):
        parse_uri("dir:///x?loop=maybe").flag("loop")
    with pytest.raises(SourceError, match="no scheme"):
        parse_uri("/just/a/path")


def test_unsupported_scheme():
    with pytest.raises(SourceError, match="unsupported source scheme"):
        open_source("ftp://host/x")


def _write(path, value):
    cv2.imwrite(str(path), np.full((8, 8, 3), value, np.uint8))


def test_folder_in_order_skips_corrupt_and_loops(tmp_path):
    _write(tmp_path / "b.png", 20)
    _write(tmp_path / "a.png", 10)
    (tmp_path / "c.png").write_bytes(b"broken")
    src = open_source(f"dir://{tmp_path}?loop=1&fps=0")
    src.open()
    values = [int(src.read()[0, 0, 0]) for _ in range(4)]
    assert values == [10, 20, 10, 20]
    assert src.skipped >= 1 and src.pace_fps is None


def test_folder_ends_without_loop(tmp_path):
    _write(tmp_path / "a.png", 1)
    src = open_source(f"dir://{tmp_path}")
    src.open()
    assert src.read() is not None and src.read() is None


def test_missing_folder_and_video(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        open_source(f"dir://{tmp_path}/none").open()
    with pytest.raises(SourceError, match="not found"):
        open_source(f"file://{tmp_path}/none.avi").open()


def test_corrupt_video_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(SourceError, match="cannot open video"):
        open_source(f"file://{bad}").open()


def test_video_file_frames_and_loop(demo_root):
    video = demo_root / "video" / "wood_line.avi"
    src = open_source(f"file://{video}?loop=1")
    src.open()
    assert src.pace_fps == pytest.approx(12.0)
    n = int(src.cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = [src.read() for _ in range(n + 2)]  # past the end: loops back to frame 0
    assert all(f is not None and f.shape == (256, 256, 3) for f in frames)
    assert np.array_equal(frames[0], frames[n])
    src.close()
