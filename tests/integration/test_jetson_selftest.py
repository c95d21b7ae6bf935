"""jetson/selftest.sh off a Jetson, against a real bundle: it reports every step, measures
latency, and fails loudly on what it cannot do here (no TensorRT) instead of skipping it."""
import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "jetson/selftest.sh"
# one small file of the runtime tier stands in for the whole of it, which runs this test
TESTS = Path(__file__).resolve().parents[1] / "unit/test_slot.py"


def test_selftest_reports_each_step_and_fails_without_tensorrt(bundle_dir, demo_root, tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(SCRIPT), str(bundle_dir), "--data", str(demo_root / "wood/test/good"),
                           "--seconds", "0.3", "--out", str(tmp_path / "report"), "--tests", str(TESTS)],
                          capture_output=True, text=True, env=env, timeout=300)
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "FAIL  device                 not a Jetson" in out
    assert re.search(r"PASS  tests +\d+ passed", out)  # pytest ran the tests, --runtime-tier known
    assert "SKIP  cameras" in out
    assert "FAIL  engine-fp16" in out and "TensorRT is not installed" in out and "FAIL  engine-int8" in out
    assert "parity-fp16" not in out  # no engine, nothing to compare
    assert "PASS  latency-onnxruntime" in out and "CPUExecutionProvider: engine p50" in out
    summary = (tmp_path / "report/summary.txt").read_text()
    assert summary.count("\n") >= 5 and (tmp_path / "report/latency-onnxruntime.json").is_file()


def test_selftest_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT), str(tmp_path), "--data", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "is not a bundle" in proc.stderr
