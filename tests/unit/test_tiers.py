"""The runtime tier (tests/tiers.py) holds what it promises: it collects with torch, export/ and
the development tools unimportable, and none of the full-suite-only tests is in it."""
import os
import subprocess
import sys
from pathlib import Path

from tests import tiers

ROOT = Path(__file__).resolve().parents[2]  # the repository, or the image's copy of the tests


def _python(*args, timeout=300):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_runtime_tier_collects_without_torch_export_or_devtools():
    proc = _python("-m", "pytest", str(ROOT / "tests"), "--runtime-tier", "--collect-only", "-q",
                   "-p", "no:cacheprovider")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    assert len(ids) > 150, proc.stdout[-2000:]
    files = {i.split("::")[0].removeprefix("tests/") for i in ids}
    assert not files & set(tiers.FULL_SUITE_ONLY)
    assert "unit/test_tiers.py" in files and "integration/test_server.py" in files
    assert not [i for i in ids if "test_train_without_model" in i or "schemathesis" in i]


def test_a_blocked_import_fails_loudly_as_if_not_installed():
    for name in ("torch", "export.demo_data", "sklearn.metrics"):
        proc = _python("-c", f"from tests.tiers import block_imports; block_imports(); import {name}")
        assert proc.returncode == 1 and "ModuleNotFoundError" in proc.stderr, (name, proc.stderr[-1000:])
        assert "the runtime tier must not depend on it" in proc.stderr
    ok = _python("-c", "from tests.tiers import block_imports; block_imports(); import edge_ad.bundle, cv2, onnxruntime")
    assert ok.returncode == 0, ok.stderr[-1000:]
