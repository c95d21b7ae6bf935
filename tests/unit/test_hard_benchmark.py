"""The hard benchmark's defect drawing (bench/hard_benchmark.py), on a photograph from
scikit-image's wheel: every family changes the image where its mask says and little
elsewhere, at the strength its grade names, and the same keys give the same bytes."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

SPEC = importlib.util.spec_from_file_location(
    "hard_benchmark", Path(__file__).resolve().parents[2] / "bench" / "hard_benchmark.py")
hb = importlib.util.module_from_spec(SPEC)
sys.modules["hard_benchmark"] = hb  # dataclasses look their module up
SPEC.loader.exec_module(hb)


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    img = cv2.resize(data.astronaut(), (1024, 1024)).astype(np.float32)  # colour, real
    img = img * 0.6 + 50  # mid-tones: a colour shift is not clipped away at white
    return hb.Photo(img)


def _view(photo, key):
    return hb._crop(photo, hb._rng("view", key), "test")


@pytest.mark.parametrize("family", sorted(hb.FAMILIES))
@pytest.mark.parametrize("grade", [0, 2])
def test_a_defect_changes_its_mask_and_little_else(photo, family, grade):
    img = _view(photo, (family, grade))
    out, mask = hb.FAMILIES[family](img, hb._rng(family, grade), grade, photo=photo, split="test")
    assert out.shape == img.shape and mask.shape == img.shape[:2] and mask.dtype == bool
    assert 4 <= mask.sum() < 0.25 * mask.size
    diff = np.abs(out - img).sum(-1)
    # soft edges; a warp's displacement fades out over a few pixels below the mask's 0.5 px
    edge = 15 if family == "warp" else 9
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((edge, edge), np.uint8)) > 0
    assert diff[mask].mean() > 0.2
    assert diff[~ring].mean() < 0.05 * diff[mask].mean()


@pytest.mark.parametrize("grade", [0, 1, 2])
def test_a_stain_has_the_colour_difference_its_grade_names(photo, grade):
    img = _view(photo, ("stain", grade))
    out, mask = hb.stain(img, hb._rng("stain", grade), grade)
    d = np.linalg.norm(hb._lab(out) - hb._lab(img), axis=-1)
    core = d[mask]
    assert np.percentile(core, 90) <= (3.0, 5.0, 8.0)[grade] * 1.05
    assert np.percentile(core, 90) >= (3.0, 5.0, 8.0)[grade] * 0.5


def test_a_warp_moves_texture_without_new_colour(photo):
    img = _view(photo, "warp")
    out, mask = hb.warp(img, hb._rng("warp"), 2)
    # pixels are moved, not repainted: inside the mask each output colour is close to some
    # input colour a few pixels away
    near = cv2.erode(img, np.ones((15, 15), np.uint8)), cv2.dilate(img, np.ones((15, 15), np.uint8))
    inside = (out >= near[0] - 2) & (out <= near[1] + 2)
    assert inside[mask].mean() > 0.99


def test_the_board_marks_a_moved_or_missing_part():
    rng = np.random.default_rng(0)
    sub = hb.Photo(rng.uniform(60, 90, (600, 600, 3)).astype(np.float32))
    coin = np.dstack([np.full((43, 43, 3), 200, np.float32), np.ones((43, 43), np.float32)])
    parts = {"coins": [coin] * 4, "connector": np.dstack([np.full((26, 64, 3), 150, np.float32),
                                                          np.ones((26, 64), np.float32)])}
    good, none = hb.board(sub, hb._rng("b", 0), "test", parts, None)
    missing, mask = hb.board(sub, hb._rng("b", 1), "test", parts, 2)
    assert not none.any() and 300 < mask.sum() < 3000
    assert np.abs(missing - good)[mask].mean() > 40  # where the part was, the substrate shows


def test_the_same_keys_give_the_same_image(photo):
    a, _ = hb.render("x", {"x": photo}, {}, "test", 3, "scratch", 1)
    b, _ = hb.render("x", {"x": photo}, {}, "test", 3, "scratch", 1)
    c, _ = hb.render("x", {"x": photo}, {}, "test", 4, "scratch", 1)
    assert a.dtype == np.uint8 and np.array_equal(a, b) and not np.array_equal(a, c)


def test_a_gimp_pattern_is_read_from_its_header(tmp_path):
    px = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    name = b"t\x00"
    header = (24 + len(name)).to_bytes(4, "big") + (1).to_bytes(4, "big") + (3).to_bytes(4, "big") \
        + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + b"GPAT" + name
    (tmp_path / "t.pat").write_bytes(header + px.tobytes())
    assert np.array_equal(hb._gimp_pattern(tmp_path / "t.pat"), px.astype(np.float32))
