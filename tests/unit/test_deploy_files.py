"""docker/, deploy/ and jetson/ checked without Docker, Kubernetes or a Jetson: the real linters
and validators that install from PyPI and Debian (hadolint, shellcheck, promtool,
systemd-analyze, the Compose spec's JSON schema, the Kubernetes OpenAPI schemas), plus the
properties the product needs that no linter knows about.

`make test` installs every tool. Outside CI a missing one skips with the reason; under CI it
fails, so a skip never stands in for a pass there."""
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((REPO / "docker").glob("Dockerfile.*"))
SCRIPTS = sorted((REPO / "jetson").glob("*.sh"))
PRESETS = sorted((REPO / "jetson/cameras").glob("*.yaml"))


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; `make test` installs it")
        pytest.skip(f"{name} not installed (make test installs it)")
    return path


def _module(name: str):
    try:
        return __import__(name)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; `make test` installs it")
        pytest.skip(f"{name} not installed (make test installs it)")


# -- docker -------------------------------------------------------------------------------------
def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def _stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    stages, current = {}, None
    for ins, args in _instructions(path):
        if ins == "FROM":
            m = re.search(r"\bAS (\S+)$", args, re.I)
            current = m.group(1) if m else f"stage{len(stages)}"
            stages[current] = []
        if current is not None:
            stages[current].append((ins, args))
    return stages


def _final(path: Path) -> list[tuple[str, str]]:
    """The image `docker build` makes without --target: the runtime stage where one is named."""
    stages = _stages(path)
    return stages.get("runtime") or list(stages.values())[-1]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile):
    proc = subprocess.run([_tool("hadolint"), "--config", str(REPO / ".hadolint.yaml"), str(dockerfile)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ["Dockerfile.jetson", "Dockerfile.cpu", "Dockerfile.gpu"])
def test_service_images_are_safe_and_self_checking(name):
    final = _final(REPO / "docker" / name)
    text = " ".join(f"{i} {a}" for i, a in final)
    users = [a for i, a in final if i == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1])  # numeric: k8s runAsNonRoot can check it
    assert re.search(r"useradd [^&]*--groups video", text)  # cameras and /dev/nvhost-*
    assert any(i == "HEALTHCHECK" and "/healthz" in a for i, a in final)
    assert ("ENTRYPOINT", '["edge-ad", "serve"]') in final
    volumes = " ".join(a for i, a in final if i == "VOLUME")
    assert '"/data"' in volumes and '"/models"' in volumes
    env = " ".join(a for i, a in final if i == "ENV")
    # a read-only root: nothing writes outside the volumes and /tmp
    assert "HOME=/tmp" in env and "GST_REGISTRY=/tmp/" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in (REPO / "docker" / name).read_text()  # set in a base stage
    installs = " ".join(a for i, a in final if i == "RUN")
    assert "torch" not in installs and "[export]" not in installs and "runtime,export" not in installs


def test_jetson_image_builds_from_the_l4t_base_with_gstreamer():
    instructions = _instructions(REPO / "docker/Dockerfile.jetson")
    arg_at = next(n for n, (i, a) in enumerate(instructions) if i == "ARG" and a.startswith("L4T_BASE="))
    from_at = next(n for n, (i, a) in enumerate(instructions) if i == "FROM")
    assert arg_at < from_at and instructions[from_at][1] == "${L4T_BASE}"
    assert "l4t-jetpack:r36" in instructions[arg_at][1]  # JetPack 6
    runs = " ".join(a for i, a in instructions if i == "RUN")
    assert "python3-gi" in runs and "gir1.2-gst-plugins-base-1.0" in runs
    assert "--system-site-packages" in runs  # sees python3-gi and JetPack's TensorRT


def test_cpu_dockerfile_has_an_export_stage_with_torch():
    stages = _stages(REPO / "docker/Dockerfile.cpu")
    assert {"base", "build", "runtime", "export"} <= set(stages)
    export = " ".join(a for i, a in stages["export"] if i == "RUN")
    assert ".[runtime,export]" in export and "download.pytorch.org/whl/cpu" in " ".join(
        a for i, a in stages["export"] if i == "ARG")


def _dockerignored(rel: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(rel, p) or rel.split("/")[0] == p or fnmatch.fnmatch(rel.split("/")[0], p)
               for p in patterns)


@pytest.mark.parametrize("name", ["Dockerfile.jetson", "Dockerfile.cpu", "Dockerfile.gpu"])
def test_every_copied_path_is_in_the_build_context(name):
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    copies = [a for i, a in _instructions(REPO / "docker" / name) if i == "COPY" and "--from" not in a]
    assert copies
    for args in copies:
        for source in args.split()[:-1]:
            assert (REPO / source).exists(), source
            assert not _dockerignored(source, patterns), f"{source} is excluded by .dockerignore"
    assert _dockerignored("var", patterns) and _dockerignored(".venv", patterns)


# -- jetson -------------------------------------------------------------------------------------
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_passes(script):
    proc = subprocess.run([_tool("shellcheck"), "--severity=style", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def _stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def test_setup_host_is_idempotent(tmp_path):
    """Against a scratch root with the Jetson's tools stubbed (they exist only on a Jetson):
    the first run changes what is missing, the second changes nothing, a dry run nothing."""
    root, bin_dir, log = tmp_path / "root", tmp_path / "bin", tmp_path / "calls.log"
    (root / "etc").mkdir(parents=True)
    (root / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.0, GCID: 1\n")
    bin_dir.mkdir()
    state = tmp_path / "mode"
    state.write_text("2")
    _stub(bin_dir, "nvidia-container-runtime", "exit 0")
    _stub(bin_dir, "nvpmodel", f'if [ "$1" = -q ]; then echo "NV Power Mode: 15W"; cat {state}; '
                               f'else echo "nvpmodel $*" >> {log}; echo "$2" > {state}; fi')
    _stub(bin_dir, "udevadm", f'echo "udevadm $*" >> {log}')
    _stub(bin_dir, "systemctl", "exit 0")
    env = {**os.environ, "EDGE_AD_ROOT": str(root), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    script = str(REPO / "jetson/setup_host.sh")

    def run(*args):
        proc = subprocess.run(["bash", script, "--power-mode", "0", *args], env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    dry = run("--dry-run")
    assert "would: power mode 2 -> 0" in dry and not (root / "var").exists() and not log.exists()
    first = run()
    assert "power mode 2 -> 0" in first and "changes made" in first
    assert json.loads((root / "etc/docker/daemon.json").read_text())["default-runtime"] == "nvidia"
    assert (root / "etc/udev/rules.d/99-edge-ad-cameras.rules").read_text().startswith('SUBSYSTEM=="video4linux"')
    assert all((root / "var/lib/edge-ad" / d).is_dir() for d in ("config", "models", "data"))
    assert "nvpmodel -m 0" in log.read_text() and "udevadm control --reload" in log.read_text()
    second = run()
    assert "nothing to change" in second, second


def test_setup_host_refuses_a_machine_that_is_not_a_jetson(tmp_path):
    proc = subprocess.run(["bash", str(REPO / "jetson/setup_host.sh")], capture_output=True, text=True,
                          env={**os.environ, "EDGE_AD_ROOT": str(tmp_path)})
    assert proc.returncode == 1 and "not a Jetson" in proc.stderr


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_camera_presets_are_valid_configs_with_jetson_pipelines(preset, monkeypatch):
    from edge_ad.config import load_config
    from edge_ad.sources import live
    from edge_ad.sources.registry import open_source

    config = load_config(preset)
    # build the Jetson variant here: the pipeline string is pure, GStreamer is not started
    monkeypatch.setattr(live, "is_jetson", lambda: True)
    monkeypatch.setattr("edge_ad.sources.gst.gst_available", lambda: True)
    description = open_source(config.cameras[0].source).description
    expected = {"imx219": "nvarguscamerasrc", "imx477": "nvarguscamerasrc", "usb-uvc": "nvv4l2decoder mjpeg=1",
                "rtsp-h264": "rtph264depay ! h264parse ! nvv4l2decoder", "rtsp-h265": "rtph265depay ! h265parse ! nvv4l2decoder"}
    assert expected[preset.stem] in description
    assert description.endswith("appsink name=edgead max-buffers=1 drop=true sync=false emit-signals=false")


# -- deploy -------------------------------------------------------------------------------------
def test_promtool_accepts_the_prometheus_config_and_rules():
    promtool = _tool("promtool")
    for args in (["check", "config", "deploy/prometheus.yml"], ["check", "rules", "deploy/edge-ad.rules.yml"]):
        proc = subprocess.run([promtool, *args], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def container_hardening_problems(compose: dict) -> list[str]:
    """The reliability issue's static container checks, as a function bench/reliability.py
    runs too: capabilities dropped, no privilege escalation, a memory limit, devices by id."""
    edge, problems = compose["services"]["edge-ad"], []
    if "ALL" not in edge.get("cap_drop", []):
        problems.append("cap_drop does not drop ALL")
    if "no-new-privileges:true" not in edge.get("security_opt", []):
        problems.append("no-new-privileges is not set")
    if not (edge.get("mem_limit") or edge.get("deploy", {}).get("resources", {}).get("limits", {}).get("memory")):
        problems.append("no memory limit")
    for device in edge.get("devices", []):
        if not device.split(":")[0].startswith(("/dev/v4l/by-id/", "/dev/v4l/by-path/")):
            problems.append(f"device {device.split(':')[0]} is not addressed by id")
    return problems


def test_the_container_is_hardened():
    compose = yaml.safe_load((REPO / "deploy/compose.yaml").read_text())
    assert container_hardening_problems(compose) == []
    loose = {"services": {"edge-ad": {"devices": ["/dev/video0:/dev/video0"]}}}
    assert len(container_hardening_problems(loose)) == 4  # the check can fail


def test_compose_file_matches_the_compose_spec_and_mounts_what_exists():
    proc = subprocess.run([_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                           str(REPO / "deploy/compose.yaml")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    compose = yaml.safe_load((REPO / "deploy/compose.yaml").read_text())
    edge = compose["services"]["edge-ad"]
    assert edge["runtime"] == "nvidia" and edge["read_only"] is True and "/tmp" in edge["tmpfs"]
    assert edge["build"]["dockerfile"] == "docker/Dockerfile.jetson"
    assert (REPO / "deploy" / edge["build"]["context"] / edge["build"]["dockerfile"]).is_file()
    targets = {v.split(":")[1] for v in edge["volumes"]}
    assert {"/config", "/models", "/data"} <= targets
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / "deploy" / source).exists(), source


def test_grafana_provisioning_points_at_the_dashboard_and_datasource():
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/edge-ad.json").read_text())
    datasource = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/prometheus.yaml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    panels = dashboard["panels"]
    assert len(panels) >= 12 and all(p["targets"] for p in panels)
    assert all(p["datasource"]["uid"] == uid and all(t["datasource"]["uid"] == uid for t in p["targets"]) for p in panels)
    titles = " ".join(p["title"].lower() for p in panels)
    for needed in ("frames per second", "dropped", "p50 / p99", "ng rate", "score", "margin", "camera up",
                   "temperature", "power"):
        assert needed in titles, needed
    provider = yaml.safe_load((REPO / "deploy/grafana/provisioning/dashboards/edge-ad.yaml").read_text())
    compose = yaml.safe_load((REPO / "deploy/compose.yaml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == provider["providers"][0]["options"]["path"]


def test_systemd_unit_verifies(tmp_path):
    analyze = _tool("systemd-analyze")
    unit = (REPO / "deploy/systemd/edge-ad.service").read_text()
    assert "ExecStart=/opt/edge-ad/bin/edge-ad serve --config /etc/edge-ad/edge-ad.yaml" in unit
    # verify also checks that ExecStart exists: point it at this checkout's edge-ad
    edge_ad = shutil.which("edge-ad", path=str(Path(sys.executable).parent)) or shutil.which("edge-ad")
    (tmp_path / "edge-ad.service").write_text(unit.replace("/opt/edge-ad/bin/edge-ad", edge_ad))
    proc = subprocess.run([analyze, "verify", str(tmp_path / "edge-ad.service")], capture_output=True, text=True)
    complaints = [line for line in proc.stderr.splitlines() if "edge-ad.service" in line]
    assert proc.returncode == 0 and not complaints, proc.stderr


def _k8s_documents():
    docs = []
    for path in sorted((REPO / "deploy/k8s").glob("*.yaml")):
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kubernetes_manifests_validate_against_the_schemas():
    kubernetes_validate = _module("kubernetes_validate")
    kinds = {}
    for name, doc in _k8s_documents():
        kinds[doc["kind"]] = doc
        if doc["kind"] in ("ServiceMonitor", "Kustomization"):  # CRD / kustomize: no core schema
            continue
        kubernetes_validate.validate(doc, "1.30.0", strict=True)
    kustomization = kinds["Kustomization"]
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in (REPO / "deploy/k8s").glob("*.yaml") if p.name != "kustomization.yaml")
    ds, svc, monitor = kinds["DaemonSet"], kinds["Service"], kinds["ServiceMonitor"]
    spec = ds["spec"]["template"]["spec"]
    assert spec["nodeSelector"] and spec["runtimeClassName"] == "nvidia"
    assert ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 1
    container = spec["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["runAsNonRoot"] is True
    # the ServiceMonitor finds the Service, on a port the Service has, which finds the pods
    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in svc["spec"]["ports"]}
    assert svc["spec"]["selector"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    # the config the fleet runs is a valid edge-ad config
    from edge_ad.config import build_config

    config = build_config(yaml.safe_load(kinds["ConfigMap"]["data"]["edge-ad.yaml"]))
    assert str(config.model) == "/models/bundle"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["config"] == "/config" and mounts["models"] == "/models" and mounts["data"] == "/data"


def test_kubernetes_schema_check_catches_a_typo():
    kubernetes_validate = _module("kubernetes_validate")
    ds = next(d for _, d in _k8s_documents() if d["kind"] == "DaemonSet")
    ds["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(Exception):
        kubernetes_validate.validate(ds, "1.30.0", strict=True)
