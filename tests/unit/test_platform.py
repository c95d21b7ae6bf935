"""Device detection against fake L4T filesystems, and the engine key built from it."""
import pytest

from edge_ad.engines.key import engine_key
from edge_ad.platform import Platform, detect, l4t_release, tegra_soc


def _jetson_root(tmp_path, release: str, compatible: bytes):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text(release)
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/compatible").write_bytes(compatible)
    return tmp_path


def test_orin_on_jetpack_61(tmp_path):
    root = _jetson_root(tmp_path, "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64\n",
                        b"nvidia,p3768-0000+p3767-0005\0nvidia,p3767-0005\0nvidia,tegra234\0")
    assert l4t_release(root) == "36.4.0" and tegra_soc(root) == "tegra234"
    p = detect(root)
    assert (p.jetson, p.l4t, p.jetpack, p.gpu, p.compute_capability) == (True, "36.4.0", "6.1", "Orin (Ampere)", "8.7")


def test_xavier_on_jetpack_5_and_an_unknown_release(tmp_path):
    root = _jetson_root(tmp_path, "# R35 (release), REVISION: 9.9\n", b"nvidia,jetson-xavier\0nvidia,tegra194\0")
    p = detect(root)
    assert p.l4t == "35.9.9" and p.jetpack is None  # unknown: None, not a guess
    assert p.compute_capability == "7.2"


def test_not_a_jetson(tmp_path):
    p = detect(tmp_path)
    assert not p.jetson and p.l4t is None and p.jetpack is None


def test_engine_key_names_everything_an_engine_depends_on():
    orin = Platform(True, "36.4.0", "6.1", "10.3.0", "Orin (Ampere)", "8.7")
    key = engine_key("ab" * 32, orin, "fp16")
    assert key == "abababababababab_trt10.3.0_orin-ampere_sm87_fp16_gpu"
    assert engine_key("ab" * 32, orin, "int8", dla_core=1).endswith("_int8_dla1")
    upgraded = Platform(True, "36.4.3", "6.2", "10.3.1", "Orin (Ampere)", "8.7")
    assert engine_key("ab" * 32, upgraded, "fp16") != key  # a TensorRT upgrade rebuilds
    assert engine_key("cd" * 32, orin, "fp16") != key      # a changed model rebuilds
    with pytest.raises(ValueError, match="precision"):
        engine_key("ab" * 32, orin, "fp8")
