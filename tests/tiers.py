"""The two tiers of the suite.

The runtime tier is every test of edge_ad/ that runs with what the Jetson image has: the
runtime's dependencies (no torch), pytest, and the checked-in fixtures of tests/fixtures/runtime.
`make test-runtime` runs it in a venv of its own (.venv-runtime) and jetson/selftest.sh runs it
on the device, both with ``pytest --runtime-tier``. The rest runs in the full suite only:

- ``export``: tests of the offline toolchain (export/: training, ONNX export, calibration, demo
  data) or of the efficientad model trained with torch once per session (tests/conftest.py).
  Any test that asks for the trained fixtures is marked so by tests/conftest.py.
- ``devtools``: tests whose reference or subject is a development tool the runtime image does
  not have (scikit-learn or scipy as an independent implementation, linters, Prometheus,
  Chromium, schemathesis, the repository's deploy/ and bench/ files).

Files listed here import such a package at their top, so the runtime tier does not even import
them; single tests elsewhere carry the marker themselves.
"""
from __future__ import annotations

import importlib.abc
import sys

FULL_SUITE_ONLY = {
    "unit/test_backbone.py": "export",
    "unit/test_calibrate.py": "export",
    "unit/test_demo_data.py": "export",
    "unit/test_flowfused.py": "export",
    "unit/test_graph_ops.py": "export",
    "unit/test_jitter.py": "export",
    "unit/test_model_configs.py": "export",
    "unit/test_patchcore_variants.py": "export",
    "integration/test_calibrate_cmd.py": "export",  # `edge-ad calibrate` is export/'s (scipy)
    "integration/test_efficientad_logical.py": "export",
    "integration/test_families.py": "export",
    "integration/test_import_anomalib.py": "export",
    "integration/test_train_export.py": "export",
    "integration/test_tiled_training.py": "export",
    "unit/test_eval_metrics.py": "devtools",  # scikit-learn is the reference
    "unit/test_deploy_files.py": "devtools",  # hadolint, shellcheck, promtool, ...; docker/, deploy/
    "unit/test_hard_benchmark.py": "devtools",  # bench/ and scikit-image's photographs
    "integration/test_real_components.py": "devtools",  # Prometheus, Chromium, deploy/
}

# What the runtime tier must never import: torch and the offline toolchain, and the export
# extra's libraries. They are absent from .venv-runtime and the Jetson image anyway, except
# export/ itself, which the editable install (and the image's) carries beside edge_ad/.
BLOCKED = ("torch", "torchvision", "export", "scipy", "sklearn", "skimage")


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}: the runtime tier must not depend on "
                                      "it (tests/tiers.py); mark the test export or devtools", name=name)
        return None


def block_imports() -> None:
    """From now on, importing a blocked package fails as if it were not installed."""
    loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
    if loaded:
        raise RuntimeError(f"already imported before the runtime tier started: {', '.join(loaded[:5])}")
    if not any(isinstance(f, _Blocker) for f in sys.meta_path):
        sys.meta_path.insert(0, _Blocker())
