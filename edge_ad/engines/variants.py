"""Reduced-precision copies of a bundle's graph, for TensorRT.

Precision lives in the graph, not in builder flags: an fp16 copy (weights and arithmetic in
half, inputs and outputs unchanged) and an int8 copy with explicit quantize/dequantize nodes whose
scales come from entropy calibration on the bundle's normal calibration images. TensorRT builds
both as strongly typed networks, which is the one way that works on TensorRT 10 (JetPack 6) and
TensorRT 11 alike (11 has no FP16/INT8 builder flags and no implicit INT8 calibrators). Both run
on ONNX Runtime CPU too, so `edge-ad verify` measures what a precision costs on any machine.

Files are keyed to the source graph's hash: ``engines/model.<sha16>.<precision>.onnx``, with a
sidecar naming the calibration images' hash; a changed model or calibration set makes a new one.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import importlib.util
import json
import logging
import os
from pathlib import Path

import numpy as np

from ..bundle import Bundle
from ..errors import EdgeAdError, missing_extra
from ..imageio import image_files, model_inputs

log = logging.getLogger(__name__)
PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATION_DIR = "calibration"  # the bundle's held-out normal images, written at export
INT8_OPS = ["Conv"]  # quantize the convolutions; keep the score arithmetic in float


def variant_path(bundle: Bundle, precision: str) -> Path:
    if precision == "fp32":
        return bundle.onnx_path
    sha16 = bundle.manifest.provenance.onnx_sha256[:16]
    return bundle.engines_dir / f"model.{sha16}.{precision}.onnx"


def calibration_images(bundle: Bundle, folder: str | Path | None = None, limit: int = 64) -> np.ndarray:
    """(N, H, W, C) uint8 model inputs from ``folder`` or the bundle's ``calibration/``."""
    folder = Path(folder) if folder else bundle.path / CALIBRATION_DIR
    files = image_files(folder, recursive=True)[:limit]
    if not files:
        raise EdgeAdError(f"no calibration images in {folder}: int8 needs normal images "
                          "(give --calib DIR, or re-export the bundle, which stores them)")
    spec = bundle.manifest.input
    return model_inputs(files, spec.height, spec.width, spec.channels)


def _images_sha(images: np.ndarray) -> str:
    return hashlib.sha256(images.tobytes()).hexdigest()


def make_variant(bundle: Bundle, precision: str, calib: str | Path | None = None) -> Path:
    """The graph for ``precision``, made once and reused while its key holds."""
    if precision not in PRECISIONS:
        raise EdgeAdError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    target = variant_path(bundle, precision)
    if precision == "fp32":
        return target
    images = calibration_images(bundle, calib) if precision == "int8" else None
    sidecar = target.with_suffix(".json")
    wanted = {"source_onnx_sha256": bundle.manifest.provenance.onnx_sha256,
              "calibration_sha256": _images_sha(images) if images is not None else None}
    if target.is_file() and sidecar.is_file() and json.loads(sidecar.read_text()) == wanted:
        return target
    if importlib.util.find_spec("onnx") is None:  # both converters work on onnx protos
        raise missing_extra("onnx", "trt")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    if precision == "fp16":
        _to_fp16(bundle.onnx_path, partial)
    else:
        _to_int8(bundle, images, partial)
    os.replace(partial, target)
    sidecar.write_text(json.dumps(wanted, indent=1) + "\n")
    log.info("wrote %s", target)
    return target


def _to_fp16(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(target))


def _to_int8(bundle: Bundle, images: np.ndarray, target: Path) -> None:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)

    name = bundle.manifest.input.name

    class Reader(CalibrationDataReader):
        """Feeds calibration images to ONNX Runtime's int8 quantizer."""
        def __init__(self):
            self._batches = iter([{name: images[i:i + 1]} for i in range(len(images))])

        def get_next(self):
            return next(self._batches, None)

    with contextlib.redirect_stdout(io.StringIO()) as chatter:  # the tool prints its progress
        quantize_static(str(bundle.onnx_path), str(target), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=CalibrationMethod.Entropy, op_types_to_quantize=INT8_OPS)
    log.debug("int8 calibration: %s", chatter.getvalue())
