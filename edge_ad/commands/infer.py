"""``edge-ad infer``: offline scoring. One JSON line per image on stdout; a file that cannot be
scored gets a line with its error and the exit code says so, but the other images are scored."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2

from ..bundle import load_bundle
from ..engines import create_engine
from ..errors import EdgeAdError, ImageError
from ..imageio import read_image
from ..pipeline.inspector import Inspector
from ..overlay import render_overlay


def run_infer(bundle_path: str, images: list[str], out: str | None) -> int:
    bundle = load_bundle(bundle_path)
    out_dir = Path(out) if out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    with create_engine(bundle) as engine:
        inspector = Inspector(engine, bundle.manifest)
        for path in images:
            try:
                frame = read_image(path)
                ins = inspector.inspect([frame])[0]
            except (ImageError, EdgeAdError) as exc:
                failures += 1
                print(json.dumps({"path": path, "error": str(exc)}), flush=True)
                continue
            if ins.fault is not None:
                failures += 1
                print(json.dumps({"path": path, "verdict": "FAULT", "error": ins.fault}), flush=True)
                continue
            line = {"path": path, "score": round(ins.score, 5), "raw_score": ins.raw_score,
                    "verdict": ins.verdict, "threshold": ins.threshold,
                    "regions": [r.to_json() for r in ins.regions]}
            if out_dir:
                overlay = render_overlay(frame, ins.map_norm, ins.verdict, ins.score, ins.regions)
                # parent folder in the name: MVTec folders all hold 000.png, 001.png, ...
                target = out_dir / f"{Path(path).parent.name}_{Path(path).stem}_overlay.png"
                cv2.imwrite(str(target), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
                line["overlay"] = str(target)
            print(json.dumps(line), flush=True)
    if failures:
        print(f"edge-ad: {failures} of {len(images)} images could not be scored", file=sys.stderr)
    return 1 if failures else 0
