"""``edge-ad verify BUNDLE --data DIR``: every way this bundle can be executed, against its ONNX
graph on ONNX Runtime CPU, on real images.

Candidates, each where available: the torch checkpoint the bundle was exported from (fp32), the
reduced-precision graphs TensorRT builds from (run on ONNX Runtime CPU: what the precision itself
costs), and the TensorRT engines built on this device. Exit status 1 when any is beyond its
tolerance (edge_ad.parity.TOLERANCES). A tiled bundle is compared on whole frames, tiled and
stitched as served (on its held-out tiles when no --data is given)."""
from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np

from ..bundle import Bundle, load_bundle
from ..plugins import load
from ..engines import create_engine
from ..errors import EdgeAdError
from ..evaluation.dataset import test_set
from ..imageio import image_files, model_inputs
from ..parity import ParityResult, compare
from .. import platform as device

log = logging.getLogger(__name__)
BATCH = 8


def load_images(bundle: Bundle, data: str | Path | None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Model inputs and labels (1 = defect) from an MVTec category's test split, or every image
    of a folder (unlabelled); the bundle's calibration images when no folder is given."""
    folder = Path(data) if data else bundle.path / "calibration"
    if (folder / "test" / "good").is_dir():
        samples = test_set(folder)
        paths, labels = [s.path for s in samples], np.array([int(s.is_defect) for s in samples])
    else:
        paths = image_files(folder, recursive=True)
        labels = None
    if not paths:
        raise EdgeAdError(f"no images in {folder}: give --data with real images of parts")
    spec, tiling = bundle.manifest.input, bundle.manifest.tiling
    if tiling is not None and data:  # whole frames, judged as served: tiled and stitched
        from ..imageio import read_image, to_model_input
        from ..tiling import fit_frame

        try:
            images = np.stack([to_model_input(fit_frame(read_image(p), tiling), tiling.frame_height,
                                              tiling.frame_width, spec.channels) for p in paths])
        except ValueError as exc:
            raise EdgeAdError(f"{exc}: give --data with frames like the bundle was trained on") from exc
        return images, labels, str(folder)
    # the calibration folder of a tiled bundle holds its held-out tiles: compared as they are
    images = model_inputs(paths, spec.height, spec.width, spec.channels)
    return images, labels, str(folder)


def _framewise(run, bundle: Bundle, images: np.ndarray):
    """``run`` (a batch of model inputs → maps, scores) as the bundle judges ``images``: whole
    frames through the one tiling every path uses, or the images themselves."""
    tiling, tile = bundle.manifest.tiling, bundle.manifest.input.height
    if tiling is None or images.shape[1:3] == (tile, tile):
        return run
    from ..tiling import score_tiled

    def frames(batch):
        scored = [score_tiled(run, f, tile, tiling.overlap, tiling.batch) for f in batch]
        return np.stack([m for m, _ in scored]), np.array([s for _, s in scored], np.float32)
    return frames


def _batched(run, images: np.ndarray):
    outs = [run(images[i:i + BATCH]) for i in range(0, len(images), BATCH)]
    return np.concatenate([o[0] for o in outs]).astype(np.float32), np.concatenate([o[1] for o in outs]).astype(np.float32)


def _ort_graph(path: Path, bundle: Bundle):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    m = bundle.manifest
    return lambda batch: session.run([m.outputs.map, m.outputs.score], {m.input.name: batch})


def _torch_candidate(bundle: Bundle, checkpoint: Path | None):
    checkpoint = checkpoint or bundle.path.parent / "checkpoint.pt"
    if not checkpoint.is_file():
        return None, f"no checkpoint at {checkpoint}"
    reference = load("edge_ad.references", "torch")  # the export toolchain's, when installed
    if reference is None:
        return None, "the export toolchain is not installed"
    try:
        return reference(checkpoint, bundle.manifest.input.channels), None
    except ImportError as exc:
        return None, f"torch is not installed ({exc.name})"


def verify(bundle_path: str | Path, data: str | Path | None = None, precisions=("fp32", "fp16", "int8"),
           checkpoint: str | Path | None = None, calib: str | Path | None = None,
           tensorrt: bool = True) -> tuple[list[ParityResult], list[str]]:
    bundle = load_bundle(bundle_path)
    images, labels, where = load_images(bundle, data)
    threshold = bundle.manifest.thresholds.image.threshold
    scale = bundle.manifest.thresholds.image.scale
    with create_engine(bundle, providers=["CPUExecutionProvider"]) as engine:
        reference = _batched(_framewise(engine.infer, bundle, images), images)
    results, notes = [], [f"{len(images)} images from {where}"
                          + (f" ({int(labels.sum())} defects)" if labels is not None else " (unlabelled)")]

    if "fp32" in precisions:
        run, why = _torch_candidate(bundle, Path(checkpoint) if checkpoint else None)
        if run is None:
            notes.append(f"torch: not compared ({why})")
        else:
            results.append(compare("torch", "fp32", reference, _batched(_framewise(run, bundle, images), images),
                                   threshold, scale, labels))
    from ..engines.variants import make_variant

    for precision in precisions:
        if precision != "fp32":
            graph = make_variant(bundle, precision, calib)
            results.append(compare(f"{precision} graph on onnxruntime-cpu", precision, reference,
                                   _batched(_framewise(_ort_graph(graph, bundle), bundle, images), images),
                                   threshold, scale, labels))
        if not tensorrt:
            continue
        trt_result, why = _tensorrt_candidate(bundle, precision, images, reference, threshold, scale, labels)
        if trt_result is not None:
            results.append(trt_result)
        else:
            notes.append(f"tensorrt {precision}: not compared ({why})")
    return results, notes


def _tensorrt_candidate(bundle, precision, images, reference, threshold, scale, labels):
    if importlib.util.find_spec("tensorrt") is None:
        return None, "TensorRT is not installed here; run this on the device"
    from ..engines.tensorrt import TrtEngine
    from ..engines.tensorrt_build import plan_files

    files = plan_files(bundle, device.detect(), precision, None)
    if not files.plan.is_file():
        return None, f"no engine built on this device ({files.plan.name}); run edge-ad build-engine"
    engine = TrtEngine(bundle, precision=precision)
    engine.activate()
    try:
        outputs = _batched(_framewise(engine.infer, bundle, images), images)
    finally:
        engine.deactivate()
    return compare(f"tensorrt {precision}", precision, reference, outputs, threshold, scale, labels), None


def record(bundle_path, results: list[ParityResult]) -> None:
    """Keep the figures in the manifest (under ``parity``, by candidate), atomically."""
    from ..bundle import save_manifest

    bundle = load_bundle(bundle_path)
    here = device.detect().to_json()
    parity = dict(bundle.manifest.parity)
    parity.update({r.candidate: r.record(here) for r in results})
    save_manifest(bundle.path, bundle.manifest.model_copy(update={"parity": parity}))


def run_verify(bundle, data, precision: str, checkpoint, calib, json_path, keep: bool = False) -> int:
    precisions = ("fp32", "fp16", "int8") if precision == "all" else (precision,)
    results, notes = verify(bundle, data, precisions, checkpoint, calib)
    if keep and results:
        record(bundle, results)
        notes.append(f"recorded in {Path(bundle) / 'manifest.json'} under parity")
    for note in notes:
        print(note)
    print(f"{'candidate':44} {'prec':5} {'max|Δmap|':>10} {'mean|Δmap|':>10} {'max Δscore/scale':>16} "
          f"{'flips':>6} {'AUROC ref→cand':>16}  verdict")
    for r in results:
        auc = f"{r.auroc_reference:.4f}→{r.auroc_candidate:.4f}" if r.auroc_reference is not None else "-"
        print(f"{r.candidate[:44]:44} {r.precision:5} {r.max_abs_map_diff:10.3g} {r.mean_abs_map_diff:10.3g} "
              f"{r.max_score_diff_of_scale:16.3g} {r.flips_beyond_noise:6d} {auc:>16}  "
              + ("PASS" if r.passed else "FAIL: " + "; ".join(r.reasons)))
    if json_path:
        Path(json_path).write_text(json.dumps({"results": [r.to_json() for r in results], "notes": notes},
                                              indent=1) + "\n")
    if not results:
        raise EdgeAdError("nothing was compared: " + "; ".join(notes[1:]))
    return 0 if all(r.passed for r in results) else 1
