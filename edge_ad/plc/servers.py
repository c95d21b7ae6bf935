"""Starting and stopping the PLC servers beside the HTTP server, on the same event loop, over
the same service port. Both protocols share one handshake per camera, so a trigger over Modbus
shows in the OPC UA variables too, and a result waits for one ack whichever protocol gives it."""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from ..config import PlcConfig
from ..errors import ConfigError
from ..pipeline.port import ServicePort
from .handshake import Handshake

log = logging.getLogger(__name__)
TICK_S = 0.05  # how often Ready is brought up to date (and the heartbeat and ack timeout looked at)


class PlcServers:
    """Owns the handshakes, the configured servers and their clock."""

    def __init__(self, port: ServicePort, config: PlcConfig, metrics=None, state_dir: Path | None = None):
        self.port, self.config = port, config
        self.state_dir = state_dir or Path("/var/lib/edge-ad")
        self.handshakes = [Handshake(port, cam, config.trigger_timeout_ms / 1000, config.ack_timeout_s, metrics)
                           for cam in port.cameras()]
        self.servers: list = []
        self._clock: asyncio.Task | None = None

    @property
    def enabled(self) -> bool:
        return self.config.opcua is not None or self.config.modbus is not None

    async def start(self) -> None:
        try:
            if self.config.opcua is not None:
                from .opcua import OpcUaPlcServer
                certs = self.config.opcua.certificate_dir or self.state_dir / "opcua"
                self.servers.append(OpcUaPlcServer(self.handshakes, self.config.opcua, certs))
            if self.config.modbus is not None:
                from .modbus import ModbusPlcServer
                self.servers.append(ModbusPlcServer(self.handshakes, self.config.modbus))
        except ImportError as exc:
            raise ConfigError(f"plc: needs the PLC libraries ({exc.name} is missing): "
                              "pip install 'edge-ad[plc]'") from exc
        for server in self.servers:
            await server.start()
        self._clock = asyncio.get_running_loop().create_task(self._tick(), name="plc-clock")

    async def _tick(self) -> None:
        next_beat = time.monotonic()
        while True:
            beat = time.monotonic() >= next_beat
            if beat:
                next_beat += self.config.heartbeat_s
            now = time.time()
            for h in self.handshakes:
                try:
                    h.tick(now, beat)
                except Exception:  # the clock must outlive anything it looks at
                    log.exception("plc: handshake tick failed for camera %s", h.camera)
            await asyncio.sleep(TICK_S)

    async def stop(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
        for server in reversed(self.servers):
            try:
                await server.stop()
            except Exception:
                log.exception("plc: stopping %s failed", type(server).__name__)
        self.servers = []

    async def context(self, app):
        """For ``app.cleanup_ctx``: up after the service starts, down before it stops."""
        await self.start()
        yield
        await self.stop()
