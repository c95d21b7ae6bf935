"""The command line as users run it: real subprocesses, exit codes, one-line errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest


def edge_ad(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "edge_ad.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_infer_writes_json_lines_and_overlays(bundle_dir, demo_root, tmp_path):
    good = demo_root / "wood" / "test" / "good" / "000.png"
    bad = demo_root / "wood" / "test" / "hole" / "000.png"
    r = edge_ad("infer", bundle_dir, good, bad, "--out", tmp_path / "ov")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [Path(x["path"]).parent.name for x in lines] == ["good", "hole"]
    for x in lines:
        assert set(x) >= {"path", "score", "raw_score", "verdict", "regions"}
        assert Path(x["overlay"]).is_file()
    assert lines[1]["verdict"] == "NG" and lines[1]["regions"]
    assert lines[1]["score"] > lines[0]["score"]


def test_infer_corrupt_image_is_reported_and_others_scored(bundle_dir, demo_root, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes((demo_root / "wood" / "test" / "good" / "000.png").read_bytes()[:200])
    good = demo_root / "wood" / "test" / "good" / "001.png"
    r = edge_ad("infer", bundle_dir, corrupt, good)
    assert r.returncode == 1
    first, second = (json.loads(x) for x in r.stdout.splitlines())
    assert "not a readable image" in first["error"]
    assert second["verdict"] in ("OK", "NG")
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args, message", [
    (("infer", "/no/such/bundle", "x.png"), "model bundle not found"),
    (("serve", "--model", "/no/such/bundle", "--source", "nope://x"), "unsupported source scheme"),
    (("serve", "--model", "x"), "needs --config FILE, or both"),
    # where torch is missing (the runtime tier) train says so first
    pytest.param(("train", "--model", "efficientad", "--data", "/no/data", "--out", "/tmp/x"),
                 "training data not found", marks=pytest.mark.export),
])
def test_bad_input_is_one_clear_line(args, message):
    r = edge_ad(*args)
    assert r.returncode == 1
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert len([x for x in r.stderr.splitlines() if x.startswith("edge-ad: error")]) == 1


@pytest.mark.export
def test_jitter_for_a_family_that_does_not_learn_from_it_is_refused(export_demo_root, tmp_path):
    r = edge_ad("train", "--model", "patchcore", "--jitter", "3", "--data", str(export_demo_root / "wood"),
                "--out", str(tmp_path / "run"))
    assert r.returncode == 1 and "--jitter 3" in r.stderr and "fastflow" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "run").exists()


def test_check_validates_config_model_engine_and_source(bundle_dir, demo_root, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(f"model: {bundle_dir}\ncameras:\n  - source: file://{demo_root}/video/wood_line.avi\n")
    r = edge_ad("check", "--config", good)
    assert r.returncode == 0, r.stderr
    assert "engine  ok: onnxruntime" in r.stdout and "camera  ok: cam0" in r.stdout

    wrong_key = tmp_path / "wrong.yaml"
    wrong_key.write_text(f"model: {bundle_dir}\ncamera:\n  - source: dir:///x\n")
    r = edge_ad("check", "--config", wrong_key)
    assert r.returncode == 1 and "camera: unknown key (did you mean 'cameras'?)" in r.stderr

    no_source = tmp_path / "nosrc.yaml"
    no_source.write_text(f"model: {bundle_dir}\ncameras:\n  - source: file://{tmp_path}/gone.avi\n")
    r = edge_ad("check", "--config", no_source)
    assert r.returncode == 1 and "video file not found" in r.stderr


def test_evidence_from_a_live_service_exports_for_retraining(bundle_dir, demo_root, tmp_path):
    from edge_ad.config import build_config
    from edge_ad.evaluation.dataset import test_set
    from edge_ad.assembly import build_service

    from .helpers import wait_for

    evidence = tmp_path / "evidence"
    config = build_config({"model": str(bundle_dir), "evidence": {"path": str(evidence), "ok_every": 1},
                           "cameras": [{"source": f"dir://{demo_root}/wood/test/hole?loop=1&fps=20"}]})
    pipeline = build_service(config).pipeline
    pipeline.start()
    try:
        wait_for(lambda: len(list(evidence.glob("*_NG.png"))) >= 3)
    finally:
        pipeline.stop()
    r = edge_ad("evidence", "export", tmp_path / "mvtec", "--store", evidence)
    assert r.returncode == 0, r.stderr
    assert "review them before training" in r.stdout
    ng = list((tmp_path / "mvtec" / "test" / "ng").glob("*.png"))
    assert len(ng) >= 3
    (tmp_path / "mvtec" / "test" / "good").mkdir()  # the exported tree reads as an MVTec category
    (tmp_path / "mvtec" / "test" / "good" / "x.png").write_bytes(ng[0].read_bytes())
    samples = test_set(tmp_path / "mvtec")
    assert any(s.defect == "ng" and s.mask_path is not None for s in samples)


def test_train_without_model_trains_the_default_family(export_demo_root, tmp_path):
    r = edge_ad("train", "--data", export_demo_root / "wood", "--out", tmp_path / "run", "--size", "64", "--steps", "64")
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "run" / "bundle" / "manifest.json").read_text())
    assert manifest["family"] == "knnplace"
    assert "default knnplace" in edge_ad("train", "--help").stdout
