"""tegrastats lines in the shapes JetPack 6 (Orin Nano), JetPack 5 (AGX Orin) and L4T 32
(Nano) print them; values checked one by one."""
import pytest

from edge_ad.prometheus import Metrics
from edge_ad.telemetry import TegrastatsThread, parse_tegrastats

ORIN_NANO = ("11-24-2026 10:00:01 RAM 3100/7620MB (lfb 2x4MB) SWAP 10/3810MB (cached 0MB) "
             "CPU [12%@1510,3%@1510,off,0%@729,5%@729,100%@1510] GR3D_FREQ 61% cpu@52.5C "
             "soc2@50.1C soc0@51C gpu@49.75C tj@53.2C soc1@51.9C VDD_IN 6120mW/6001mW "
             "VDD_CPU_GPU_CV 1820mW/1700mW VDD_SOC 1500mW/1490mW")
AGX_ORIN = ("RAM 5000/30536MB (lfb 100x4MB) SWAP 0/15268MB (cached 0MB) CPU [1%@2201,2%@2201] "
            "GR3D_FREQ 0% cpu@41C soc0@40.5C VDD_GPU_SOC 3300mW/3310mW VDD_CPU_CV 800mW/810mW "
            "VIN_SYS_5V0 4900mW/4950mW")
NANO_L4T32 = ("RAM 1500/3956MB (lfb 300x4MB) SWAP 0/1978MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
              "CPU [9%@1479,4%@1479,6%@1479,off] EMC_FREQ 3%@1600 GR3D_FREQ 15%@76 APE 25 "
              "PLL@33C CPU@35.5C PMIC@100C GPU@34C AO@41.5C thermal@35.1C iwlwifi@-256C "
              "POM_5V_IN 2196/2203 POM_5V_GPU 40/40 POM_5V_CPU 483/490")


def test_jetpack6_line():
    v = parse_tegrastats(ORIN_NANO)
    assert (v["ram_used_mb"], v["ram_total_mb"]) == (3100, 7620)
    assert v["cpu_load"] == [0.12, 0.03, None, 0.0, 0.05, 1.0]
    assert v["gpu_load"] == 0.61
    assert v["temperatures_c"] == {"cpu": 52.5, "soc2": 50.1, "soc0": 51.0, "gpu": 49.75,
                                   "tj": 53.2, "soc1": 51.9}
    assert v["power_mw"] == {"VDD_IN": 6120, "VDD_CPU_GPU_CV": 1820, "VDD_SOC": 1500}


def test_jetpack5_agx_line():
    v = parse_tegrastats(AGX_ORIN)
    assert v["gpu_load"] == 0.0 and v["temperatures_c"] == {"cpu": 41.0, "soc0": 40.5}
    assert v["power_mw"]["VIN_SYS_5V0"] == 4900


def test_l4t32_nano_line_with_absent_sensor_and_plain_milliwatts():
    v = parse_tegrastats(NANO_L4T32)
    assert v["cpu_load"] == [0.09, 0.04, 0.06, None]
    assert v["gpu_load"] == 0.15
    assert "iwlwifi" not in v["temperatures_c"] and v["temperatures_c"]["cpu"] == 35.5
    assert v["power_mw"] == {"POM_5V_IN": 2196, "POM_5V_GPU": 40, "POM_5V_CPU": 483}


def test_garbage_yields_nothing_invented():
    assert parse_tegrastats("tegrastats: permission denied") == {}


def test_publish_sets_gauges_in_base_units():
    metrics = Metrics()
    TegrastatsThread(metrics).publish(parse_tegrastats(ORIN_NANO))
    r = metrics.registry
    assert r.get_sample_value("edge_ad_jetson_power_watts", {"rail": "VDD_IN"}) == pytest.approx(6.12)
    assert r.get_sample_value("edge_ad_jetson_temperature_celsius", {"sensor": "tj"}) == 53.2
    assert r.get_sample_value("edge_ad_jetson_ram_used_bytes") == 3100 * 1024 * 1024
    assert r.get_sample_value("edge_ad_jetson_cpu_load_ratio", {"core": "2"}) is None  # off
