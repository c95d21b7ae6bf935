"""Does fastflow hold a vibrating camera when it also learns from jittered copies of its training
images (export/jitter.py)? One fit per surface and copy count, torch only, no export.

    python bench/jitter_study.py --data var/demo --copies 0 3 --categories gravel    # with its line video
    python bench/jitter_study.py --data var/hard --copies 3 --categories fabric grass wood

Per fit: image AUROC on the test split (and per defect family), how many good test images
score above the highest held-out good image (a stand-in for the threshold, which
bench/quality.py sets on the bundle), and, for demo categories, the same count over the good
and defect frames of the category's line video (the vibrating camera of bench/quality.py).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from edge_ad.evaluation.dataset import test_set  # noqa: E402
from edge_ad.evaluation.metrics import auroc  # noqa: E402
from edge_ad.imageio import to_model_input  # noqa: E402
from export.bundle_writer import fold_map_normalization  # noqa: E402
from export.data import load_images, normal_images, split_holdout  # noqa: E402
from export.models.base import TrainSettings, create  # noqa: E402
from export.train import _as_float_rgb  # noqa: E402


def _scores(model, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([model(x[i:i + 8])[1] for i in range(0, len(x), 8)]).numpy()


def run(surface: Path, copies: int, steps: int, video) -> dict:
    train_p, hold_p = split_holdout(normal_images(surface), 0)
    train, hold_u8 = _as_float_rgb(load_images(train_p, 256, 3)), load_images(hold_p, 256, 3)
    samples = test_set(surface)
    test = _as_float_rgb(load_images([s.path for s in samples], 256, 3))
    labels = np.array([s.is_defect for s in samples])
    torch.manual_seed(0)
    model = create("fastflow", size=256, jitter=copies)
    t0 = time.perf_counter()
    model.fit(train, TrainSettings(steps=steps))
    seconds = time.perf_counter() - t0
    model.eval()
    fold_map_normalization(model, hold_u8)
    scores, bar = _scores(model, test), _scores(model, _as_float_rgb(hold_u8)).max()
    row = {"category": surface.name, "copies": copies, "train_s": round(seconds), "image_auroc": round(auroc(labels, scores), 3),
           "good_above_held_out": f"{int((scores[~labels] > bar).sum())}/{int((~labels).sum())}"}
    for kind in sorted({s.defect for s in samples} - {"good"}):
        keep = np.array([s.defect in ("good", kind) for s in samples])
        row[kind] = round(auroc(labels[keep], scores[keep]), 3)
    if video is not None:
        frames, truth = video
        good = np.array([r["defect"] == "good" for r in truth[:len(frames)]])
        v = _scores(model, _as_float_rgb(np.stack([to_model_input(f, 256, 256, 3) for f in frames])))
        row["video_good_above"] = f"{int((v[good] > bar).sum())}/{int(good.sum())}"
        row["video_defect_above"] = f"{int((v[~good] > bar).sum())}/{int((~good).sum())}"
    return row


def main() -> None:
    from quality import line_video

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("var/demo"))
    ap.add_argument("--categories", nargs="+", default=["gravel"])
    ap.add_argument("--copies", nargs="+", type=int, default=[0, 3])
    ap.add_argument("--steps", type=int, default=600, help="flow steps (fastflow's default)")
    ap.add_argument("--videos", type=Path, default=Path("var/jitter_study"), help="where line videos are written")
    args = ap.parse_args()
    for category in args.categories:
        video = line_video(category, args.videos, 0)  # None for data that is not the demo generator's
        for copies in args.copies:
            print(json.dumps(run(args.data / category, copies, args.steps, video)), flush=True)


if __name__ == "__main__":
    main()
