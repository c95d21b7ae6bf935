"""Quality of every model family on every category: train with default settings, evaluate the
bundle on the category's held-out test split through the real engine (`edge-ad evaluate`), time
the training and the engine. One markdown table for docs/benchmarks.md.

    python bench/quality.py --data var/demo --out var/quality            # the demo categories
    python bench/quality.py --data /data/mvtec --categories bottle screw  # MVTec AD as is

Finished runs are reused (delete OUT/<family>_<category>/ to redo one). `knn` is the
nearest-neighbour baseline on the same backbone: the floor every family should beat.

Still images are half the story: for each demo category the same generator also films a line
(`export.demo_data.write_video`: parts passing a vibrating camera, every fifth one defective,
lossless), and every bundle judges each frame at its own normal-only threshold. Those columns
count false rejects and caught parts as the line would see them (`bench/video_truth.py`).
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
from edge_ad.evaluation.metrics import auroc
from export.demo_data import CATEGORIES as DEMO_CATEGORIES
from export.demo_data import write_video
from export.train import train
from video_truth import read_frames, read_truth, score_offline  # bench/ is on sys.path

FAMILIES = ("efficientad", "rd", "fastflow", "patchcore", "knn", "knnplace", "fused")


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


def line_video(category: str, out: Path, seed: int) -> tuple[list, list[dict]] | None:
    """The frames and truth of a demo category's line video (written once), or None for data
    that is not the demo generator's."""
    if category not in DEMO_CATEGORIES:
        return None
    video = out / "videos" / f"{category}_line.avi"
    if not video.with_suffix(".csv").is_file():
        write_video(video, category, seed)
    truth = read_truth(video)
    return read_frames(video, len(truth)), truth


def per_grade(detail: dict) -> dict:
    """Image AUROC of each defect folder's grades against all good images, for data whose
    defect files are named gN_… (bench/hard_benchmark.py): {"stain": {"g1": 0.71, …}, …}."""
    labels, scores = detail["labels"], detail["scores"]
    good = ~labels
    out: dict[str, dict[str, float]] = {}
    for i, s in enumerate(detail["samples"]):
        name = Path(s.path).name
        if s.is_defect and name[:1] == "g" and name[1:2].isdigit():
            out.setdefault(s.defect, {}).setdefault(name[:2], []).append(i)
    return {d: {g: auroc(np.r_[np.zeros(good.sum()), np.ones(len(ix))], np.r_[scores[good], scores[ix]])
                for g, ix in sorted(grades.items())} for d, grades in sorted(out.items())}


def _quality(bundle: Path, category: Path) -> dict:
    metrics, detail = evaluate(str(bundle), str(category))
    return {"image_auroc": metrics["image_auroc"], "pixel_auroc": metrics.get("pixel_auroc"),
            "aupro": metrics.get("aupro"), "f1_max": metrics["f1_max"],
            "per_defect": {k: v.get("image_auroc") for k, v in metrics.get("per_defect", {}).items()},
            "per_defect_pixel": {k: v.get("pixel_auroc") for k, v in metrics.get("per_defect", {}).items()},
            "per_grade": per_grade(detail),
            "missed_per_defect": {k: v["confusion"]["fn"] for k, v in metrics.get("per_defect", {}).items()},
            "per_defect_count": {k: v["defects"] for k, v in metrics.get("per_defect", {}).items()},
            # at the bundle's own normal-only threshold, as the line would judge the test split
            "false_rejects": metrics["confusion"]["fp"], "good": metrics["count"] - metrics["defects"],
            "misses": metrics["confusion"]["fn"], "defects": metrics["defects"]}


def run_one(family: str, category: Path, out: Path, video: tuple | None = None) -> dict:
    """Train (unless OUT holds a finished run), evaluate, time; figures missing from an older
    result.json are added without training again."""
    result_file = out / "result.json"
    if result_file.is_file():
        row = json.loads(result_file.read_text())
    else:
        t0 = time.perf_counter()
        train(family, category, out, seed=0)
        row = {"family": family, "category": category.name, "train_s": round(time.perf_counter() - t0, 1),
               "latency_ms": round(_latency_ms(out / "bundle"), 2)}
    if "per_defect_count" not in row:
        row.update(_quality(out / "bundle", category))
    if video is not None and "video" not in row:
        row["video"] = score_offline(str(out / "bundle"), *video)
    result_file.write_text(json.dumps(row, indent=1) + "\n")
    return row


def _at(r: dict, k: str, n: str) -> str:
    """"k/n" where the row has a shipped threshold (anomalib's peers have none: "-")."""
    return f"{r[k]}/{r[n]}" if k in r else "-"


def table(rows: list[dict], held_out: str | None = None) -> str:
    """Per family and category, then each family's means over the categories (the held-out
    one apart)."""
    lines = ["| family | category | image AUROC | pixel AUROC | AUPRO | F1-max | at threshold: false rejects "
             "| at threshold: misses | train s | ORT CPU ms | line: good frames rejected | line: defective parts caught |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for r in rows:
        v = r.get("video")
        line = (f"{v['false_rejects']}/{v['good']} | {v['parts_caught']}/{v['defect_parts']}" if v else "- | -")
        lines.append(f"| {r['family']} | {r['category']} | {f(r['image_auroc'])} | {f(r['pixel_auroc'])} | "
                     f"{f(r['aupro'])} | {f(r.get('f1_max'))} | {_at(r, 'false_rejects', 'good')} | "
                     f"{_at(r, 'misses', 'defects')} | {r['train_s']:.0f} | {r['latency_ms']:.1f} | {line} |")
    means = {}
    for r in rows:
        key = r["family"] + (f" ({held_out}, held out)" if r["category"] == held_out else "")
        means.setdefault(key, []).append(r)
    lines += ["", "| family | categories | mean image AUROC | mean pixel AUROC | mean AUPRO "
              "| at threshold: false rejects | at threshold: misses | mean train s | mean ORT CPU ms "
              "| line: good frames rejected | line: defective parts caught |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for fam, rs in means.items():
        avg = lambda k: statistics.mean(r[k] for r in rs if r.get(k) is not None)  # noqa: E731
        vs = [r["video"] for r in rs if r.get("video")]
        total = lambda k: sum(v[k] for v in vs)  # noqa: E731
        line = (f"{total('false_rejects')}/{total('good')} | {total('parts_caught')}/{total('defect_parts')}"
                if vs else "- | -")
        count = lambda k, n: (f"{sum(r[k] for r in rs)}/{sum(r[n] for r in rs)}"  # noqa: E731
                              if all(k in r for r in rs) else "-")
        lines.append(f"| {fam} | {len(rs)} | {avg('image_auroc'):.3f} | {avg('pixel_auroc'):.3f} | {avg('aupro'):.3f} | "
                     f"{count('false_rejects', 'good')} | {count('misses', 'defects')} | "
                     f"{avg('train_s'):.0f} | {avg('latency_ms'):.1f} | {line} |")
    return "\n".join(lines)


def defect_table(rows: list[dict]) -> str:
    """Per model family × defect family: image AUROC averaged over the surfaces that have the
    defect (hardest grade, g1, in brackets), and the defects missed at the shipped threshold."""
    kinds = sorted({d for r in rows for d in r.get("per_defect", {})})
    if not kinds:
        return ""
    lines = ["| family | " + " | ".join(kinds) + " | hardest |", "|---|" + "---|" * (len(kinds) + 1)]
    for fam in dict.fromkeys(r["family"] for r in rows):
        rs = [r for r in rows if r["family"] == fam]
        cells, means = [], {}
        for k in kinds:
            vals = [r["per_defect"][k] for r in rs if r.get("per_defect", {}).get(k) is not None]
            g1 = [r["per_grade"][k]["g1"] for r in rs if "g1" in r.get("per_grade", {}).get(k, {})]
            missed = [(r["missed_per_defect"][k], r["per_defect_count"][k]) for r in rs
                      if k in r.get("missed_per_defect", {}) and k in r.get("per_defect_count", {})]
            if not vals:
                cells.append("-")
                continue
            means[k] = statistics.mean(vals)
            cell = f"{means[k]:.3f}"
            if g1:
                cell += f" ({statistics.mean(g1):.2f})"
            if missed:
                cell += f", missed {sum(m for m, _ in missed)}/{sum(n for _, n in missed)}"
            cells.append(cell)
        worst = min(means, key=means.get)
        lines.append(f"| {fam} | " + " | ".join(cells) + f" | {worst} {means[worst]:.3f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder of MVTec-layout categories")
    ap.add_argument("--out", default="var/quality")
    ap.add_argument("--categories", nargs="*", default=None, help="default: every category in --data")
    ap.add_argument("--families", nargs="*", default=list(FAMILIES))
    ap.add_argument("--seed", type=int, default=0, help="the seed the demo data was written with (line videos)")
    ap.add_argument("--no-video", action="store_true", help="skip the line videos")
    ap.add_argument("--held-out", default="moss", help="a category kept out of the defect table's means")
    args = ap.parse_args()
    data = Path(args.data)
    cats = args.categories or sorted(p.name for p in data.iterdir() if (p / "test").is_dir())
    rows = []
    for cat in cats:
        video = None if args.no_video else line_video(cat, Path(args.out), args.seed)
        for fam in args.families:
            row = run_one(fam, data / cat, Path(args.out) / f"{fam}_{cat}", video)
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("family", "category", "image_auroc", "pixel_auroc", "train_s")}),
                  flush=True)
    for cat in cats:  # peers measured by bench/anomalib_peer.py into the same folder
        for peer in sorted(Path(args.out).glob(f"anomalib-*_{cat}/result.json")):
            rows.append(json.loads(peer.read_text()))
    rows.sort(key=lambda r: (r["category"] == args.held_out, r["category"]))
    text = table(rows, args.held_out) + "\n\n" + defect_table([r for r in rows if r["category"] != args.held_out])
    if any(r["category"] == args.held_out for r in rows):
        text += f"\n\nDefect families: means over the categories but {args.held_out}, which is held out of tuning."
    (Path(args.out) / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
