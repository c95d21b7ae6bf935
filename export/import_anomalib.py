"""``edge-ad import-anomalib MODEL.onnx --out BUNDLE --normal DIR [--abnormal DIR]``: an anomalib
2.x ONNX export as an edge-ad bundle, so it runs through the same engines, API and metrics.

anomalib's export takes ``input`` (N, 3, H, W) float RGB in [0, 1] (its resize and ImageNet
normalization are baked in) and answers ``pred_score`` (N, 1), ``anomaly_map`` (N, 1, H, W) and
labels/masks. A few nodes in front turn the bundle's uint8 NHWC batch into that input, and two
behind reshape the map and score to the bundle's outputs; anomalib's graph itself is untouched.

Thresholds are calibrated on the given images through the real engine. anomalib's default
post-processing clips scores to [0, 1] around its own threshold (0.5), so most normal parts
score exactly 0: a tolerance bound fitted to such scores means nothing. That is detected; then
the threshold comes from the defect images when given (--abnormal), else anomalib's own 0.5 is
kept and the manifest says so.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np

from edge_ad import __version__
from edge_ad.bundle import (Calibration, InputSpec, Manifest, Normalization, OutputSpec, Provenance,
                            Thresholds, load_bundle, save_manifest, sha256_file)
from edge_ad.engines import create_engine
from edge_ad.errors import EdgeAdError
from edge_ad.imageio import model_inputs
from edge_ad.parity import compare
from edge_ad.decision.quality import reference_stats

from .bundle_writer import _save_calibration_images
from .calibrate_cmd import _images, calibrate

IN, MAP, SCORE = "image", "edgead_anomaly_map", "edgead_score"
ANOMALIB_INPUT, ANOMALIB_MAP, ANOMALIB_SCORE = "input", "anomaly_map", "pred_score"
CLIPPED_SHARE = 0.5  # more normal scores than this at the minimum: anomalib clipped them


def _wrap(model):
    """uint8 NHWC → anomalib's float NCHW in [0, 1] in front; map (N, H, W) and score (N,) behind."""
    from onnx import TensorProto, helper

    graph = model.graph
    inputs = {i.name: i for i in graph.input}
    outputs = {o.name for o in graph.output}
    missing = {ANOMALIB_INPUT} - set(inputs) | {ANOMALIB_MAP, ANOMALIB_SCORE} - outputs
    if missing:
        raise EdgeAdError(f"not an anomalib 2.x export: no {', '.join(sorted(missing))} "
                          f"(inputs {sorted(inputs)}, outputs {sorted(outputs)})")
    dims = [d.dim_value for d in inputs[ANOMALIB_INPUT].type.tensor_type.shape.dim]
    if len(dims) != 4 or not all(dims[1:]):
        raise EdgeAdError(f"anomalib input must be (N, C, H, W) with fixed C, H, W; got {dims}")
    channels, height, width = dims[1:]
    front = [
        helper.make_node("Cast", [IN], ["edgead_f32"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["edgead_f32", "edgead_inv255"], ["edgead_unit"]),
        helper.make_node("Transpose", ["edgead_unit"], [ANOMALIB_INPUT], perm=[0, 3, 1, 2]),
    ]
    back = [
        helper.make_node("Squeeze", [ANOMALIB_MAP, "edgead_axis1"], [MAP]),
        helper.make_node("Reshape", [ANOMALIB_SCORE, "edgead_flat"], [SCORE]),
    ]
    constants = [helper.make_tensor("edgead_inv255", TensorProto.FLOAT, [], [1 / 255]),
                 helper.make_tensor("edgead_axis1", TensorProto.INT64, [1], [1]),
                 helper.make_tensor("edgead_flat", TensorProto.INT64, [1], [-1])]
    new_graph = helper.make_graph(
        front + list(graph.node) + back, "edge_ad_anomalib",
        [helper.make_tensor_value_info(IN, TensorProto.UINT8, ["N", height, width, channels])],
        [helper.make_tensor_value_info(MAP, TensorProto.FLOAT, ["N", height, width]),
         helper.make_tensor_value_info(SCORE, TensorProto.FLOAT, ["N"])],
        initializer=list(graph.initializer) + constants, value_info=list(graph.value_info))
    wrapped = helper.make_model(new_graph, opset_imports=list(model.opset_import),
                                producer_name="edge-ad import-anomalib")
    wrapped.ir_version = model.ir_version
    return wrapped, (height, width, channels)


def _anomalib_direct(model_path: Path, images_u8: np.ndarray):
    """The export run as anomalib serves it, for the parity check of the wrapper."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    x = images_u8.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    amap, score = session.run([ANOMALIB_MAP, ANOMALIB_SCORE], {ANOMALIB_INPUT: x})
    return amap[:, 0], score.reshape(-1)


def import_anomalib(model_path: str | Path, out: str | Path, normal: str | Path,
                    abnormal: str | Path | None = None, name: str | None = None,
                    target_fpr: float = 0.01) -> dict:
    import onnx

    model_path, out = Path(model_path), Path(out)
    if not model_path.is_file():
        raise EdgeAdError(f"anomalib model not found: {model_path}")
    try:
        model = onnx.load(str(model_path))
    except Exception as exc:
        raise EdgeAdError(f"{model_path} is not a readable ONNX file: {exc}") from exc
    wrapped, (height, width, channels) = _wrap(model)
    onnx.checker.check_model(wrapped, full_check=True)
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(wrapped, str(out / "model.onnx"))

    normal_paths = _images(normal)
    normal_u8 = model_inputs(normal_paths, height, width, channels)
    placeholder = Normalization(threshold=0.5, scale=0.5)
    manifest = Manifest(
        name=name or model_path.stem, family="anomalib", backbone=None,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        input=InputSpec(name=IN, height=height, width=width, channels=channels, color="RGB"),
        outputs=OutputSpec(map=MAP, score=SCORE),
        thresholds=Thresholds(image=placeholder, pixel=placeholder),
        calibration=Calibration(method="anomalib-baked"),
        provenance=Provenance(onnx_sha256=sha256_file(out / "model.onnx"),
                              versions={"edge_ad": __version__, "onnx": onnx.__version__,
                                        "anomalib_export_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest()}),
        image_stats=reference_stats(list(normal_u8)))
    save_manifest(out, manifest)
    _save_calibration_images(out, normal_u8[:64])

    # the wrapper must change no score beyond float rounding: bundle (uint8 in) against the export as is
    bundle = load_bundle(out)
    with create_engine(bundle, providers=["CPUExecutionProvider"]) as engine:
        served = engine.infer(normal_u8)
    parity = compare("anomalib export", "fp32", _anomalib_direct(model_path, normal_u8), served,
                     placeholder.threshold, placeholder.scale)
    if not parity.passed:
        raise EdgeAdError(f"the wrapped model scores differently from the export: {'; '.join(parity.reasons)}")
    scores = served[1]
    clipped = float(np.mean(scores <= scores.min() + 1e-9)) > CLIPPED_SHARE
    if not clipped:
        result = calibrate(str(out), str(normal), str(abnormal) if abnormal else None,
                           None if abnormal else target_fpr, "f1" if abnormal else None)
    elif abnormal:
        result = calibrate(str(out), str(normal), str(abnormal), None, "f1")
    else:
        th = 0.5  # anomalib's own threshold sits at 0.5 of its normalized score
        fpr = float(np.mean(scores >= th))
        m = load_bundle(out).manifest
        cal = m.calibration.model_copy(update={
            "method": "anomalib-baked", "normal_count": len(scores), "measured_fpr": fpr,
            "normal_scores": [float(s) for s in scores[:5000]]})
        save_manifest(out, m.model_copy(update={"calibration": cal}))
        result = {"threshold": th, "method": "anomalib-baked", "normal": len(scores), "abnormal": 0,
                  "false_rejects_on_these_images": fpr, "misses_on_these_images": None}
    m = load_bundle(out).manifest
    save_manifest(out, m.model_copy(update={"parity": {"anomalib export": parity.record()}}))
    return {**result, "clipped": clipped, "input": f"{width}x{height}", "bundle": str(out)}
