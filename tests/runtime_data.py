"""The runtime tier's demo data, from the checked-in images of tests/fixtures/runtime/demo: the
MVTec-layout tree and the video of the line that the runtime tests read, with OpenCV only."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "runtime"
BUNDLE = FIXTURES / "bundle"
DEFECTS = ("scratch", "stain", "hole", "foreign")  # export.demo_data's, in its order


def demo_tree(out: Path) -> Path:
    """``out/wood/{test,ground_truth}`` as export.demo_data lays it out (PNGs, 256x256) and
    ``out/video/wood_line.avi`` with its truth in ``wood_line.csv``.

    The images are checked in as the JPEGs the demo camera makes (a third of the PNG's bytes)
    and decoded once here: the PNGs hold exactly the pixels the bundle was calibrated on."""
    src = FIXTURES / "demo"
    for jpg in sorted(src.rglob("*.jpg")):
        target = out / jpg.relative_to(src).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(target), cv2.imread(str(jpg), cv2.IMREAD_COLOR)):
            raise OSError(f"could not write {target}")
    for mask in sorted(src.rglob("*_mask.png")):
        target = out / mask.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mask, target)
    write_line_video(out / "video" / "wood_line.avi", out / "wood" / "test")
    return out


def write_line_video(path: Path, test_dir: Path, parts: int = 20, frames_per_part: int = 6,
                     fps: float = 12.0, defect_every: int = 5) -> Path:
    """Parts passing the camera as export.demo_data's video has them: each holds still for a few
    frames with a little vibration (so no stretch of it reads as a frozen stream), every
    ``defect_every``-th part carries a defect. Lossless (FFV1), so frames are the images' pixels
    but for the vibration. A CSV sidecar lists the truth per frame."""
    images = {d.name: sorted(d.glob("*.png")) for d in test_dir.iterdir() if d.is_dir()}
    path.parent.mkdir(parents=True, exist_ok=True)
    first = cv2.imread(str(images["good"][0]), cv2.IMREAD_COLOR)
    size = (first.shape[1], first.shape[0])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, size)
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write an FFV1 video to {path}")
    truth, frame_no = [], 0
    for part in range(parts):
        k = part // defect_every
        defect = DEFECTS[k % len(DEFECTS)] if part % defect_every == 3 else None
        files = images[defect or "good"]
        image = cv2.imread(str(files[(k if defect else part) % len(files)]), cv2.IMREAD_COLOR)
        for i in range(frames_per_part):
            dx, dy = np.random.default_rng((part, i)).normal(0, 0.7, 2)
            shake = np.float32([[1, 0, dx], [0, 1, dy]])
            writer.write(cv2.warpAffine(image, shake, size, borderMode=cv2.BORDER_REFLECT))
            truth.append((frame_no, part, defect or "good"))
            frame_no += 1
    writer.release()
    with open(path.with_suffix(".csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["frame", "part", "defect"])
        w.writerows(truth)
    return path
