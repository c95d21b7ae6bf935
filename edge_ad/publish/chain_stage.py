"""The second stages a chain can call: a classifier bundle run on ONNX Runtime, or an HTTP
endpoint that takes an image and answers JSON.

A classifier bundle is a manifest kind of its own (``"kind": "classifier"``): the class list,
how the ONNX model wants its input (size, colour, layout, dtype, scale, mean, std), and whether
it answers logits or probabilities. ``edge-ad import-classifier`` writes one around any ONNX
classifier; an anomaly bundle's loader refuses it with a line that says so.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..bundle import MODEL, sha256_file
from ..errors import BundleError
from ..validation import one_line

MANIFEST = "manifest.json"


class ClassifierInput(BaseModel):
    """What the classifier's ONNX input expects."""
    model_config = ConfigDict(extra="forbid")
    height: int = Field(ge=1, le=8192)
    width: int = Field(ge=1, le=8192)
    channels: Literal[1, 3] = 3
    color: Literal["RGB", "BGR", "GRAY"] = "RGB"
    layout: Literal["NHWC", "NCHW"] = "NHWC"
    dtype: Literal["uint8", "float32"] = "uint8"
    scale: float = Field(1.0, gt=0, description="float32 inputs: pixel x scale, then (x - mean) / std")
    mean: list[float] = Field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = Field(default_factory=lambda: [1.0, 1.0, 1.0])


class ClassifierManifest(BaseModel):
    """``manifest.json`` of a classifier bundle."""
    model_config = ConfigDict(extra="forbid")
    kind: Literal["classifier"] = "classifier"
    schema_version: Literal[1] = 1
    name: str = Field(min_length=1, max_length=128)
    version: str = Field("1", min_length=1, max_length=64)
    labels: list[str] = Field(min_length=2, max_length=10_000)
    input: ClassifierInput
    outputs: Literal["logits", "probabilities"] = "logits"
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    imported_at: str = ""
    source: str = ""


def save_classifier(path: Path, manifest: ClassifierManifest) -> None:
    (path / MANIFEST).write_text(manifest.model_dump_json(indent=1))


def load_classifier(path: str | Path) -> ClassifierManifest:
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{path} is not a classifier bundle: {MANIFEST} is missing "
                          "(make one with 'edge-ad import-classifier MODEL.onnx --labels ...')")
    try:
        manifest = ClassifierManifest.model_validate(json.loads(mpath.read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"{mpath} is not valid JSON: {exc}") from exc
    except ValidationError as exc:
        raise BundleError(one_line(exc, str(mpath), ClassifierManifest)) from exc
    onnx = path / MODEL
    if not onnx.is_file() or sha256_file(onnx) != manifest.onnx_sha256:
        raise BundleError(f"{onnx} is missing or does not match its manifest's sha256")
    return manifest


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def prepare(crop_rgb: np.ndarray, spec: ClassifierInput) -> np.ndarray:
    """One crop (RGB uint8, any size) as the classifier's input, without the batch axis."""
    x = cv2.resize(crop_rgb, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
    if x.ndim == 2:
        x = cv2.cvtColor(x, cv2.COLOR_GRAY2RGB)
    if spec.color == "GRAY":
        x = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None]
    elif spec.color == "BGR":
        x = x[..., ::-1]
    if spec.dtype == "float32":
        c = x.shape[-1]
        x = (x.astype(np.float32) * spec.scale - np.float32(spec.mean[:c])) / np.float32(spec.std[:c])
    if spec.layout == "NCHW":
        x = np.transpose(x, (2, 0, 1))
    return np.ascontiguousarray(x)


class ClassifierStage:
    """Owns an ONNX Runtime session of a classifier bundle (CPU, one thread: the line's engine
    keeps the rest of the machine)."""

    def __init__(self, path: str | Path):
        import onnxruntime as ort

        self.path = Path(path)
        self.manifest = m = load_classifier(self.path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path / MODEL), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        batch = self.session.get_inputs()[0].shape[0]
        self.batch_one = batch == 1  # a graph exported with a fixed batch of 1
        self.name = f"{m.name} v{m.version}"

    def classify(self, crops: list[np.ndarray], timeout_s: float) -> list[tuple[str, float]]:
        m = self.manifest
        xs = np.stack([prepare(c, m.input) for c in crops])
        parts = [xs[i:i + 1] for i in range(len(xs))] if self.batch_one else [xs]
        out = np.concatenate([self.session.run(None, {self.input_name: p})[0] for p in parts]).reshape(len(xs), -1)
        if out.shape[1] != len(m.labels):
            raise ValueError(f"the classifier answered {out.shape[1]} scores for {len(m.labels)} labels")
        probs = softmax(out) if m.outputs == "logits" else out
        best = probs.argmax(axis=1)
        return [(m.labels[k], float(probs[i, k])) for i, k in enumerate(best)]


class HttpStage:
    """Another inference server: each crop POSTed as image/png; it answers
    ``{"label": str, "confidence": float}``."""

    def __init__(self, url: str):
        self.url = self.name = url

    def classify(self, crops: list[np.ndarray], timeout_s: float) -> list[tuple[str, float]]:
        answers = []
        for crop in crops:
            ok, png = cv2.imencode(".png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
            req = urllib.request.Request(self.url, data=png.tobytes(), method="POST",
                                         headers={"Content-Type": "image/png"})
            try:
                with urllib.request.urlopen(req, timeout=timeout_s) as r:
                    body = json.loads(r.read(1 << 20))
            except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
                raise ConnectionError(f"{self.url}: {getattr(exc, 'reason', exc)}") from exc
            if not isinstance(body, dict) or not isinstance(body.get("label"), str):
                raise ValueError(f"{self.url} answered {str(body)[:80]!r}, not {{\"label\", \"confidence\"}}")
            answers.append((body["label"], float(body.get("confidence", 1.0))))
        return answers


def open_stage(stage: str):
    """A classifier bundle directory, or an http(s):// endpoint."""
    if stage.startswith(("http://", "https://")):
        return HttpStage(stage)
    return ClassifierStage(stage)


def import_classifier(onnx_path: str | Path, labels: list[str], out: str | Path, name: str | None = None,
                      **input_options) -> ClassifierManifest:
    """Wrap an ONNX classifier into a bundle: its input size from the graph (or the options),
    its output checked against the labels on a dry run."""
    import shutil

    import onnxruntime as ort

    onnx_path, out = Path(onnx_path), Path(out)
    if not onnx_path.is_file():
        raise BundleError(f"no ONNX model at {onnx_path}")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    layout = input_options.get("layout") or ("NCHW" if len(shape) == 4 and shape[1] in (1, 3) else "NHWC")
    h, w, c = (shape[2], shape[3], shape[1]) if layout == "NCHW" else (shape[1], shape[2], shape[3])
    kind = session.get_inputs()[0].type
    spec = ClassifierInput(height=input_options.get("height") or h, width=input_options.get("width") or w,
                           channels=c if isinstance(c, int) else 3, layout=layout,
                           dtype=input_options.get("dtype") or ("uint8" if "uint8" in kind else "float32"),
                           **{k: v for k, v in input_options.items()
                              if k in ("color", "scale", "mean", "std") and v is not None})
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, out / MODEL)
    manifest = ClassifierManifest(name=name or onnx_path.stem, labels=labels, input=spec,
                                  outputs=input_options.get("outputs") or "logits",
                                  onnx_sha256=sha256_file(out / MODEL),
                                  imported_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                  source=str(onnx_path))
    save_classifier(out, manifest)
    try:  # a dry run: the graph runs and answers one score per label
        ClassifierStage(out).classify([np.zeros((spec.height, spec.width, 3), np.uint8)], timeout_s=10)
    except Exception as exc:
        shutil.rmtree(out, ignore_errors=True)
        raise BundleError(f"{onnx_path} does not run as a classifier of {len(labels)} labels: {exc} "
                          "(check --labels, --size, --layout and --dtype)") from exc
    return manifest
