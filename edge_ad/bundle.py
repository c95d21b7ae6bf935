"""The model bundle: ``manifest.json`` (validated on load) + ``model.onnx`` + ``engines/``.

Thresholds and score normalization live in the manifest, not in the graph, so they can be
changed without re-exporting; the graph outputs raw values only.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import BundleError
from .validation import one_line

SCHEMA_VERSION = 2
# v1 → v2: the free-form ``validation`` dict of the export-time torch check became ``parity``,
# one record per candidate (torch, reduced-precision graphs, TensorRT engines) so `edge-ad
# verify --record` can keep what was checked on the device beside the model.
MANIFEST = "manifest.json"
MODEL = "model.onnx"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(_Strict):
    """What the graph takes: tensor name, size, channels, colour order, layout and dtype."""
    name: str = Field("image", description="ONNX input tensor name")
    height: int = Field(gt=0, le=8192)
    width: int = Field(gt=0, le=8192)
    channels: Literal[1, 3]
    color: Literal["RGB", "GRAY"]
    layout: Literal["NHWC"] = "NHWC"
    dtype: Literal["uint8"] = "uint8"

    @model_validator(mode="after")
    def _colour_matches_channels(self):
        if (self.color == "GRAY") != (self.channels == 1):
            raise ValueError(f"color {self.color} does not match channels {self.channels}")
        return self


class TilingSpec(_Strict):
    """A tiled bundle: the whole judged frame is cut into input-size tiles at native resolution
    (edge_ad/tiling.py), scored at most ``batch`` at a time, and the maps stitched."""
    frame_width: int = Field(gt=0, le=65536, description="the judged frame's width the bundle was trained on")
    frame_height: int = Field(gt=0, le=65536)
    overlap: float = Field(0.25, ge=0, lt=0.9, description="at least this share of a tile overlaps its neighbour")
    memory_mb: float = Field(1024, gt=0, le=1_000_000, description="the ceiling the tile batch is set from")
    batch: int = Field(ge=1, le=64, description="tiles per engine call (from memory_mb)")
    resize_frames: bool = Field(False, description="frames of another size are resized to the frame size "
                                "first (trained with --frame); otherwise they are refused")


class OutputSpec(_Strict):
    """The names of the graph's two outputs: the raw map and the raw image score."""
    map: str = Field("anomaly_map", description="raw anomaly map, (N, H, W) float32 at input size")
    score: str = Field("score", description="raw image score, (N,) float32")


class Normalization(_Strict):
    """Maps a raw value to [0, 1] with the threshold at exactly 0.5:
    ``clip(0.5 + 0.5 * (raw - threshold) / scale, 0, 1)``."""

    threshold: float
    scale: float = Field(gt=0)


class Thresholds(_Strict):
    """The image and pixel normalizations in force (raw threshold and scale each)."""
    image: Normalization
    pixel: Normalization


class Calibration(_Strict):
    """How the thresholds were chosen, and the good-image scores they were chosen from."""
    method: str = "uncalibrated"
    target_fpr: float | None = None
    confidence: float | None = None
    normal_count: int = 0
    abnormal_count: int = 0
    normal_score_mean: float | None = None
    normal_score_std: float | None = None
    normal_score_max: float | None = None
    normal_score_spread: float | None = Field(None, description="highest minus lowest good score")
    margin_over_max: float | None = Field(None, description="threshold minus the highest good score; "
                                          "train and calibrate warn when it exceeds the spread")
    out_of_fold_count: int = Field(0, ge=0, description="of normal_count, training images scored "
                                   "out-of-fold (a memory bank without the image's own patches)")
    fit: dict[str, float] = Field(default_factory=dict)
    target_fnr: float | None = None
    expected_fpr: float | None = Field(None, description="false-reject rate the method promises "
                                       "(its target) or, for labelled methods, measured on the calibration images")
    expected_fnr: float | None = Field(None, description="miss rate measured on the calibration defect images")
    measured_fpr: float | None = Field(None, description="false rejects among the calibration normal images")
    normal_scores: list[float] = Field(default_factory=list, max_length=5000,
                                       description="raw scores of the calibration normal images: "
                                                   "the reference the drift guard compares the line with")
    data_sha256: str | None = None


class Provenance(_Strict):
    """Where the graph came from: data and graph hashes, training settings and versions."""
    data_sha256: str | None = None
    image_count: int | None = None
    seed: int | None = None
    steps: int | None = None
    training_seconds: float | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    onnx_sha256: str


class ParityRecord(_Strict):
    """One candidate compared with the bundle's graph on ONNX Runtime CPU (edge_ad.parity)."""
    precision: Literal["fp32", "fp16", "int8"]
    images: int | None = None
    max_abs_map_diff: float | None = None
    mean_abs_map_diff: float | None = None
    max_rel_score_diff: float = Field(description="relative to the raw score; reported, not judged")
    max_score_diff_of_scale: float | None = Field(None, description="|Δ raw score| / threshold scale: "
                                                  "what the gate judges (absent in records before it did)")
    verdict_flips: int
    flips_beyond_noise: int | None = Field(None, description="flips of images farther from the "
                                           "threshold than the allowed score difference: what the gate judges")
    auroc_reference: float | None = None
    auroc_candidate: float | None = None
    passed: bool
    checked: str | None = Field(None, description="when, ISO 8601")
    platform: dict[str, str | bool | None] = Field(default_factory=dict)


class Manifest(_Strict):
    """Everything a bundle says about its model; validated on load, saved atomically."""
    schema_version: int = SCHEMA_VERSION
    name: str
    version: str = "1"
    family: str
    backbone: str | None = None
    created: str
    input: InputSpec
    outputs: OutputSpec = OutputSpec()
    thresholds: Thresholds
    calibration: Calibration = Calibration()
    provenance: Provenance
    parity: dict[str, ParityRecord] = Field(default_factory=dict, description="candidate name → "
                                            "its parity with the graph on ONNX Runtime CPU")
    tiling: TilingSpec | None = Field(None, description="set for a tiled bundle (train --tile)")
    image_stats: dict[str, float] = Field(default_factory=dict, description="brightness and sharpness "
                                          "of the calibration images, for the image-quality guard")

    @property
    def map_size(self) -> tuple[int, int]:
        """(height, width) of the raw map decisions see: the frame's for a tiled bundle, the
        input's otherwise (ignore masks are drawn at this size)."""
        if self.tiling is not None:
            return self.tiling.frame_height, self.tiling.frame_width
        return self.input.height, self.input.width


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _v1_to_v2(raw: dict) -> dict:
    raw = dict(raw)
    old = raw.pop("validation", None) or {}
    if "parity_max_rel_score_diff" in old:
        flips = int(old.get("parity_verdict_flips", 0))
        rel = float(old["parity_max_rel_score_diff"])
        raw["parity"] = {"torch": {
            "precision": "fp32", "max_abs_map_diff": old.get("parity_max_abs_map_diff"),
            "mean_abs_map_diff": old.get("parity_mean_abs_map_diff"), "max_rel_score_diff": rel,
            "verdict_flips": flips, "passed": flips == 0 and rel <= 1e-4}}
    raw["schema_version"] = 2
    return raw


MIGRATIONS = {1: _v1_to_v2}  # version → the step that lifts it by one


def migrate(raw: dict) -> dict:
    """Bring an older manifest up to SCHEMA_VERSION one step at a time; refuse the future.
    The file on disk is rewritten only when the manifest is next saved."""
    version = raw.get("schema_version", 1)
    if not isinstance(version, int) or version < 1 or version > SCHEMA_VERSION:
        raise BundleError(f"manifest schema_version {version!r} is not one this edge-ad reads "
                          f"(1 to {SCHEMA_VERSION})" + (": upgrade edge-ad" if isinstance(version, int)
                                                         and version > SCHEMA_VERSION else ""))
    while version < SCHEMA_VERSION:
        raw = MIGRATIONS[version](raw)
        version = raw["schema_version"]
    return raw


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: its folder and its manifest (the graph is read by the engine)."""
    path: Path
    manifest: Manifest

    @property
    def onnx_path(self) -> Path:
        return self.path / MODEL

    @property
    def engines_dir(self) -> Path:
        return self.path / "engines"


def load_bundle(path: str | Path, check_hash: bool = True) -> Bundle:
    path = Path(path)
    if path.is_file() and path.name == MANIFEST:
        path = path.parent
    if not path.is_dir():
        raise BundleError(f"model bundle not found: {path} (train one with 'edge-ad train')")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{path} is not a model bundle: {MANIFEST} is missing")
    try:
        raw = json.loads(mpath.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{mpath} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise BundleError(f"{mpath} must hold a JSON object")
    if raw.get("kind") == "classifier":
        raise BundleError(f"{path} is a classifier bundle: it serves as a second stage "
                          "(chain: {stage: ...}), not as the anomaly model")
    try:
        manifest = Manifest.model_validate(migrate(raw))
    except ValidationError as exc:
        raise BundleError(one_line(exc, str(mpath), Manifest)) from exc
    onnx = path / MODEL
    if not onnx.is_file():
        raise BundleError(f"{path} is not a complete bundle: {MODEL} is missing")
    if check_hash and sha256_file(onnx) != manifest.provenance.onnx_sha256:
        raise BundleError(f"{onnx} does not match the sha256 in its manifest: the file is corrupt "
                          "or was replaced; re-export the bundle")
    return Bundle(path, manifest)


def save_manifest(bundle_dir: str | Path, manifest: Manifest) -> Path:
    """Atomic write: a crash mid-write never leaves a half manifest behind."""
    bundle_dir = Path(bundle_dir)
    target = bundle_dir / MANIFEST
    fd, tmp = tempfile.mkstemp(dir=bundle_dir, prefix=".manifest-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        # an untiled bundle leaves the key out, so runtimes from before tiling still read it
        fh.write(manifest.model_dump_json(indent=2, exclude={"tiling"} if manifest.tiling is None else None))
        fh.write("\n")
        # mkstemp makes 0600: after a root `cp -r` (the deploy steps) the service's own user
        # could not read the manifest. A bundle holds nothing secret.
        os.fchmod(fh.fileno(), 0o644)
    os.replace(tmp, target)
    return target
