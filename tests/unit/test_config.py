import re
import yaml
import pytest

from edge_ad.config import build_config, load_config
from edge_ad.errors import ConfigError


def test_minimal_config_defaults(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model: models/b\ncameras:\n  - source: dir:///x\n  - {name: c1, source: 'file://v/a.avi?loop=1'}\n")
    cfg = load_config(f)
    assert cfg.model == (tmp_path / "models" / "b").resolve()  # relative to the config file
    assert cfg.cameras[0].source == "dir:///x"
    assert cfg.cameras[1].source == f"file://{(tmp_path / 'v' / 'a.avi').resolve()}?loop=1"
    assert cfg.server.port == 8080 and cfg.cameras[0].name == "cam0"


def test_unknown_key_is_an_error_naming_it(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model: b\ncameras:\n  - source: dir:///x\nserver:\n  prot: 1\n")
    with pytest.raises(ConfigError, match=r"server\.prot: unknown key \(did you mean 'port'\?\)"):
        load_config(f)


def test_bounds_are_enforced():
    with pytest.raises(ConfigError, match="server.port"):
        build_config({"model": "b", "cameras": [{"source": "dir:///x"}], "server": {"port": 70000}})


def test_duplicate_camera_names():
    with pytest.raises(ConfigError, match="unique"):
        build_config({"model": "b", "cameras": [{"source": "dir:///x"}, {"source": "dir:///y"}]})


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("EDGE_AD_PORT", "9123")
    monkeypatch.setenv("EDGE_AD_SOURCE", "file:///v.avi")
    cfg = build_config({"model": "b", "cameras": [{"source": "dir:///x"}]})
    assert cfg.server.port == 9123
    assert cfg.cameras[0].source == "file:///v.avi"


def test_bad_yaml_and_missing_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(f)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_camera_decision_settings_resolve_relative_to_the_config(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model: b\ncameras:\n  - source: dir:///x\n    roi: [10, 20, 300, 200]\n"
                 "    rotate: 90\n    ignore_mask: masks/cam0.png\n    min_defect_area_px: 50\n")
    cam = load_config(f).cameras[0]
    assert cam.roi == (10, 20, 300, 200) and cam.rotate == 90 and cam.min_defect_area_px == 50
    assert cam.ignore_mask == (tmp_path / "masks" / "cam0.png").resolve()


def test_engine_options_are_per_backend():
    base = {"model": "/models/m", "cameras": [{"source": "testsrc://"}]}
    assert build_config(base, "t").engine.engine_options() == {"providers": None, "threads": 0}
    trt = build_config({**base, "engine": {"backend": "tensorrt", "dla_core": 1, "batch_size": 4}}, "t").engine
    assert trt.engine_options() == {"precision": "fp16", "dla_core": 1, "build_missing": False}
    assert trt.batch_size == 4  # the pipeline's, not the engine's
    for bad, says in (({"backend": "tensorrt", "threads": 2}, "engine.tensorrt.threads"),
                      ({"precision": "int8"}, "engine.onnxruntime.precision"),
                      ({"backend": "openvino"}, "openvino")):
        with pytest.raises(ConfigError, match=says):
            build_config({**base, "engine": bad}, "t")


def test_outputs_need_the_journal_and_their_paths_follow_the_config(tmp_path):
    out = {"type": "webhook", "url": "http://mes.local/hook", "outbox": "spool/hook.sqlite"}
    base = {"model": "/models/m", "cameras": [{"source": "testsrc://"}], "publish": [out]}
    with pytest.raises(ConfigError, match="results.journal"):
        build_config(base, "t")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**base, "results": {"journal": "j.sqlite"}}))
    config = load_config(tmp_path / "c.yaml")
    assert config.publish[0].outbox == (tmp_path / "spool" / "hook.sqlite").resolve()


def test_recipes_replace_model_and_the_per_camera_keys(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "recipes": {"default": 2, 1: {"name": "widget", "model": "m/a"},
                    "2": {"name": "gadget", "model": "m/b", "cameras": {"cam0": {"ignore_mask": "k.png", "roi": [1, 2, 3, 4]}}}},
        "cameras": [{"source": "testsrc://", "rotate": 90}],
        "plc": {"opcua": {"certificate_dir": "certs"}, "modbus": {}}}))
    c = load_config(tmp_path / "c.yaml")
    assert c.model is None and sorted(c.recipes.items) == [1, 2] and c.recipes.default == 2
    assert c.bundles == [tmp_path / "m/a", tmp_path / "m/b"]  # relative to the config file
    assert c.recipes.items[2].cameras["cam0"].ignore_mask == tmp_path / "k.png"
    assert c.plc.opcua.certificate_dir == tmp_path / "certs"
    assert c.plc.opcua.allow_anonymous is False and c.plc.modbus.host == "127.0.0.1"  # safe defaults
    cams = [{"source": "testsrc://"}]
    for raw, says in (
        ({"cameras": cams}, "got neither"),
        ({"model": "m", "recipes": {"default": 1, 1: {"name": "a", "model": "x"}}, "cameras": cams}, "not both"),
        ({"recipes": {"default": 3, 1: {"name": "a", "model": "x"}}, "cameras": cams}, "recipes.default is 3"),
        ({"recipes": {"default": 1, 1: {"name": "a", "model": "x", "cameras": {"cam9": {}}}}, "cameras": cams},
         "names cameras ['cam9']"),
        ({"recipes": {"default": 1, 1: {"name": "a", "model": "x"}},
          "cameras": [{"source": "testsrc://", "min_defect_area_px": 5}]}, "min_defect_area_px belongs in each recipe"),
        ({"model": "m", "cameras": cams, "plc": {"opcua": {"endpoint": "http://x"}}}, "plc.opcua.endpoint"),
    ):
        with pytest.raises(ConfigError, match=re.escape(says)):
            build_config(raw)
