"""Train a tiny real model, export it, and score with ONNX Runtime: the trained slice end to end."""

import numpy as np
import onnx
import torch
from sklearn.metrics import roc_auc_score

from edge_ad.bundle import load_bundle
from edge_ad.engines import create_engine
from edge_ad.imageio import read_image
from edge_ad.pipeline.inspector import Inspector
from export.data import load_images
from export.onnx_export import BundleGraph
from export.train import load_checkpoint, reexport


def test_run_folder_has_checkpoint_and_bundle(trained_run):
    assert (trained_run / "checkpoint.pt").is_file()
    b = load_bundle(trained_run / "bundle")
    m = b.manifest
    assert m.family == "efficientad" and m.provenance.steps == 60
    assert m.thresholds.image.threshold > m.calibration.normal_score_max  # normal-only calibration
    assert m.parity["torch"].verdict_flips == 0 and m.parity["torch"].passed


def test_graph_takes_uint8_nhwc_with_dynamic_batch(trained_bundle):
    proto = onnx.load(str(trained_bundle / "model.onnx"))
    inp = proto.graph.input[0]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 128, 128, 3]
    assert proto.opset_import[0].version >= 17
    assert [o.name for o in proto.graph.output] == ["anomaly_map", "score"]


def test_onnx_runtime_matches_torch(trained_run, export_demo_root):
    model, _ = load_checkpoint(trained_run / "checkpoint.pt")
    paths = sorted((export_demo_root / "wood" / "test").glob("*/*.png"))[:8]
    x = load_images(paths, 128, 3)
    with torch.no_grad():
        t_map, t_score = (o.numpy() for o in BundleGraph(model, 3)(torch.from_numpy(x)))
    b = load_bundle(trained_run / "bundle")
    with create_engine(b) as engine:
        o_map, o_score = engine.infer(x)  # a batch of 8 through the dynamic batch axis
    assert o_map.shape == (8, 128, 128)
    rel = np.abs(o_score - t_score) / np.abs(t_score)
    assert rel.max() < 1e-4, rel.max()
    assert np.abs(o_map - t_map).max() < 1e-3


def test_trained_model_separates_defects_on_held_out_images(trained_bundle, export_demo_root):
    b = load_bundle(trained_bundle)
    test = sorted((export_demo_root / "wood" / "test").glob("*/*.png"))
    labels = np.array([p.parent.name != "good" for p in test])
    with create_engine(b) as engine:
        scores = [i.score for i in Inspector(engine, b.manifest).inspect([read_image(p) for p in test])]
    auroc = roc_auc_score(labels, scores)
    assert auroc >= 0.9, auroc


def test_reexport_from_checkpoint_is_calibrated_and_equivalent(trained_run, tmp_path):
    out = reexport(trained_run / "checkpoint.pt", tmp_path / "again")
    a, b = load_bundle(trained_run / "bundle"), load_bundle(out)
    assert b.manifest.thresholds.image.threshold == a.manifest.thresholds.image.threshold
    x = np.random.default_rng(0).integers(0, 255, (2, 128, 128, 3), np.uint8)
    with create_engine(a) as ea, create_engine(b) as eb:
        assert np.allclose(ea.infer(x)[1], eb.infer(x)[1], rtol=1e-5)


def test_simplified_export_is_smaller_passes_the_gate_and_scores_the_same(trained_run, tmp_path):
    import onnx

    out = reexport(trained_run / "checkpoint.pt", tmp_path / "simple", simplify=True)
    plain, simple = load_bundle(trained_run / "bundle"), load_bundle(out)
    n_plain = len(onnx.load(str(plain.onnx_path)).graph.node)
    n_simple = len(onnx.load(str(simple.onnx_path)).graph.node)
    assert n_simple < n_plain  # constants folded
    assert simple.manifest.parity["torch"].passed
    assert {n.domain for n in onnx.load(str(simple.onnx_path)).graph.node} <= {"", "ai.onnx"}  # standard ops only
    x = np.random.default_rng(0).integers(0, 255, (2, 128, 128, 3), np.uint8)
    with create_engine(plain) as ea, create_engine(simple) as eb:
        assert np.allclose(ea.infer(x)[1], eb.infer(x)[1], rtol=1e-5)
