"""Reading images into the bundle's input: uint8, RGB or GRAY, resized to the model size."""
from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np

from .errors import ImageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}  # what folders of images are read as

# Decode failures are reported as ImageError with the file's name; OpenCV's own stderr lines
# about truncated buffers would only duplicate that without saying which file.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_structure_problem(data: bytes) -> str | None:
    """Why a PNG's chunk structure is broken (a chunk running past the end, a CRC mismatch, no
    IEND), or None. Checked before decoding: OpenCV took 140-600 ms to refuse a truncated
    256x256 PNG, where this walk takes well under a millisecond."""
    i = len(PNG_SIGNATURE)
    while i + 8 <= len(data):
        length, kind = int.from_bytes(data[i:i + 4], "big"), data[i + 4:i + 8]
        end = i + 12 + length
        if end > len(data):
            return f"chunk {kind!r} runs past the end of the file (truncated)"
        if zlib.crc32(data[i + 4:i + 8 + length]) != int.from_bytes(data[end - 4:end], "big"):
            return f"chunk {kind!r} fails its CRC (corrupt)"
        if kind == b"IEND":
            return None
        i = end
    return "no IEND chunk (truncated)"


def decode_image(data: bytes, source: str = "image") -> np.ndarray:
    """Encoded bytes → RGB uint8 (H, W, 3). Raises ImageError for anything undecodable."""
    if not data:
        raise ImageError(f"{source}: empty file")
    if data[:8] == PNG_SIGNATURE and (why := png_structure_problem(data)) is not None:
        raise ImageError(f"{source}: not a readable image (PNG {why})")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # OpenCV raises, not returns None, on some malformed headers
        raise ImageError(f"{source}: not a readable image ({exc.err or 'decoder error'})") from None
    if img is None:
        raise ImageError(f"{source}: not a readable image (corrupt, truncated or unsupported format)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_image(path: str | Path) -> np.ndarray:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return decode_image(data, str(path))


def to_model_input(frame_rgb: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
    """RGB (or GRAY) frame of any size → (height, width, channels) uint8 for the engine."""
    if frame_rgb.ndim == 2:
        frame_rgb = frame_rgb[:, :, None]
    if frame_rgb.shape[2] == 1 and channels == 3:
        frame_rgb = np.repeat(frame_rgb, 3, axis=2)
    elif frame_rgb.shape[2] == 3 and channels == 1:
        frame_rgb = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)[:, :, None]
    h, w = frame_rgb.shape[:2]
    if (h, w) != (height, width):
        interp = cv2.INTER_AREA if h > height or w > width else cv2.INTER_LINEAR
        frame_rgb = cv2.resize(frame_rgb, (width, height), interpolation=interp)
        if frame_rgb.ndim == 2:
            frame_rgb = frame_rgb[:, :, None]
    return np.ascontiguousarray(frame_rgb, dtype=np.uint8)


def image_header(data: bytes) -> tuple[str, int, int]:
    """Format and declared (width, height) of a JPEG, PNG or BMP, read from the header alone,
    so that a decompression bomb is refused before any pixel is decoded. Raises ImageError
    for anything else or a header that does not parse."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageError("PNG header is truncated or malformed")
        return "png", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"BM":
        if len(data) < 26:
            raise ImageError("BMP header is truncated")
        dib = int.from_bytes(data[14:18], "little")
        if dib == 12:  # OS/2 BITMAPCOREHEADER: unsigned 16-bit width and height
            return "bmp", int.from_bytes(data[18:20], "little"), int.from_bytes(data[20:22], "little")
        if dib not in (40, 52, 56, 64, 108, 124):
            raise ImageError(f"BMP header of {dib} bytes is not one of the known kinds")
        width = int.from_bytes(data[18:22], "little", signed=True)
        height = int.from_bytes(data[22:26], "little", signed=True)
        return "bmp", abs(width), abs(height)  # negative height = top-down rows
    if data[:3] == b"\xff\xd8\xff":
        return ("jpeg", *_jpeg_size(data))
    raise ImageError("unsupported image format: send JPEG, PNG or BMP")


# Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but not.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ImageError("JPEG header is malformed")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _SOF:
            if i + 9 > len(data):
                break
            height = int.from_bytes(data[i + 5:i + 7], "big")
            width = int.from_bytes(data[i + 7:i + 9], "big")
            return width, height
        if length < 2:
            break
        i += 2 + length
    raise ImageError("JPEG header is truncated: no frame size found")


def image_files(folder: str | Path, recursive: bool = False, masks: bool = True) -> list[Path]:
    """The images in ``folder`` (and below it when ``recursive``), sorted; ``masks=False`` leaves
    out MVTec ground-truth masks (``*_mask``). [] for a folder that does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and (masks or not p.stem.endswith("_mask")))


def model_inputs(paths, height: int, width: int, channels: int) -> np.ndarray:
    """(N, height, width, channels) uint8 model inputs of the image files ``paths``, resized as
    every path (train, calibrate, verify, serve) resizes them; a broken file names itself."""
    out = np.empty((len(paths), height, width, channels), np.uint8)
    for i, path in enumerate(paths):
        out[i] = to_model_input(read_image(path), height, width, channels)
    return out

