"""Probe: fastflow with its features standardized per position instead of per channel.

anomalib's FastFlow finds the hard benchmark's moved and missing components (0.817) where this
project's fastflow does not (0.517). Its flows sit behind a LayerNorm with a learned affine per
position, so each location has normal statistics of its own. This probe asks whether that is
the difference: it trains this project's fastflow through the product's own `train` and judges
it with `edge-ad evaluate`, with one change, made here and not in the family: the teacher
features are standardized by each location's mean and spread over the good images (plus a
tenth of the channel's overall variance, so that a location whose feature never moved does not
divide by zero).

    python bench/position_probe.py --data var/hard --surfaces board fabric beans

Figures and reading: docs/benchmarks.md (anomalib as a peer).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export.models import fastflow  # noqa: E402


def per_position_stats(self, feats: torch.Tensor) -> None:
    """Replaces FastFlow.fit_feature_stats: each location's own mean and spread."""
    self.f_mean = feats.mean(dim=0, keepdim=True)
    self.f_std = (feats.var(dim=0, keepdim=True) + 0.1 * feats.var(dim=(0, 2, 3), keepdim=True)).sqrt()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="var/hard")
    ap.add_argument("--out", default="var/position_probe")
    ap.add_argument("--surfaces", nargs="*", default=["board", "fabric", "beans"])
    args = ap.parse_args()
    fastflow.FastFlow.fit_feature_stats = per_position_stats  # this process only: the probe's one change
    from export.train import train
    from quality import _quality  # bench/ is on sys.path when run as a script

    for s in args.surfaces:
        out = Path(args.out) / f"fastflow-position_{s}"
        t0 = time.perf_counter()
        train("fastflow", Path(args.data) / s, out, seed=0)
        row = {"category": s, "train_s": round(time.perf_counter() - t0), **_quality(out / "bundle", Path(args.data) / s)}
        print(json.dumps({k: row[k] for k in ("category", "image_auroc", "pixel_auroc", "per_defect",
                                              "false_rejects", "misses", "train_s")}), flush=True)


if __name__ == "__main__":
    main()
