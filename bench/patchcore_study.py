"""Which memory-bank maps, fused how, find the hard benchmark's defects. One fit per surface of
each bank design gives every map; the fusions are then scored from the same maps, so the table
compares like with like. Torch only, no export: it ranks designs; bench/quality.py measures the
bundle that ships.

    python bench/patchcore_study.py --data var/hard --surfaces wood grass fabric brushed beans board

Maps: ``joint`` (the three teacher stages joined at stride 8, one bank: the shipped design),
``s4``/``s8``/``s16`` (with ``--separate``: a bank per stage at its own stride), ``colour`` (a bank of local mean
colours, exposure offset removed) and ``place`` (each local colour against its location's
normal mean and spread); with ``--floor`` also ``deep place`` (the teacher features against their
location's normal mean and spread, PaDiM-like). Fusions: ``mean`` and ``max`` of the pixel-normalized maps (what the
graph does today), and ``calibrated``: each map divided by the spread of its own image maxima
on the held-out good images, then the maximum (a defect any one map is sure of stands out,
whatever the other maps' noise).
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_ad.evaluation.dataset import test_set  # noqa: E402
from edge_ad.evaluation.metrics import auroc  # noqa: E402
from export.bundle_writer import fold_map_normalization  # noqa: E402
from export.data import load_images, normal_images, split_holdout  # noqa: E402
from export.models.base import TrainSettings, create  # noqa: E402
from export.train import load_checkpoint  # noqa: E402

SUBSETS = {
    "joint (shipped)": ["joint"],
    "joint+colour": ["joint", "colour"],
    "joint+place": ["joint", "place"],
    "joint+colour+place": ["joint", "colour", "place"],
}
FLOOR_SUBSETS = {  # with --floor: the knn floor's random bank instead of the coreset
    "random (the knn floor)": ["random"],
    "random+colour+place": ["random", "random colour", "place"],
    "random+place": ["random", "place"],
    "random+colour": ["random", "random colour"],  # without the place map, which sees camera shifts
    "deep place": ["deep place"],
    "random+deep place": ["random", "deep place"],
    "random+deep place+colour+place": ["random", "deep place", "random colour", "place"],
    "random+deep place+colour": ["random", "deep place", "random colour"],
}
FLOW_SUBSETS = {  # with --flow: fastflow's map (a learned density) beside the floor's colour maps
    "flow": ["flow"],
    "flow+place": ["flow", "place"],
    "flow+colour+place": ["flow", "random colour", "place"],
    "flow+random": ["flow", "random"],
    "flow+random+colour+place": ["flow", "random", "random colour", "place"],
}
SEPARATE_SUBSETS = {  # with --separate: a second fit, a bank per stage
    "s4+s8+s16": ["s4", "s8", "s16"],
    "s4+s8+s16+colour+place": ["s4", "s8", "s16", "colour", "place"],
    "joint+s4+colour+place": ["joint", "s4", "colour", "place"],
}
FUSIONS = ("mean", "max", "calibrated")


def _maps(model, x: torch.Tensor) -> torch.Tensor:
    """(N, k, H, W) pixel-normalized maps, as the graph computes them before fusing."""
    with torch.no_grad():
        out = []
        for i in range(0, len(x), 8):
            raw = model._raw_map(x[i:i + 8])
            out.append((raw - model.q_a) / (model.q_b - model.q_a) * 0.1)
        return torch.cat(out)


def surface_maps(surface: Path, bank: int, separate: bool, floor: bool = False,
                 flow: Path | None = None) -> tuple[dict, dict, np.ndarray, list]:
    """Every map of every test and held-out image: {name: (N, H, W)}, for both splits.

    ``flow``: also fastflow's map, from ``flow/fastflow_SURFACE/checkpoint.pt`` where
    bench/quality.py left one (the same split and seed), else trained here (~5 min)."""
    paths = normal_images(surface)
    train_p, hold_p = split_holdout(paths, 0)
    as_t = lambda u8: torch.from_numpy(u8).permute(0, 3, 1, 2).float()  # noqa: E731
    train, hold_u8 = as_t(load_images(train_p, 256, 3)), load_images(hold_p, 256, 3)
    samples = test_set(surface)
    test = as_t(load_images([s.path for s in samples], 256, 3))
    test_maps, hold_maps = {}, {}
    designs = [(["joint", "colour", "place"], dict(colour=True))]
    if floor:  # the same maps on the floor's bank: 4096 patches drawn at random, one neighbour
        designs = [(["random", "deep place", "random colour", "place"], dict(family="knn", colour=True, deep_place=True))]
    if separate:
        designs.append((["s4", "s8", "s16"], dict(scales="separate")))
    if flow is not None:
        designs.append((["flow"], dict(family="fastflow")))
    for names, spec in designs:
        torch.manual_seed(0)
        spec = dict(spec)
        family = spec.pop("family", "patchcore")
        run = None if flow is None else flow / f"{family}_{surface.name}"
        kept = [p for p in (run / "checkpoint.pt", run / "study-checkpoint.pt") if p.is_file()] if run else []
        if family == "fastflow" and kept:
            model = load_checkpoint(kept[0])[0]
            print(f"{surface.name}: fastflow from {kept[0]}", flush=True)
        elif family == "fastflow":
            print(f"{surface.name}: training fastflow ({create(family).default_steps} steps) …", flush=True)
            model = create(family, size=256)
            model.fit(train, TrainSettings(steps=model.default_steps), None)
            run.mkdir(parents=True, exist_ok=True)  # kept for the next run of the study
            torch.save({"family": family, "config": model.config(), "state_dict": model.state_dict()},
                       run / "study-checkpoint.pt")
        else:
            model = create(family, size=256, bank_size=bank, **spec)
            model.fit(train, TrainSettings(steps=bank), None)
        model.eval()
        fold_map_normalization(model, hold_u8)
        t, h = _maps(model, test), _maps(model, as_t(hold_u8))
        for k, name in enumerate(names):
            test_maps[name], hold_maps[name] = t[:, k].numpy(), h[:, k].numpy()
    labels = np.array([s.is_defect for s in samples])
    return test_maps, hold_maps, labels, samples


def fused_scores(test_maps: dict, hold_maps: dict, names: list[str], fusion: str) -> np.ndarray:
    stack = np.stack([test_maps[n] for n in names], 1)  # (N, k, H, W)
    if fusion == "mean":
        return stack.mean(1).max(axis=(1, 2))
    if fusion == "max":
        return stack.max(axis=(1, 2, 3))
    # calibrated: each map's image maxima on held-out good images set its scale
    scaled = []
    for k, n in enumerate(names):
        hold_max = hold_maps[n].max(axis=(1, 2))
        mid, spread = np.median(hold_max), hold_max.std() + 1e-6
        scaled.append((stack[:, k].max(axis=(1, 2)) - mid) / spread)
    return np.max(scaled, axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="var/hard")
    ap.add_argument("--surfaces", nargs="*", default=["wood", "grass", "fabric", "brushed", "beans", "board"])
    ap.add_argument("--bank", type=int, default=4096)
    ap.add_argument("--separate", action="store_true", help="also the bank-per-stage design (a slow second fit)")
    ap.add_argument("--floor", action="store_true", help="the colour maps on the knn floor's random bank instead")
    ap.add_argument("--flow", type=Path, metavar="RUNS", help="fastflow's map beside the floor's maps (implies "
                    "--floor); reuses RUNS/fastflow_SURFACE/checkpoint.pt from bench/quality.py where there is one")
    ap.add_argument("--out", default="var/study", help="each surface's figures are kept here and reused")
    args = ap.parse_args()
    args.floor = args.floor or args.flow is not None
    subsets = ({**FLOOR_SUBSETS, **FLOW_SUBSETS} if args.flow else FLOOR_SUBSETS) if args.floor else \
        {**SUBSETS, **(SEPARATE_SUBSETS if args.separate else {})}
    results: dict[tuple[str, str], dict[str, dict]] = {}
    for surface in args.surfaces:
        tag = f"{'-separate' if args.separate else ''}{'-floor' if args.floor else ''}{'-flow' if args.flow else ''}"
        cache = Path(args.out) / f"{surface}{tag}.json"
        if cache.is_file():
            per = json.loads(cache.read_text())
        else:
            test_maps, hold_maps, labels, samples = surface_maps(Path(args.data) / surface, args.bank,
                                                                 args.separate, args.floor, args.flow)
            kinds = sorted({s.defect for s in samples} - {"good"})
            per = {}
            for (subset, names), fusion in itertools.product(subsets.items(), FUSIONS):
                if len(names) == 1 and fusion != "mean":
                    continue
                scores = fused_scores(test_maps, hold_maps, names, fusion)
                row = {"image": auroc(labels, scores)}
                for k in kinds:
                    keep = np.array([s.defect in ("good", k) for s in samples])
                    row[k] = auroc(labels[keep], scores[keep])
                per[f"{subset}|{fusion}"] = row
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(per, indent=1))
        for key, row in per.items():
            subset, fusion = key.split("|")
            results.setdefault((subset, fusion), {})[surface] = row
        print(json.dumps({"surface": surface, **{k: round(v["image"], 3) for k, v in per.items()}}), flush=True)
    kinds = sorted({k for r in results.values() for v in r.values() for k in v} - {"image"})
    print("\n| maps | fusion | mean image AUROC | " + " | ".join(kinds) + " | hardest |")
    print("|---|---|---|" + "---|" * len(kinds) + "---|")
    for (subset, fusion), per in results.items():
        rows = list(per.values())
        means = {k: statistics.mean(r[k] for r in rows if k in r) for k in kinds}
        worst = min(means, key=means.get)
        print(f"| {subset} | {fusion} | {statistics.mean(r['image'] for r in rows):.3f} | "
              + " | ".join(f"{means[k]:.3f}" for k in kinds) + f" | {worst} {means[worst]:.3f} |")


if __name__ == "__main__":
    main()
