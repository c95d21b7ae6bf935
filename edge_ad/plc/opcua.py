"""The handshake over OPC UA (asyncua): one object per camera, named as the camera, under Objects.

Node ids are strings in the edge-ad namespace: ``ns=<index of plc.opcua.namespace>;s=<camera>.<Name>``
(the README lists every variable with its type). PLC-written variables (TriggerRequest,
ResultAck, PartId, LotId, Recipe) are writable; everything else is read-only to clients.

Security: the server has its own certificate (made at first start), and offers Basic256Sha256
with Sign and with SignAndEncrypt. With ``allow_anonymous: false`` (the default) anonymous
sessions may read but not write, and writes need the configured username and password. With
``true`` the None policy is offered too and anonymous sessions may write: a closed cell network.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import socket
from datetime import datetime, timezone
from pathlib import Path

from asyncua import Server, ua
from asyncua.common.structures104 import new_enum
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import ADMIN_TYPES, USER_TYPES, PermissionRuleset, User, UserRole
from asyncua.server.user_managers import UserManager
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..config import OpcUaConfig
from .handshake import VERDICTS, Handshake, HandshakeState

log = logging.getLogger(__name__)
# asyncua logs its own address-space construction at INFO (hundreds of lines at every start)
logging.getLogger("asyncua").setLevel(logging.WARNING)
APP_URI = "urn:edge-ad:server"

# name -> (variant type, PLC may write); the order is the README's
VARIABLES = {
    "TriggerRequest": (ua.VariantType.Boolean, True), "PartId": (ua.VariantType.String, True),
    "LotId": (ua.VariantType.String, True), "Recipe": (ua.VariantType.Int32, True),
    "ResultAck": (ua.VariantType.Boolean, True),
    "Ready": (ua.VariantType.Boolean, False), "Busy": (ua.VariantType.Boolean, False),
    "ResultReady": (ua.VariantType.Boolean, False), "Verdict": (ua.VariantType.Int32, False),
    "VerdictText": (ua.VariantType.String, False), "Ok": (ua.VariantType.Boolean, False),
    "Ng": (ua.VariantType.Boolean, False), "Score": (ua.VariantType.Double, False),
    "Seq": (ua.VariantType.UInt64, False), "BootId": (ua.VariantType.String, False),
    "ErrorCode": (ua.VariantType.Int32, False), "ErrorText": (ua.VariantType.String, False),
    "RegionCount": (ua.VariantType.Int32, False), "Heartbeat": (ua.VariantType.UInt32, False),
    "RecipeActive": (ua.VariantType.Int32, False),
}
_INITIAL = {ua.VariantType.Boolean: False, ua.VariantType.String: "", ua.VariantType.Int32: 0,
            ua.VariantType.Double: 0.0, ua.VariantType.UInt64: 0, ua.VariantType.UInt32: 0}


def published(state: HandshakeState) -> dict:
    """The read-only variables' values for a state, the result before the bits that announce it
    (a PLC that sees ResultReady reads a complete result)."""
    return {"Verdict": state.verdict, "VerdictText": VERDICTS[state.verdict], "Score": float(state.score),
            "Seq": state.seq, "BootId": state.boot_id, "ErrorCode": state.error_code,
            "ErrorText": state.error_text, "RegionCount": state.region_count, "RecipeActive": state.recipe,
            "Heartbeat": state.heartbeat, "Ok": state.ok, "Ng": state.ng, "Busy": state.busy,
            "Ready": state.ready, "ResultReady": state.result_ready}


class _Rules(PermissionRuleset):
    """Users read and write; anonymous sessions read, and write only when allowed."""

    def __init__(self, anonymous_writes: bool):
        users = {ua.NodeId(i) for i in USER_TYPES}
        reads = users - {ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary),
                         ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary)}
        self._allowed = {UserRole.Admin: users | {ua.NodeId(i) for i in ADMIN_TYPES}, UserRole.User: users,
                         UserRole.Anonymous: users if anonymous_writes else reads}

    def check_validity(self, user, action_type_id, body):
        return action_type_id in self._allowed[user.role]


class _Users(UserManager):
    """The one configured login; no login is an anonymous session; a wrong one is refused."""

    def __init__(self, config: OpcUaConfig):
        self.config = config

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if not username:
            return User(role=UserRole.Anonymous)
        c = self.config
        if c.username and c.password and hmac.compare_digest(username, c.username) \
                and hmac.compare_digest(password or "", c.password):
            return User(role=UserRole.User, name=username)
        log.warning("opcua: login refused for user %r", username)
        return None


async def ensure_certificate(directory: Path) -> tuple[Path, Path]:
    """The server's certificate and key, made (self-signed, for a year) when missing or expired."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "server-cert.der", directory / "server-key.pem"
    # clients check the certificate against the server's host name, whatever address they dial
    await setup_self_signed_certificate(key, cert, APP_URI, socket.gethostname(),
                                        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
                                        {"commonName": "edge-ad", "organizationName": "edge-ad"})
    key.chmod(0o600)
    return cert, key


class OpcUaPlcServer:
    """Owns the asyncua server and the nodes of every camera's handshake."""

    def __init__(self, handshakes: list[Handshake], config: OpcUaConfig, certificate_dir: Path):
        self.config, self.handshakes, self.certificate_dir = config, handshakes, certificate_dir
        self.server: Server | None = None
        self.namespace_index = 0
        self._nodes: dict[tuple[str, str], ua.NodeId] = {}
        self._shown: dict[tuple[str, str], object] = {}

    async def start(self) -> None:
        c = self.config
        if not c.allow_anonymous and not (c.username and c.password):
            log.warning("opcua: no plc.opcua.username/password and allow_anonymous is false: PLCs can "
                        "read but not trigger; set a login (password in EDGE_AD_OPCUA_PASSWORD)")
        server = Server(user_manager=_Users(c))
        await server.init()
        server.set_endpoint(c.endpoint)
        server.set_server_name("edge-ad")
        await server.set_application_uri(APP_URI)
        cert, key = await ensure_certificate(self.certificate_dir)
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        policies = [ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt, ua.SecurityPolicyType.Basic256Sha256_Sign]
        if c.allow_anonymous:
            policies.append(ua.SecurityPolicyType.NoSecurity)
        server.set_security_policy(policies, permission_ruleset=_Rules(c.allow_anonymous))
        server.set_identity_tokens([ua.AnonymousIdentityToken, ua.UserNameIdentityToken])
        self.namespace_index = idx = await server.register_namespace(c.namespace)
        verdict_type = await new_enum(server, idx, "EdgeAdVerdict", list(VERDICTS))
        for h in self.handshakes:
            obj = await server.nodes.objects.add_object(ua.NodeId(h.camera, idx), ua.QualifiedName(h.camera, idx))
            for name, (vtype, writable) in VARIABLES.items():
                nodeid = ua.NodeId(f"{h.camera}.{name}", idx)
                initial = h.state.recipe if name == "Recipe" else _INITIAL[vtype]
                node = await obj.add_variable(nodeid, ua.QualifiedName(name, idx), ua.Variant(initial, vtype),
                                              datatype=verdict_type.nodeid if name == "Verdict" else None)
                if writable:
                    await node.set_writable()
                    server.iserver.aspace.add_datachange_callback(nodeid, ua.AttributeIds.Value,
                                                                  self._on_write(h, name))
                self._nodes[(h.camera, name)] = nodeid
        self.server = server
        await server.start()
        self._writes = asyncio.Queue()
        self._writer_task = asyncio.get_running_loop().create_task(self._writer(), name="opcua-writer")
        for h in self.handshakes:
            h.subscribe(lambda state, h=h: self._show(h.camera, state))
        log.info("opcua: handshake for %d camera(s) on %s (namespace %s = ns=%d; anonymous %s)",
                 len(self.handshakes), c.endpoint, c.namespace, idx,
                 "may write" if c.allow_anonymous else "read-only")

    def _on_write(self, h: Handshake, name: str):
        async def written(_handle, value: ua.DataValue) -> None:
            v = value.Value.Value if value.Value is not None else None
            if name == "TriggerRequest":
                h.write_trigger(bool(v), "opcua")
            elif name == "ResultAck":
                h.write_ack(bool(v), "opcua")
            elif name == "PartId":
                h.write_part_id(v or "")
            elif name == "LotId":
                h.write_lot_id(v or "")
            elif name == "Recipe" and v is not None:
                h.write_recipe(int(v), "opcua")
        return written

    def _show(self, camera: str, state: HandshakeState) -> None:
        """Queue the variables that changed; one writer task writes them in order."""
        changed = []
        for name, value in published(state).items():
            key = (camera, name)
            if key not in self._shown or self._shown[key] != value:
                self._shown[key] = value
                changed.append((self._nodes[key], ua.Variant(value, VARIABLES[name][0])))
        if changed:
            self._writes.put_nowait(changed)

    async def _writer(self) -> None:
        aspace = self.server.iserver.aspace
        while True:
            changed = await self._writes.get()
            now = datetime.now(timezone.utc)  # the source timestamp: when the PLC can read it
            for nodeid, variant in changed:
                await aspace.write_attribute_value(nodeid, ua.AttributeIds.Value,
                                                   ua.DataValue(variant, SourceTimestamp=now, ServerTimestamp=now))

    async def stop(self) -> None:
        if self.server is not None:
            self._writer_task.cancel()
            server, self.server = self.server, None
            await server.stop()
