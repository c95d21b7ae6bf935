"""The PLC handshake against the real asyncua and pymodbus clients, on loopback, over the fake
service port (tests/fakes/fake_port.py), so each case controls exactly when a result arrives.
The same servers over the real pipeline are in test_plc_pipeline.py."""
from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from concurrent.futures import Future

import pytest

asyncua = pytest.importorskip("asyncua", reason="the plc extra: pip install 'edge-ad[plc]'")
pymodbus = pytest.importorskip("pymodbus", reason="the plc extra: pip install 'edge-ad[plc]'")

from asyncua import Client, ua  # noqa: E402
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256  # noqa: E402
from pymodbus.client import AsyncModbusTcpClient  # noqa: E402

from edge_ad.config import ModbusConfig, OpcUaConfig, PlcConfig  # noqa: E402
from edge_ad.decision.codes import ErrorCode  # noqa: E402
from edge_ad.plc.modbus import STRIDE, decode_text, encode_text  # noqa: E402
from edge_ad.plc.servers import PlcServers  # noqa: E402
from tests.fakes.fake_port import FakePort, result  # noqa: E402

NS = "urn:edge-ad"
USER, PASSWORD = "plc", "line-one-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _plc(tmp_path, opcua=None, modbus=None, **kw) -> PlcConfig:
    if opcua is not None:
        opcua = OpcUaConfig(endpoint=f"opc.tcp://127.0.0.1:{_free_port()}/edge-ad",
                            certificate_dir=tmp_path / "certs", **opcua)
    if modbus is not None:
        modbus = ModbusConfig(port=_free_port(), **modbus)
    return PlcConfig(opcua=opcua, modbus=modbus, **kw)


async def _until(check, timeout=5.0, what="condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


class Cam:
    """A camera's variables as an OPC UA client reads and writes them."""

    def __init__(self, client: Client, ns: int, camera: str = "cam0"):
        self.client, self.ns, self.camera = client, ns, camera

    def node(self, name):
        return self.client.get_node(ua.NodeId(f"{self.camera}.{name}", self.ns))

    async def read(self, name):
        return await self.node(name).read_value()

    async def write(self, name, value, vtype):
        await self.node(name).write_value(ua.DataValue(ua.Variant(value, vtype)))


async def _opcua_client(servers: PlcServers, **security) -> tuple[Client, Cam]:
    client = Client(servers.config.opcua.endpoint, timeout=5)
    if security:
        await client.set_security(SecurityPolicyBasic256Sha256, certificate=security["cert"],
                                  private_key=security["key"], mode=ua.MessageSecurityMode.SignAndEncrypt)
        if "user" in security:
            client.set_user(security["user"])
            client.set_password(security["password"])
    await client.connect()
    ns = await client.get_namespace_index(NS)
    return client, Cam(client, ns)


@contextlib.asynccontextmanager
async def _anonymous_opcua(tmp_path, port: FakePort, **plc):
    """The OPC UA server over ``port``, anonymous writes allowed, and one client's camera cam0."""
    servers = PlcServers(port, _plc(tmp_path, opcua={"allow_anonymous": True}, **plc))
    await servers.start()
    client, cam = await _opcua_client(servers)
    try:
        yield cam
    finally:
        await client.disconnect()
        await servers.stop()


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_opcua_address_space_has_one_object_per_camera_with_every_handshake_variable(tmp_path):
    async def go():
        servers = PlcServers(FakePort(cameras=("cam0", "line2")), _plc(tmp_path, opcua={"allow_anonymous": True}))
        await servers.start()
        client, _ = await _opcua_client(servers)
        try:
            ns = await client.get_namespace_index(NS)
            objects = {(await n.read_browse_name()).Name: n for n in await client.nodes.objects.get_children()}
            assert {"cam0", "line2"} <= set(objects)
            names = {(await n.read_browse_name()).Name for n in await objects["line2"].get_children()}
            assert {"TriggerRequest", "PartId", "Recipe", "LotId", "Ready", "Busy", "ResultReady", "ResultAck",
                    "Verdict", "Ok", "Ng", "Score", "Seq", "BootId", "ErrorCode", "ErrorText", "RegionCount",
                    "Heartbeat"} <= names
            verdict = client.get_node(ua.NodeId("cam0.Verdict", ns))
            dtype = client.get_node(await verdict.read_data_type())
            assert (await dtype.read_browse_name()).Name == "EdgeAdVerdict"  # an enumeration
            beat = await Cam(client, ns).read("Heartbeat")
            await asyncio.sleep(1.2)
            assert await Cam(client, ns).read("Heartbeat") > beat
        finally:
            await client.disconnect()
            await servers.stop()
    _run(go())


def test_opcua_trigger_result_ack_and_a_second_trigger_refused_busy(tmp_path):
    async def go():
        port = FakePort()
        async with _anonymous_opcua(tmp_path, port) as cam:
            assert await cam.read("Ready") is True
            await cam.write("PartId", "P-0042", ua.VariantType.String)
            await cam.write("LotId", "LOT-7", ua.VariantType.String)
            await cam.write("TriggerRequest", True, ua.VariantType.Boolean)
            await _until(lambda: cam.read("ResultReady"), what="ResultReady")
            assert port.jobs[-1] == ("trigger", "cam0", "P-0042")
            assert await cam.read("Verdict") == 2 and await cam.read("Ng") is True and await cam.read("Ok") is False
            seq = await cam.read("Seq")
            assert seq == 1 and await cam.read("BootId") == "fakeboot"
            assert await cam.read("Ready") is False
            # a second rising edge before the ack: refused, the waiting result untouched
            await cam.write("TriggerRequest", False, ua.VariantType.Boolean)
            await cam.write("TriggerRequest", True, ua.VariantType.Boolean)
            await _until(lambda: _eq(cam.read("ErrorCode"), ErrorCode.BUSY), what="BUSY")
            assert "ResultAck" in await cam.read("ErrorText")
            assert await cam.read("Seq") == seq and await cam.read("ResultReady") is True
            assert [j for j in port.jobs if j[0] == "trigger"] == [("trigger", "cam0", "P-0042")]
            await cam.write("ResultAck", True, ua.VariantType.Boolean)
            await _until(lambda: _eq(cam.read("ResultReady"), False), what="ResultReady down")
            await _until(lambda: cam.read("Ready"), what="Ready again")
            assert await cam.read("ErrorCode") == 0
    _run(go())


async def _eq(coro, value):
    return (await coro) == value


def test_a_trigger_while_not_ready_is_refused_at_once_and_never_reaches_the_service(tmp_path):
    async def go():
        port = FakePort()
        port.camera_reasons["cam0"] = "camera cam0 is down (no frames)"
        async with _anonymous_opcua(tmp_path, port) as cam:
            assert await cam.read("Ready") is False
            await cam.write("TriggerRequest", True, ua.VariantType.Boolean)
            await _until(lambda: _eq(cam.read("ErrorCode"), ErrorCode.NOT_READY), what="NOT_READY")
            assert "down" in await cam.read("ErrorText")
            assert await cam.read("Busy") is False and await cam.read("ResultReady") is False
            assert not [j for j in port.jobs if j[0] == "trigger"]
    _run(go())


def test_a_plc_that_disconnects_mid_handshake_finds_its_result_after_reconnecting(tmp_path):
    async def go():
        port = FakePort()
        port.hold_triggers = True
        servers = PlcServers(port, _plc(tmp_path, opcua={"allow_anonymous": True}))
        await servers.start()
        client, cam = await _opcua_client(servers)
        await cam.write("PartId", "P-9", ua.VariantType.String)
        await cam.write("TriggerRequest", True, ua.VariantType.Boolean)
        await _until(lambda: cam.read("Busy"), what="Busy")
        await client.disconnect()  # gone while the part is inspected
        held: Future = port.held[0]
        held.set_result(result(17, "OK", part_id="P-9"))
        await asyncio.sleep(0.2)
        client, cam = await _opcua_client(servers)
        try:
            assert await cam.read("ResultReady") is True and await cam.read("Seq") == 17
            assert await cam.read("Ok") is True
            await cam.write("ResultAck", True, ua.VariantType.Boolean)
            await _until(lambda: _eq(cam.read("ResultReady"), False), what="acked")
        finally:
            await client.disconnect()
            await servers.stop()
    _run(go())


def test_an_unacknowledged_result_is_withdrawn_after_the_ack_timeout(tmp_path, caplog):
    async def go():
        port = FakePort()
        async with _anonymous_opcua(tmp_path, port, ack_timeout_s=0.5) as cam:
            await cam.write("TriggerRequest", True, ua.VariantType.Boolean)
            await _until(lambda: cam.read("ResultReady"), what="ResultReady")
            await _until(lambda: _eq(cam.read("ErrorCode"), ErrorCode.ACK_TIMEOUT), what="ACK_TIMEOUT")
            assert await cam.read("ResultReady") is False
            await _until(lambda: cam.read("Ready"), what="Ready after the timeout")
    _run(go())
    assert "not acknowledged within" in caplog.text


def test_recipe_selected_over_opcua_and_an_unknown_one_reported(tmp_path):
    async def go():
        port = FakePort()
        async with _anonymous_opcua(tmp_path, port) as cam:
            assert await cam.read("RecipeActive") == 1
            await cam.write("Recipe", 2, ua.VariantType.Int32)
            await _until(lambda: _eq(cam.read("RecipeActive"), 2), what="recipe 2")
            assert ("recipe", "cam0", 2) in port.jobs
            await cam.write("Recipe", 9, ua.VariantType.Int32)
            await _until(lambda: _eq(cam.read("ErrorCode"), ErrorCode.UNKNOWN_RECIPE), what="UNKNOWN_RECIPE")
            assert "recipe 9 is not configured" in await cam.read("ErrorText")
    _run(go())


def _client_certificate(tmp_path):
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    cert, key = tmp_path / "client-cert.der", tmp_path / "client-key.pem"
    asyncio.run(setup_self_signed_certificate(key, cert, "urn:edge-ad:test-plc", "localhost",
                                              [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "test-plc"}))
    return str(cert), str(key)


def test_opcua_security_anonymous_reads_only_and_writes_need_the_login(tmp_path):
    cert, key = _client_certificate(tmp_path)

    async def go():
        port = FakePort()
        servers = PlcServers(port, _plc(tmp_path, opcua={"username": USER, "password": PASSWORD}))
        await servers.start()
        try:
            probe = Client(servers.config.opcua.endpoint, timeout=5)
            endpoints = await probe.connect_and_get_server_endpoints()
            policies = {e.SecurityPolicyUri.rsplit("#", 1)[-1] for e in endpoints}
            modes = {e.SecurityMode for e in endpoints}
            assert policies == {"Basic256Sha256"}, policies  # no None policy without allow_anonymous
            assert modes == {ua.MessageSecurityMode.Sign, ua.MessageSecurityMode.SignAndEncrypt}

            anonymous, cam = await _opcua_client(servers, cert=cert, key=key)
            try:
                assert await cam.read("Ready") is True  # reads are open
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                    await cam.write("TriggerRequest", True, ua.VariantType.Boolean)
                assert not [j for j in port.jobs if j[0] == "trigger"]
            finally:
                await anonymous.disconnect()

            with pytest.raises(Exception):  # a wrong password never gets a session
                await _opcua_client(servers, cert=cert, key=key, user=USER, password="wrong-password")

            plc, cam = await _opcua_client(servers, cert=cert, key=key, user=USER, password=PASSWORD)
            try:
                await cam.write("TriggerRequest", True, ua.VariantType.Boolean)
                await _until(lambda: cam.read("ResultReady"), what="ResultReady")
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):  # status variables stay read-only
                    await cam.write("Verdict", 1, ua.VariantType.Int32)
            finally:
                await plc.disconnect()
        finally:
            await servers.stop()
    _run(go())


# -- Modbus ----------------------------------------------------------------------------------------
async def _modbus(servers: PlcServers) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient("127.0.0.1", port=servers.config.modbus.port, timeout=3, retries=0)
    assert await client.connect()
    return client


def test_modbus_handshake_in_the_register_map(tmp_path):
    async def go():
        port = FakePort(cameras=("cam0", "cam1"))
        servers = PlcServers(port, _plc(tmp_path, modbus={}))
        await servers.start()
        client = await _modbus(servers)
        base = STRIDE  # cam1's block
        try:
            coils = (await client.read_coils(base, count=7, device_id=1)).bits[:7]
            assert coils[2] is True and coils[4] is False  # Ready, not ResultReady
            assert not (await client.write_registers(base, encode_text("PART-77"), device_id=1)).isError()
            read_back = (await client.read_holding_registers(base, count=16, device_id=1)).registers
            assert decode_text(read_back) == "PART-77"
            assert not (await client.write_coil(base, True, device_id=1)).isError()

            async def ready():
                return (await client.read_coils(base + 4, count=1, device_id=1)).bits[0]
            await _until(ready, what="ResultReady")
            assert port.jobs[-1] == ("trigger", "cam1", "PART-77")
            regs = (await client.read_input_registers(base, count=10, device_id=1)).registers
            seq = regs[0] << 16 | regs[1]
            boot = regs[2] << 16 | regs[3]
            assert seq == 1
            assert boot == 0  # the fake's boot id is not hex; test_plc_pipeline checks a real one
            assert regs[4] == 2 and regs[5] == 900  # NG, score 0.9 x 1000
            bits = (await client.read_coils(base, count=7, device_id=1)).bits[:7]
            assert bits[5] is False and bits[6] is True  # Ok, Ng
            # the second rising edge before the ack: BUSY, the result stays
            await client.write_coil(base, False, device_id=1)
            await client.write_coil(base, True, device_id=1)
            regs = (await client.read_input_registers(base, count=10, device_id=1)).registers
            assert regs[6] == ErrorCode.BUSY and (regs[0] << 16 | regs[1]) == seq
            await client.write_coil(base + 1, True, device_id=1)  # ResultAck
            assert (await client.read_coils(base + 4, count=1, device_id=1)).bits[0] is False
            # cam0's block never moved
            assert (await client.read_input_registers(0, count=2, device_id=1)).registers == [0, 0]
        finally:
            client.close()
            await servers.stop()
    _run(go())


def test_modbus_refuses_writes_outside_the_map_and_to_read_only_addresses(tmp_path):
    async def go():
        servers = PlcServers(FakePort(), _plc(tmp_path, modbus={}))
        await servers.start()
        client = await _modbus(servers)
        try:
            for response in (await client.write_coil(50, True, device_id=1),  # a hole in the block
                             await client.write_coil(2, True, device_id=1),  # Ready: read-only
                             await client.write_register(STRIDE * 3, 1, device_id=1),  # no such camera
                             await client.write_registers(30, [0] * 5, device_id=1)):  # runs past the map
                assert response.isError() and response.exception_code == 2  # ILLEGAL DATA ADDRESS
            response = await client.read_input_registers(5, count=10, device_id=1)
            assert response.isError() and response.exception_code == 2
        finally:
            client.close()
            await servers.stop()
    _run(go())


def test_modbus_read_only_and_allow_list(tmp_path):
    async def go():
        port = FakePort()
        servers = PlcServers(port, _plc(tmp_path, modbus={"read_only": True}))
        await servers.start()
        client = await _modbus(servers)
        try:
            response = await client.write_coil(0, True, device_id=1)
            assert response.isError() and response.exception_code == 1  # ILLEGAL FUNCTION
            assert not (await client.read_coils(0, count=7, device_id=1)).isError()
            assert not [j for j in port.jobs if j[0] == "trigger"]
        finally:
            client.close()
            await servers.stop()

        servers = PlcServers(port, _plc(tmp_path, modbus={"allow": ["10.0.0.5"]}))
        await servers.start()
        try:
            client = AsyncModbusTcpClient("127.0.0.1", port=servers.config.modbus.port, timeout=1, retries=0)
            await client.connect()
            with pytest.raises(Exception):
                response = await client.read_coils(0, count=1, device_id=1)
                assert response.isError()  # pragma: no cover - the connection is closed first
                raise AssertionError("a client outside the allow list was answered")
            client.close()
        finally:
            await servers.stop()
    _run(go())


def test_opcua_and_modbus_share_one_handshake(tmp_path):
    async def go():
        port = FakePort()
        servers = PlcServers(port, _plc(tmp_path, opcua={"allow_anonymous": True}, modbus={}))
        await servers.start()
        ua_client, cam = await _opcua_client(servers)
        mb = await _modbus(servers)
        try:
            await mb.write_coil(0, True, device_id=1)  # triggered over Modbus ...
            await _until(lambda: cam.read("ResultReady"), what="ResultReady over OPC UA")
            await cam.write("ResultAck", True, ua.VariantType.Boolean)  # ... acknowledged over OPC UA
            await _until(lambda: _eq(cam.read("ResultReady"), False), what="acked")
            assert (await mb.read_coils(4, count=1, device_id=1)).bits[0] is False
        finally:
            mb.close()
            await ua_client.disconnect()
            await servers.stop()
    _run(go())


def test_modbus_not_ready_is_refused_at_once_and_a_reconnecting_plc_finds_its_result(tmp_path):
    async def go():
        port = FakePort()
        port.camera_reasons["cam0"] = "engine not loaded yet"
        servers = PlcServers(port, _plc(tmp_path, modbus={}))
        await servers.start()
        client = await _modbus(servers)
        try:
            assert (await client.read_coils(2, count=1, device_id=1)).bits[0] is False  # not Ready
            await client.write_coil(0, True, device_id=1)
            regs = (await client.read_input_registers(0, count=10, device_id=1)).registers
            assert regs[6] == ErrorCode.NOT_READY
            assert not [j for j in port.jobs if j[0] == "trigger"]
            await client.write_coil(0, False, device_id=1)

            del port.camera_reasons["cam0"]
            port.hold_triggers = True
            await asyncio.sleep(0.2)  # the clock brings Ready up to date
            await client.write_coil(0, True, device_id=1)
            assert (await client.read_coils(3, count=1, device_id=1)).bits[0] is True  # Busy
        finally:
            client.close()  # gone mid-handshake
        port.held[0].set_result(result(5, "OK"))
        await asyncio.sleep(0.2)
        client = await _modbus(servers)
        try:
            assert (await client.read_coils(4, count=1, device_id=1)).bits[0] is True  # still ResultReady
            regs = (await client.read_input_registers(0, count=10, device_id=1)).registers
            assert (regs[0] << 16 | regs[1]) == 5 and regs[4] == 1 and regs[6] == 0
            await client.write_coil(1, True, device_id=1)
            assert (await client.read_coils(4, count=1, device_id=1)).bits[0] is False
        finally:
            client.close()
            await servers.stop()
    _run(go())
