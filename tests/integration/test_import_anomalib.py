"""`edge-ad import-anomalib` on a real anomalib 2.7 export (tests/fixtures/anomalib, made by the
script beside it): the wrapped bundle scores exactly like the export, is calibrated on the given
images, and runs through the same engine, HTTP API and evaluation as edge-ad's own models."""
from pathlib import Path

import numpy as np
import pytest

from edge_ad.bundle import load_bundle
from edge_ad.cli import main
from edge_ad.config import build_config
from edge_ad.engines import create_engine
from edge_ad.errors import EdgeAdError
from edge_ad.imageio import read_image, to_model_input
from edge_ad.prometheus import Metrics
from edge_ad.server.app import make_app
from edge_ad.assembly import build_service

from .helpers import get, send, wait_for

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/anomalib/padim_tiny.onnx"


def _scores(bundle, folder):
    spec = bundle.manifest.input
    batch = np.stack([to_model_input(read_image(p), spec.height, spec.width, spec.channels)
                      for p in sorted(folder.glob("*.png"))])
    with create_engine(bundle) as engine:
        return engine.infer(batch)[1]


def test_import_with_defect_images_calibrates_and_separates(export_demo_root, tmp_path, capsys):
    from export.import_anomalib import import_anomalib

    result = import_anomalib(FIXTURE, tmp_path / "bundle", export_demo_root / "wood/train/good",
                             export_demo_root / "wood/test/hole")
    bundle = load_bundle(tmp_path / "bundle")
    m = bundle.manifest
    assert m.family == "anomalib" and (m.input.width, m.input.height, m.input.channels) == (64, 64, 3)
    assert m.parity["anomalib export"].passed and m.parity["anomalib export"].max_score_diff_of_scale <= 1e-3
    assert result["clipped"] and m.calibration.method == "f1" and m.calibration.abnormal_count > 0
    assert m.image_stats and len(list((bundle.path / "calibration").glob("*.png"))) > 0
    good, holes = _scores(bundle, export_demo_root / "wood/test/good"), _scores(bundle, export_demo_root / "wood/test/hole")
    th = m.thresholds.image.threshold
    assert np.mean(good < th) >= 0.9 and np.mean(holes >= th) >= 0.9


def test_import_without_defects_keeps_anomalibs_threshold_and_serves(export_demo_root, tmp_path, live_server, capsys):
    code = main(["import-anomalib", str(FIXTURE), "--out", str(tmp_path / "bundle"),
                 "--normal", str(export_demo_root / "wood/train/good")])
    assert code == 0 and "its own threshold (0.5) is kept" in capsys.readouterr().out
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.manifest.calibration.method == "anomalib-baked" and bundle.manifest.thresholds.image.threshold == 0.5
    config = build_config({"model": str(tmp_path / "bundle"),
                           "cameras": [{"source": f"dir://{export_demo_root}/wood/test/good?loop=1&fps=10"}]})
    metrics = Metrics()
    srv = live_server(make_app(build_service(config, metrics), metrics))
    wait_for(lambda: get(srv.url + "/readyz")[0] == 200)
    hole = sorted((export_demo_root / "wood/test/hole").glob("*.png"))[0].read_bytes()
    status, body = send("POST", srv.url + "/v1/infer", hole, content_type="image/png")
    assert status == 200 and body["verdict"] == "NG" and body["model"]["family"] == "anomalib"
    assert b'edge_ad_frames_processed_total{camera="cam0"}' in get(srv.url + "/metrics")[1]


def test_a_model_that_is_not_an_anomalib_export_is_refused(bundle_dir, export_demo_root, tmp_path):
    from export.import_anomalib import import_anomalib

    with pytest.raises(EdgeAdError, match="not an anomalib 2.x export"):
        import_anomalib(bundle_dir / "model.onnx", tmp_path / "b", export_demo_root / "wood/train/good")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx at all")
    with pytest.raises(EdgeAdError, match="not a readable ONNX file"):
        import_anomalib(tmp_path / "junk.onnx", tmp_path / "b", export_demo_root / "wood/train/good")
