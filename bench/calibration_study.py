"""How often does a normal-only threshold miss its false-reject target?

Scores many fresh normal and defect parts from the demo generator (parts no model trained on)
with a bundle's real engine, then repeatedly draws N normal scores as if they were the held-out
calibration set, sets the threshold by each rule, and measures the false-reject rate on the
other normal parts and the miss rate on the defects.

    python bench/calibration_study.py var/runs/wood/bundle --category wood
    python bench/calibration_study.py --shipped var/quality/*_*/bundle     # every family x surface

``--shipped`` skips the draws: for each bundle (its category read from the directory name
``<family>_<category>``) it reports the realized false-reject rate on fresh normal parts and the
miss rate on fresh defects *at the threshold the bundle ships with*, and how many good images
its calibration saw (held out + out-of-fold).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import stats

from edge_ad.bundle import load_bundle
from edge_ad.engines import create_engine
from export.calibrate import gumbel_bound, lognormal_bound, normal_only_thresholds, tolerance_factor
from export.demo_data import DEFECTS, render


def _gauss_z(h, fpr):
    return h.mean() + stats.norm.ppf(1 - fpr) * h.std(ddof=1)


def _gauss_tol(h, fpr):
    return h.mean() + tolerance_factor(len(h), 1 - fpr, 0.9) * h.std(ddof=1)


def _lognormal_tol(h, fpr):
    return lognormal_bound(np.clip(h, 1e-9, None), 1 - fpr, 0.9)[0]


def _gumbel_tol(h, fpr):
    return gumbel_bound(h, 1 - fpr, 0.9)[0]


def _edge_ad(h, fpr):
    return normal_only_thresholds(h, fpr)[0].image.threshold


RULES = {"gaussian quantile": _gauss_z, "gaussian tolerance 90%": _gauss_tol,
         "lognormal tolerance 90%": _lognormal_tol, "gumbel tolerance 90%": _gumbel_tol,
         "edge-ad: the better fit of the two": _edge_ad}


def _fresh_scores(bundle, category: str, seed: int, normals: int, per_type: int):
    size = bundle.manifest.input.height
    normal = np.stack([render(category, seed, ("study", i), size=size)[0] for i in range(normals)])
    defect = np.stack([render(category, seed, ("study-defect", d, i), d, size=size)[0]
                       for d in DEFECTS for i in range(per_type)])
    with create_engine(bundle) as engine:
        def scores(x):
            return np.concatenate([engine.infer(x[i:i + 16])[1] for i in range(0, len(x), 16)])

        return scores(normal), scores(defect)


def shipped_table(paths: list[str], seed: int, normals: int, per_type: int, target: float) -> None:
    print(f"{normals} fresh normal and {per_type * len(DEFECTS)} fresh defect parts per bundle, "
          f"at each bundle's own threshold (target false-reject rate {target})")
    print("| family | surface | calibration images (out-of-fold) | method | false rejects | missed |")
    print("|---|---|---|---|---|---|")
    for path in paths:
        bundle = load_bundle(path)
        family, _, category = Path(path).resolve().parent.name.partition("_")
        n, d = _fresh_scores(bundle, category, seed, normals, per_type)
        th, cal = bundle.manifest.thresholds.image.threshold, bundle.manifest.calibration
        print(f"| {family} | {category} | {cal.normal_count} ({cal.out_of_fold_count}) | {cal.method} | "
              f"{np.mean(n >= th):.3f} | {np.mean(d < th):.3f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", nargs="?")
    p.add_argument("--shipped", nargs="+", metavar="BUNDLE", help="realized rates at shipped thresholds")
    p.add_argument("--category", default="wood")
    p.add_argument("--seed", type=int, default=0, help="demo-data seed the bundle was trained on")
    p.add_argument("--normals", type=int, default=400)
    p.add_argument("--defects-per-type", type=int, default=25)
    p.add_argument("--target-fpr", type=float, default=0.01)
    p.add_argument("--sizes", default="9,12,16")
    p.add_argument("--trials", type=int, default=1000)
    args = p.parse_args()
    if args.shipped:
        return shipped_table(args.shipped, args.seed, args.normals, args.defects_per_type, args.target_fpr)
    if not args.bundle:
        p.error("give a BUNDLE, or --shipped BUNDLE...")
    n, d = _fresh_scores(load_bundle(args.bundle), args.category, args.seed, args.normals, args.defects_per_type)
    rng = np.random.default_rng(0)
    print(f"{args.normals} fresh normal and {len(d)} defect parts; target false-reject rate "
          f"{args.target_fpr}; {args.trials} draws per row")
    print(f"{'n':>3}  {'rule':<34} {'FR median':>9} {'FR p90':>7} {'P(FR>target)':>12} {'miss median':>11}")
    for k in (int(s) for s in args.sizes.split(",")):
        for name, rule in RULES.items():
            fr, miss = [], []
            for _ in range(args.trials):
                idx = rng.choice(len(n), k, replace=False)
                t = max(rule(n[idx], args.target_fpr), n[idx].max() * 1.0001)
                fr.append(np.mean(np.delete(n, idx) >= t))
                miss.append(np.mean(d < t))
            fr = np.asarray(fr)
            print(f"{k:>3}  {name:<34} {np.median(fr):>9.3f} {np.percentile(fr, 90):>7.3f} "
                  f"{np.mean(fr > args.target_fpr):>12.2f} {np.median(miss):>11.3f}")


if __name__ == "__main__":
    main()
