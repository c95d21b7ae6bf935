"""What float32 rounding alone moves: every family trained on demo categories, its exported
graph on ONNX Runtime CPU against the torch module, in the units the parity gate judges
(edge_ad.parity: |Δ score| / threshold scale) and, for comparison, relative to the raw score
(the old rule, which refused good bundles whose normal scores sit near zero).

    python bench/parity.py --data var/demo --out var/parity [--steps 100] [--categories wood grass]

Training is short (``--steps``): rounding depends on the graph, not on how long it trained. Every
run trains a fresh bundle; a refused one is reported, not an error.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge_ad.errors import EdgeAdError
from edge_ad.parity import TOLERANCES

FAMILIES = ("efficientad", "rd", "fastflow", "patchcore", "knn", "knnplace", "fused")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--categories", nargs="+", default=["wood", "grass"])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES))
    args = ap.parse_args()
    from export.models.base import family_class
    from export.train import train

    rows = []
    for category in args.categories:
        for family in args.families:
            run = Path(args.out) / f"{family}_{category}"
            steps = None if family_class(family).bank_family else args.steps
            try:
                train(family, Path(args.data) / category, run, size=args.size, steps=steps, seed=0)
                manifest = json.loads((run / "bundle" / "manifest.json").read_text())
            except EdgeAdError as exc:
                print(f"{family} {category}: {exc}")
                manifest = json.loads((run / "bundle.failed-parity" / "manifest.json").read_text())
            p = manifest["parity"]["torch"]
            rows.append((family, category, p["max_score_diff_of_scale"], p["max_rel_score_diff"],
                         p["verdict_flips"], p["flips_beyond_noise"], p["passed"]))
    tol = TOLERANCES["fp32"].score
    print(f"\n| family | category | max Δscore / scale | max Δscore / score (old rule) | flips | "
          f"flips beyond noise | gate (≤ {tol:g} of scale) |")
    print("|---|---|---|---|---|---|---|")
    for family, category, of_scale, rel, flips, beyond, passed in rows:
        print(f"| {family} | {category} | {of_scale:.2e} | {rel:.2e} | {flips} | {beyond} | "
              f"{'pass' if passed else 'FAIL'} |")
    worst = max(r[2] for r in rows)
    print(f"\nworst Δscore / scale {worst:.2e}: {tol / max(worst, 1e-30):.0f}x inside the fp32 tolerance")


if __name__ == "__main__":
    main()
