"""Deterministic, offline demo data: surfaces with natural variation, drawn defects with pixel
masks, in the MVTec AD folder layout, plus a video of parts passing a camera.

Real surfaces are scikit-image's bundled photographs (brick, grass, gravel); ``wood`` is
procedural and in colour. Every image is rendered from its own seeded generator, so one seed
always gives the same bytes whatever else is generated.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

CATEGORIES = ("brick", "grass", "gravel", "wood")
DEFECTS = ("scratch", "stain", "hole", "foreign")
IMAGE_SIZE = 256


@dataclass(frozen=True)
class Counts:
    train: int = 60
    test_good: int = 20
    per_defect: int = 6


def _rng(seed: int, *keys: object) -> np.random.Generator:
    digest = hashlib.sha256(repr((seed,) + keys).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _photo(name: str) -> np.ndarray:
    from skimage import data  # shipped with the wheel, no download

    gray = getattr(data, name)().astype(np.float32)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _wood(rng: np.random.Generator, size: int = 512) -> np.ndarray:
    """Procedural wood grain, regenerated per seed of the texture (the same for every part)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    warp = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 24) * 60
    rings = np.sin((y + warp) / 7.0 + 0.3 * np.sin(x / 53.0)) * 0.5 + 0.5
    fine = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 1.2)
    tone = 0.55 + 0.3 * rings + 0.08 * fine
    base = np.array([150, 105, 60], np.float32)  # RGB of a light oak
    return np.clip(tone[:, :, None] * base[None, None, :] * 1.25, 0, 255)


_TEXTURES: dict[tuple[str, int], np.ndarray] = {}


def texture(category: str, seed: int) -> np.ndarray:
    """The large source surface (float32 RGB, 0..255) a category's parts are cut from."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown demo category {category!r}; choose one of {CATEGORIES}")
    key = (category, seed)
    if key not in _TEXTURES:
        _TEXTURES[key] = _wood(_rng(seed, "wood")) if category == "wood" else _photo(category)
    return _TEXTURES[key]


def _view(src: np.ndarray, rng: np.random.Generator, out: int) -> np.ndarray:
    """A camera's view of the surface: position jitter and a small rotation."""
    h, w = src.shape[:2]
    crop = 0.62 * min(h, w)
    cx = w / 2 + rng.uniform(-0.12, 0.12) * w
    cy = h / 2 + rng.uniform(-0.12, 0.12) * h
    angle = rng.uniform(-4.0, 4.0)
    scale = out / crop
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[0, 2] += out / 2 - cx
    m[1, 2] += out / 2 - cy
    return cv2.warpAffine(src, m, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _camera(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure, sensor noise and JPEG compression, as a real camera path adds them."""
    gain, offset = rng.uniform(0.88, 1.12), rng.uniform(-10, 10)
    img = img * gain + offset + rng.normal(0, rng.uniform(1.0, 3.5), img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    quality = int(rng.integers(80, 96))
    ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].copy()


def _blob_mask(rng: np.random.Generator, size: int, radius: float) -> np.ndarray:
    """An irregular blob: a polygon of noisy radii around a random centre."""
    c = rng.uniform(0.22, 0.78, 2) * size
    n = 14
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 0.3, n)
    radii = radius * rng.uniform(0.6, 1.25, n) * rng.uniform(0.7, 1.3)
    pts = np.stack([c[0] + radii * np.cos(angles), c[1] + radii * np.sin(angles)], 1)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [pts.astype(np.int32)], 255)
    return mask


def _scratch(img, rng):
    s = img.shape[0]
    p0 = rng.uniform(0.15, 0.85, 2) * s
    length = rng.uniform(0.3, 0.55) * s
    angle = rng.uniform(0, np.pi)
    bend = rng.normal(0, 0.12 * s, 2)
    t = np.linspace(0, 1, 40)[:, None]
    d = np.array([np.cos(angle), np.sin(angle)]) * length
    pts = p0 - d / 2 + t * d + (4 * t * (1 - t)) * bend
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.polylines(mask, [pts.astype(np.int32)], False, 255, int(rng.integers(2, 4)), cv2.LINE_AA)
    mask = (mask > 96).astype(np.uint8) * 255
    bright = rng.uniform() < 0.5
    level = 235.0 if bright else 25.0
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255, (3, 3), 0)[:, :, None] * 0.85
    return img * (1 - alpha) + level * alpha, mask


def _stain(img, rng):
    s = img.shape[0]
    mask = _blob_mask(rng, s, rng.uniform(0.06, 0.11) * s)
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), 2.5)[:, :, None]
    tint = np.array(rng.choice([[90, 60, 20], [30, 30, 30], [120, 110, 40]]), np.float32)
    out = img * (1 - 0.55 * soft) + tint * 0.55 * soft
    return out, ((soft[:, :, 0] > 0.25) * 255).astype(np.uint8)


def _hole(img, rng):
    s = img.shape[0]
    c = tuple(int(v) for v in rng.uniform(0.2, 0.8, 2) * s)
    axes = tuple(int(v) for v in rng.uniform(0.025, 0.05, 2) * s)
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(mask, c, axes, rng.uniform(0, 180), 0, 360, 255, -1)
    rim = cv2.dilate(mask, np.ones((5, 5), np.uint8)) - mask
    out = img.copy()
    out[rim > 0] = out[rim > 0] * 0.6 + 255 * 0.4
    out[mask > 0] = 12.0
    return out, cv2.dilate(mask, np.ones((3, 3), np.uint8))


def _foreign(img, rng):
    s = img.shape[0]
    mask = _blob_mask(rng, s, rng.uniform(0.04, 0.07) * s)
    colour = np.array(rng.choice([[40, 160, 220], [220, 60, 50], [90, 200, 90], [240, 240, 240]]),
                      np.float32)
    shade = cv2.GaussianBlur(rng.normal(0, 18, img.shape[:2]).astype(np.float32), (0, 0), 3)
    obj = colour[None, None, :] + shade[:, :, None]
    out = img.copy()
    out[mask > 0] = obj[mask > 0]
    return out, mask


_DRAW = {"scratch": _scratch, "stain": _stain, "hole": _hole, "foreign": _foreign}


def _clean(category: str, seed: int, key: object, defect: str | None,
           size: int) -> tuple[np.ndarray, np.ndarray]:
    """The part as it lies under the camera (float RGB) and its defect mask, before the camera."""
    # Separate streams for the view, the defect and the camera: the same key with and without a
    # defect gives the same part under the same noise, so masks can be checked against the image.
    img = _view(texture(category, seed), _rng(seed, category, key, "view"), size)
    mask = np.zeros((size, size), np.uint8)
    if defect is not None:
        if defect not in _DRAW:
            raise ValueError(f"unknown defect {defect!r}; choose one of {DEFECTS}")
        img, mask = _DRAW[defect](img, _rng(seed, category, key, defect))
    return img, mask


def render(category: str, seed: int, key: object, defect: str | None = None,
           size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """One RGB uint8 part image and its uint8 mask (all zero for a good part)."""
    img, mask = _clean(category, seed, key, defect, size)
    return _camera(img, _rng(seed, category, key, "camera")), mask


def _write_png(path: Path, rgb_or_gray: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = rgb_or_gray[:, :, ::-1] if rgb_or_gray.ndim == 3 else rgb_or_gray
    if not cv2.imwrite(str(path), arr):
        raise OSError(f"could not write {path}")


def write_category(out: Path, category: str, seed: int, counts: Counts, bar: tqdm) -> None:
    root = out / category
    for split, n in (("train", counts.train), ("test", counts.test_good)):
        for i in range(n):
            img, _ = render(category, seed, (split, i))
            _write_png(root / split / "good" / f"{i:03d}.png", img)
            bar.update()
    for defect in DEFECTS:
        for i in range(counts.per_defect):
            img, mask = render(category, seed, ("test", defect, i), defect)
            _write_png(root / "test" / defect / f"{i:03d}.png", img)
            _write_png(root / "ground_truth" / defect / f"{i:03d}_mask.png", mask)
            bar.update()


def write_video(path: Path, category: str, seed: int, parts: int = 40, frames_per_part: int = 6,
                fps: float = 12.0, size: int = IMAGE_SIZE, defect_every: int = 5) -> Path:
    """Parts passing a camera: each part holds still for a few frames with a little vibration;
    every ``defect_every``-th part carries a defect. Each frame goes through the same camera
    model (exposure, noise, JPEG) at the same resolution as the data set's images, as frames
    from the line's own camera would. A CSV sidecar lists the truth per frame.

    The file is lossless (FFV1): OpenCV's MJPG writer re-compressed the frames (41.7 dB PSNR),
    which doubled normal parts' scores and made the drift guard rightly report that the video
    is not what the model was calibrated on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (size, size))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write an FFV1 video to {path}")
    truth = []
    frame_no = 0
    for part in tqdm(range(parts), desc=f"video {path.name}", unit="part", leave=False):
        defect = DEFECTS[(part // defect_every) % len(DEFECTS)] if part % defect_every == 3 else None
        clean, _ = _clean(category, seed, ("video", part), defect, size)
        for i in range(frames_per_part):
            frng = _rng(seed, "video-frame", part, i)
            shake = np.float32([[1, 0, frng.normal(0, 0.7)], [0, 1, frng.normal(0, 0.7)]])
            moved = cv2.warpAffine(clean, shake, (size, size), borderMode=cv2.BORDER_REFLECT)
            writer.write(_camera(moved, frng)[:, :, ::-1].copy())
            truth.append((frame_no, part, defect or "good"))
            frame_no += 1
    writer.release()
    with open(path.with_suffix(".csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["frame", "part", "defect"])
        w.writerows(truth)
    return path


def write_demo_data(out: str | Path, seed: int = 0, counts: Counts = Counts(),
                    categories: tuple[str, ...] = CATEGORIES, video_category: str = "wood") -> Path:
    out = Path(out)
    total = len(categories) * (counts.train + counts.test_good + len(DEFECTS) * counts.per_defect)
    with tqdm(total=total, desc="demo images", unit="img") as bar:
        for category in categories:
            write_category(out, category, seed, counts, bar)
    write_video(out / "video" / f"{video_category}_line.avi", video_category, seed)
    return out
