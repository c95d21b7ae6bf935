"""The OpenAPI document matches the app's routes, and a property-based run of schemathesis
against the live server finds no server error and no response outside the schema."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_ad.config import build_config
from edge_ad.prometheus import Metrics
from edge_ad.server.app import make_app
from edge_ad.server.openapi import build_spec
from edge_ad.assembly import build_service

from .helpers import get, get_json, wait_for


def _app(bundle_dir, demo_root, **security):
    config = build_config({"model": str(bundle_dir), "security": security,
                           "cameras": [{"source": f"dir://{demo_root}/wood/test/good?loop=1&fps=20"}]})
    metrics = Metrics()
    return make_app(build_service(config, metrics), metrics, config.security, config.server)


def test_spec_paths_equal_the_routes(bundle_dir, demo_root):
    app = _app(bundle_dir, demo_root)
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"}
    documented = {(m.upper(), path) for path, ops in build_spec()["paths"].items() for m in ops}
    assert routes == documented


@pytest.mark.devtools  # schemathesis
def test_schemathesis_finds_no_5xx_and_no_schema_violation(live_server, bundle_dir, demo_root, tmp_path):
    # its own copy: generated PUT /v1/config/threshold calls persist into the bundle
    bundle = shutil.copytree(bundle_dir, tmp_path / "bundle")
    srv = live_server(_app(bundle, demo_root, token="schemathesis-token-0123456789"))
    wait_for(lambda: get(srv.url + "/readyz")[0] == 200)
    assert get_json(srv.url + "/openapi.json")[1]["openapi"] == "3.1.0"
    st = Path(sys.executable).with_name("st")
    run = subprocess.run(
        [str(st), "run", srv.url + "/openapi.json", "--checks",
         "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
         "--max-examples", "25", "--seed", "1", "--request-timeout", "20",
         # the stream never ends by design, and a reload would swap the model under the run
         "--exclude-path", "/v1/stream.mjpg", "--exclude-path", "/v1/model/reload",
         "-H", "Authorization: Bearer schemathesis-token-0123456789",
         "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    generated, passed = map(int, re.search(r"(\d+) generated, (\d+) passed", run.stdout).groups())
    assert generated >= 200 and passed == generated, run.stdout[-3000:]  # it really ran
