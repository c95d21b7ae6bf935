"""Build the hard quality benchmark: seven surfaces cut from real colour photographs that
Debian's packages and scikit-image's wheel ship, six defect families drawn to be hard to see,
each in three grades, camera nuisance in every image, MVTec layout with pixel masks.

    python bench/hard_benchmark.py --out var/hard                   # ~1 min, ~60 MB of .debs
    python bench/quality.py --data var/hard --out var/hardq --no-video
    python bench/hard_benchmark.py --out var/hard --grid docs/images/hard_benchmark.jpg

The photographs come from Debian packages fetched with `apt-get download` (no root needed, no
install: they are unpacked into SOURCES) or from /usr/share when already installed:
mate-backgrounds (Wood, GreenMeadow), plasma-workspace-wallpapers (OneStandsOut's moss),
gimp-data (the burlap, paper and coffee-bean patterns, the green board substrate, the
recessed-metal connector). A pebble beach (EveningGlow) was tried and dropped: its only
usable strip holds one row of cells, whose light differs (mean grey 59 in the train cells, 71
in the test cells), and every model scored its defects below chance. Its pebbles remain the
source of foreign particles. The board's round parts are scikit-image's coins.

Surfaces (``moss`` is held out of all tuning: judge a change on the others, then look at it):

    wood      weathered wood grain, photographed        grass     a meadow, photographed
    fabric    woven burlap (GIMP pattern, tiled)        brushed   a fibrous grey finish (GIMP paper)
    beans     coffee beans (GIMP pattern, tiled)        board     a part: substrate, four round
    moss      moss seen from above (held out)                     parts and a connector

Defect folders (the grade is the file name's prefix, g1 hardest; per grade 6 images):

    stain      ΔE 3 / 5 / 8 colour change, soft-edged, textured
    warp       the texture displaced locally by 2.5 / 4 / 6 px, no new colour
    texture    the same material at 1.25 / 1.5 / 1.9x scale, or turned 25 / 45 / 90 degrees
    scratch    a 1-2 px line or crack, lightness changed by 6 / 10 / 18 (of 100)
    particle   a hole or a foreign particle of 3 / 5 / 8 px
    component  (board only) a part moved by 4 / 8 px, or missing

Train and test images of a photographed surface come from the even and odd cells of a
checkerboard laid over the photograph (see ``Photo``); every image, good or not, gets the same camera nuisance: position, rotation (±3°), exposure,
sensor noise and JPEG at quality 85-95.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

SIZE = 256
TRAIN, TEST_GOOD, PER_GRADE = 60, 100, 6
SURFACES = ("wood", "grass", "fabric", "brushed", "beans", "board", "moss")
HELD_OUT = "moss"
TEXTURE_DEFECTS = ("stain", "warp", "texture", "scratch", "particle")
BOARD_DEFECTS = ("component", "stain", "scratch", "particle")
PACKAGES = ("mate-backgrounds", "plasma-workspace-wallpapers", "gimp-data")


# -- the photographs ---------------------------------------------------------------------------
def _package_root(cache: Path) -> Path:
    """A folder holding usr/share from the three packages: / when they are installed, else the
    packages unpacked under ``cache`` (fetched once with apt-get download)."""
    if all(Path(p).exists() for p in ("/usr/share/backgrounds/mate", "/usr/share/wallpapers/OneStandsOut",
                                      "/usr/share/gimp/2.0/patterns")):
        return Path("/")
    root = cache / "root"
    if (root / ".complete").is_file():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        try:
            subprocess.run(["apt-get", "download", *PACKAGES], cwd=tmp, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise SystemExit(f"could not fetch {', '.join(PACKAGES)} with apt-get download ({exc}); "
                             f"install them with apt, or run `apt-get update` first") from exc
        for deb in sorted(Path(tmp).glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    (root / ".complete").touch()
    return root


def _read(path: Path, scale: float = 1.0) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"{path}: missing or unreadable; delete the source cache and rebuild")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if scale != 1.0:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return img.astype(np.float32)


def _gimp_pattern(path: Path) -> np.ndarray:
    """A GIMP .pat file: a big-endian header (size, version, width, height, bytes per pixel,
    'GPAT', name), then the pixels."""
    raw = path.read_bytes()
    header, _, width, height, depth = struct.unpack(">5I", raw[:20])
    if raw[20:24] != b"GPAT":
        raise SystemExit(f"{path}: not a GIMP pattern")
    px = np.frombuffer(raw[header:header + width * height * depth], np.uint8).reshape(height, width, depth)
    if depth < 3:
        px = np.repeat(px[:, :, :1], 3, axis=2)
    return px[:, :, :3].astype(np.float32)


def _tiled(tile: np.ndarray, scale: float, size: int = 1100) -> np.ndarray:
    tile = cv2.resize(tile, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    reps = (size // tile.shape[0] + 1, size // tile.shape[1] + 1, 1)
    return np.tile(tile, reps)[:size, :size]


def _wallpaper(root: Path, name: str) -> Path:
    files = glob.glob(str(root / "usr/share/wallpapers" / name / "contents/images/*"))
    return Path(max(files, key=os.path.getsize))


CELL = 340  # the checkerboard that keeps train and test views apart (px of the scaled photo)


@dataclass
class Photo:
    """A source image, the rows (fractions) views come from, and how train and test views are
    kept apart. A photograph is cut into a checkerboard of CELL-pixel cells: train views lie
    inside the even cells, test views inside the odd ones, so both see every part of the
    photograph (its focus, its light) and no test view shares a pixel with a training view.
    (Halves, left for train and right for test, made every good test image of the meadow look
    anomalous: a photograph's halves differ.) A tiled pattern repeats: ``tiled`` views may lie
    anywhere."""
    image: np.ndarray
    rows: tuple[float, float] = (0.0, 1.0)
    tiled: bool = False
    forbidden: np.ndarray | None = None  # pixels no view may contain (another object in the scene)

    def cells(self, split: str) -> list[tuple[int, int]]:
        """Top-left corners of the split's cells inside the rows."""
        h, w = self.image.shape[:2]
        top, bottom = int(self.rows[0] * h), int(self.rows[1] * h)
        return [(y, x) for i, y in enumerate(range(top, bottom - CELL + 1, CELL))
                for j, x in enumerate(range(0, w - CELL + 1, CELL)) if (i + j) % 2 == (split != "train")]


def load_photos(root: Path) -> dict[str, Photo]:
    share = root / "usr/share"
    pat = share / "gimp/2.0/patterns"
    moss = _read(_wallpaper(root, "OneStandsOut"), 0.5)
    hsv = cv2.cvtColor(moss.astype(np.uint8), cv2.COLOR_RGB2HSV)
    orange = (hsv[..., 0] < 25) & (hsv[..., 1] > 120) & (hsv[..., 2] > 90)  # the one that stands out
    orange = cv2.dilate(orange.astype(np.uint8), np.ones((41, 41), np.uint8)) > 0
    return {
        "wood": Photo(_read(share / "backgrounds/mate/nature/Wood.jpg", 0.75), rows=(0.25, 0.75)),
        "grass": Photo(_read(share / "backgrounds/mate/nature/GreenMeadow.jpg", 0.85)),
        "fabric": Photo(_tiled(_gimp_pattern(pat / "Fabric/burlap.pat"), 1.5), tiled=True),
        "brushed": Photo(_tiled(_gimp_pattern(pat / "Paper/paper.pat"), 1.25), tiled=True),
        "beans": Photo(_tiled(_gimp_pattern(pat / "Food/java.pat"), 2.0), tiled=True),
        "pebbles": Photo(_read(_wallpaper(root, "EveningGlow")), rows=(0.78, 1.0)),  # particles only
        "moss": Photo(moss, forbidden=orange),
        "board": Photo(_tiled(_gimp_pattern(pat / "Legacy/3dgreen.pat"), 1.0, 600), tiled=True),
    }


def _coins() -> list[np.ndarray]:
    """Four photographed coins from scikit-image's coins (RGBA patches, alpha a soft disc)."""
    from skimage import data

    gray = data.coins()
    _, fg = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    n, _, stats, centres = cv2.connectedComponentsWithStats(fg)
    found = sorted((stats[i, cv2.CC_STAT_AREA], tuple(centres[i])) for i in range(1, n)
                   if 900 < stats[i, cv2.CC_STAT_AREA] < 3000)
    patches = []
    for _, (cx, cy) in found[-4:]:
        r = 21
        x0, y0 = int(cx) - r, int(cy) - r
        crop = gray[max(y0, 0):y0 + 2 * r + 1, max(x0, 0):x0 + 2 * r + 1].astype(np.float32)
        crop = cv2.resize(crop, (2 * r + 1, 2 * r + 1))
        rgb = np.stack([crop * 1.05, crop * 0.92, crop * 0.7], 2)  # brass
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        alpha = np.clip(r - 2 - np.hypot(xx, yy), 0, 1.5) / 1.5
        patches.append(np.dstack([np.clip(rgb, 0, 255), alpha]))
    return patches


# -- deterministic randomness -----------------------------------------------------------------
def _rng(*keys: object) -> np.random.Generator:
    digest = hashlib.sha256(repr(keys).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _crop(photo: Photo, rng: np.random.Generator, split: str, scale: float = 1.0,
          turn: float = 0.0) -> np.ndarray:
    """A SIZE² view at a random place of one of the split's cells, turned by the camera's ±3°
    (and ``turn`` more), at ``scale`` times the photograph's own scale. A view larger than a
    cell (a texture defect's magnified inset) may come from anywhere in the rows."""
    img = photo.image
    h, w = img.shape[:2]
    reach = SIZE / 2 * max(scale, 1.0) * 1.08  # half the footprint, with room for the rotation
    top, bottom = photo.rows[0] * h, photo.rows[1] * h
    if photo.tiled or 2 * reach > CELL:
        box = [(top, 0.0, bottom - top, float(w))]
    else:
        box = [(y, x, CELL, CELL) for y, x in photo.cells(split)]
    for _ in range(200):
        y0, x0, bh, bw = box[int(rng.integers(len(box)))]
        cy = y0 + rng.uniform(min(reach, bh / 2), max(bh - reach, bh / 2))
        cx = x0 + rng.uniform(min(reach, bw / 2), max(bw - reach, bw / 2))
        if photo.forbidden is None or not photo.forbidden[int(cy - reach):int(cy + reach),
                                                          int(cx - reach):int(cx + reach)].any():
            break
    angle = rng.uniform(-3, 3) + turn
    m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0 / scale)
    m[:, 2] += (SIZE / 2 - cx, SIZE / 2 - cy)
    return cv2.warpAffine(img, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _blob(rng: np.random.Generator, radius: float, centre=None) -> np.ndarray:
    """A soft, irregular blob (0..1) of about ``radius`` pixels."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    cx, cy = centre if centre is not None else rng.uniform(radius + 8, SIZE - radius - 8, 2)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (SIZE, SIZE)).astype(np.float32), (0, 0), radius / 2.5)
    noise /= noise.std() + 1e-6
    d = np.hypot((xx - cx) / rng.uniform(0.7, 1.3), yy - cy) / radius + 0.25 * noise
    return np.clip((1.0 - d) / 0.35, 0, 1) ** 1.5


# -- the defect families ----------------------------------------------------------------------
def _lab(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.clip(img, 0, 255) / 255.0, cv2.COLOR_RGB2LAB)


def _rgb(lab: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB) * 255.0


def _shift_lab(img: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``img`` with its CIE Lab colour moved by ``shift``, applied as a difference: OpenCV's
    float Lab round trip is off by up to 0.9 grey levels, which must not touch the rest."""
    lab = _lab(img)
    return img + (_rgb(lab + shift) - _rgb(lab))


def stain(img, rng, grade, delta_e=(3.0, 5.0, 8.0), radius=(12, 28), **_):
    """A soft-edged change of colour of ΔE 3 / 5 / 8 (CIE Lab), textured like a real soak."""
    delta_e = delta_e[grade]
    alpha = _blob(rng, rng.uniform(*radius))
    alpha *= 0.75 + 0.25 * np.clip(cv2.GaussianBlur(rng.normal(0, 1, alpha.shape).astype(np.float32),
                                                    (0, 0), 2), -1, 1)
    direction = np.array([(-0.6, 0.2, 0.75), (-1, 0, 0), (0.3, -0.5, 0.8), (-0.4, 0.7, 0.3)][rng.integers(4)], np.float32)
    direction /= np.linalg.norm(direction)
    return _shift_lab(img, alpha[..., None] * (delta_e * direction)[None, None, :]), alpha > 0.5


def warp(img, rng, grade, **_):
    """The texture pushed, swirled or sheared locally by 2.5 / 4 / 6 px: no new colour."""
    amp = (2.5, 4.0, 6.0)[grade]
    r = rng.uniform(14, 28)
    cx, cy = rng.uniform(r + 10, SIZE - r - 10, 2)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    g = np.clip(1 - ((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r) ** 2, 0, 1) ** 2  # smooth, and zero beyond 2r
    kind = rng.integers(3)
    if kind == 0:  # push outwards
        dist = np.hypot(xx - cx, yy - cy) + 1e-3
        ux, uy = (xx - cx) / dist, (yy - cy) / dist
        g = g * np.clip(dist / r * 1.6, 0, 1)
    elif kind == 1:  # swirl
        dist = np.hypot(xx - cx, yy - cy) + 1e-3
        ux, uy = -(yy - cy) / dist, (xx - cx) / dist
        g = g * np.clip(dist / r * 1.6, 0, 1)
    else:  # shear in one direction
        a = rng.uniform(0, 2 * np.pi)
        ux, uy = np.full_like(g, np.cos(a)), np.full_like(g, np.sin(a))
    g = g / g.max()
    dx, dy = amp * g * ux, amp * g * uy
    out = cv2.remap(img, (xx - dx).astype(np.float32), (yy - dy).astype(np.float32), cv2.INTER_CUBIC,
                    borderMode=cv2.BORDER_REFLECT)
    return out, np.hypot(dx, dy) > 0.5


def texture(img, rng, grade, photo, split, **_):
    """A patch of the same material at another scale or orientation, blended in softly."""
    if rng.random() < 0.5:
        other = _crop(photo, rng, split, scale=(1.25, 1.5, 1.9)[grade])
    else:
        other = _crop(photo, rng, split, turn=(25.0, 45.0, 90.0)[grade] * rng.choice((-1, 1)))
    alpha = _blob(rng, rng.uniform(20, 34))
    return img * (1 - alpha[..., None]) + other * alpha[..., None], alpha > 0.5


def scratch(img, rng, grade, contrast=(6.0, 10.0, 18.0), length=(40, 100), **_):
    """A thin line (1-2 px, smooth or cracked), lighter or darker by 6 / 10 / 18 of 100 L*."""
    contrast = contrast[grade] * rng.choice((-1, 1), p=(0.7, 0.3))
    length = rng.uniform(*length)
    p = rng.uniform(50, SIZE - 50, 2)
    heading = rng.uniform(0, 2 * np.pi)
    cracked = rng.random() < 0.4
    pts = [p.copy()]
    for _ in range(int(length / 3)):
        heading += rng.normal(0, 0.35 if cracked else 0.05)
        p = p + 3 * np.array([np.cos(heading), np.sin(heading)])
        pts.append(np.clip(p, 2, SIZE - 3))
    line = np.zeros((SIZE * 4, SIZE * 4), np.float32)  # drawn at 4x, then reduced: anti-aliased
    cv2.polylines(line, [np.int32(np.array(pts) * 4)], False, 1.0, thickness=int(rng.integers(4, 9)),
                  lineType=cv2.LINE_AA)
    line = cv2.resize(line, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    line *= 0.6 + 0.4 * np.clip(cv2.GaussianBlur(rng.random((SIZE, SIZE)).astype(np.float32), (0, 0), 4) * 2, 0, 1)
    shift = np.zeros(img.shape, np.float32)
    shift[..., 0] = contrast * line
    return _shift_lab(img, shift), cv2.dilate((line > 0.15).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


_FOREIGN: list[np.ndarray] = []


def particle(img, rng, grade, diameter=(3.0, 5.0, 8.0), **_):
    """A small hole (dark, shaded, with a lit rim) or a foreign particle of 3 / 5 / 8 px."""
    d = diameter[grade] * rng.uniform(0.9, 1.15)
    cx, cy = rng.uniform(20, SIZE - 20, 2)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    dist = np.hypot((xx - cx) / rng.uniform(0.75, 1.25), yy - cy)
    disc = np.clip(d / 2 + 0.5 - dist, 0, 1)
    out = img.copy()
    if rng.random() < 0.5 or not _FOREIGN:
        depth = rng.uniform(0.45, 0.7)
        shade = 1 - depth * disc * (0.75 + 0.25 * np.clip((yy - cy) / (d / 2 + 1e-3), -1, 1))
        rim = np.clip(d / 2 + 1.5 - np.hypot(xx - cx + 1, yy - cy + 1), 0, 1) - disc
        out = out * shade[..., None] + 25 * np.clip(rim, 0, 1)[..., None]
    else:
        src = _FOREIGN[int(rng.integers(len(_FOREIGN)))]
        y0, x0 = rng.integers(0, src.shape[0] - SIZE), rng.integers(0, src.shape[1] - SIZE)
        tint = rng.uniform(0.6, 1.4, 3).astype(np.float32)
        out = out * (1 - disc[..., None]) + np.clip(src[y0:y0 + SIZE, x0:x0 + SIZE] * tint, 0, 255) * disc[..., None]
    return out, disc > 0.3


FAMILIES = {"stain": stain, "warp": warp, "texture": texture, "scratch": scratch, "particle": particle}


# -- the board: a part with components --------------------------------------------------------
COIN_AT = ((62, 66), (194, 62), (60, 190), (196, 194))
CONNECTOR = (128, 128, 64, 26)  # centre x, centre y, width, height


def _paste(canvas: np.ndarray, rgba: np.ndarray, cx: float, cy: float, mask: np.ndarray | None = None):
    """Put an RGBA patch on the canvas centred at (cx, cy), with a soft drop shadow."""
    h, w = rgba.shape[:2]
    m = np.float32([[1, 0, cx - w / 2], [0, 1, cy - h / 2]])
    size = (canvas.shape[1], canvas.shape[0])
    rgb = cv2.warpAffine(rgba[..., :3], m, size)
    alpha = cv2.warpAffine(rgba[..., 3], m, size)
    shadow = cv2.GaussianBlur(cv2.warpAffine(rgba[..., 3], m + np.float32([[0, 0, 3], [0, 0, 4]]), size), (0, 0), 3)
    canvas *= (1 - 0.45 * shadow)[..., None]
    canvas[:] = canvas * (1 - alpha[..., None]) + rgb * alpha[..., None]
    if mask is not None:
        mask |= alpha > 0.3


def _connector(pattern: np.ndarray) -> np.ndarray:
    _, _, w, h = CONNECTOR
    metal = cv2.resize(pattern, (w, h)) * np.float32([0.9, 0.9, 0.95])
    alpha = np.ones((h, w), np.float32)
    alpha[[0, -1], :] = alpha[:, [0, -1]] = 0.5
    return np.dstack([metal, alpha])


def board(photo: Photo, rng: np.random.Generator, split: str, parts: dict, grade: int | None):
    """A board: the substrate under four coins and a connector, seen by the camera (±5 px,
    ±2°). With ``grade``, one part moves by 4 / 8 px (grades 0, 1) or is missing (grade 2).
    Returns the image and the mask (the part's old and new footprints)."""
    big = 320
    sub = photo.image
    y0, x0 = rng.integers(0, sub.shape[0] - big), rng.integers(0, sub.shape[1] - big)
    canvas = sub[y0:y0 + big, x0:x0 + big].copy()
    off = (big - SIZE) / 2
    items = [(c, x + off, y + off) for c, (x, y) in zip(parts["coins"], COIN_AT)]
    items.append((parts["connector"], CONNECTOR[0] + off, CONNECTOR[1] + off))
    mask = np.zeros((big, big), bool)
    changed = int(rng.integers(len(items))) if grade is not None else -1
    for i, (rgba, x, y) in enumerate(items):
        jitter = rng.normal(0, 0.4, 2)  # placement tolerance of the assembly
        if i != changed:
            _paste(canvas, rgba, x + jitter[0], y + jitter[1])
            continue
        _paste(np.zeros_like(canvas), rgba, x, y, mask)  # where it should be
        if grade < 2:
            a = rng.uniform(0, 2 * np.pi)
            shift = (4.0, 8.0)[grade]
            _paste(canvas, rgba, x + shift * np.cos(a), y + shift * np.sin(a), mask)
    angle, (tx, ty) = rng.uniform(-2, 2), rng.uniform(-5, 5, 2)
    m = cv2.getRotationMatrix2D((big / 2, big / 2), angle, 1.0)
    m[:, 2] += (tx - off, ty - off)
    img = cv2.warpAffine(canvas, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = cv2.warpAffine(mask.astype(np.uint8), m, (SIZE, SIZE), flags=cv2.INTER_NEAREST) > 0
    return img, mask


# -- the camera -------------------------------------------------------------------------------
def camera(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure (gain and offset), sensor noise, then JPEG at quality 85-95."""
    out = img * rng.uniform(0.92, 1.08) + rng.uniform(-6, 6)
    out = out + rng.normal(0, rng.uniform(1.0, 2.5), out.shape)
    out = np.clip(out, 0, 255).astype(np.uint8)
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(85, 96))])
    return cv2.cvtColor(cv2.imdecode(jpg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def render(surface: str, photos: dict, parts: dict, split: str, index: int,
           family: str | None = None, grade: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """One image (RGB uint8) and its defect mask (None for a good image)."""
    rng = _rng(surface, split, index, family, grade)
    photo = photos[surface]
    if surface == "board":
        img, mask = board(photo, rng, split, parts, grade if family == "component" else None)
    else:
        img, mask = _crop(photo, rng, split), None
    if family is not None and family != "component":
        img, mask = FAMILIES[family](img, rng, grade, photo=photo, split=split)
    return camera(img, rng), (None if family is None else mask)


def _write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb)


def defects_of(surface: str) -> tuple[str, ...]:
    return BOARD_DEFECTS if surface == "board" else TEXTURE_DEFECTS


def build(out: Path, root: Path, surfaces=SURFACES) -> None:
    photos = load_photos(root)
    _FOREIGN[:] = [photos[s].image for s in ("pebbles", "wood", "grass")]
    parts = {"coins": _coins(), "connector": _connector(_gimp_pattern(root / "usr/share/gimp/2.0/patterns/Legacy/recessed.pat"))}
    jobs = []
    for s in surfaces:
        jobs += [(s, "train", i, None, None) for i in range(TRAIN)]
        jobs += [(s, "test", i, None, None) for i in range(TEST_GOOD)]
        jobs += [(s, "test", i, f, g) for f in defects_of(s) for g in range(3) for i in range(PER_GRADE)]
    for s, split, i, fam, grade in tqdm(jobs, desc="hard benchmark", unit="img"):
        img, mask = render(s, photos, parts, split, i, fam, grade)
        if fam is None:
            _write(out / s / split / "good" / f"{i:03d}.png", img)
        else:
            name = f"g{grade + 1}_{i:03d}.png"
            _write(out / s / "test" / fam / name, img)
            _write(out / s / "ground_truth" / fam / name.replace(".png", "_mask.png"), mask.astype(np.uint8) * 255)
    (out / "README.txt").write_text(
        f"Built by bench/hard_benchmark.py. Surfaces: {', '.join(surfaces)}; {HELD_OUT} is held out of "
        f"tuning.\nGrades: file prefix g1 (hardest) to g3.\n")


def grid(data: Path, out: Path, thumb: int = 128) -> None:
    """Every defect family per surface, hardest grade, above the same images with their masks
    outlined: a reader can judge the realism at a glance."""
    cols = ("good",) + tuple(dict.fromkeys(TEXTURE_DEFECTS + BOARD_DEFECTS))
    rows = []
    for s in SURFACES:
        plain, outlined = [], []
        for c in cols:
            if c == "good":
                path, mask = data / s / "test/good/000.png", None
            else:
                path = data / s / "test" / c / "g1_000.png"
                mask = data / s / "ground_truth" / c / "g1_000_mask.png"
            if not path.is_file():
                blank = np.full((thumb, thumb, 3), 255, np.uint8)
                plain.append(blank), outlined.append(blank)
                continue
            img = cv2.imread(str(path))
            lined = img.copy()
            if mask is not None:
                contours, _ = cv2.findContours(cv2.imread(str(mask), 0), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                cv2.drawContours(lined, contours, -1, (0, 0, 255), 1)
            plain.append(cv2.resize(img, (thumb, thumb), interpolation=cv2.INTER_AREA))
            outlined.append(cv2.resize(lined, (thumb, thumb), interpolation=cv2.INTER_AREA))
        label = np.full((2 * thumb, 70, 3), 255, np.uint8)
        cv2.putText(label, s, (4, thumb), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.hstack([label, np.vstack([np.hstack(plain), np.hstack(outlined)])]))
    head = np.full((22, rows[0].shape[1], 3), 255, np.uint8)
    for i, c in enumerate(cols):
        cv2.putText(head, c, (74 + i * thumb, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.vstack([head] + rows), [cv2.IMWRITE_JPEG_QUALITY, 88])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="var/hard")
    ap.add_argument("--sources", default="var/hard-sources", help="where the fetched packages are unpacked")
    ap.add_argument("--surfaces", nargs="*", default=list(SURFACES))
    ap.add_argument("--grid", help="also write the picture grid (JPEG) here")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    build(out, _package_root(Path(args.sources)), args.surfaces)
    if args.grid:
        grid(out, Path(args.grid))
        print(f"grid: {args.grid}")
    print(f"benchmark: {out} ({', '.join(args.surfaces)})")


if __name__ == "__main__":
    main()
