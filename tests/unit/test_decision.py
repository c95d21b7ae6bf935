import numpy as np
import pytest

from edge_ad.decision import NG, OK, find_regions, normalize, verdict_for


def test_threshold_maps_to_exactly_half():
    assert normalize(2.0, threshold=2.0, scale=0.5) == pytest.approx(0.5)
    assert normalize(2.5, threshold=2.0, scale=0.5) == pytest.approx(1.0)
    assert normalize(1.5, threshold=2.0, scale=0.5) == pytest.approx(0.0)
    assert normalize(2.25, threshold=2.0, scale=0.5) == pytest.approx(0.75)


def test_normalize_clips_to_unit_interval():
    out = normalize(np.array([-100.0, 100.0]), threshold=0.0, scale=1.0)
    assert out.tolist() == [0.0, 1.0]


def test_verdict_at_threshold_is_ng():
    assert verdict_for(0.5) == NG
    assert verdict_for(0.4999) == OK


def test_regions_by_value_scaled_to_frame():
    m = np.zeros((10, 20), np.float32)
    m[2:4, 3:7] = 0.8  # 2 x 4 block, peak 0.8
    m[2, 4] = 0.95
    m[8, 18] = 0.6  # a single pixel
    regions = find_regions(m, frame_hw=(20, 40))  # frame is twice the map size
    assert len(regions) == 2
    big, small = regions
    assert big.bbox_xywh == (6, 4, 8, 4)
    assert big.area_px == 8 * 4
    assert big.peak_score == pytest.approx(0.95)
    assert small.bbox_xywh == (36, 16, 2, 2)


def test_regions_respect_min_area_and_empty_map():
    m = np.zeros((10, 10), np.float32)
    assert find_regions(m, (10, 10)) == []
    m[0, 0] = 1.0
    assert find_regions(m, (10, 10), min_area_px=2) == []
