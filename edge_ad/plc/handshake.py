"""The PLC handshake, one per camera, whatever the protocol (OPC UA and Modbus map it).

    PLC                         edge-ad
    PartId, LotId := ...        Ready = 1
    TriggerRequest 0 -> 1  -->  Ready = 0, Busy = 1; the next frame is inspected for PartId
                           <--  Verdict, Ok/Ng, Score, Seq, BootId, ... ; Busy = 0, ResultReady = 1
    ResultAck 0 -> 1       -->  ResultReady = 0, ErrorCode = 0, Ready = 1
    TriggerRequest, ResultAck := 0

Rules that make it safe on a line:
- Only rising edges count: a level left high does not retrigger.
- A trigger while a result waits for its ack, or while one is in flight, is refused (BUSY) and
  never overwrites the result waiting; a trigger while not ready is refused (NOT_READY) at once.
- The deadline without a frame gives a FAULT result (DEADLINE), like POST /v1/trigger.
- The state lives here, not in a connection: a PLC that disconnects finds its result still
  ready after it reconnects, until it acks or ``ack_timeout_s`` withdraws it (ACK_TIMEOUT, logged).
- Seq and BootId come with every result, so after a restart the PLC sees a new BootId and a
  seq that was never used before.

Everything here runs on the event loop; the service's futures are awaited, never blocked on.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from typing import Callable

from ..decision.codes import ErrorCode, code_number
from ..pipeline.port import ServicePort, TriggersFull, UnknownRecipe

log = logging.getLogger(__name__)
VERDICTS = ("NONE", "OK", "NG", "INVALID", "FAULT")  # the enum's values, in the PLC's numbering
TEXT_MAX = 32  # characters of PartId and LotId the PLC can write (Modbus: 16 registers)


@dataclass(frozen=True)
class HandshakeState:
    """What the PLC reads for one camera."""
    ready: bool = False
    busy: bool = False
    result_ready: bool = False
    verdict: int = 0  # index into VERDICTS
    score: float = 0.0  # normalized, 0.5 = threshold (0 when not inspected)
    seq: int = 0
    boot_id: str = ""
    error_code: int = 0
    error_text: str = ""
    region_count: int = 0
    heartbeat: int = 0
    recipe: int = -1  # the recipe in force (-1: none configured)
    result_part_id: str = ""  # the part the result is for
    result_at: float = 0.0  # wall clock when ResultReady went up

    @property
    def ok(self) -> bool:
        return self.result_ready and VERDICTS[self.verdict] == "OK"

    @property
    def ng(self) -> bool:
        return self.result_ready and VERDICTS[self.verdict] == "NG"

    @property
    def boot_id32(self) -> int:
        """The boot id as 32 bits (its first 8 hex digits), for a register pair."""
        try:
            return int(self.boot_id[:8], 16)
        except ValueError:
            return 0


class Handshake:
    """One camera's handshake: the PLC's inputs in, the state the PLC reads out."""

    def __init__(self, port: ServicePort, camera: str, trigger_timeout_s: float, ack_timeout_s: float,
                 metrics=None):
        self.port, self.camera, self.metrics = port, camera, metrics
        self.trigger_timeout_s, self.ack_timeout_s = trigger_timeout_s, ack_timeout_s
        self.state = HandshakeState()
        self.part_id = ""
        self.lot_id = ""
        self._trigger_level = False
        self._ack_level = False
        self._listeners: list[Callable[[HandshakeState], None]] = []
        self._pending: asyncio.Future | None = None
        self.refresh()

    def subscribe(self, listener: Callable[[HandshakeState], None]) -> None:
        """``listener(state)`` after every change, on the event loop."""
        self._listeners.append(listener)
        listener(self.state)

    def _set(self, **changes) -> None:
        new = replace(self.state, **changes)
        if new != self.state:
            self.state = new
            for listener in self._listeners:
                listener(new)

    def _count(self, protocol: str, kind: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.plc_requests.labels(protocol, kind, outcome).inc()

    # -- the PLC's writes ------------------------------------------------------------------------
    def write_part_id(self, text: str) -> None:
        self.part_id = text.strip("\x00 ")[:TEXT_MAX]

    def write_lot_id(self, text: str) -> None:
        self.lot_id = text.strip("\x00 ")[:TEXT_MAX]

    def write_trigger(self, level: bool, protocol: str) -> None:
        rising = level and not self._trigger_level
        self._trigger_level = bool(level)
        if not rising:
            return
        s = self.state
        if s.result_ready or s.busy:
            why = (f"result seq {s.seq} waits for ResultAck" if s.result_ready else "an inspection is in flight")
            self._refuse(ErrorCode.BUSY, f"trigger refused: {why}", protocol)
            return
        ready, why = self.port.camera_ready(self.camera)
        if not ready:
            self._refuse(ErrorCode.NOT_READY, f"trigger refused: not ready: {why}", protocol)
            return
        try:
            job = self.port.trigger(self.camera, self.part_id or None, self.trigger_timeout_s, self.lot_id or None)
        except TriggersFull as exc:
            self._refuse(ErrorCode.TRIGGERS_FULL, str(exc), protocol)
            return
        self._count(protocol, "trigger", "accepted")
        self._set(ready=False, busy=True, error_code=0, error_text="")
        self._pending = asyncio.wrap_future(job)
        self._pending.add_done_callback(lambda f: self._answered(f, protocol))

    def write_ack(self, level: bool, protocol: str) -> None:
        rising = level and not self._ack_level
        self._ack_level = bool(level)
        if not rising or not self.state.result_ready:
            return
        waited = time.time() - self.state.result_at
        if waited > 5.0:  # typical of a PLC that reconnected: worth a line in the log
            log.info("camera %s: result seq %d acknowledged over %s after %.1f s", self.camera,
                     self.state.seq, protocol, waited)
        self._count(protocol, "ack", "accepted")
        self._set(result_ready=False, error_code=0, error_text="")
        self.refresh()

    def write_recipe(self, number: int, protocol: str) -> None:
        """Select a recipe for this camera; the answer arrives as the Recipe state or an error."""
        job = asyncio.wrap_future(self.port.select_recipe(self.camera, int(number)))
        job.add_done_callback(lambda f: self._recipe_done(f, int(number), protocol))
        self.refresh()

    # -- answers ---------------------------------------------------------------------------------
    def _answered(self, future: asyncio.Future, protocol: str) -> None:
        self._pending = None
        try:
            result = future.result()
        except Exception as exc:  # the service could not answer: a FAULT the PLC can see
            log.error("camera %s: trigger failed: %s", self.camera, exc)
            self._set(busy=False, result_ready=True, verdict=VERDICTS.index("FAULT"), score=0.0,
                      error_code=int(ErrorCode.INTERNAL), error_text=str(exc)[:200], region_count=0,
                      result_part_id=self.part_id, result_at=time.time())
            return
        code = code_number(result.code)
        if code == ErrorCode.NONE and result.verdict not in ("OK", "NG"):
            code = ErrorCode.INTERNAL  # a FAULT or INVALID always says why
        self._set(busy=False, result_ready=True, verdict=VERDICTS.index(str(result.verdict)),
                  score=float(result.score or 0.0), seq=result.seq, boot_id=result.boot_id,
                  error_code=int(code), error_text=(result.reason or "")[:200],
                  region_count=len(result.regions), result_part_id=result.part_id or "",
                  result_at=time.time())
        self._count(protocol, "result", str(result.verdict))

    def _recipe_done(self, future: asyncio.Future, number: int, protocol: str) -> None:
        try:
            future.result()
        except UnknownRecipe as exc:
            self._count(protocol, "recipe", "unknown")
            self._set(error_code=int(ErrorCode.UNKNOWN_RECIPE), error_text=str(exc)[:200])
        except Exception as exc:
            self._count(protocol, "recipe", "failed")
            self._set(error_code=int(ErrorCode.INTERNAL), error_text=f"recipe {number}: {exc}"[:200])
        else:
            self._count(protocol, "recipe", "ok")
            if self.state.error_code in (ErrorCode.UNKNOWN_RECIPE, ErrorCode.RECIPE_LOADING):
                self._set(error_code=0, error_text="")
        self.refresh()

    def _refuse(self, code: ErrorCode, text: str, protocol: str) -> None:
        log.warning("camera %s: %s (%s)", self.camera, text, protocol)
        self._count(protocol, "trigger", code.name.lower())
        self._set(error_code=int(code), error_text=text[:200])  # the waiting result stays as it is

    # -- the clock ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Ready and the recipe in force, from the service."""
        s = self.state
        ready, _ = self.port.camera_ready(self.camera)
        recipes = self.port.recipes()
        recipe = -1
        if recipes is not None:
            selected = recipes["selected"].get(self.camera)
            recipe = -1 if selected is None else int(selected)
        self._set(ready=bool(ready) and not s.busy and not s.result_ready, recipe=recipe)

    def tick(self, now: float, beat: bool) -> None:
        """Called by the servers' clock: Ready kept current, the heartbeat, the ack timeout."""
        s = self.state
        if s.result_ready and now - s.result_at > self.ack_timeout_s:
            log.warning("camera %s: result seq %d (part %r) not acknowledged within %.0f s: withdrawn "
                        "(it stays in the journal and in GET /v1/results)", self.camera, s.seq,
                        s.result_part_id, self.ack_timeout_s)
            self._set(result_ready=False, error_code=int(ErrorCode.ACK_TIMEOUT),
                      error_text=f"result seq {s.seq} was not acknowledged within {self.ack_timeout_s:g} s")
        if beat:
            self._set(heartbeat=(self.state.heartbeat + 1) % 65536)
        self.refresh()
