"""Tiling: the grid covers the frame, stitching is exact on a constant map and seamless on a
smooth one, and coordinates round-trip."""
import numpy as np
import pytest

from edge_ad.tiling import cut, grid, positions, score_tiled, stitch, tile_batch, window


def test_positions_start_at_zero_end_at_the_edge_and_overlap_enough():
    for length, tile, overlap in ((768, 256, 0.25), (2448, 256, 0.25), (1000, 256, 0.5), (256, 256, 0.25)):
        ps = positions(length, tile, overlap)
        assert ps[0] == 0 and ps[-1] == length - tile
        assert all(b - a <= tile * (1 - overlap) + 1 for a, b in zip(ps, ps[1:]))  # shared >= overlap
    assert positions(768, 256, 0.25) == [0, 171, 341, 512]
    with pytest.raises(ValueError, match="smaller than the 256-px tile"):
        positions(200, 256, 0.25)


def test_stitching_is_exact_on_a_constant_map():
    corners = grid(700, 900, 256, 0.25)
    maps = np.full((len(corners), 256, 256), 3.25, np.float32)
    out = stitch(maps, corners, 700, 900)
    assert out.shape == (700, 900) and np.allclose(out, 3.25, atol=1e-6)


def test_stitching_is_seamless_on_a_smooth_map():
    h, w, tile = 600, 800, 128
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    truth = np.sin(xx / 97.0) + np.cos(yy / 61.0)
    corners = grid(h, w, tile, 0.25)
    # each tile sees the truth plus its own constant offset: a seam would show as a step
    rng = np.random.default_rng(0)
    maps = np.stack([truth[y:y + tile, x:x + tile] + rng.normal(0, 0.05) for y, x in corners])
    def seam(out):  # the largest step between neighbouring pixels, the smooth truth taken away
        return max(np.abs(np.diff(out - truth, axis=0)).max(), np.abs(np.diff(out - truth, axis=1)).max())

    out = stitch(maps, corners, h, w)
    plain = np.zeros((h, w), np.float32)  # the plain average of overlaps, anomalib's tiler's way
    count = np.zeros((h, w), np.float32)
    for m, (y, x) in zip(maps, corners):
        plain[y:y + tile, x:x + tile] += m
        count[y:y + tile, x:x + tile] += 1
    assert seam(out) < 0.01 and seam(out) < seam(plain / count) / 5  # the offsets blend in smoothly
    assert np.abs(out - truth).max() < 0.2


def test_cut_then_stitch_round_trips_the_frame_itself():
    rng = np.random.default_rng(1)
    frame = rng.random((513, 777)).astype(np.float32)
    corners = grid(513, 777, 128, 0.3)
    tiles = cut(frame[..., None], corners, 128)[..., 0]
    assert np.allclose(stitch(tiles, corners, 513, 777), frame, atol=1e-6)
    # a pixel's coordinates in a tile plus the tile's corner are its frame coordinates
    y, x = corners[5]
    assert tiles[5][17, 33] == frame[y + 17, x + 33]


def test_score_tiled_batches_within_the_ceiling_and_finds_the_hottest_tile():
    calls = []

    def infer(batch):
        calls.append(len(batch))
        m = batch[..., 0].astype(np.float32)
        return m, m.reshape(len(m), -1).max(1)

    frame = np.zeros((768, 768, 3), np.uint8)
    frame[700:706, 40:46] = 200  # a small defect near a corner
    raw_map, raw_score = score_tiled(infer, frame, 256, 0.25, batch=5)
    assert sum(calls) == 16 and max(calls) <= 5
    assert raw_score == 200 and raw_map.shape == (768, 768)
    assert np.unravel_index(raw_map.argmax(), raw_map.shape)[0] in range(700, 706)
    corners = grid(768, 768, 256, 0.25)  # blended batch by batch, as if stitched all at once
    whole = stitch(cut(frame, corners, 256)[..., 0].astype(np.float32), corners, 768, 768)
    assert np.allclose(raw_map, whole, atol=1e-4)
    assert window(8).min() > 0
    assert tile_batch(256, 1024) == 19 and tile_batch(1024, 100) == 1


def test_a_nan_score_in_one_tile_batch_is_kept_for_the_frame():
    # Python's max(0.3, nan) is 0.3: the frame would lose the one batch whose engine overflowed
    calls = []

    def infer(batch):
        calls.append(len(batch))
        m = np.zeros((len(batch), 256, 256), np.float32)
        s = np.full(len(batch), np.nan if len(calls) == 2 else 0.3, np.float32)
        return m, s

    _, raw_score = score_tiled(infer, np.zeros((768, 768, 3), np.uint8), 256, 0.25, batch=5)
    assert len(calls) > 2 and np.isnan(raw_score)
