"""Every model family beyond the default: trains on tiny data, exports, ONNX Runtime matches
torch, and it separates normal from defect images it never saw."""
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from edge_ad.bundle import load_bundle
from edge_ad.engines import create_engine
from export.data import load_images
from export.onnx_export import BundleGraph
from export.train import load_checkpoint, train


@pytest.fixture(scope="module")
def patchcore_run(demo_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("patchcore")
    train("patchcore", demo_root / "wood", run, size=128, steps=512, seed=0)
    return run


def test_patchcore_bundle_matches_torch_and_separates_defects(patchcore_run, demo_root):
    bundle = load_bundle(patchcore_run / "bundle")
    m = bundle.manifest
    assert m.family == "patchcore" and m.parity["torch"].verdict_flips == 0
    model, _ = load_checkpoint(patchcore_run / "checkpoint.pt")
    assert model.bank.shape[0] == 512  # bounded memory: the bank size asked for
    paths = sorted((demo_root / "wood" / "test").glob("*/*.png"))
    x = load_images(paths, 128, 3)
    with torch.no_grad():
        _, t_score = BundleGraph(model, 3)(torch.from_numpy(x))
    with create_engine(bundle) as engine:
        _, o_score = engine.infer(x)
    assert np.max(np.abs(o_score - t_score.numpy()) / np.abs(t_score.numpy())) < 1e-4
    labels = [p.parent.name != "good" for p in paths]
    assert roc_auc_score(labels, o_score) >= 0.9
