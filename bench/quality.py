"""Quality of every model family on every category: train with default settings, evaluate the
bundle on the category's held-out test split through the real engine (`edge-ad evaluate`), time
the training and the engine. One markdown table for docs/benchmarks.md.

    python bench/quality.py --data var/demo --out var/quality            # the demo categories
    python bench/quality.py --data /data/mvtec --categories bottle screw  # MVTec AD as is

Finished runs are reused (delete OUT/<family>_<category>/ to redo one). `knn` is the
nearest-neighbour baseline on the same backbone: the floor every family should beat.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from edge_ad.bundle import load_bundle
from edge_ad.commands.evaluate import evaluate
from edge_ad.engines import create_engine
from export.train import train

FAMILIES = ("efficientad", "rd", "fastflow", "patchcore", "knn")


def _latency_ms(bundle_path: Path, runs: int = 30) -> float:
    bundle = load_bundle(bundle_path)
    spec = bundle.manifest.input
    x = np.random.default_rng(0).integers(0, 255, (1, spec.height, spec.width, spec.channels), np.uint8)
    with create_engine(bundle) as engine:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            engine.infer(x)
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def run_one(family: str, category: Path, out: Path) -> dict:
    result_file = out / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    t0 = time.perf_counter()
    train(family, category, out, seed=0)
    train_s = time.perf_counter() - t0
    metrics, _ = evaluate(str(out / "bundle"), str(category))
    row = {"family": family, "category": category.name, "train_s": round(train_s, 1),
           "latency_ms": round(_latency_ms(out / "bundle"), 2),
           "image_auroc": metrics["image_auroc"], "pixel_auroc": metrics.get("pixel_auroc"),
           "aupro": metrics.get("aupro"), "f1_max": metrics["f1_max"],
           "per_defect": {k: v.get("image_auroc") for k, v in metrics.get("per_defect", {}).items()}}
    result_file.write_text(json.dumps(row, indent=1) + "\n")
    return row


def table(rows: list[dict]) -> str:
    lines = ["| family | category | image AUROC | pixel AUROC | AUPRO | F1-max | train s | ORT CPU ms |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        lines.append(f"| {r['family']} | {r['category']} | {f(r['image_auroc'])} | {f(r['pixel_auroc'])} | "
                     f"{f(r['aupro'])} | {f(r['f1_max'])} | {r['train_s']:.0f} | {r['latency_ms']:.1f} |")
    means = {}
    for r in rows:
        means.setdefault(r["family"], []).append(r)
    lines += ["", "| family | mean image AUROC | mean pixel AUROC | mean AUPRO | mean train s |", "|---|---|---|---|---|"]
    for fam, rs in means.items():
        avg = lambda k: statistics.mean(r[k] for r in rs if r[k] is not None)  # noqa: E731
        lines.append(f"| {fam} | {avg('image_auroc'):.3f} | {avg('pixel_auroc'):.3f} | {avg('aupro'):.3f} | "
                     f"{avg('train_s'):.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder of MVTec-layout categories")
    ap.add_argument("--out", default="var/quality")
    ap.add_argument("--categories", nargs="*", default=None, help="default: every category in --data")
    ap.add_argument("--families", nargs="*", default=list(FAMILIES))
    args = ap.parse_args()
    data = Path(args.data)
    cats = args.categories or sorted(p.name for p in data.iterdir() if (p / "test").is_dir())
    rows = []
    for cat in cats:
        for fam in args.families:
            row = run_one(fam, data / cat, Path(args.out) / f"{fam}_{cat}")
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("family", "category", "image_auroc", "pixel_auroc", "train_s")}),
                  flush=True)
    text = table(rows)
    (Path(args.out) / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
