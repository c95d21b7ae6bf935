"""`edge-ad verify` on a trained bundle with its checkpoint, on the labelled demo test split."""
import json

from edge_ad.cli import main


def test_verify_compares_torch_and_reduced_precision_graphs(trained_run, demo_root, tmp_path, capsys):
    report = tmp_path / "verify.json"
    code = main(["verify", str(trained_run / "bundle"), "--data", str(demo_root / "wood"),
                 "--precision", "all", "--json", str(report)])
    out = capsys.readouterr().out
    figures = json.loads(report.read_text())
    by_name = {r["candidate"]: r for r in figures["results"]}
    torch = by_name["torch"]
    assert torch["passed"] and torch["verdict_flips"] == 0 and torch["max_score_diff_of_scale"] <= 1e-3
    assert torch["auroc_reference"] is not None  # the labelled split was used
    fp16 = by_name["fp16 graph on onnxruntime-cpu"]
    assert fp16["max_score_diff_of_scale"] > 0  # it really ran in half precision
    assert "int8 graph on onnxruntime-cpu" in by_name
    assert "tensorrt fp16: not compared (TensorRT is not installed here" in out
    assert code == (0 if all(r["passed"] for r in figures["results"]) else 1)


def test_verify_without_tensorrt_or_checkpoint_still_says_what_it_compared(bundle_dir, tmp_path, capsys):
    import shutil

    lone = shutil.copytree(bundle_dir, tmp_path / "bundle")  # no checkpoint beside it
    code = main(["verify", str(lone), "--precision", "fp16"])
    out = capsys.readouterr().out
    assert "images from" in out and "calibration" in out  # default data: the bundle's own images
    assert "fp16 graph on onnxruntime-cpu" in out
    assert ("FAIL" in out) == (code == 1)  # the exit status follows the table


def test_build_engine_without_tensorrt_is_a_clear_error(bundle_dir, capsys):
    code = main(["build-engine", str(bundle_dir), "--precision", "fp16"])
    assert code == 1 and "TensorRT is not installed" in capsys.readouterr().err
