import hashlib

import numpy as np

from export.demo_data import CATEGORIES, DEFECTS, render


def _digest(arr):
    return hashlib.sha256(arr.tobytes()).hexdigest()


def test_deterministic_per_seed():
    a, _ = render("brick", seed=1, key=("train", 0))
    b, _ = render("brick", seed=1, key=("train", 0))
    c, _ = render("brick", seed=2, key=("train", 0))
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_normal_variation_between_parts():
    a, _ = render("grass", 0, ("train", 0))
    b, _ = render("grass", 0, ("train", 1))
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 5


def test_every_defect_has_a_mask_where_the_image_changed():
    for category in CATEGORIES:
        good, good_mask = render(category, 0, ("test", 0))
        assert not good_mask.any()
        for defect in DEFECTS:
            img, mask = render(category, 0, ("test", 0), defect)
            assert img.shape == (256, 256, 3) and img.dtype == np.uint8
            frac = (mask > 0).mean()
            assert 0.001 < frac < 0.2, (category, defect, frac)
            # same part, same camera noise: the pixels inside the mask differ far more than outside
            diff = np.abs(img.astype(int) - good.astype(int)).mean(axis=2)
            assert diff[mask > 0].mean() > 3 * diff[mask == 0].mean() + 2, (category, defect)


def test_mvtec_layout(export_demo_root):
    cat = export_demo_root / "wood"
    assert len(list((cat / "train" / "good").glob("*.png"))) == 28
    for defect in DEFECTS:
        imgs = sorted((cat / "test" / defect).glob("*.png"))
        masks = sorted((cat / "ground_truth" / defect).glob("*_mask.png"))
        assert [p.stem for p in imgs] == [p.stem.replace("_mask", "") for p in masks]
    assert (export_demo_root / "video" / "wood_line.avi").stat().st_size > 10_000
    truth = (export_demo_root / "video" / "wood_line.csv").read_text().splitlines()
    assert truth[0] == "frame,part,defect"
    labels = [line.split(",")[2] for line in truth[1:]]
    assert 0 < sum(x != "good" for x in labels) < len(labels) / 3  # mostly good, some defects
