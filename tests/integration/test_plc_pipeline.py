"""Recipes and the PLC servers over the real pipeline: real ONNX Runtime sessions, a real aiohttp
server on loopback, the real asyncua and pymodbus clients, and a journal across a restart."""
from __future__ import annotations

import asyncio
import json
import shutil
import socket

import pytest

pytest.importorskip("asyncua", reason="the plc extra: pip install 'edge-ad[plc]'")
pytest.importorskip("pymodbus", reason="the plc extra: pip install 'edge-ad[plc]'")

from asyncua import Client, ua  # noqa: E402
from pymodbus.client import AsyncModbusTcpClient  # noqa: E402

from edge_ad.assembly import build_service  # noqa: E402
from edge_ad.config import build_config  # noqa: E402
from edge_ad.decision.codes import ErrorCode  # noqa: E402
from edge_ad.plc.servers import PlcServers  # noqa: E402
from edge_ad.prometheus import Metrics  # noqa: E402
from edge_ad.server.app import make_app  # noqa: E402

from .helpers import get, get_json, send, wait_for  # noqa: E402

TOKEN = "control-token-for-plc-tests"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def bundles(bundle_dir, tmp_path):
    """Two recipes' bundles: the same detector, told apart by name."""
    out = {}
    for n, name in ((1, "widget"), (2, "gadget")):
        path = shutil.copytree(bundle_dir, tmp_path / "models" / name)
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["name"] = name
        (path / "manifest.json").write_text(json.dumps(manifest))
        out[n] = path
    return out


def _start(live_server, config):
    metrics = Metrics()
    service = build_service(config, metrics)
    app = make_app(service, metrics, config.security, config.server)
    app.cleanup_ctx.append(PlcServers(service, config.plc, metrics).context)
    server = live_server(app)
    wait_for(lambda: get(server.url + "/readyz")[0] == 200)
    return server


def _config(tmp_path, bundles, demo_root, plc, budget_mb=100.0):
    return build_config({
        "recipes": {"default": 1, "memory_budget_mb": budget_mb,
                    1: {"name": "widget", "model": str(bundles[1])},
                    2: {"name": "gadget", "model": str(bundles[2]),
                        "cameras": {"line": {"roi": [0, 0, 200, 200], "min_defect_area_px": 5}}}},
        "cameras": [{"name": "line", "source": f"dir://{demo_root}/wood/test/good?loop=1&fps=20"},
                    {"name": "rig", "source": "push://"}],
        "results": {"journal": str(tmp_path / "journal.sqlite")},
        "security": {"token": TOKEN}, "plc": plc})


def _latest(server, camera="line"):
    return get_json(server.url + f"/v1/result?camera={camera}")[1]


def test_recipes_over_http_switch_the_model_and_an_unknown_one_faults_the_camera(live_server, tmp_path,
                                                                                bundles, demo_root):
    server = _start(live_server, _config(tmp_path, bundles, demo_root, {}))
    status, recipes = get_json(server.url + "/v1/recipe")
    assert status == 200 and recipes["selected"] == {"line": 1, "rig": 1} and recipes["warm"] == [1, 2]
    assert _latest(server)["recipe"] == 1 and _latest(server)["model"]["name"] == "widget"

    assert send("PUT", server.url + "/v1/recipe", {"camera": "line", "recipe": 2})[0] == 401  # control token
    status, body = send("PUT", server.url + "/v1/recipe", {"camera": "line", "recipe": 2}, token=TOKEN)
    assert status == 200 and body["recipe"] == 2 and body["name"] == "gadget" and body["loaded"] is False
    switched = wait_for(lambda: (r := _latest(server))["recipe"] == 2 and r)
    assert switched["model"]["name"] == "gadget" and switched["verdict"] == "OK"
    assert get_json(server.url + "/v1/recipe")[1]["selected"] == {"line": 2, "rig": 1}
    metrics = get(server.url + "/metrics")[1].decode()
    assert 'edge_ad_recipe{camera="line"} 2.0' in metrics and 'edge_ad_recipe{camera="rig"} 1.0' in metrics

    status, body = send("PUT", server.url + "/v1/recipe", {"camera": "line", "recipe": 9}, token=TOKEN)
    assert status == 404 and body["error_code"] == "UNKNOWN_RECIPE" and body["known"] == [1, 2]
    faulted = wait_for(lambda: (r := _latest(server))["recipe"] == 9 and r)
    assert faulted["verdict"] == "FAULT" and faulted["error_code"] == "UNKNOWN_RECIPE"
    assert faulted["score"] is None  # never the previous model's verdict
    ready = get_json(server.url + "/readyz")
    assert ready[0] == 503 and any("recipe 9 is not configured" in r for r in ready[1]["reasons"])
    page = get_json(server.url + f"/v1/results?after={faulted['seq'] - 1}&limit=1")[1]
    assert page["results"][0]["error_code"] == "UNKNOWN_RECIPE"  # journaled with the code

    assert send("PUT", server.url + "/v1/recipe", {"camera": "line", "recipe": 1}, token=TOKEN)[0] == 200
    back = wait_for(lambda: (r := _latest(server))["recipe"] == 1 and r["verdict"] == "OK" and r)
    assert back["model"]["name"] == "widget"
    assert send("PUT", server.url + "/v1/recipe", {"camera": "nope", "recipe": 1}, token=TOKEN)[0] == 404


def test_a_recipe_beyond_the_memory_budget_loads_when_selected(live_server, tmp_path, bundles, demo_root):
    server = _start(live_server, _config(tmp_path, bundles, demo_root, {}, budget_mb=0.001))
    assert get_json(server.url + "/v1/recipe")[1]["warm"] == [1]  # only the default fits
    status, body = send("PUT", server.url + "/v1/recipe", {"camera": "line", "recipe": 2}, token=TOKEN)
    assert status == 200 and body["loaded"] is True
    wait_for(lambda: _latest(server)["recipe"] == 2)


def test_modbus_trigger_then_restart_gives_a_new_boot_id_and_a_seq_never_used(live_server, tmp_path,
                                                                            bundles, demo_root):
    endpoint = f"opc.tcp://127.0.0.1:{_free_port()}/edge-ad"
    plc = {"modbus": {"port": _free_port()}, "trigger_timeout_ms": 3000,
           "opcua": {"endpoint": endpoint, "allow_anonymous": True, "certificate_dir": str(tmp_path / "certs")}}

    async def opcua_boot_and_seq() -> tuple[str, int]:
        client = Client(endpoint, timeout=5)
        await client.connect()
        try:
            ns = await client.get_namespace_index("urn:edge-ad")
            return (await client.get_node(ua.NodeId("line.BootId", ns)).read_value(),
                    await client.get_node(ua.NodeId("line.Seq", ns)).read_value())
        finally:
            await client.disconnect()

    async def handshake(port: int, part: str) -> tuple[int, int]:
        from edge_ad.plc.modbus import encode_text

        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
        assert await client.connect()
        try:
            await client.write_registers(0, encode_text(part), device_id=1)
            await client.write_coil(0, True, device_id=1)
            for _ in range(300):
                if (await client.read_coils(4, count=1, device_id=1)).bits[0]:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("ResultReady never rose")
            regs = (await client.read_input_registers(0, count=10, device_id=1)).registers
            assert regs[4] == 1 and regs[6] == 0  # OK, no error
            await client.write_coil(1, True, device_id=1)
            await client.write_coil(0, False, device_id=1)
            await client.write_coil(1, False, device_id=1)
            return regs[0] << 16 | regs[1], regs[2] << 16 | regs[3]
        finally:
            client.close()

    config = _config(tmp_path, bundles, demo_root, plc)
    server = _start(live_server, config)
    seq1, boot1 = asyncio.run(handshake(config.plc.modbus.port, "P-1"))
    page = get_json(server.url + f"/v1/results?after={seq1 - 1}&limit=1")[1]
    assert page["results"][0]["part_id"] == "P-1" and page["results"][0]["seq"] == seq1
    assert boot1 == int(page["boot_id"][:8], 16)
    assert asyncio.run(opcua_boot_and_seq()) == (page["boot_id"], seq1)  # the same handshake, over OPC UA
    server.close()

    server = _start(live_server, config)  # the same journal: a restart
    seq2, boot2 = asyncio.run(handshake(config.plc.modbus.port, "P-2"))
    assert boot2 != boot1 and seq2 > seq1
    boot_id2, seq_ua = asyncio.run(opcua_boot_and_seq())
    assert seq_ua == seq2 and int(boot_id2[:8], 16) == boot2
    assert get_json(server.url + f"/v1/results?after={seq2 - 1}&limit=1")[1]["results"][0]["part_id"] == "P-2"


def test_opcua_trigger_on_a_camera_without_frames_gives_fault_deadline(live_server, tmp_path, bundles, demo_root):
    endpoint = f"opc.tcp://127.0.0.1:{_free_port()}/edge-ad"
    plc = {"opcua": {"endpoint": endpoint, "allow_anonymous": True, "certificate_dir": str(tmp_path / "certs")},
           "trigger_timeout_ms": 300}
    server = _start(live_server, _config(tmp_path, bundles, demo_root, plc))

    async def go():
        client = Client(endpoint, timeout=5)
        await client.connect()
        try:
            ns = await client.get_namespace_index("urn:edge-ad")

            def node(name, camera="rig"):
                return client.get_node(ua.NodeId(f"{camera}.{name}", ns))
            await node("PartId").write_value(ua.DataValue(ua.Variant("P-LOST", ua.VariantType.String)))
            await node("TriggerRequest").write_value(ua.DataValue(ua.Variant(True, ua.VariantType.Boolean)))
            for _ in range(300):
                if await node("ResultReady").read_value():
                    break
                await asyncio.sleep(0.01)
            assert await node("VerdictText").read_value() == "FAULT"
            assert await node("ErrorCode").read_value() == ErrorCode.DEADLINE
            assert "trigger deadline" in await node("ErrorText").read_value()
            # the recipe over OPC UA, on the other camera
            await node("Recipe", "line").write_value(ua.DataValue(ua.Variant(2, ua.VariantType.Int32)))
            for _ in range(300):
                if await node("RecipeActive", "line").read_value() == 2:
                    break
                await asyncio.sleep(0.01)
            assert await node("RecipeActive", "line").read_value() == 2
            return await node("Seq").read_value()
        finally:
            await client.disconnect()

    seq = asyncio.run(go())
    page = get_json(server.url + f"/v1/results?after={seq - 1}&limit=1")[1]
    fault = page["results"][0]
    assert fault["verdict"] == "FAULT" and fault["part_id"] == "P-LOST" and fault["error_code"] == "DEADLINE"
    wait_for(lambda: _latest(server)["recipe"] == 2)
