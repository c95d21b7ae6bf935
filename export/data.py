"""Reading normal images for training: an MVTec-layout category (``train/good``) or a plain folder.

Images are resized with the runtime's own ``to_model_input`` so that training and inference see
pixels prepared exactly alike.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edge_ad.errors import EdgeAdError, ImageError
from edge_ad.imageio import image_files, model_inputs


def list_images(folder: Path) -> list[Path]:
    return image_files(folder)


def normal_images(data: str | Path) -> list[Path]:
    data = Path(data)
    if not data.is_dir():
        raise EdgeAdError(f"training data not found: {data}")
    folder = data / "train" / "good" if (data / "train" / "good").is_dir() else data
    paths = list_images(folder)
    if len(paths) < 16:
        raise EdgeAdError(f"{folder} holds {len(paths)} images; at least 16 good images are needed "
                          "(8 to train, 8 to calibrate; 50 or more recommended)")
    return paths


def split_holdout(paths: list[Path], seed: int, fraction: float = 0.2,
                  minimum: int = 8) -> tuple[list[Path], list[Path]]:
    """Deterministic split of the good images into training and held-out calibration images
    (at least ``minimum`` held out, the fewest the calibration's confidence bound accepts)."""
    n_hold = max(minimum, int(round(len(paths) * fraction)))
    order = np.random.default_rng(seed).permutation(len(paths))
    hold = sorted(paths[i] for i in order[:n_hold])
    train = sorted(paths[i] for i in order[n_hold:])
    return train, hold


def load_images(paths: list[Path], size: int, channels: int = 3) -> np.ndarray:
    """(N, size, size, channels) uint8; a broken file names itself."""
    try:
        return model_inputs(paths, size, size, channels)
    except ImageError as exc:
        raise EdgeAdError(f"cannot use training image: {exc}") from exc


def load_frames(paths: list[Path], frame: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Full-resolution RGB frames, all one size (or resized to ``frame`` = (width, height))."""
    import cv2

    from edge_ad.imageio import read_image

    frames, first = [], None
    for p in paths:
        try:
            image = read_image(p)
        except ImageError as exc:
            raise EdgeAdError(f"cannot use training image: {exc}") from exc
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if frame is not None:
            if image.shape[1::-1] != frame:
                image = cv2.resize(image, frame, interpolation=cv2.INTER_AREA)
        elif first is None:
            first = (p, image.shape[1], image.shape[0])
        elif image.shape[1::-1] != first[1:]:
            raise EdgeAdError(f"{p.name} is {image.shape[1]}x{image.shape[0]} but {first[0].name} is "
                              f"{first[1]}x{first[2]}: tiled training needs one frame size "
                              "(or --frame WxH to resize them all)")
        frames.append(np.ascontiguousarray(image))
    return frames


def tiles_of(frames: list[np.ndarray], size: int, overlap: float, channels: int) -> np.ndarray:
    """Every tile of every frame, (N, size, size, channels) uint8."""
    from edge_ad.imageio import to_model_input
    from edge_ad.tiling import cut, grid

    out = []
    for f in frames:
        h, w = f.shape[:2]
        if min(h, w) < size:
            raise EdgeAdError(f"a {w}x{h} frame is smaller than the {size}-px tile: use a smaller --size")
        out += [to_model_input(t, size, size, channels) for t in cut(f, grid(h, w, size, overlap), size)]
    return np.stack(out)


def data_hash(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()
