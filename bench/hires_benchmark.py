"""The high-resolution benchmark: 2048 x 1536 frames from real photographs Debian ships, small
defects of 6-24 px drawn at native scale, and one table of the same family tiled beside
downscaled, trained and judged on the same images.

    python bench/hires_benchmark.py --out var/hires                    # build: ~3 min, 1.8 GB
    python bench/hires_benchmark.py --out var/hires --grid docs/images/hires_benchmark.jpg
    python bench/hires_benchmark.py --out var/hires --run var/hiresq   # train and judge: ~30 min here

Surfaces (the photographs come as bench/hard_benchmark.py fetches them, with apt-get download):

    wood     mate-backgrounds' Wood (2560 x 1920): each frame a 2048 x 1536 view at another place,
             mirrored or not, turned by up to 1 degree: one kind of board seen part after part
    fabric   GIMP's photographed burlap, tiled over the frame at a random phase and turned
    beans    GIMP's coffee beans, likewise: a granular surface

A frame of the wood shares photographed pixels with the training frames (the photograph is only
25 % larger than a frame): read it as a fixed-look part, whose small defects must be found at
native scale. Generalizing to unseen texture is the quality benchmark's question
(bench/hard_benchmark.py), not this one's.

Defects, drawn by the quality benchmark's own functions into a 256-px window of the frame, in
three grades (g1 the smallest), 5 frames a grade:

    particle   a hole or foreign particle of 6 / 10 / 16 px
    stain      a soft colour change of about 12 / 18 / 24 px across, ΔE 8
    scratch    a 1-2 px line, 30-60 px long, lightness changed by 10 / 14 / 18 of 100

Every frame, good or not, gets the camera nuisance of the quality benchmark (exposure, noise,
JPEG). 24 good training frames and 50 good test frames a surface.

The run trains patchcore (the default family) twice per surface with the defaults of
``edge-ad train``: once with ``--tile`` (256-px tiles at native resolution, 25 % overlap) and once
downscaled to 256 px, judges both with ``edge-ad evaluate`` at their shipped thresholds, and
prints the quality benchmark's tables with a row per surface and mode.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hard_benchmark as hb  # noqa: E402  (bench/ holds no package)

WIDTH, HEIGHT = 2048, 1536
TRAIN, TEST_GOOD, PER_GRADE = 24, 50, 5
SURFACES = ("wood", "fabric", "beans")
DEFECTS = {  # family: the quality benchmark's drawing function's size and contrast, per grade
    "particle": dict(diameter=(6.0, 10.0, 16.0)),
    "stain": dict(delta_e=(8.0, 8.0, 8.0)),  # and a radius per grade, below
    "scratch": dict(contrast=(10.0, 14.0, 18.0), length=(30, 60)),
}
STAIN_RADIUS = ((5, 7), (8, 10), (11, 13))  # about 12 / 18 / 24 px across, per grade


def sources(root: Path) -> dict[str, np.ndarray]:
    share = root / "usr/share"
    pat = share / "gimp/2.0/patterns"
    big = int(np.hypot(WIDTH, HEIGHT)) + 64  # room for a turn of a frame anywhere in the pattern
    return {
        "wood": hb._read(share / "backgrounds/mate/nature/Wood.jpg"),
        "fabric": hb._tiled(hb._gimp_pattern(pat / "Fabric/burlap.pat"), 1.5, big + 400),
        "beans": hb._tiled(hb._gimp_pattern(pat / "Food/java.pat"), 2.0, big + 400),
    }


def view(source: np.ndarray, rng: np.random.Generator, surface: str) -> np.ndarray:
    """A WIDTH x HEIGHT float32 view of the source: somewhere else each time, turned a little."""
    h, w = source.shape[:2]
    if surface == "wood":
        img = source[:, ::-1] if rng.random() < 0.5 else source
        angle, reach = rng.uniform(-1, 1), (WIDTH / 2 + 20, HEIGHT / 2 + 20)
    else:
        img, angle, reach = source, rng.uniform(-3, 3), (np.hypot(WIDTH, HEIGHT) / 2,) * 2
    cx, cy = rng.uniform(reach[0], w - reach[0]), rng.uniform(reach[1], h - reach[1])
    m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    m[:, 2] += (WIDTH / 2 - cx, HEIGHT / 2 - cy)
    return cv2.warpAffine(np.ascontiguousarray(img), m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def defect(frame: np.ndarray, rng: np.random.Generator, family: str, grade: int) -> tuple[np.ndarray, np.ndarray]:
    """The family drawn by the quality benchmark's function into a random 256-px window."""
    y, x = int(rng.integers(0, HEIGHT - hb.SIZE)), int(rng.integers(0, WIDTH - hb.SIZE))
    options = dict(DEFECTS[family])
    if family == "stain":
        options["radius"] = STAIN_RADIUS[grade]
    window, small = hb.FAMILIES[family](frame[y:y + hb.SIZE, x:x + hb.SIZE].copy(), rng, grade, **options)
    out, mask = frame.copy(), np.zeros((HEIGHT, WIDTH), bool)
    out[y:y + hb.SIZE, x:x + hb.SIZE] = window
    mask[y:y + hb.SIZE, x:x + hb.SIZE] = small
    return out, mask


def build(out: Path, root: Path, surfaces=SURFACES) -> None:
    photos = hb.load_photos(root)
    hb._FOREIGN[:] = [photos[s].image for s in ("pebbles", "wood", "grass")]  # what particles are made of
    srcs = sources(root)
    jobs = []
    for s in surfaces:
        jobs += [(s, "train", i, None, None) for i in range(TRAIN)]
        jobs += [(s, "test", i, None, None) for i in range(TEST_GOOD)]
        jobs += [(s, "test", i, f, g) for f in DEFECTS for g in range(3) for i in range(PER_GRADE)]
    for s, split, i, fam, grade in tqdm(jobs, desc="hires benchmark", unit="frame"):
        rng = hb._rng("hires", s, split, i, fam, grade)
        frame = view(srcs[s], rng, s)
        if fam is None:
            hb._write(out / s / split / "good" / f"{i:03d}.png", hb.camera(frame, rng))
            continue
        frame, mask = defect(frame, rng, fam, grade)
        name = f"g{grade + 1}_{i:03d}.png"
        hb._write(out / s / "test" / fam / name, hb.camera(frame, rng))
        hb._write(out / s / "ground_truth" / fam / name.replace(".png", "_mask.png"), mask.astype(np.uint8) * 255)
    (out / "README.txt").write_text(f"Built by bench/hires_benchmark.py: {', '.join(surfaces)}, "
                                    f"{WIDTH}x{HEIGHT}; grades g1 (smallest) to g3.\n")


def grid(data: Path, out: Path, cell: int = 256) -> None:
    """Per surface: a good frame (shrunk whole), then each family's smallest and largest grade as
    a 128-px crop around the defect at native scale, enlarged 2x without smoothing."""
    rows = []
    for s in SURFACES:
        if not (data / s).is_dir():
            continue
        whole = cv2.resize(cv2.imread(str(data / s / "test/good/000.png")), (cell, cell * HEIGHT // WIDTH),
                           interpolation=cv2.INTER_AREA)
        pad = (cell - whole.shape[0]) // 2
        cells = [cv2.copyMakeBorder(whole, pad, cell - whole.shape[0] - pad, 0, 0, cv2.BORDER_CONSTANT,
                                    value=(255, 255, 255))]
        for fam in DEFECTS:
            for g in (1, 3):
                img = cv2.imread(str(data / s / "test" / fam / f"g{g}_000.png"))
                ys, xs = np.nonzero(cv2.imread(str(data / s / "ground_truth" / fam / f"g{g}_000_mask.png"), 0))
                y0 = min(max(int(ys.mean()) - 64, 0), HEIGHT - 128)
                x0 = min(max(int(xs.mean()) - 64, 0), WIDTH - 128)
                crop = cv2.resize(img[y0:y0 + 128, x0:x0 + 128], (cell, cell), interpolation=cv2.INTER_NEAREST)
                cv2.putText(crop, f"{fam} g{g}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
                cells.append(crop)
        rows.append(np.hstack(cells))
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 85])


def run(data: Path, out: Path, surfaces, family: str = "patchcore") -> list[dict]:
    """Each surface trained tiled and downscaled (finished runs are reused), then judged."""
    from edge_ad.bundle import load_bundle
    from edge_ad.tiling import grid
    from export.train import train
    from quality import _latency_ms, _quality

    rows = []
    for s in surfaces:
        for mode in ("tiled", "downscaled"):
            run_dir = out / f"{family}_{mode}_{s}"
            result = run_dir / "result.json"
            if result.is_file():
                rows.append(json.loads(result.read_text()))
                continue
            trained = run_dir / "train.json"  # a run stopped while judging keeps its training
            if not trained.is_file():
                t0 = time.perf_counter()
                train(family, data / s, run_dir, seed=0, tiling={"overlap": 0.25} if mode == "tiled" else None)
                trained.write_text(json.dumps({"train_s": round(time.perf_counter() - t0, 1)}) + "\n")
            row = {"family": f"{family} {mode}", "category": s, **json.loads(trained.read_text()),
                   "latency_ms": round(_latency_ms(run_dir / "bundle"), 2)}
            tiling = load_bundle(run_dir / "bundle").manifest.tiling
            row["tiles_per_frame"] = 1 if tiling is None else len(
                grid(tiling.frame_height, tiling.frame_width, hb.SIZE, tiling.overlap))
            row.update(_quality(run_dir / "bundle", data / s))
            result.write_text(json.dumps(row, indent=1) + "\n")
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("family", "category", "image_auroc", "pixel_auroc",
                                                   "false_rejects", "misses", "train_s")}), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="var/hires", help="the benchmark's folder (built when --run is not given)")
    ap.add_argument("--sources", default="var/hard-sources", help="where the fetched packages are unpacked")
    ap.add_argument("--surfaces", nargs="*", default=list(SURFACES))
    ap.add_argument("--run", help="train and judge on the built benchmark; runs and tables go here")
    ap.add_argument("--family", default=None, help="the family to train tiled and downscaled (default: train's default)")
    ap.add_argument("--grid", help="write the picture grid (JPEG) of the built benchmark here")
    args = ap.parse_args()
    data = Path(args.out)
    if args.grid:
        grid(data, Path(args.grid))
        print(f"grid: {args.grid}")
        return
    if not args.run:
        if data.exists():
            shutil.rmtree(data)
        build(data, hb._package_root(Path(args.sources)), args.surfaces)
        print(f"benchmark: {data} ({', '.join(args.surfaces)})")
        return
    from quality import defect_table, table

    from export.models.catalog import DEFAULT_FAMILY

    rows = run(data, Path(args.run), args.surfaces, args.family or DEFAULT_FAMILY)
    text = table(rows) + "\n\n" + defect_table(rows)
    (Path(args.run) / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
