"""Tiled bundles end to end: a small defect in a larger frame is found by the tiled bundle and
missed by the downscaled one, trained on the same images with the same family; regions come back
in the frame's own coordinates, and a frame of another size is refused with both sizes named."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_ad.bundle import load_bundle
from edge_ad.engines import create_engine
from edge_ad.errors import EdgeAdError
from edge_ad.pipeline.inspector import Inspector
from export.demo_data import render
from export.train import train

SIZE = 128  # the tile, and the downscaled model's input
FRAME = 512  # 2 x 2 demo parts: at 128 px a 7-px spot becomes under 2 px


def _frame(key) -> np.ndarray:
    parts = [[render("wood", 3, (key, r, c))[0] for c in range(2)] for r in range(2)]
    return np.concatenate([np.concatenate(row, axis=1) for row in parts], axis=0)


def _spot(frame: np.ndarray, rng) -> tuple[np.ndarray, tuple[int, int]]:
    y, x = (int(v) for v in rng.integers(40, FRAME - 40, 2))
    mask = np.zeros(frame.shape[:2], np.float32)
    cv2.circle(mask, (x, y), 3, 1.0, -1)
    soft = cv2.GaussianBlur(mask, (5, 5), 1.2)[..., None]
    return np.clip(frame * (1 - 0.65 * soft), 0, 255).astype(np.uint8), (y, x)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("hires")
    good = root / "good"
    good.mkdir()
    for i in range(24):
        cv2.imwrite(str(good / f"{i:03d}.png"), _frame(("train", i))[:, :, ::-1])
    common = dict(size=SIZE, steps=200, seed=0)
    tiled = train("patchcore", good, root / "tiled", tiling={"overlap": 0.25}, **common)
    plain = train("patchcore", good, root / "plain", **common)
    return load_bundle(tiled), load_bundle(plain)


def test_the_threshold_sees_every_training_frame_out_of_fold(bundles):
    tiled, _ = bundles
    cal = tiled.manifest.calibration
    # 24 frames: 8 held out (the fewest the bound accepts), the 16 trained on scored each with
    # its own tiles left out of the bank
    assert (cal.out_of_fold_count, cal.normal_count) == (16, 24), cal
    # every good frame, out-of-fold or held out, lies under the frame-level threshold it set
    assert len(cal.normal_scores) == 24
    assert tiled.manifest.thresholds.image.threshold > max(cal.normal_scores) == pytest.approx(cal.normal_score_max, abs=1e-5)


def test_a_tiled_bundle_reexports_tiled_and_passes_fp16_parity_on_whole_frames(bundles, tmp_path, capsys):
    from edge_ad.cli import main
    from export.train import reexport

    tiled, _ = bundles
    again = load_bundle(reexport(tiled.path.parent / "checkpoint.pt", tmp_path / "again"))
    assert again.manifest.tiling == tiled.manifest.tiling
    assert again.manifest.thresholds.image.threshold == pytest.approx(tiled.manifest.thresholds.image.threshold, rel=1e-4)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        cv2.imwrite(str(frames / f"{i}.png"), _frame(("verify", i))[:, :, ::-1])
    code = main(["verify", str(tiled.path), "--data", str(frames), "--precision", "fp16",
                 "--json", str(tmp_path / "v.json")])
    out = capsys.readouterr().out
    assert code == 0, out
    import json

    fp16 = {r["candidate"]: r for r in json.loads((tmp_path / "v.json").read_text())["results"]}["fp16 graph on onnxruntime-cpu"]
    assert fp16["passed"] and fp16["max_score_diff_of_scale"] > 0  # really half precision, on frames
    assert "4 images from" in out


def test_the_tiled_bundle_finds_a_small_defect_the_downscaled_one_misses(bundles):
    tiled, plain = bundles
    t = tiled.manifest.tiling
    assert (t.frame_width, t.frame_height, t.overlap) == (FRAME, FRAME, 0.25) and t.batch >= 1
    assert plain.manifest.tiling is None
    rng = np.random.default_rng(7)
    defects = [_spot(_frame(("test-ng", i)), rng) for i in range(6)]
    goods = [_frame(("test-ok", i)) for i in range(6)]
    verdicts = {}
    for name, bundle in (("tiled", tiled), ("plain", plain)):
        with create_engine(bundle, providers=["CPUExecutionProvider"]) as engine:
            inspector = Inspector(engine, bundle.manifest)
            found = [inspector.inspect([f])[0] for f, _ in defects]
            passed = [inspector.inspect([f])[0] for f in goods]
        verdicts[name] = ([i.verdict for i in found], [i.verdict for i in passed])
        if name == "tiled":
            for ins, (_, (y, x)) in zip(found, defects):
                assert ins.raw_map.shape == (FRAME, FRAME)  # full resolution, frame coordinates
                if ins.verdict == "NG":  # the region is where the spot is, in frame pixels
                    assert any(r.bbox_xywh[0] - 4 <= x <= r.bbox_xywh[0] + r.bbox_xywh[2] + 4 and
                               r.bbox_xywh[1] - 4 <= y <= r.bbox_xywh[1] + r.bbox_xywh[3] + 4 for r in ins.regions)
    tiled_ng, tiled_ok = verdicts["tiled"]
    plain_ng, _ = verdicts["plain"]
    assert tiled_ng.count("NG") >= 5, verdicts  # at most one of six missed
    assert tiled_ok.count("NG") <= 1, verdicts
    assert plain_ng.count("NG") <= 2, verdicts  # downscaled, the spot is under two pixels


def test_a_tiled_bundle_refuses_a_frame_of_another_size_and_training_needs_one_size(bundles, tmp_path):
    tiled, _ = bundles
    with create_engine(tiled, providers=["CPUExecutionProvider"]) as engine:
        with pytest.raises(ValueError, match="the frame is 640x480, but this tiled bundle judges 512x512"):
            Inspector(engine, tiled.manifest).inspect([np.zeros((480, 640, 3), np.uint8)])
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for i in range(16):
        image = _frame(("mixed", i)) if i else _frame(("mixed", i))[:500]
        cv2.imwrite(str(mixed / f"{i:03d}.png"), image[:, :, ::-1])
    with pytest.raises(EdgeAdError, match=r"is 512x500 but .* is 512x512|is 512x512 but .* is 512x500"):
        train("patchcore", mixed, tmp_path / "run", size=SIZE, steps=50, tiling={"overlap": 0.25})
