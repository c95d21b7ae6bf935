"""False rejects and caught defects of a bundle on the demo video, against its truth CSV.

Serves the video with `edge-ad serve` for a while, reads every result losslessly from
/v1/results, and matches each to the truth row of its frame (the video loops).

    python bench/video_truth.py var/runs/wood/bundle --video var/demo/video/wood_line.avi --seconds 40
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--video", default="var/demo/video/wood_line.avi")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--port", type=int, default=18100)
    args = ap.parse_args()
    video = Path(args.video).resolve()
    truth = list(csv.DictReader(open(video.with_suffix(".csv"))))
    edge_ad = Path(sys.executable).with_name("edge-ad")
    proc = subprocess.Popen([str(edge_ad), "serve", "--model", args.bundle, "--source", f"file://{video}?loop=1",
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
    for r in results:
        if r["verdict"] not in ("OK", "NG"):
            counts["not_judged"] += 1
        elif truth[r["frame_index"] % len(truth)]["defect"] == "good":
            counts["good"] += 1
            counts["false_rejects"] += r["verdict"] == "NG"
        else:
            counts["defect"] += 1
            counts["caught"] += r["verdict"] == "NG"
    print(json.dumps({"bundle": args.bundle, **counts}))


if __name__ == "__main__":
    main()
