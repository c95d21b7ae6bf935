"""Would per-tile-position statistics help a tiled bundle? Measured, not assumed.

    python bench/tile_positions.py var/hiresq/patchcore_tiled_wood/bundle var/hires/wood

Every frame of the category's test split, and the bundle's held-out training frames, go through
the bundle's engine tile by tile (the grid of edge_ad/tiling.py), and each tile's raw score is
kept by its position. Two frame scores are then compared on the same frames:

- ``max``: the maximum of the raw tile scores, what the bundle ships;
- ``per-position``: each tile's score less its position's median on good frames, divided by the
  position's spread (standard deviation, floored at a tenth of the median spread), then the
  maximum: a border, a fixture or a lighting falloff that raises one position's normal scores
  no longer sets the frame's.

The positions' statistics are fitted on good frames that are then not scored: the held-out
training frames plus one half of the good test frames, and the other half is judged with all
defective frames; then the halves swap. The image AUROC of each score is the mean over the two
folds. The issue's rule: keep per-position statistics where they raise image AUROC by 0.005 or
more.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge_ad.bundle import load_bundle
from edge_ad.engines import create_engine
from edge_ad.evaluation.dataset import test_set
from edge_ad.evaluation.metrics import auroc
from edge_ad.imageio import read_image, to_model_input
from edge_ad.tiling import fit_frame, score_tiled


def tile_scores(engine, bundle, paths) -> np.ndarray:
    """(frames, positions) raw tile scores, recorded from the one tiling every path runs
    (edge_ad/tiling.py's score_tiled), so the positions are the bundle's own."""
    spec, tiling = bundle.manifest.input, bundle.manifest.tiling
    out = []
    for p in tqdm(paths, desc="frames", unit="frame", file=sys.stderr):
        frame = to_model_input(fit_frame(read_image(p), tiling), tiling.frame_height, tiling.frame_width, spec.channels)
        calls = []

        def infer(batch):
            maps, scores = engine.infer(batch)
            calls.append(np.asarray(scores, np.float64).reshape(-1))
            return maps, scores
        score_tiled(infer, frame, spec.height, tiling.overlap, tiling.batch)
        out.append(np.concatenate(calls))
    return np.stack(out)


def per_position(fit: np.ndarray, judged: np.ndarray) -> np.ndarray:
    """Frame scores of ``judged`` with each position standardized on the good frames ``fit``."""
    mid = np.median(fit, axis=0)
    spread = fit.std(axis=0)
    spread = np.maximum(spread, 0.1 * np.median(spread) + 1e-9)
    return ((judged - mid) / spread).max(axis=1)


def study(bundle_path: Path, category: Path) -> dict:
    bundle = load_bundle(bundle_path)
    if bundle.manifest.tiling is None:
        raise SystemExit(f"{bundle_path} is not a tiled bundle")
    import torch  # the run's checkpoint names its held-out frames

    held = torch.load(bundle.path.parent / "checkpoint.pt", map_location="cpu", weights_only=False)["holdout"]
    samples = test_set(category)
    labels = np.array([s.is_defect for s in samples])
    with create_engine(bundle, providers=["CPUExecutionProvider"]) as engine:
        hold = tile_scores(engine, bundle, [Path(p) for p in held])
        test = tile_scores(engine, bundle, [s.path for s in samples])
    good = np.flatnonzero(~labels)
    halves = (good[0::2], good[1::2])
    result = {"max": [], "per-position": []}
    for k in (0, 1):
        fit = np.vstack([hold, test[halves[k]]])
        judged = np.r_[halves[1 - k], np.flatnonzero(labels)]
        y = labels[judged].astype(int)
        result["max"].append(auroc(y, test[judged].max(axis=1)))
        result["per-position"].append(auroc(y, per_position(fit, test[judged])))
    spread_ratio = float(np.median(hold, axis=0).std() / (hold.std(axis=0).mean() + 1e-12))
    return {"category": category.name, "positions": int(test.shape[1]), "held_out_frames": len(hold),
            "image_auroc_max": float(np.mean(result["max"])),
            "image_auroc_per_position": float(np.mean(result["per-position"])),
            "position_medians_spread_over_within_spread": spread_ratio}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("data", help="the MVTec-layout category the bundle was trained on")
    ap.add_argument("--json")
    args = ap.parse_args()
    row = study(Path(args.bundle), Path(args.data))
    row["gain"] = row["image_auroc_per_position"] - row["image_auroc_max"]
    row["keep"] = row["gain"] >= 0.005
    print(json.dumps(row, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()
