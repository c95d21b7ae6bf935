"""False rejects and caught defects of a bundle on the demo video, against its truth CSV.

Serves the video with `edge-ad serve` for a while, reads every result losslessly from
/v1/results, and matches each to the truth row of its frame (the video loops). Counted per
frame, and per part pass as a line rejects: a part is rejected when any of its judged frames
is NG (a pass is one part seen once; the loop shows each part again).

    python bench/video_truth.py var/runs/wood/bundle --video var/demo/video/wood_line.avi --seconds 40
    python bench/video_truth.py BUNDLE [BUNDLE ...] --offline   # one loop, every frame, no server

``--offline`` scores every frame of one loop through the bundle's engine at its threshold, as the
served pipeline would judge it when it keeps up: deterministic, for comparing bundles.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def read_frames(video: Path, count: int) -> list:
    """The first ``count`` frames of ``video`` as RGB arrays."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    for _ in range(count):
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(bgr[:, :, ::-1].copy())
    cap.release()
    return frames


def score_offline(bundle_path: str, frames: list, truth: list[dict]) -> dict:
    """Every frame through the bundle's engine at its own threshold, counted per frame and per
    part (a part is rejected when any of its frames is NG)."""
    import numpy as np

    from edge_ad.bundle import load_bundle
    from edge_ad.engines import create_engine
    from edge_ad.imageio import to_model_input

    good = np.array([row["defect"] == "good" for row in truth[:len(frames)]])
    parts = np.array([int(row["part"]) for row in truth[:len(frames)]])
    bundle = load_bundle(bundle_path)
    spec = bundle.manifest.input
    x = np.stack([to_model_input(f, spec.height, spec.width, spec.channels) for f in frames])
    with create_engine(bundle) as engine:
        scores = np.concatenate([engine.infer(x[i:i + 8])[1] for i in range(0, len(x), 8)])
    ng = scores > bundle.manifest.thresholds.image.threshold
    good_parts = [p for p in np.unique(parts) if good[parts == p].all()]
    bad_parts = [p for p in np.unique(parts) if not good[parts == p].all()]
    return {"bundle": str(bundle_path), "good": int(good.sum()), "false_rejects": int(ng[good].sum()),
            "defect": int((~good).sum()), "caught": int(ng[~good].sum()),
            "good_parts": len(good_parts),
            "good_parts_rejected": int(sum(ng[parts == p].any() for p in good_parts)),
            "defect_parts": len(bad_parts),
            "parts_caught": int(sum(ng[parts == p].any() for p in bad_parts))}


def read_truth(video: Path) -> list[dict]:
    with open(video.with_suffix(".csv"), newline="") as fh:
        return list(csv.DictReader(fh))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", nargs="+")
    ap.add_argument("--offline", action="store_true", help="score one loop through the engine, no server")
    ap.add_argument("--video", default="var/demo/video/wood_line.avi")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--port", type=int, default=18100)
    args = ap.parse_args()
    video = Path(args.video).resolve()
    truth = read_truth(video)
    if args.offline:
        frames = read_frames(video, len(truth))
        for path in args.bundle:
            print(json.dumps(score_offline(path, frames, truth)))
        return
    if len(args.bundle) > 1:
        ap.error("serve one bundle at a time (or use --offline)")
    edge_ad = Path(sys.executable).with_name("edge-ad")
    proc = subprocess.Popen([str(edge_ad), "serve", "--model", args.bundle[0], "--source", f"file://{video}?loop=1",
                             "--port", str(args.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results, after = [], 0
    try:
        time.sleep(args.seconds)
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/v1/results?after={after}&limit=1000") as r:
                page = json.load(r)
            results += page["results"]
            if len(page["results"]) < 1000:
                break
            after = page["last_seq"]
    finally:
        proc.terminate()
        proc.wait(10)
    counts = {"good": 0, "false_rejects": 0, "defect": 0, "caught": 0, "not_judged": 0}
    passes: dict[tuple[int, str], list[bool]] = {}  # (loop, part) → NG per judged frame
    for r in results:
        row = truth[r["frame_index"] % len(truth)]
        if r["verdict"] not in ("OK", "NG"):
            counts["not_judged"] += 1
            continue
        kind = "good" if row["defect"] == "good" else "defect"
        counts[kind] += 1
        counts["false_rejects" if kind == "good" else "caught"] += r["verdict"] == "NG"
        key = (r["frame_index"] // len(truth), row["part"])
        passes.setdefault(key, []).append(r["verdict"] == "NG")
    defective = {row["part"]: row["defect"] != "good" for row in truth}  # a part's label holds for all its frames
    counts.update(good_parts=0, good_parts_rejected=0, defect_parts=0, parts_caught=0)
    for (_, part), ngs in passes.items():
        counts["defect_parts" if defective[part] else "good_parts"] += 1
        counts["parts_caught" if defective[part] else "good_parts_rejected"] += any(ngs)
    print(json.dumps({"bundle": args.bundle[0], **counts}))


if __name__ == "__main__":
    main()
