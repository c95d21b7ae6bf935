"""Real Prometheus scraping the service, and real headless Chromium loading the dashboard.

`make test` installs both (Debian's prometheus and chromium). Outside CI a missing binary
skips with the reason; under CI it fails, so a skip never stands in for a pass there."""
import json
import os
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from edge_ad.config import build_config
from edge_ad.prometheus import Metrics
from edge_ad.server.app import make_app
from edge_ad.assembly import build_service

from .helpers import get, wait_for

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{binary} is not installed; `make test` installs it with apt")
        pytest.skip(f"{binary} not installed (make test installs it)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def running(live_server, bundle_dir, demo_root):
    config = build_config({"model": str(bundle_dir),
                           "cameras": [{"source": f"file://{demo_root}/video/wood_line.avi?loop=1&fps=20"}]})
    metrics = Metrics()
    srv = live_server(make_app(build_service(config, metrics), metrics))
    wait_for(lambda: get(srv.url + "/readyz")[0] == 200)
    return srv


def test_prometheus_scrapes_and_answers_promql(running, tmp_path):
    prometheus = _need("prometheus")
    port = _free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: edge-ad\n"
                   f"    static_configs:\n      - targets: ['127.0.0.1:{running.port}']\n")
    proc = subprocess.Popen([prometheus, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path}/tsdb",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api/v1"

    def query(q):
        try:
            with urllib.request.urlopen(f"{api}/query?query={urllib.parse.quote(q)}", timeout=5) as r:
                return json.loads(r.read())["data"]["result"]
        except OSError:
            return []

    try:
        wait_for(lambda: query('up{job="edge-ad"} == 1'), timeout=60, interval=0.5)
        processed = wait_for(lambda: query('edge_ad_frames_processed_total{camera="cam0"} > 0'), timeout=30)
        assert processed[0]["metric"]["camera"] == "cam0"
        p99 = wait_for(lambda: query('histogram_quantile(0.99, sum by (le) '
                                     '(rate(edge_ad_stage_latency_seconds_bucket{stage="infer"}[10s])))'),
                       timeout=30, interval=0.5)
        assert 0 < float(p99[0]["value"][1]) < 2.5
        assert query('edge_ad_model_info{name="wood"}')
        assert query('sum(edge_ad_verdicts_total) > 0')
    finally:
        proc.terminate()
        proc.wait(10)


def test_chromium_renders_the_live_dashboard(running, tmp_path):
    chromium = _need("chromium")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path}/profile", "--virtual-time-budget=6000", "--window-size=1280,800"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", running.url + "/"],
                         capture_output=True, text=True, timeout=120).stdout
    verdict = re.search(r'id="verdict"[^>]*>([^<]*)<', dom)
    assert verdict and verdict.group(1) in ("OK", "NG"), dom[:2000]
    assert re.search(r'id="frame"[^>]*src="[^"]*/v1/frame\.jpg', dom)  # the live image was loaded
    assert re.search(r'id="seq">\d+<', dom)
    shot = tmp_path / "dashboard.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", running.url + "/"],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    artifacts = os.environ.get("EDGE_AD_TEST_ARTIFACTS")
    if artifacts:
        shutil.copy(shot, artifacts)


def _metric_names(exposition: str) -> set[str]:
    """Every sample name the service exports, including labelled families with no child yet
    (the Jetson gauges off a Jetson): from the TYPE lines, with the suffixes each type adds."""
    names = set()
    for m in re.finditer(r"^# TYPE (\S+) (\S+)$", exposition, re.M):
        name, kind = m.groups()
        base = name.removesuffix("_total")  # counters' TYPE lines name the _total sample
        names |= {"counter": {f"{base}_total", f"{base}_created"},
                  "histogram": {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"},
                  "info": {f"{name}_info"}}.get(kind, {name})
    return names


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/edge-ad.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"]]
    return exprs


def test_dashboard_and_alerts_name_only_metrics_the_service_exports(running):
    status, body, _ = get(running.url + "/metrics")
    exported = _metric_names(body.decode())
    rules = (DEPLOY / "edge-ad.rules.yml").read_text()
    used = set(re.findall(r"\bedge_ad_[a-z_]+", " ".join(_dashboard_exprs()) + rules))
    assert used and not (used - exported), f"not exported: {sorted(used - exported)}"
    assert "edge_ad_jetson_temperature_celsius" in used  # the Jetson panels are checked too


def test_deploy_prometheus_config_rules_and_dashboard_queries_run_against_the_service(running, tmp_path):
    """Real Prometheus with deploy/prometheus.yml and its alert rules (target pointed at the test
    service): the rules load and evaluate, every dashboard query runs, and the core panels
    have data."""
    prometheus = _need("prometheus")
    port = _free_port()
    cfg = (DEPLOY / "prometheus.yml").read_text().replace('"edge-ad:8080"', f'"127.0.0.1:{running.port}"')
    cfg = re.sub(r"(scrape|evaluation)_interval: \S+", r"\1_interval: 1s", cfg)
    (tmp_path / "prometheus.yml").write_text(cfg)
    (tmp_path / "edge-ad.rules.yml").write_text((DEPLOY / "edge-ad.rules.yml").read_text())
    proc = subprocess.Popen([prometheus, f"--config.file={tmp_path}/prometheus.yml",
                             f"--storage.tsdb.path={tmp_path}/tsdb", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api/v1"

    def call(path):
        try:
            with urllib.request.urlopen(api + path, timeout=5) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read())
        except OSError:
            return {"status": "unreachable"}

    def query(q):
        return call("/query?query=" + urllib.parse.quote(q.replace("$camera", ".*")))

    try:
        wait_for(lambda: query('up{job="edge-ad"} == 1').get("data", {}).get("result"), timeout=60, interval=0.5)
        wait_for(lambda: query("rate(edge_ad_frames_processed_total[5s]) > 0")["data"]["result"], timeout=30)
        for expr in _dashboard_exprs():
            variable = re.fullmatch(r"label_values\((\w+), (\w+)\)", expr)  # Grafana's, not PromQL
            if variable:
                metric, label = variable.groups()
                answer = call(f"/label/{label}/values?match[]={metric}")
                assert answer["status"] == "success" and "cam0" in answer["data"], (expr, answer)
                continue
            answer = query(expr)
            assert answer["status"] == "success", (expr, answer)
        for core in ('sum by (camera) (rate(edge_ad_frames_captured_total{camera=~"$camera"}[1m]))',
                     'histogram_quantile(0.99, sum by (le, stage) (rate(edge_ad_stage_latency_seconds_bucket[5m])))',
                     'edge_ad_camera_up{camera=~"$camera"}', 'edge_ad_threshold_margin{camera=~"$camera"}'):
            assert core in _dashboard_exprs() and query(core)["data"]["result"], core
        groups = wait_for(lambda: [g for g in call("/rules")["data"]["groups"]
                                   if all(r.get("lastEvaluation", "").startswith("2") and
                                          not r["lastEvaluation"].startswith("0001") for r in g["rules"])],
                          timeout=30, interval=0.5)
        rules = [r for g in groups for r in g["rules"]]
        assert len(rules) == 6 and all(r["health"] == "ok" for r in rules), rules
    finally:
        proc.terminate()
        proc.wait(10)
