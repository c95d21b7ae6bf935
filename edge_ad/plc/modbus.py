"""The handshake over Modbus TCP (pymodbus), for PLCs without OPC UA.

One block per camera, at ``STRIDE`` times the camera's index (in config order) in every table:

- coils: the bits (TriggerRequest and ResultAck are written by the PLC, the rest read-only);
  discrete inputs mirror them, for PLCs that read status bits there;
- holding registers: PartId and LotId (ASCII, two characters a register, high byte first,
  NUL-padded) and Recipe, written by the PLC;
- input registers: Seq and BootId (32-bit, two registers each, high word first), Verdict,
  Score x 1000, ErrorCode, Heartbeat, RegionCount and the recipe in force.

Modbus has no authentication: the server binds to ``plc.modbus.host`` (127.0.0.1 unless told),
closes connections from addresses outside ``allow``, and ``read_only`` refuses every write
(ILLEGAL FUNCTION). A read or write outside the map, or a write to a read-only address, is
refused with ILLEGAL DATA ADDRESS. The map is the README's table; ``REGISTER_MAP`` is its source.
"""
from __future__ import annotations

import logging

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler

from ..config import ModbusConfig
from .handshake import TEXT_MAX, Handshake, HandshakeState

log = logging.getLogger(__name__)
STRIDE = 100  # addresses per camera in each table
TEXT_REGS = TEXT_MAX // 2

# table -> offset -> (name, PLC may write)
COILS = {0: ("TriggerRequest", True), 1: ("ResultAck", True), 2: ("Ready", False), 3: ("Busy", False),
         4: ("ResultReady", False), 5: ("Ok", False), 6: ("Ng", False)}
HOLDING = {**{i: ("PartId", True) for i in range(TEXT_REGS)},
           **{TEXT_REGS + i: ("LotId", True) for i in range(TEXT_REGS)},
           2 * TEXT_REGS: ("Recipe", True)}
INPUTS = {0: ("Seq", False), 1: ("Seq", False), 2: ("BootId", False), 3: ("BootId", False),
          4: ("Verdict", False), 5: ("Score", False), 6: ("ErrorCode", False), 7: ("Heartbeat", False),
          8: ("RegionCount", False), 9: ("RecipeActive", False)}
REGISTER_MAP = {"coils": COILS, "discrete_inputs": COILS, "holding_registers": HOLDING,
                "input_registers": INPUTS}
_TABLE = {1: COILS, 2: COILS, 5: COILS, 15: COILS, 3: HOLDING, 6: HOLDING, 16: HOLDING, 4: INPUTS}
_WRITES = {5, 6, 15, 16}
NO_RECIPE = 0xFFFF


def encode_text(text: str) -> list[int]:
    raw = text.encode("ascii", "replace")[:TEXT_MAX].ljust(TEXT_MAX, b"\x00")
    return [raw[i] << 8 | raw[i + 1] for i in range(0, TEXT_MAX, 2)]


def decode_text(regs: list[int]) -> str:
    raw = b"".join(bytes((r >> 8 & 0xFF, r & 0xFF)) for r in regs)
    return raw.split(b"\x00", 1)[0].decode("ascii", "replace")


def bits(state: HandshakeState, trigger: bool, ack: bool) -> list[bool]:
    return [trigger, ack, state.ready, state.busy, state.result_ready, state.ok, state.ng]


def input_registers(state: HandshakeState) -> list[int]:
    seq, boot = state.seq & 0xFFFFFFFF, state.boot_id32
    return [seq >> 16, seq & 0xFFFF, boot >> 16, boot & 0xFFFF, state.verdict,
            max(0, min(0xFFFF, round(state.score * 1000))), state.error_code, state.heartbeat,
            min(0xFFFF, state.region_count), NO_RECIPE if state.recipe < 0 else state.recipe & 0xFFFF]


class _Block:
    """One camera's registers as the PLC last wrote them, beside its handshake."""

    def __init__(self, handshake: Handshake):
        self.handshake = handshake
        self.coils_written = [False, False]  # TriggerRequest, ResultAck as the PLC left them
        recipe = handshake.state.recipe
        self.holding = encode_text("") + encode_text("") + [NO_RECIPE if recipe < 0 else recipe]


class HandshakeContext(ModbusServerContext):
    """The datastore pymodbus reads and writes: every access goes to a camera's handshake.

    It follows the interface pymodbus 3.x servers call on a context (``async_getValues``,
    ``async_setValues``, ``device_ids``, answering a list or an ``ExcCodes``), without the
    deprecated block classes, so nothing is copied between a register array and the handshake."""

    def __init__(self, handshakes: list[Handshake], config: ModbusConfig):  # noqa: super() builds blocks we do not use
        self.old_simulator = True  # pymodbus: call this context directly, not its simulator
        self.simdevices = []
        self._blocks = [_Block(h) for h in handshakes]
        self._config = config

    def device_ids(self):
        return [self._config.device_id]

    def _locate(self, device_id: int, func_code: int, address: int, count: int):
        if self._config.device_id and device_id not in (self._config.device_id, 0):
            raise NoSuchIdException(f"device id {device_id}")
        table = _TABLE.get(func_code)
        camera, offset = divmod(address, STRIDE)
        if table is None or camera >= len(self._blocks) or count < 1 or offset + count > STRIDE \
                or any(offset + i not in table for i in range(count)):
            return None, None, ExcCodes.ILLEGAL_ADDRESS
        if func_code in _WRITES and not all(table[offset + i][1] for i in range(count)):
            return None, None, ExcCodes.ILLEGAL_ADDRESS
        return self._blocks[camera], offset, None

    async def async_getValues(self, device_id, func_code, address, count=1):
        block, offset, error = self._locate(device_id, func_code, address, count)
        if error is not None:
            return error
        state = block.handshake.state
        if func_code in (1, 2, 5, 15):
            values = bits(state, *block.coils_written)
        elif func_code == 4:
            values = input_registers(state)
        else:
            values = block.holding
        return list(values[offset:offset + count])

    async def async_setValues(self, device_id, func_code, address, values):
        if self._config.read_only:
            return ExcCodes.ILLEGAL_FUNCTION
        block, offset, error = self._locate(device_id, func_code, address, len(values))
        if error is not None:
            return error
        h = block.handshake
        if func_code in (5, 15):
            for i, value in enumerate(values):
                which = offset + i
                block.coils_written[which] = bool(value)
                (h.write_trigger if which == 0 else h.write_ack)(bool(value), "modbus")
            return None
        block.holding[offset:offset + len(values)] = [int(v) & 0xFFFF for v in values]
        end = offset + len(values)
        if offset < TEXT_REGS:
            h.write_part_id(decode_text(block.holding[:TEXT_REGS]))
        if offset < 2 * TEXT_REGS and end > TEXT_REGS:
            h.write_lot_id(decode_text(block.holding[TEXT_REGS:2 * TEXT_REGS]))
        if end > 2 * TEXT_REGS:
            h.write_recipe(block.holding[2 * TEXT_REGS], "modbus")
        return None


class _Handler(ServerRequestHandler):
    """A connection: refused at once when its address is not on the allow list."""

    def connection_made(self, transport) -> None:
        allow = self.server.allow
        peer = transport.get_extra_info("peername") or ("?",)
        if allow and peer[0] not in allow:
            log.warning("modbus: connection from %s refused (not in plc.modbus.allow)", peer[0])
            transport.close()
            return
        self.peer = peer[0]
        super().connection_made(transport)


class _Server(ModbusTcpServer):
    allow: frozenset[str] = frozenset()

    def callback_new_connection(self):
        return _Handler(self, self.trace_packet, self.trace_pdu, self.trace_connect)


class ModbusPlcServer:
    """Owns the pymodbus server of every camera's handshake."""

    def __init__(self, handshakes: list[Handshake], config: ModbusConfig):
        self.config, self.handshakes = config, handshakes
        self._server: _Server | None = None

    async def start(self) -> None:
        c = self.config
        self._server = _Server(HandshakeContext(self.handshakes, c), address=(c.host, c.port),
                               trace_connect=self._connected)
        self._server.allow = frozenset(c.allow)
        await self._server.serve_forever(background=True)
        log.info("modbus: handshake for %d camera(s) on %s:%d (stride %d%s)", len(self.handshakes),
                 c.host, c.port, STRIDE, ", read-only" if c.read_only else "")

    def _connected(self, up: bool) -> None:
        if up:
            return
        waiting = [(h.camera, h.state.seq) for h in self.handshakes if h.state.result_ready]
        if waiting:  # the state outlives the connection: the PLC finds it after reconnecting
            log.warning("modbus: a client disconnected while results wait for their ack: %s", waiting)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
